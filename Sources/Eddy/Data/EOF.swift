#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Empirical orthogonal functions (principal components) of the state: a streamed reduction of a wide state
/// (a flattened field) to its leading `K` components, and the inverse map back to the data's columns.
///
/// Scaling: each column is centred by its training mean and divided by its *field's* scale, the root of the mean
/// variance of the columns that share a field. A field is the part of a column's name before `[` or `@`: every grid
/// point of a NetCDF variable `t[level=500:lat=…:lon=…]` shares one scale (so the covariance inside a field is kept,
/// and fields in different units weigh alike), as do the stations of a pivoted variable `temp@EWR`; a plain CSV
/// column is a field of its own. With area weights, a grid point with a latitude (`lat=` or `latitude=` in its name)
/// is also multiplied by `√cos φ` (at least 0.01) relative to its field's root mean square weight, so a point stands
/// for the area it covers and the crowded polar rows of a lat/lon grid do not dominate, while the field as a whole
/// weighs as much as before; folded into `scale`, which the inverse map divides out again. Index labels (`lat=#3`)
/// are not latitudes. The EOFs are the
/// leading eigenvectors of the covariance of the scaled columns.
public struct EOFBasis: Sendable, Equatable {
    /// Columns of the data (n) and components kept (K).
    public var columns: Int
    public var components: Int
    /// Per column, data units: the training mean, the scale a column is divided by, and its own standard deviation.
    public var mean: [Double]
    public var scale: [Double]
    public var columnStd: [Double]
    /// n × K, row-major: column j is the j-th EOF (unit length) in scaled units.
    public var vectors: [Double]
    /// The variance of each component (eigenvalues of the scaled covariance), descending.
    public var variance: [Double]
    /// The variance of the whole scaled state (the covariance's trace): `variance.sum / totalVariance` is explained.
    public var totalVariance: Double

    public init(columns: Int, components: Int, mean: [Double], scale: [Double], columnStd: [Double], vectors: [Double],
                variance: [Double], totalVariance: Double) {
        self.columns = columns
        self.components = components
        self.mean = mean
        self.scale = scale
        self.columnStd = columnStd
        self.vectors = vectors
        self.variance = variance
        self.totalVariance = totalVariance
    }

    public var names: [String] { (1...components).map { "pc\($0)" } }

    public var explained: Double { totalVariance > 0 ? variance.reduce(0, +) / totalVariance : 1 }

    /// The latitude of a grid point named `VAR[…:lat=φ:…]` (or `latitude=`), nil for other names.
    public static func latitude(of name: String) -> Double? {
        guard let label = GridLayout.labels(of: name)?.labels.first(where: { ["lat", "latitude"].contains($0.key.lowercased()) }) else { return nil }
        return Double(label.value).flatMap { abs($0) <= 90 ? $0 : nil }
    }

    /// The area weight of a column: `√cos φ` (at least 0.01) with a latitude, 1 otherwise.
    public static func areaWeight(of name: String) -> Double {
        guard let lat = latitude(of: name) else { return 1 }
        return max(0.01, max(0, cos(lat * Double.pi / 180)).squareRoot())
    }

    /// The field of a column: its name up to the first `[` or `@`.
    public static func field(of name: String) -> Substring {
        name.prefix { $0 != "[" && $0 != "@" }
    }

    /// Components of `count` rows: `rows` holds rows of `stride` values whose first `n` are the columns (data
    /// units); returns `count × K`.
    public func project(_ rows: UnsafeBufferPointer<Double>, count: Int, stride: Int) -> [Double] {
        let n = columns, k = components
        guard count > 0 else { return [] }
        var scaled = [Double](repeating: 0, count: count * n)
        for r in 0..<count {
            for i in 0..<n { scaled[r * n + i] = (rows[r * stride + i] - mean[i]) / scale[i] }
        }
        var out = [Double](repeating: 0, count: count * k)
        BLAS.multiply(scaled, rows: count, inner: n, vectors, columns: k, into: &out)
        return out
    }

    /// Columns in data units of `count` rows of components (`count × K`): `x = mean + scale ⊙ (V pc)`.
    public func reconstruct(_ components: [Double], count: Int) -> [Double] {
        let n = columns, k = self.components
        guard count > 0 else { return [] }
        var out = [Double](repeating: 0, count: count * n)
        BLAS.multiply(components, rows: count, inner: k, vectors, columns: n, transposedB: true, into: &out)
        for r in 0..<count {
            for i in 0..<n { out[r * n + i] = mean[i] + scale[i] * out[r * n + i] }
        }
        return out
    }
}

