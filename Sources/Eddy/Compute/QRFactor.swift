import CLAPACKE

/// The pass statistic a backend produces (METHOD.md, "Solve" and "Streamed QR").
public enum PassStatistic: String, Sendable {
    /// `G = Σ Φᵀ Φ`, `R = Σ Φᵀ Y` (`GramSums`): cheapest, but squares the condition number of the features.
    case gram
    /// The triangular factor of the stacked rows `[Φ | Y]` (`QRFactor`): least-squares accuracy, about 2× the flops.
    case qr
}

/// What one pass produced: the Gram sums or the triangular factor.
public enum PassState: Sendable {
    case gram(GramSums)
    case factor(QRFactor)

    public var pairs: Int {
        switch self {
        case .gram(let s): return s.pairs
        case .factor(let f): return f.pairs
        }
    }

    public var layout: DictionaryLayout {
        switch self {
        case .gram(let s): return s.layout
        case .factor(let f): return f.layout
        }
    }

    /// The Gram sums, or an error when the pass produced a factor.
    public func gram() throws -> GramSums {
        guard case .gram(let s) = self else { throw EddyError("internal: expected the Gram sums of a pass, got a QR factor") }
        return s
    }

    /// The factor, or an error when the pass produced Gram sums.
    public func factor() throws -> QRFactor {
        guard case .factor(let f) = self else { throw EddyError("internal: expected the QR factor of a pass, got Gram sums") }
        return f
    }

    /// The state as one row-major matrix (for `eddy train --save-state`): the Gram sums as `[G | R]` (F × (F + T),
    /// dictionary order), the factor as its upper-triangular `R` ((F + T)², factor order `[1, z, u, φ | Y]`).
    public var matrix: (rows: Int, columns: Int, values: [Double]) {
        switch self {
        case .gram(let s):
            let f = s.layout.featureCount, t = s.layout.targetCount
            var v = [Double](repeating: 0, count: f * (f + t))
            for i in 0..<f {
                for j in 0..<f { v[i * (f + t) + j] = s.gram[i * f + j] }
                for j in 0..<t { v[i * (f + t) + f + j] = s.rightHandSide[i * t + j] }
            }
            return (f, f + t, v)
        case .factor(let q):
            let n = q.size
            var v = [Double](repeating: 0, count: n * n)
            for i in 0..<n { for j in 0..<n { v[i * n + j] = q.factor[i + j * n] } }
            return (n, n, v)
        }
    }

    /// A pure merge of two partial states of the same statistic (chunks, threads, devices, processes).
    public static func + (a: PassState, b: PassState) throws -> PassState {
        switch (a, b) {
        case (.gram(let x), .gram(let y)): return .gram(x + y)
        case (.factor(let x), .factor(let y)): return .factor(try x.merged(with: y))
        default: throw EddyError("internal: cannot merge Gram sums with a QR factor")
        }
    }
}

/// The upper-triangular factor `R` of the stacked pair rows `[Φ | Y]` (METHOD.md, "Streamed QR"): `[Φ | Y] = Q R`
/// without ever holding `Q` or the rows. Updated block by block with LAPACK's triangle-on-top-of-block QR (`dtpqrt`,
/// compact-WY, BLAS-3 updates), and merged the same way (`R(A;B) = triu(qr([R_A; R_B]))`, TSQR), so any chunking,
/// thread split, device split or process tree gives the same `RᵀR` up to round-off. Row signs are arbitrary.
///
/// Columns are in factor order `[1, z, u, φ₁…φ_M | Y]` — the inputs before the neurons, unlike the dictionary's
/// `[1, z, φ, u]` — so the leading `(1 + p + m + w)²` block is the factor of a width-`w` model's features (sweeps over
/// widths need one pass). `Y` is the targets: `Ψ_{t+1}` (Koopman, D columns in dictionary order) or `x_{t+1}`.
/// Memory is `(F + T)²` doubles, independent of the number of rows.
public struct QRFactor: Sendable {
    public var layout: DictionaryLayout
    /// `size × size`, column-major; only the upper triangle is meaningful (the strictly lower part stays zero).
    public var factor: [Double]
    public var pairs: Int

    /// Features `F = D + m` plus targets `T`.
    public var size: Int { layout.featureCount + layout.targetCount }

    public init(layout: DictionaryLayout) {
        self.layout = layout
        let n = layout.featureCount + layout.targetCount
        factor = [Double](repeating: 0, count: n * n)
        pairs = 0
    }

    /// Factor column of dictionary column `j` (dictionary order `[1, z, φ, u]`).
    public static func factorColumn(_ j: Int, layout: DictionaryLayout) -> Int {
        let lead = 1 + layout.windowSize, d = layout.dictionarySize
        if j < lead { return j }
        if j >= d { return lead + (j - d) }
        return j + layout.inputs
    }

