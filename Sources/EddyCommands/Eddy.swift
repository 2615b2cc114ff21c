import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import Eddy

public struct EddyCommand: ParsableCommand {
    public init() {}

    public static let configuration = CommandConfiguration(
        commandName: "eddy",
        abstract: "Train recurrent networks without gradients: sampled hidden layers, outer weights solved by EDMD.",
        discussion: """
        A typical session:
          eddy generate vanderpol --trajectories 100 --steps 200 --out train.csv
          eddy train --data train.csv --episode-column episode --width 400 --out vdp.safetensors
          eddy generate vanderpol --trajectories 20 --steps 201 --seed 1 --initial-range=-2,2 --out test.csv
          eddy evaluate --model vdp.safetensors --data test.csv --episode-column episode --horizon 200
        """,
        version: Eddy.version,
        subcommands: [Generate.self, Train.self, SweepCommand.self, Forecast.self, Evaluate.self, SpectrumCommand.self, Devices.self, ControlCommand.self, Bench.self, Tune.self, ProbeOpenCL.self]
    )
}

/// `eddy-mpi`: `train` and `sweep` over the processes of an MPI job (`mpirun -n K eddy-mpi train …`), with the same
/// options as `eddy`. Every rank reads the data; the lift and the Gram or QR pass are shared out among them and merged;
/// rank 0 writes the outputs and prints, the other ranks print only their own errors.
public struct EddyMPICommand: ParsableCommand {
    public init() {}

    public static let configuration = CommandConfiguration(
        commandName: "eddy-mpi",
        abstract: "eddy train and eddy sweep over the processes of an MPI job: one model from many processes, machines and GPUs.",
        discussion: """
        Launch it with mpirun or srun, e.g.
          mpirun -n 4 eddy-mpi train --data train.csv --width 2000 --out model.safetensors
          srun -N 8 --ntasks-per-node 4 eddy-mpi sweep --data train.csv --widths 500,1000,2000 --out best.safetensors
        The model does not depend on the number of processes beyond round-off (README, "MPI").
        """,
        version: Eddy.version,
        subcommands: [Train.self, SweepCommand.self]
    )
}

/// How the executable reports errors: `eddy` on stderr; `eddy-mpi` names the rank, and a rank other than 0 waits a
/// moment first (when every rank meets the same error, rank 0's line is the one shown and it ends the job).
public enum CommandErrors {
    nonisolated(unsafe) public private(set) static var prefix = "eddy"
    nonisolated(unsafe) public private(set) static var descriptor: Int32 = 2
    nonisolated(unsafe) public private(set) static var delayMicroseconds: UInt32 = 0

    /// Called once at start-up, before any command runs.
    public static func configure(prefix: String, descriptor: Int32, delayMicroseconds: UInt32) {
        self.prefix = prefix
        self.descriptor = descriptor
        self.delayMicroseconds = delayMicroseconds
    }

    public static func report(_ message: String) {
        if delayMicroseconds > 0 { usleep(delayMicroseconds) }
        let line = "\(prefix): error: \(message)\n"
        _ = line.withCString { write(descriptor, $0, strlen($0)) }
    }
}

/// Runs a command body; an `EddyError` becomes one line on stderr and exit status 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as EddyError {
        CommandErrors.report(error.message)
        throw ExitCode.failure
    }
}

/// A `--seed` as typed, checked by `value()` in the command's body like every other range (exit 1, the option
/// named), not by the argument parser: for a value its type cannot hold (-1 for a UInt64) the parser exits 64 with a
/// usage message. Text that is no number at all is a usage error the same way, so it is checked here too.
struct SeedOption: ExpressibleByArgument, CustomStringConvertible, Sendable {
    let text: String
    init(_ value: UInt64) { text = "\(value)" }
    init?(argument: String) { text = argument }
    var description: String { text }
    var defaultValueDescription: String { text }

    func value(_ option: String = "--seed") throws -> UInt64 {
        guard let v = UInt64(text) else {
            let shown = text.count > 40 ? String(text.prefix(40)) + "…" : text
            throw EddyError("\(option) must be a whole number from 0 to \(UInt64.max), got '\(shown)'")
        }
        return v
    }
}

func splitList(_ s: String) -> [String] {
    s.split(separator: ",").map { String($0).trimmingSpaces() }.filter { !$0.isEmpty }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}

/// Progress on stderr, only when stderr is a terminal, at most a few updates a second. Each update rewrites the
/// whole line (carriage return, then erase to its end), so a shorter line leaves nothing of a longer one behind.
/// Every new label is the next pass ("pass 2 of 3" when the command says how many there are); a pass that counts
/// rows without a total takes the row count of the first pass that read them all as its total.
final class TerminalProgress: @unchecked Sendable {
    private var last = Stopwatch()
    private var elapsed = 0.0
    private var shown = false
    private var labels: [String] = []
    private var rowsSeen: [String: Int] = [:]
    /// The number of passes, when the command knows it.
    var passes: Int?
    let enabled = FileSystem.stderrIsTerminal

    func handler() -> ProgressHandler? {
        guard enabled else { return nil }
        return { [self] label, done, total in
            elapsed += last.lap()
            if !labels.contains(label) { labels.append(label); elapsed = 1 }   // a new pass shows at once
            if total == 0 { rowsSeen[label] = max(rowsSeen[label] ?? 0, done) }
            guard elapsed > 0.25 else { return }
            elapsed = 0
            shown = true
            print(line(label: label, done: done, total: total))
        }
    }

    /// The text of one update (without the terminal controls), for tests.
    func line(label: String, done: Int, total: Int) -> String {
        let index = (labels.firstIndex(of: label) ?? labels.count) + 1
        let pass = labels.count > 1 || passes != nil ? "pass \(index)\(passes.map { " of \(max($0, index))" } ?? ""): " : ""
        // Rows counted by an earlier pass that read all of them are this pass's total.
        let known = total > 0 ? total : labels.prefix(index - 1).compactMap { rowsSeen[$0] }.max() ?? 0
        let count = known > 0 && done <= known
            ? "\(done) of \(known)\(total > 0 ? "" : " rows") (\(100 * done / max(known, 1))%)" : "\(plural(done, "row"))"
        return pass + "\(label): " + count
    }

    private func print(_ text: String) { printErrorInline("\r\(text)\u{1B}[K") }

    func clear() {
        if shown { printErrorInline("\r\u{1B}[K") }
    }
}

func printErrorInline(_ text: String) {
    printError(text, newline: false)
}

/// Reads a model file and prints what the reader noticed (e.g. an older format without a checksum) to stderr.
func readModel(_ path: String) throws -> Model {
    var notes: [String] = []
    let model = try ModelFile.read(path, notes: &notes)
    for n in notes { printError("eddy: note: \(n)") }
    return model
}