/// A fitted reduction and what the pass that fitted it saw of the raw data (names, ranges, climatology).
public struct Reduction: Sendable {
    public var basis: EOFBasis
    /// Statistics of the raw columns and inputs (training range, daily climatology, row counts).
    public var statistics: DataStatistics
    public var variableNames: [String]
    /// Whether grid points were weighted by `√cos φ` (see `EOFBasis`).
    public var areaWeighted = false

    /// The leading `k` components of this reduction (the same EOFs, fewer of them).
    public func truncated(to k: Int) -> Reduction {
        var r = self
        let old = basis.components
        r.basis.components = k
        r.basis.variance = Array(basis.variance.prefix(k))
        r.basis.vectors = (0..<(basis.columns * k)).map { basis.vectors[($0 / k) * old + $0 % k] }
        return r
    }

    /// Readers of the components in place of the columns.
    public func wrap(_ open: @escaping ReaderFactory) -> ReaderFactory {
        let basis = basis
        return { ProjectedReader(try open(), basis: basis) }
    }
}

public enum EOFAnalysis {
    /// How the EOFs are computed: `exact` (the covariance, one pass, n ≤ `maximumColumns`), `randomized` (a
    /// randomized subspace iteration, O(n·(K + 10)) memory, `powerPasses + 1` passes), or `auto` (exact when it fits).
    public enum Method: String, Sendable, CaseIterable { case auto, exact, randomized }

    /// The covariance of this many columns takes 512 MiB (it is the exact fit's only n² array: the eigensolver
    /// overwrites it and returns just the K leading vectors). Wider states take the randomized path.
    public static let maximumColumns = 8192
    /// Covariance passes of the randomized path (each one power iteration; the last also gives the Ritz pairs).
    public static let powerPasses = 4
    /// Extra directions the randomized path carries beyond K.
    public static let oversampling = 10

    /// `areaWeights`: weight grid points with a latitude by `√cos φ` (see `EOFBasis`); nothing changes without latitudes.
    public static func fit(_ open: ReaderFactory, components k: Int, path: String, method: Method = .auto, areaWeights: Bool = true,
                           shards: ShardPlan? = nil, progress: ProgressHandler? = nil) throws -> Reduction {
        // With `shards` every process reads only its shard (`ShardPlan`) and adds its own rows' share.
        // The time step (for the daily cycle of the statistics, and for every shard's time grid) from the first rows
        // of the data.
        let timing = try ShardPlan.timing(try shards?.probe() ?? open())
        var shards = shards
        if timing.hasTimes, shards?.spec.dt == nil { shards?.spec.dt = timing.dt }
        func read() throws -> RowReader { try shards?.open(reduction: nil) ?? open() }
        let reader = try read()
        let names = reader.variableNames, n = names.count
        guard k >= 1 else { throw EddyError("--pca must be at least 1, got \(k)") }
        guard k <= n else {
            throw EddyError("\(path): --pca \(k) asks for more components than the data have variables (\(n))")
        }
        if method == .exact && n > maximumColumns {
            throw EddyError("\(path): the exact EOFs need the \(n) × \(n) covariance of the variables (\(n * n * 8 / 1_048_576) MiB); at most \(maximumColumns) variables (above that, the automatic choice takes the randomized method)")
        }
        let weights = areaWeights ? names.map(EOFBasis.areaWeight(of:)) : []
        var reduction = method == .exact || method == .auto && n <= maximumColumns
            ? try exact(reader, components: k, weights: weights, path: path, shards: shards, timing: (timing.dt, timing.hasTimes), progress: progress)
            : try randomized(read, first: reader, components: k, weights: weights, path: path, shards: shards, timing: (timing.dt, timing.hasTimes),
                             progress: progress)
        reduction.areaWeighted = areaWeights && names.contains { EOFBasis.latitude(of: $0) != nil }
        return reduction
    }

