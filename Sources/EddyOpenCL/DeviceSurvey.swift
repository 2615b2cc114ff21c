import Eddy
#if canImport(Glibc)
import Glibc
#endif

/// What `eddy devices` reports: every OpenCL device, where the loader looked for drivers, and — when there is
/// no GPU — the likely reason and the fix (GPU.md: containers often have the NVIDIA driver but no ICD file).
public struct DeviceSurvey: Sendable {
    public var devices: [OpenCLDevice]
    /// Why the devices could not be listed, if they could not.
    public var error: String?
    /// Where the ICD loader reads driver registrations: `OCL_ICD_VENDORS` or `/etc/OpenCL/vendors`.
    public var icdSource: String
    /// The `.icd` files there (each names a driver library).
    public var icdFiles: [String]
    /// Likely reasons there is no GPU, each with its fix; empty when a GPU is listed.
    public var advice: [String]

    /// Lists the devices and looks at the system.
    public static func take() -> DeviceSurvey {
        do { return take(devices: try OpenCLDevices.all()) } catch let e as EddyError {
            var s = take(devices: [])
            s.error = e.message
            return s
        } catch {
            return take(devices: [])
        }
    }

    static func take(devices: [OpenCLDevice]) -> DeviceSurvey {
        let env = getenv("OCL_ICD_VENDORS").map { String(cString: $0) }
        let folder = env ?? "/etc/OpenCL/vendors"
        let files: [String]
        if FileSystem.isDirectory(folder) {
            files = ((try? FileSystem.files(in: folder)) ?? []).filter { $0.hasSuffix(".icd") }
        } else {
            files = FileSystem.exists(folder) ? [folder] : []
        }
        var s = DeviceSurvey(devices: devices, error: nil, icdSource: env.map { "OCL_ICD_VENDORS=\($0)" } ?? folder,
                             icdFiles: files, advice: [])
        if !devices.contains(where: { $0.kind == .gpu }) { s.advice = s.diagnose() }
        return s
    }

    /// One clause for a log line: why there is no GPU.
    public var summary: String {
        if let error { return error }
        if devices.isEmpty {
            return icdFiles.isEmpty ? "no OpenCL driver is registered in \(icdSource)" : "the drivers registered in \(icdSource) found no device"
        }
        let kinds = Set(devices.map(\.kind.rawValue)).sorted().joined(separator: ", ")
        return "only \(kinds) devices: \(devices.map(\.name).joined(separator: ", "))"
    }

    private func diagnose() -> [String] {
        var out: [String] = []
        let nvidiaLibrary = ["/usr/local/nvidia/lib64", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib/aarch64-linux-gnu"]
            .map { $0 + "/libnvidia-opencl.so.1" }.first(where: FileSystem.exists)
        let registered = icdFiles.compactMap(Self.smallFile).joined(separator: " ")
        if let lib = nvidiaLibrary, !registered.contains("nvidia") {
            out.append("""
            the NVIDIA OpenCL driver is installed (\(lib)) but no ICD file registers it (common in containers). Fix:
              mkdir -p ~/.local/etc/OpenCL/vendors && echo \(lib) > ~/.local/etc/OpenCL/vendors/nvidia.icd
              export OCL_ICD_VENDORS=~/.local/etc/OpenCL/vendors
            """)
        } else if FileSystem.exists("/dev/nvidiactl") {
            out.append("an NVIDIA GPU is present (/dev/nvidiactl) but its OpenCL driver (libnvidia-opencl.so.1) was not found: install the driver's OpenCL part (Debian/Ubuntu: nvidia-opencl-icd or libnvidia-compute-*), or register it in an ICD file and point OCL_ICD_VENDORS at its folder")
        }
        if FileSystem.exists("/dev/kfd") && !registered.contains("amdocl") {
            out.append("an AMD GPU is present (/dev/kfd) but no ROCm OpenCL driver is registered: install rocm-opencl-runtime (it adds /etc/OpenCL/vendors/amdocl64*.icd)")
        }
        if FileSystem.exists("/dev/dri/renderD128") && !registered.contains("intel") && nvidiaLibrary == nil && !FileSystem.exists("/dev/kfd") {
            out.append("a GPU render node is present (/dev/dri/renderD128): for an Intel GPU install intel-opencl-icd")
        }
        if out.isEmpty && !FileSystem.exists("/dev/nvidiactl") && !FileSystem.exists("/dev/kfd") && !FileSystem.exists("/dev/dri") {
            out.append("no GPU device node is visible (/dev/nvidia*, /dev/kfd, /dev/dri): this machine has no GPU, or a container was started without one (docker run --gpus all, or --device /dev/kfd --device /dev/dri)")
        }
        if let env = getenv("OCL_ICD_VENDORS").map({ String(cString: $0) }), icdFiles.isEmpty {
            out.append("OCL_ICD_VENDORS=\(env) holds no .icd file: point it at a folder with one (a one-line file naming the driver library), or unset it to use /etc/OpenCL/vendors")
        } else if icdFiles.isEmpty {
            out.append("\(icdSource) holds no .icd file: install a driver's ICD package (NVIDIA: nvidia-opencl-icd; AMD: rocm-opencl-runtime; Intel: intel-opencl-icd; CPU only: pocl-opencl-icd)")
        }
        return out
    }
}

extension DeviceSurvey {
    /// A small text file's contents (ICD files are one line).
    static func smallFile(_ path: String) -> String? {
        guard let f = try? InputFile(path: path) else { return nil }
        return String(decoding: f.readBytes(min(f.size, 1 << 16)), as: UTF8.self)
    }
}
