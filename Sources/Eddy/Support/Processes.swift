#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// The processes that train one model together (MPI ranks under `eddy-mpi`; one process under `eddy`). The library
/// needs only these few collectives; `SingleProcess` implements them by returning their input, so one code path
/// serves both. The MPI implementation lives in the `EddyMPI` target (built only with `EDDY_MPI=1`).
///
/// Every collective must be called by every process, in the same order, with the same sizes.
public protocol ProcessGroup: AnyObject, Sendable {
    /// This process, 0 ..< `size`.
    var rank: Int { get }
    var size: Int { get }
    /// This process among those on the same machine (to give each its own GPU).
    var localRank: Int { get }
    /// Point to point, for the fixed reduction trees below: `count` doubles.
    func send(_ values: [Double], to rank: Int) throws
    func receive(count: Int, from rank: Int) throws -> [Double]
    /// `values` from `root` to every process (all pass arrays of the same count).
    func broadcast(_ values: inout [Double], root: Int) throws
    /// Every process's bytes, in rank order, on every process (the lengths may differ).
    func allGather(_ bytes: [UInt8]) throws -> [[UInt8]]
}

/// One process: every collective returns its input.
public final class SingleProcess: ProcessGroup {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public var localRank: Int { 0 }
    public func send(_ values: [Double], to rank: Int) throws {
        throw EddyError("internal: a single process has no rank \(rank) to send to")
    }
    public func receive(count: Int, from rank: Int) throws -> [Double] {
        throw EddyError("internal: a single process has no rank \(rank) to receive from")
    }
    public func broadcast(_ values: inout [Double], root: Int) throws {}
    public func allGather(_ bytes: [UInt8]) throws -> [[UInt8]] { [bytes] }
}

/// The group this process belongs to: set once by the executable before any work (`eddy-mpi` installs its MPI
/// group; `eddy` keeps the single process).
public enum Processes {
    nonisolated(unsafe) private static var installed: ProcessGroup = SingleProcess()

    public static var group: ProcessGroup { installed }

    /// Called once, at start-up, before any other thread exists.
    public static func install(_ group: ProcessGroup) { installed = group }

    /// Whether this process takes part in chunk `index` of a pass that is split among the processes: chunks go round
    /// the ranks in turn (every process reads the same stream, so all agree on the numbering).
    static func owns(chunk index: Int, in group: ProcessGroup) -> Bool { index % group.size == group.rank }

    /// Reduces one value per process along a fixed binomial tree — rank r takes in r + 1, r + 2, r + 4, … in that
    /// order, `combine(lower rank's, higher rank's)` — and broadcasts rank 0's result, so every process holds the same
    /// bits and the result depends only on the number of processes, never on timing. `encode`/`decode` carry a value
    /// as `count` doubles.
    static func treeReduce<T>(_ value: T, in group: ProcessGroup, count: Int, encode: (T) -> [Double], decode: ([Double]) throws -> T,
                              combine: (T, T) throws -> T) throws -> T {
        let k = group.size, r = group.rank
        guard k > 1 else { return value }
        var mine = value
        var step = 1
        while step < k {
            if r % (2 * step) == 0 {
                if r + step < k {
                    let theirs = try decode(try group.receive(count: count, from: r + step))
                    mine = try combine(mine, theirs)
                }
            } else {
                try group.send(encode(mine), to: r - step)
                break
            }
            step *= 2
        }
        var flat = r == 0 ? encode(mine) : [Double](repeating: 0, count: count)
        try group.broadcast(&flat, root: 0)
        return try decode(flat)
    }

    /// Element-wise sum over the processes (a fixed tree; identical on every process).
    public static func sum(_ values: [Double], in group: ProcessGroup = Processes.group) throws -> [Double] {
        try treeReduce(values, in: group, count: values.count, encode: { $0 }, decode: { $0 }) { a, b in
            var s = a
            for i in s.indices { s[i] += b[i] }
            return s
        }
    }

    /// A pass state merged over the processes: Gram sums added, QR factors stacked (TSQR, triangle on triangle),
    /// pairs added; identical on every process.
    public static func merge(_ state: PassState, in group: ProcessGroup = Processes.group) throws -> PassState {
        guard group.size > 1 else { return state }
        switch state {
        case .gram(let sums):
            let f = sums.gram.count, t = sums.rightHandSide.count
            let merged = try treeReduce(sums, in: group, count: f + t + 1, encode: { $0.gram + $0.rightHandSide + [Double($0.pairs)] },
                                        decode: { flat in
                                            var s = sums
                                            s.gram = Array(flat[0..<f])
                                            s.rightHandSide = Array(flat[f..<(f + t)])
                                            s.pairs = Int(flat[f + t])
                                            return s
                                        }, combine: { $0 + $1 })
            return .gram(merged)
        case .factor(let factor):
            let n = factor.factor.count
            let merged = try treeReduce(factor, in: group, count: n + 1, encode: { $0.factor + [Double($0.pairs)] },
                                        decode: { flat in
                                            var f = factor
                                            f.factor = Array(flat[0..<n])
                                            f.pairs = Int(flat[n])
                                            return f
                                        }, combine: { try $0.merged(with: $1) })
            return .factor(merged)
        }
    }

    /// Every process's text, in rank order (for per-rank lines such as the backend each one chose).
    public static func gather(_ text: String, in group: ProcessGroup = Processes.group) throws -> [String] {
        guard group.size > 1 else { return [text] }
        return try group.allGather(Array(text.utf8)).map { String(decoding: $0, as: UTF8.self) }
    }
}