    /// One streamed pass: means and the covariance of the columns (`Σ (x − s)(x − s)ᵀ` about the first row `s`,
    /// summed by SYRK over blocks of rows, in double), then the leading `components` eigenvectors of the scaled
    /// covariance (LAPACK `dsyevr`, only those K). Memory is one n × n array, independent of the number of rows.
    static func exact(_ reader: RowReader, components k: Int, weights: [Double], path: String, shards: ShardPlan? = nil,
                      timing: (dt: Double?, hasTimes: Bool) = (nil, false), progress: ProgressHandler?) throws -> Reduction {
        let n = reader.variableNames.count, m = reader.inputNames.count
        var partial = StatisticsPartial(width: n + m, dt: timing.dt, hasTimes: timing.hasTimes)
        var tagger = RowTagger(blockRows: shards?.blockRows ?? ShardPlan.defaultBlockRows, owned: shards?.owned)
        // The shift: the first row of the data (a shard's own first row would differ between processes).
        var shift: [Double]? = try shards.flatMap { plan in try plan.probe().next().map { Array($0.values[0..<n]) } }
        var sums = [Double](repeating: 0, count: n * n)
        let capacity = rowsPerBlock(n)
        var buffer = [Double](repeating: 0, count: capacity * n)
        var buffered = 0
        func flush() {
            buffer.withUnsafeBufferPointer { b in
                sums.withUnsafeMutableBufferPointer {
                    BLAS.syrkTransposed(n: n, k: buffered, a: b.baseAddress!, lda: n, c: $0.baseAddress!, ldc: n)
                }
            }
            buffered = 0
        }
        // Read in shards, every process adds its own rows; otherwise every process reads every block (the statistics
        // and the shift need them all) and adds its share of the blocks. The sums are then summed over the processes.
        let group = Processes.group
        var index = -1
        while let block = try reader.next() {
            let tags = tagger.tag(block)
            partial.add(block, tags: tags)
            if shift == nil, block.rowCount > 0 { shift = Array(block.values[0..<n]) }
            guard let s = shift else { continue }
            index += 1
            if shards == nil && !Processes.owns(chunk: index, in: group) { continue }
            for r in 0..<block.rowCount where tags[r].owned {
                let base = r * (n + m)
                for i in 0..<n { buffer[buffered * n + i] = block.values[base + i] - s[i] }
                buffered += 1
                if buffered == capacity { flush() }
            }
            progress?("principal components", partial.rowsSeen, 0)
        }
        flush()
        sums = try Processes.sum(sums, in: group)
        let stats = try partial.merged(gather: shards != nil, in: group).statistics
        let rows = stats.rows
        guard rows >= 2, let s = shift else {
            throw EddyError("\(path): --pca needs at least 2 valid rows to estimate a covariance, the data have \(rows)")
        }
        // Covariance about the mean: Σ(x−s)(x−s)ᵀ − N d dᵀ with d = mean − s, over N − 1 (upper triangle).
        let d = (0..<n).map { stats.mean[$0] - s[$0] }
        let N = Double(rows)
        var cov = sums   // becomes the covariance in place (the upper triangle is all that is read)
        sums = []
        for i in 0..<n {
            for j in i..<n { cov[i * n + j] = (cov[i * n + j] - N * d[i] * d[j]) / (N - 1) }
        }
        let names = reader.variableNames
        let scale = fieldScales(names: names, variance: (0..<n).map { max(0, cov[$0 * n + $0]) }, weights: weights)
        var total = 0.0
        for i in 0..<n {
            for j in i..<n { cov[i * n + j] /= scale[i] * scale[j] }
            total += cov[i * n + i]
        }
        let (values, z, info) = LAPACK.syevrLargest(&cov, n: n, k: k)
        cov = []
        guard info == 0, values.count == k else {
            throw EddyError("\(path): the eigendecomposition of the covariance failed (LAPACK info \(info), \(values.count) of \(k) eigenpairs)")
        }
        let (vectors, variance) = leading(values: values, vectors: z, columns: n, count: k, keep: k)
        let basis = EOFBasis(columns: n, components: k, mean: Array(stats.mean[0..<n]), scale: scale,
                             columnStd: Array(stats.std[0..<n]), vectors: vectors, variance: variance, totalVariance: total)
        return Reduction(basis: basis, statistics: stats, variableNames: names)
    }

