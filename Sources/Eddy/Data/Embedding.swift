/// Per-variable standardisation with training statistics (METHOD.md, "Data"): `(x − mean) / std`.
public struct Normalisation: Sendable, Equatable {
    public var variableMean: [Double]
    public var variableStd: [Double]
    public var inputMean: [Double]
    public var inputStd: [Double]

    public init(variableMean: [Double], variableStd: [Double], inputMean: [Double], inputStd: [Double]) {
        self.variableMean = variableMean
        self.variableStd = variableStd
        self.inputMean = inputMean
        self.inputStd = inputStd
    }

    public static func identity(variables n: Int, inputs m: Int) -> Normalisation {
        Normalisation(variableMean: .init(repeating: 0, count: n), variableStd: .init(repeating: 1, count: n),
                      inputMean: .init(repeating: 0, count: m), inputStd: .init(repeating: 1, count: m))
    }

    public var variableCount: Int { variableMean.count }
    public var inputCount: Int { inputMean.count }
}

/// The first pass over the data: row counts, means and standard deviations (Welford, one sweep), a fingerprint
/// of the values and segment structure, and the time step when a time column has one.
public struct DataStatistics: Sendable {
    public var rows = 0
    public var segments = 0
    /// Pairs `(z_t, x_{t+1})` the delay embedding yields: Σ max(0, L − k) over segments of length L.
    public var pairs = 0
    public var longestSegment = 0
    public var mean: [Double]
    public var m2: [Double]
    /// FNV-1a over the bit patterns of every value and the segment boundaries, in stream order.
    public var fingerprint: UInt64 = 0xCBF2_9CE4_8422_2325
    public var minimum: [Double]
    public var maximum: [Double]
    /// Phases of the daily cycle (`86 400 / dt` when that is a whole number ≥ 2), with a time column.
    public var period: Int?
    public var phaseSums: [Double] = []
    public var phaseCounts: [Int] = []

    public init(width: Int) {
        mean = .init(repeating: 0, count: width)
        m2 = .init(repeating: 0, count: width)
        minimum = .init(repeating: .infinity, count: width)
        maximum = .init(repeating: -.infinity, count: width)
    }

    /// Mean per phase and column (period × width), nil without a daily cycle; phases never seen get the overall mean.
    public var climatology: [Double]? {
        guard let p = period else { return nil }
        let w = mean.count
        return (0..<(p * w)).map { i in phaseCounts[i / w] > 0 ? phaseSums[i] / Double(phaseCounts[i / w]) : mean[i % w] }
    }

    /// The daily phase of a time (seconds) for step `dt`.
    public static func phase(_ time: Double, dt: Double, period: Int) -> Int {
        let k = Int((time / dt).rounded(.down)) % period
        return k < 0 ? k + period : k
    }

    public var std: [Double] { m2.map { rows > 1 ? ($0 / Double(rows - 1)).squareRoot() : 0 } }

