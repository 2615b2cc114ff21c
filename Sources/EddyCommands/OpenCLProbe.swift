import ArgumentParser
import Eddy
import EddyOpenCL
#if canImport(Glibc)
import Glibc
#endif

/// OpenCL drivers are loaded into the process that lists them: one that crashes or hangs while enumerating platforms
/// would take eddy down with it. So the first enumeration runs in a child process (`eddy probe-opencl`) with a
/// timeout; only when the child comes back does this process touch OpenCL itself. `EDDY_OPENCL_PROBE=0` skips it,
/// `EDDY_OPENCL_PROBE_TIMEOUT` (seconds, default 30) bounds it.
enum OpenCLProbe {
    /// nil when the drivers could be listed in a child process; else why OpenCL must not be touched here.
    static func failure() -> String? {
        if let v = getenv("EDDY_OPENCL_PROBE"), String(cString: v) == "0" { return nil }
        let timeout = getenv("EDDY_OPENCL_PROBE_TIMEOUT").flatMap { Double(String(cString: $0)) }.map { max(0.1, $0) } ?? 30
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var arguments: [UnsafeMutablePointer<CChar>?] = [strdup("/proc/self/exe"), strdup("probe-opencl")]
        arguments.append(nil)
        defer { for a in arguments { free(a) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, "/proc/self/exe", &actions, nil, arguments, environ)
        guard spawned == 0 else { return nil }   // cannot probe (no /proc?): enumerate in-process as before
        var clock = Stopwatch()
        var elapsed = 0.0
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r < 0 { return nil }
            elapsed += clock.lap()
            if elapsed > timeout {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                return "the OpenCL drivers did not finish listing their platforms within \(Format.general(timeout)) s (a driver hangs; EDDY_OPENCL_PROBE_TIMEOUT sets the limit)"
            }
            usleep(5_000)
        }
        let signal = status & 0x7f
        if signal != 0 {
            let name = String(cString: strsignal(signal))
            return "an OpenCL driver crashed while listing platforms (signal \(signal), \(name)); check the ICD files in /etc/OpenCL/vendors or OCL_ICD_VENDORS"
        }
        let code = (status >> 8) & 0xff
        return code == 0 ? nil : "listing the OpenCL platforms failed in a child process (exit status \(code))"
    }
}

/// The child side of `OpenCLProbe`: list the devices and exit (hidden from help).
struct ProbeOpenCL: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "probe-opencl", abstract: "List OpenCL devices (used by eddy itself).",
                                                    shouldDisplay: false)

    func run() throws {
        let devices = (try? OpenCLDevices.all()) ?? []
        print(devices.count)
    }
}
