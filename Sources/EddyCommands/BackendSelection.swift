import ArgumentParser
import Eddy
import EddyOpenCL

/// `--backend`, `--device` and `--precision`, resolved once into a backend and the one line that says why
/// (the choice itself lives in `EddyOpenCL.BackendSelection`, which sees both the CPU and OpenCL).
func selectBackend(_ backend: String, device: String?, precision: String, chunkRows: Int) throws -> (backend: Backend, reason: String) {
    let choice: BackendChoice = try parseChoice(backend, "--backend")
    let p: Precision = try parseChoice(precision, "--precision")
    if choice != .cpu, let reason = OpenCLProbe.failure() {
        if choice == .opencl { throw EddyError("--backend opencl: \(reason)") }
        return (CPUBackend(), "cpu: OpenCL is not usable: \(reason)")
    }
    return try BackendSelection.make(choice, device: device, precision: p, rows: chunkRows, share: Processes.group.localRank)
}

/// The backend line: one per process under MPI (each rank picks its own device and may fall back on its own).
func reportBackend(_ reason: String) throws {
    let lines = try Processes.gather(reason)
    if lines.count == 1 { printError("backend \(reason)"); return }
    for (rank, line) in lines.enumerated() { printError("backend (rank \(rank) of \(lines.count)) \(line)") }
}

/// The backend options of commands that only run on a device (`eddy bench`, `eddy tune`).
struct DeviceOptions: ParsableArguments {
    @Option(help: "Compute backend: auto (an OpenCL GPU that passes a self-test, else the CPU), cpu or opencl.")
    var backend: String = "auto"

    @Option(help: "OpenCL device: an index or part of a name, as eddy devices lists them (PoCL only when named or with --backend opencl).")
    var device: String?
}