    /// A randomized subspace iteration for states too wide for their covariance: a statistics pass (means and the
    /// field scales), then `powerPasses` passes that each multiply the scaled covariance into an orthonormal basis of
    /// K + `oversampling` directions (`Z = Xsᵀ (Xs Q) / (N − 1)`, block by block, never forming the covariance),
    /// starting from seeded Gaussian directions; the last pass's Rayleigh–Ritz pairs give the EOFs. Memory is
    /// O(n · (K + oversampling)); the leading EOFs converge fast where the spectrum decays, as fields' spectra do.
    static func randomized(_ open: ReaderFactory, first reader: RowReader, components k: Int, weights: [Double], path: String,
                           shards: ShardPlan? = nil, timing: (dt: Double?, hasTimes: Bool) = (nil, false), progress: ProgressHandler?) throws -> Reduction {
        let n = reader.variableNames.count, m = reader.inputNames.count
        var partial = StatisticsPartial(width: n + m, dt: timing.dt, hasTimes: timing.hasTimes)
        var tagger = RowTagger(blockRows: shards?.blockRows ?? ShardPlan.defaultBlockRows, owned: shards?.owned)
        while let block = try reader.next() {
            partial.add(block, tags: tagger.tag(block))
            progress?("principal components (statistics)", partial.rowsSeen, 0)
        }
        let stats = try partial.merged(gather: shards != nil, in: Processes.group).statistics
        let rows = stats.rows
        guard rows >= 2 else {
            throw EddyError("\(path): --pca needs at least 2 valid rows to estimate a covariance, the data have \(rows)")
        }
        let names = reader.variableNames
        let std = stats.std
        let mean = Array(stats.mean[0..<n])
        let scale = fieldScales(names: names, variance: (0..<n).map { std[$0] * std[$0] }, weights: weights)
        let total = (0..<n).map { std[$0] * std[$0] / (scale[$0] * scale[$0]) }.reduce(0, +)
        let l = min(n, k + oversampling)
        var random = SeededGenerator(seed: 0, stream: "eof.randomized")
        var q = (0..<(n * l)).map { _ in random.normal() }
        guard LAPACK.orthonormalise(&q, rows: n, columns: l) == 0 else { throw EddyError("\(path): --pca: QR factorisation failed") }
        var ritz = [Double](repeating: 0, count: l * l)
        for pass in 0..<powerPasses {
            var z = [Double](repeating: 0, count: n * l)
            var seen = try multiplyCovariance(open, q, columns: l, mean: mean, scale: scale, into: &z, shards: shards, progress: progress, pass: pass + 1)
            if shards != nil {
                // Each process multiplied its own rows: the sum over the processes (and of the rows they saw).
                z.append(Double(seen))
                z = try Processes.sum(z)
                seen = Int(z.removeLast())
            }
            guard seen == rows else { throw EddyError("\(path): the data changed between passes (\(rows) rows, then \(seen))") }
            for i in 0..<(n * l) { z[i] /= Double(rows - 1) }
            // Rayleigh quotient Qᵀ Z (l × l), then the next basis.
            BLAS.multiplyTransposedA(q, rows: n, columns: l, z, columnsB: l, into: &ritz)
            if pass + 1 < powerPasses {
                q = z
                guard LAPACK.orthonormalise(&q, rows: n, columns: l) == 0 else { throw EddyError("\(path): --pca: QR factorisation failed") }
            }
        }
        for i in 0..<l { for j in 0..<i { ritz[i * l + j] = 0.5 * (ritz[i * l + j] + ritz[j * l + i]); ritz[j * l + i] = ritz[i * l + j] } }
        let (values, info) = LAPACK.syevd(&ritz, n: l)
        guard info == 0 else { throw EddyError("\(path): the eigendecomposition of the projected covariance failed (LAPACK info \(info))") }
        var ritzVectors = [Double](repeating: 0, count: n * l)
        BLAS.multiply(q, rows: n, inner: l, ritz, columns: l, into: &ritzVectors)
        let (vectors, variance) = leading(values: values, vectors: ritzVectors, columns: n, count: l, keep: k)
        let basis = EOFBasis(columns: n, components: k, mean: mean, scale: scale, columnStd: Array(std[0..<n]), vectors: vectors,
                             variance: variance, totalVariance: total)
        return Reduction(basis: basis, statistics: stats, variableNames: names)
    }

    /// `Z += Xsᵀ (Xs Q)` over the data, `Xs` the scaled, centred columns; returns the rows seen.
    static func multiplyCovariance(_ open: ReaderFactory, _ q: [Double], columns l: Int, mean: [Double], scale: [Double],
                                   into z: inout [Double], shards: ShardPlan? = nil, progress: ProgressHandler?, pass: Int) throws -> Int {
        let reader = try open()
        var tagger = RowTagger(blockRows: shards?.blockRows ?? ShardPlan.defaultBlockRows, owned: shards?.owned)
        let n = mean.count, w = reader.width
        let capacity = rowsPerBlock(n)
        var buffer = [Double](repeating: 0, count: capacity * n)
        var t = [Double](repeating: 0, count: capacity * l)
        var buffered = 0, seen = 0
        func flush() {
            guard buffered > 0 else { return }
            buffer.withUnsafeBufferPointer { b in
                q.withUnsafeBufferPointer { qp in
                    t.withUnsafeMutableBufferPointer { tp in
                        BLAS.gemm(transA: false, transB: false, m: buffered, n: l, k: n, a: b.baseAddress!, lda: n,
                                  b: qp.baseAddress!, ldb: l, beta: 0, c: tp.baseAddress!, ldc: l)
                        z.withUnsafeMutableBufferPointer {
                            BLAS.gemm(transA: true, transB: false, m: n, n: l, k: buffered, a: b.baseAddress!, lda: n,
                                      b: UnsafePointer(tp.baseAddress!), ldb: l, beta: 1, c: $0.baseAddress!, ldc: l)
                        }
                    }
                }
            }
            buffered = 0
        }
        while let block = try reader.next() {
            let tags = tagger.tag(block)
            for r in 0..<block.rowCount where tags[r].owned {
                for i in 0..<n { buffer[buffered * n + i] = (block.values[r * w + i] - mean[i]) / scale[i] }
                buffered += 1
                if buffered == capacity { flush() }
                seen += 1
            }
            progress?("principal components (pass \(pass) of \(powerPasses))", seen, 0)
        }
        flush()
        return seen
    }

