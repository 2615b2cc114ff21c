/// Empirical orthogonal functions (principal components) of the state: a streamed reduction of a wide state
/// (a flattened field) to its leading `K` components, and the inverse map back to the data's columns.
///
/// Scaling: each column is centred by its training mean and divided by its *field's* scale, the root of the mean
/// variance of the columns that share a field. A field is the part of a column's name before `[` or `@`: every grid
/// point of a NetCDF variable `t[level=500:lat=…:lon=…]` shares one scale (so the covariance inside a field is kept,
/// and fields in different units weigh alike), as do the stations of a pivoted variable `temp@EWR`; a plain CSV
/// column is a field of its own. The EOFs are the leading eigenvectors of the covariance of the scaled columns.
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
    /// The covariance of this many columns takes 512 MiB (it is the fit's only n² array: the eigensolver
    /// overwrites it and returns just the K leading vectors).
    public static let maximumColumns = 8192

    /// One streamed pass: means and the covariance of the columns (`Σ (x − s)(x − s)ᵀ` about the first row `s`,
    /// summed by SYRK over blocks of rows, in double), then the leading `components` eigenvectors of the scaled
    /// covariance (LAPACK `dsyevr`, only those K). Memory is one n × n array, independent of the number of rows.
    public static func fit(_ open: ReaderFactory, components k: Int, path: String, progress: ProgressHandler? = nil) throws -> Reduction {
        let reader = try open()
        let n = reader.variableNames.count, m = reader.inputNames.count
        guard k >= 1 else { throw EddyError("--pca must be at least 1, got \(k)") }
        guard k <= n else {
            throw EddyError("\(path): --pca \(k) asks for more components than the data have variables (\(n))")
        }
        guard n <= maximumColumns else {
            throw EddyError("\(path): --pca needs the \(n) × \(n) covariance of the variables (\(n * n * 8 / 1_048_576) MiB); at most \(maximumColumns) variables are supported — narrow the selection with --nc-variables, --nc-levels or --nc-box")
        }
        var stats = DataStatistics(width: n + m)
        var shift: [Double]?
        var sums = [Double](repeating: 0, count: n * n)
        let capacity = max(16, min(4096, (1 << 22) / n))
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
        while let block = try reader.next() {
            stats.add(block, width: n + m, dt: reader.inferredDt)
            if shift == nil, block.rowCount > 0 { shift = Array(block.values[0..<n]) }
            guard let s = shift else { continue }
            for r in 0..<block.rowCount {
                let base = r * (n + m)
                for i in 0..<n { buffer[buffered * n + i] = block.values[base + i] - s[i] }
                buffered += 1
                if buffered == capacity { flush() }
            }
            progress?("principal components", stats.rows, 0)
        }
        flush()
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
        let columnVariance = (0..<n).map { max(0, cov[$0 * n + $0]) }
        // One scale per field: the root of its columns' mean variance.
        let names = reader.variableNames
        var fieldSum: [Substring: Double] = [:], fieldCount: [Substring: Int] = [:]
        for i in 0..<n {
            fieldSum[EOFBasis.field(of: names[i]), default: 0] += columnVariance[i]
            fieldCount[EOFBasis.field(of: names[i]), default: 0] += 1
        }
        let scale = (0..<n).map { i -> Double in
            let f = EOFBasis.field(of: names[i])
            let v = (fieldSum[f]! / Double(fieldCount[f]!)).squareRoot()
            return v > 0 && v.isFinite ? v : 1
        }
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
        // Leading K, descending; each vector's largest entry made positive, so the basis does not depend on LAPACK's signs.
        var vectors = [Double](repeating: 0, count: n * k)
        var variance = [Double](repeating: 0, count: k)
        for j in 0..<k {
            let c = k - 1 - j
            variance[j] = max(0, values[c])
            var big = 0
            for i in 0..<n where abs(z[i * k + c]) > abs(z[big * k + c]) { big = i }
            let sign: Double = z[big * k + c] < 0 ? -1 : 1
            for i in 0..<n { vectors[i * k + j] = sign * z[i * k + c] }
        }
        let basis = EOFBasis(columns: n, components: k, mean: Array(stats.mean[0..<n]), scale: scale,
                             columnStd: Array(stats.std[0..<n]), vectors: vectors, variance: variance, totalVariance: total)
        return Reduction(basis: basis, statistics: stats, variableNames: names)
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