    /// `RᵀR` = `[Φ | Y]ᵀ [Φ | Y]` in factor order, row-major (tests compare it with the Gram).
    public var gramOfRows: [Double] {
        let n = size
        var g = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in i..<n {
                var s = 0.0
                for k in 0...i { s += factor[k + i * n] * factor[k + j * n] }
                g[i * n + j] = s
                g[j * n + i] = s
            }
        }
        return g
    }

    /// Folds `rows` stacked rows into the factor: `block` is `rows × size`, column-major with leading dimension `rows`
    /// (factor column order), and is overwritten. `pairs` is not changed (the caller counts).
    public mutating func add(block: UnsafeMutablePointer<Double>, rows: Int, workspace: inout [Double]) throws {
        guard rows > 0 else { return }
        let n = size, nb = min(QRFactor.blockColumns, n)
        if workspace.count < 2 * nb * n { workspace = [Double](repeating: 0, count: 2 * nb * n) }
        let info = factor.withUnsafeMutableBufferPointer { a in
            workspace.withUnsafeMutableBufferPointer { w in
                LAPACKE_dtpqrt_work(LAPACK_COL_MAJOR, Int32(rows), Int32(n), 0, Int32(nb), a.baseAddress, Int32(n), block, Int32(rows),
                                    w.baseAddress, Int32(nb), w.baseAddress! + nb * n)
            }
        }
        if info != 0 { throw EddyError("QR update failed (LAPACK dtpqrt info \(info))") }
    }

    /// The factor of both partial factors' rows stacked: the TSQR reduction, a pure merge (order and grouping change
    /// only the round-off and the signs of rows).
    public func merged(with other: QRFactor) throws -> QRFactor {
        guard layout == other.layout else { throw EddyError("internal: cannot merge QR factors of different layouts") }
        var out = self
        var b = other.factor
        let n = size, nb = min(QRFactor.blockColumns, n)
        var work = [Double](repeating: 0, count: 2 * nb * n)
        let info = out.factor.withUnsafeMutableBufferPointer { a in
            b.withUnsafeMutableBufferPointer { bp in
                work.withUnsafeMutableBufferPointer { w in
                    // l = n: the second block is itself upper triangular (a triangle on a triangle).
                    LAPACKE_dtpqrt_work(LAPACK_COL_MAJOR, Int32(n), Int32(n), Int32(n), Int32(nb), a.baseAddress, Int32(n), bp.baseAddress,
                                        Int32(n), w.baseAddress, Int32(nb), w.baseAddress! + nb * n)
                }
            }
        }
        if info != 0 { throw EddyError("QR merge failed (LAPACK dtpqrt info \(info))") }
        out.pairs += other.pairs
        return out
    }

    /// Columns per Householder panel in `dtpqrt` (measured on this 2-core machine: 32–64 within 10 %; 64 with 8192-row
    /// blocks is the fastest tried).
    static let blockColumns = 64
}

/// Builds the blocks a `QRFactor` takes from lifted chunks: the linked rows of a chunk's dictionary rows, reordered to
/// factor order, with their targets, transposed into a column-major block. Shared by the CPU and OpenCL backends.
public struct QRBlockBuilder {
    public let layout: DictionaryLayout
    private var block: [Double] = []
    private var workspace: [Double] = []
    private var pending = 0
    /// Rows gathered before one `dtpqrt` call (larger blocks run faster; the result does not depend on it beyond round-off).
    public let blockRows: Int

    /// `blockRows` nil: `defaultBlockRows` — it depends on the layout only, so the factor is the same bits however the
    /// data were chunked.
    public init(layout: DictionaryLayout, blockRows: Int? = nil) {
        self.layout = layout
        self.blockRows = max(1, blockRows ?? QRBlockBuilder.defaultBlockRows(columns: layout.featureCount + layout.targetCount))
    }

    /// About 2²³ values per block (64 MiB), 256…8192 rows of `columns` values.
    public static func defaultBlockRows(columns: Int) -> Int { min(8192, max(256, (1 << 23) / max(columns, 1))) }

    /// Adds the pairs of one lifted chunk: `features` holds `count` dictionary rows (`ld ≥ featureCount` values each,
    /// dictionary order), row `i` is a pair source when `linked[i]`; its target is row `i + 1`'s first D values
    /// (Koopman) or the first `n` values of window `i + 1` (recurrent, from `windows`, `p` per row).
    public mutating func add(features: UnsafePointer<Double>, ld: Int, count: Int, linked: [Bool], windows: UnsafePointer<Double>,
                             into state: inout QRFactor) throws {
        let f = layout.featureCount, t = layout.targetCount, d = layout.dictionarySize, p = layout.windowSize
        let n = f + t
        if block.count < blockRows * n { block = [Double](repeating: 0, count: blockRows * n) }
        let order = (0..<f).map { QRFactor.factorColumn($0, layout: layout) }
        for i in 0..<count where linked[i] {
            let r = pending
            let source = features + i * ld
            block.withUnsafeMutableBufferPointer { b in
                let base = b.baseAddress! + r
                for j in 0..<f { base[order[j] * blockRows] = source[j] }
                switch layout.form {
                case .koopman:
                    let next = features + (i + 1) * ld
                    for j in 0..<d { base[(f + j) * blockRows] = next[j] }
                case .recurrent:
                    let next = windows + (i + 1) * p
                    for j in 0..<t { base[(f + j) * blockRows] = next[j] }
                }
            }
            pending += 1
            state.pairs += 1
            if pending == blockRows { try flush(into: &state) }
        }
    }

    /// Folds the gathered rows into the factor (call at the end of a pass).
    public mutating func flush(into state: inout QRFactor) throws {
        guard pending > 0 else { return }
        let rows = pending, n = layout.featureCount + layout.targetCount
        pending = 0
        if rows < blockRows {
            // Compact the partial block to leading dimension `rows`.
            for j in 1..<n { for i in 0..<rows { block[i + j * rows] = block[i + j * blockRows] } }
        }
        try block.withUnsafeMutableBufferPointer { try state.add(block: $0.baseAddress!, rows: rows, workspace: &workspace) }
    }
}