    /// Rows per SYRK/GEMM block: at most 32 MiB of them.
    static func rowsPerBlock(_ n: Int) -> Int { max(16, min(4096, (1 << 22) / n)) }

    /// One scale per field (the name before `[` or `@`): the root of its columns' mean variance (1 if that is 0),
    /// divided by each column's weight (none: 1) relative to the root mean square weight of its field, so weights move
    /// variance between a field's points but a field as a whole weighs as much as without them.
    static func fieldScales(names: [String], variance: [Double], weights: [Double]) -> [Double] {
        var fieldSum: [Substring: Double] = [:], fieldCount: [Substring: Int] = [:], fieldWeight: [Substring: Double] = [:]
        for (i, name) in names.enumerated() {
            fieldSum[EOFBasis.field(of: name), default: 0] += variance[i]
            fieldCount[EOFBasis.field(of: name), default: 0] += 1
            fieldWeight[EOFBasis.field(of: name), default: 0] += weights.isEmpty ? 1 : weights[i] * weights[i]
        }
        return names.indices.map { i -> Double in
            let f = EOFBasis.field(of: names[i])
            let count = Double(fieldCount[f]!)
            let v = (fieldSum[f]! / count).squareRoot()
            let w = weights.isEmpty ? 1 : weights[i] / (fieldWeight[f]! / count).squareRoot()
            return (v > 0 && v.isFinite ? v : 1) / w
        }
    }

    /// The `keep` largest of `count` eigenpairs (values ascending, vectors the columns of a `columns × count`
    /// row-major matrix), descending, each vector's largest entry made positive so the basis does not depend on
    /// LAPACK's signs. Returns `columns × keep` vectors and their values.
    static func leading(values: [Double], vectors z: [Double], columns n: Int, count: Int, keep k: Int) -> (vectors: [Double], variance: [Double]) {
        var vectors = [Double](repeating: 0, count: n * k)
        var variance = [Double](repeating: 0, count: k)
        for j in 0..<k {
            let c = count - 1 - j
            variance[j] = max(0, values[c])
            var big = 0
            for i in 0..<n where abs(z[i * count + c]) > abs(z[big * count + c]) { big = i }
            let sign: Double = z[big * count + c] < 0 ? -1 : 1
            for i in 0..<n { vectors[i * k + j] = sign * z[i * count + c] }
        }
        return (vectors, variance)
    }
}

/// Reads the leading components of the columns in place of the columns; inputs, times and segments pass through.
public final class ProjectedReader: RowReader {
    private let inner: RowReader
    public let basis: EOFBasis

    public var path: String { inner.path }
    public var variableNames: [String] { basis.names }
    public var inputNames: [String] { inner.inputNames }
    public var inferredDt: Double? { inner.inferredDt }
    public var timesAreDates: Bool { inner.timesAreDates }
    public var fill: FillReport { inner.fill }
    /// Every component is valid where every column is: the columns' smallest count.
    public var validCounts: [Int] {
        let v = inner.validCounts, n = basis.columns
        return [Int](repeating: v[0..<n].min() ?? 0, count: basis.components) + v[n...]
    }

    public init(_ inner: RowReader, basis: EOFBasis) {
        self.inner = inner
        self.basis = basis
    }

    public func next() throws -> RowBlock? {
        guard var block = try inner.next() else { return nil }
        let n = basis.columns, k = basis.components, w = inner.width, m = w - n
        let pcs = block.values.withUnsafeBufferPointer { basis.project($0, count: block.rowCount, stride: w) }
        var values = [Double](repeating: 0, count: block.rowCount * (k + m))
        for r in 0..<block.rowCount {
            for j in 0..<k { values[r * (k + m) + j] = pcs[r * k + j] }
            for j in 0..<m { values[r * (k + m) + k + j] = block.values[r * w + n + j] }
        }
        block.values = values
        return block
    }
}
