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

    /// Reduces one flat buffer per process along a fixed binomial tree — rank r takes in r + 1, r + 2, r + 4, … in
    /// that order, `combine(&lower rank's, higher rank's)` — and broadcasts rank 0's result, so every process holds the
    /// same bits and the result depends only on the number of processes, never on timing. The buffer is reduced and
    /// broadcast in place (a Gram of D = 8192 is 512 MiB: no extra copies).
    static func treeReduce(_ flat: inout [Double], in group: ProcessGroup, combine: (inout [Double], [Double]) throws -> Void) throws {
        let k = group.size, r = group.rank
        guard k > 1 else { return }
        var step = 1
        while step < k {
            if r % (2 * step) == 0 {
                if r + step < k { try combine(&flat, try group.receive(count: flat.count, from: r + step)) }
            } else {
                try group.send(flat, to: r - step)
                break
            }
            step *= 2
        }
        try group.broadcast(&flat, root: 0)
    }

    /// Element-wise sum over the processes (a fixed tree; identical on every process).
    public static func sum(_ values: [Double], in group: ProcessGroup = Processes.group) throws -> [Double] {
        var flat = values
        try treeReduce(&flat, in: group) { a, b in
            a.withUnsafeMutableBufferPointer { a in b.withUnsafeBufferPointer { b in for i in 0..<a.count { a[i] += b[i] } } }
        }
        return flat
    }

    /// A pass state merged over the processes: Gram sums added, QR factors stacked (TSQR, triangle on triangle),
    /// pairs added; identical on every process.
    public static func merge(_ state: PassState, in group: ProcessGroup = Processes.group) throws -> PassState {
        guard group.size > 1 else { return state }
        switch state {
        case .gram(var sums):
            let f = sums.gram.count, t = sums.rightHandSide.count
            // One buffer [G | R | pairs]; G's storage is reused for it.
            var flat = sums.gram
            sums.gram = []
            flat += sums.rightHandSide
            flat.append(Double(sums.pairs))
            try treeReduce(&flat, in: group) { a, b in
                a.withUnsafeMutableBufferPointer { a in b.withUnsafeBufferPointer { b in for i in 0..<a.count { a[i] += b[i] } } }
            }
            sums.rightHandSide = Array(flat[f..<(f + t)])
            sums.pairs = Int(flat[f + t])
            flat.removeLast(t + 1)
            sums.gram = flat
            return .gram(sums)
        case .factor(var factor):
            let n = factor.factor.count
            var flat = factor.factor
            factor.factor = []
            flat.append(Double(factor.pairs))
            func unpack(_ values: [Double]) -> QRFactor {
                var f = factor
                f.factor = Array(values[0..<n])
                f.pairs = Int(values[n])
                return f
            }
            try treeReduce(&flat, in: group) { a, b in
                let m = try unpack(a).merged(with: unpack(b))
                a = m.factor
                a.append(Double(m.pairs))
            }
            return .factor(unpack(flat))
        }
    }

    /// SWIM's pool over the processes: the `capacity` smallest keys of the union of every process's reservoir, in
    /// key order, on every process (keys and ties are gathered first, then only the chosen pairs).
    static func mergePool(_ pool: inout PairReservoir, in group: ProcessGroup = Processes.group) throws {
        pool.prune()
        guard group.size > 1 else { return }
        var mine: [UInt64] = [UInt64(pool.seen)]
        for i in 0..<pool.count { mine.append(pool.keys[i]); mine.append(pool.ties[i]) }
        let all = try group.allGather(words: mine)
        var candidates: [(key: UInt64, tie: UInt64, rank: Int, index: Int)] = []
        var seen = 0
        for (rank, w) in all.enumerated() {
            guard w.count >= 1, w.count % 2 == 1 else { throw EddyError("internal: rank \(rank) sent a malformed pool") }
            seen += Int(w[0])
            for i in 0..<((w.count - 1) / 2) { candidates.append((w[1 + 2 * i], w[2 + 2 * i], rank, i)) }
        }
        candidates.sort { ($0.key, $0.tie, $0.rank) < ($1.key, $1.tie, $1.rank) }
        let chosen = candidates.prefix(pool.capacity)
        let (w, y) = pool.entries(chosen.filter { $0.rank == group.rank }.map(\.index))
        let parts = try group.allGather(words: (w + y).map(\.bitPattern))
        let p = pool.windowSize, q = pool.targetSize
        var cursor = [Int](repeating: 0, count: group.size)
        var counts = [Int](repeating: 0, count: group.size)
        for c in chosen { counts[c.rank] += 1 }
        var windows: [Double] = [], targets: [Double] = []
        windows.reserveCapacity(chosen.count * p)
        targets.reserveCapacity(chosen.count * q)
        for c in chosen {
            let part = parts[c.rank], j = cursor[c.rank], n = counts[c.rank]
            guard part.count == n * (p + q) else { throw EddyError("internal: rank \(c.rank) sent \(part.count) pool values, expected \(n * (p + q))") }
            windows += part[(j * p)..<((j + 1) * p)].map(Double.init(bitPattern:))
            targets += part[(n * p + j * q)..<(n * p + (j + 1) * q)].map(Double.init(bitPattern:))
            cursor[c.rank] += 1
        }
        pool.replace(windows: windows, targets: targets, keys: chosen.map(\.key), ties: chosen.map(\.tie), seen: seen)
    }

    /// Every process's text, in rank order (for per-rank lines such as the backend each one chose).
    public static func gather(_ text: String, in group: ProcessGroup = Processes.group) throws -> [String] {
        guard group.size > 1 else { return [text] }
        return try group.allGather(Array(text.utf8)).map { String(decoding: $0, as: UTF8.self) }
    }
}

extension ProcessGroup {
    /// Every process's words, in rank order (`allGather` of their bytes).
    public func allGather(words: [UInt64]) throws -> [[UInt64]] {
        try allGather(words.withUnsafeBytes { Array($0) }).map { bytes in
            guard bytes.count % 8 == 0 else { throw EddyError("internal: a process sent \(bytes.count) bytes, not whole words") }
            var w = [UInt64](repeating: 0, count: bytes.count / 8)
            w.withUnsafeMutableBytes { dst in bytes.withUnsafeBytes { dst.copyMemory(from: $0) } }
            return w
        }
    }
}

/// Text inside the words of `ProcessGroup.allGather(words:)`: its UTF-8 length, then its bytes, eight to a word.
enum WordText {
    static func words(_ text: String) -> [UInt64] {
        let bytes = Array(text.utf8)
        return [UInt64(bytes.count)] + stride(from: 0, to: bytes.count, by: 8).map { i in
            bytes[i..<min(i + 8, bytes.count)].enumerated().reduce(UInt64(0)) { $0 | (UInt64($1.element) << (8 * UInt64($1.offset))) }
        }
    }

    /// The text that starts at `w[i]`; `i` moves past it.
    static func read(_ w: [UInt64], at i: inout Int) throws -> String {
        guard i < w.count, w[i] <= UInt64(8 * (w.count - i - 1)) else { throw EddyError("internal: a process sent truncated text") }
        let count = Int(w[i])
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count)
        for word in w[(i + 1)..<(i + 1 + (count + 7) / 8)] {
            for b in 0..<8 where bytes.count < count { bytes.append(UInt8((word >> (8 * UInt64(b))) & 0xFF)) }
        }
        i += 1 + (count + 7) / 8
        return String(decoding: bytes, as: UTF8.self)
    }
}