    public var fingerprintHex: String {
        let s = String(fingerprint, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    @inline(__always) mutating func mix(_ v: UInt64) {
        var x = v
        for _ in 0..<8 {
            fingerprint = (fingerprint ^ (x & 0xFF)) &* 0x0000_0100_0000_01B3
            x >>= 8
        }
    }

    /// The most phases of a daily climatology: one-minute data. A time column of plain step numbers (dt = 1) would
    /// otherwise be read as seconds and give 86,400 phases (a 348 MB model from a 1.5 MB CSV); finer steps than a
    /// minute keep no climatology.
    static let maximumPhases = 1440

    /// The phases of a daily cycle at step `dt` (seconds), when that is a whole number of at most `maximumPhases`.
    static func period(dt: Double?) -> Int? {
        guard let dt, dt > 0 else { return nil }
        let p = 86_400 / dt
        return p >= 2 && p <= Double(DataStatistics.maximumPhases) && abs(p - p.rounded()) < 1e-9 ? Int(p.rounded()) : nil
    }
}

/// A chunk of delay windows ready to lift: rows `z_t = [x_t, x_{t−1}, …, x_{t−k+1}]` (standardised), the inputs
/// `u_t`, and whether each window's successor `z_{t+1}` is the next row of the chunk. Pairs are exactly the
/// linked rows; a run that continues into the next chunk repeats its last window there, so no pair is lost or
/// counted twice, whatever the chunk size.
public struct WindowChunk: Sendable {
    public var count = 0
    public var windows: [Double] = []
    public var inputs: [Double] = []
    public var linked: [Bool] = []
    public var pairCount: Int { linked.lazy.filter { $0 }.count }

    /// Maximal runs of linked rows: each `(start, length)` gives pairs `start+i → start+i+1` for `i < length`.
    public var runs: [(start: Int, length: Int)] {
        var out: [(Int, Int)] = []
        var i = 0
        while i < count {
            if linked[i] {
                let s = i
                while i < count && linked[i] { i += 1 }
                out.append((s, i - s))
            } else {
                i += 1
            }
        }
        return out
    }
}

/// Turns row blocks into chunks of delay windows (METHOD.md, "Delay embedding"), standardising on the way.
public struct WindowBuilder {
    public let variables: Int
    public let inputs: Int
    public let delays: Int
    public let chunkRows: Int
    let normalisation: Normalisation
    private var history: [Double] = []      // the last `delays` standardised rows of the current segment, oldest first
    private var historyRows = 0
    private var chunk = WindowChunk()
    private var lastRowOpen = false          // the chunk's last window may still get a successor
    private var ready: [WindowChunk] = []
    private var owned = true                 // the row being pushed may be a pair's target here

    public var windowSize: Int { variables * delays }

    public init(normalisation: Normalisation, delays: Int, chunkRows: Int) {
        self.normalisation = normalisation
        variables = normalisation.variableCount
        inputs = normalisation.inputCount
        self.delays = delays
        self.chunkRows = max(2, chunkRows)
    }

    /// `tags` (one per row, see `RowTagger`): a row another process owns is never a pair's target here (it may be
    /// the history of a window). Without tags every row is a target.
    public mutating func add(_ block: RowBlock, tags: [RowTag]? = nil) {
        if block.startsSegment { endSegment() }
        let width = variables + inputs
        var x = [Double](repeating: 0, count: variables)
        var u = [Double](repeating: 0, count: inputs)
        for r in 0..<block.rowCount {
            owned = tags?[r].owned ?? true
            let base = r * width
            for i in 0..<variables {
                x[i] = (block.values[base + i] - normalisation.variableMean[i]) / normalisation.variableStd[i]
            }
            for j in 0..<inputs {
                u[j] = (block.values[base + variables + j] - normalisation.inputMean[j]) / normalisation.inputStd[j]
            }
            push(x: x, u: u)
        }
    }

    /// Flushes what is left; call once after the last block.
    public mutating func finish() {
        endSegment()
        if chunk.count > 0 { emit(carry: false) }
    }

    public mutating func take() -> WindowChunk? { ready.isEmpty ? nil : ready.removeFirst() }

    private mutating func endSegment() {
        if lastRowOpen { lastRowOpen = false }
        history.removeAll(keepingCapacity: true)
        historyRows = 0
    }

    private mutating func push(x: [Double], u: [Double]) {
        if historyRows == delays {
            history.removeFirst(variables)
            historyRows -= 1
        }
        history += x
        historyRows += 1
        guard historyRows == delays else { return }
        // A full window: newest row first. It completes a pair when it continues the previous one and its row is ours.
        let link = lastRowOpen && owned
        if link { chunk.linked[chunk.count - 1] = true }
        if chunk.count == chunkRows {
            emit(carry: link)
        }
        for lag in 0..<delays {
            let row = delays - 1 - lag
            chunk.windows += history[(row * variables)..<((row + 1) * variables)]
        }
        chunk.inputs += u
        chunk.linked.append(false)
        chunk.count += 1
        lastRowOpen = true
    }

    /// Hands on the chunk. With `carry`, the chunk's last window is linked to a successor that does not fit: it is
    /// unlinked here and repeated as the first (linked) row of the next chunk.
    private mutating func emit(carry: Bool) {
        var next = WindowChunk()
        if carry {
            let p = windowSize
            let last = chunk.count - 1
            next.windows = Array(chunk.windows[(last * p)...])
            next.inputs = Array(chunk.inputs[(last * inputs)...])
            next.linked = [true]
            next.count = 1
            chunk.linked[last] = false
        }
        // A chunk that holds no pair carries nothing to accumulate.
        if chunk.linked.contains(true) { ready.append(chunk) }
        chunk = next
    }
}
