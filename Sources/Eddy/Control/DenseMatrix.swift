/// A small dense real matrix, row-major, for the control designs (state sizes up to a few hundred). Products go
/// through OpenBLAS, solves and eigenvalues through LAPACK (`Compute/BLAS.swift`); everything is in double.
///
/// Control works in the column convention of the textbooks (`s⁺ = A s + B u`), while the model stores the row
/// convention (`Ψ_{t+1} = Ψ_t K + u_t B`); `LiftedLinearModel` does the one transposition.
public struct DenseMatrix: Sendable, Equatable {
    public let rows: Int
    public let columns: Int
    public var values: [Double]

    public init(rows: Int, columns: Int, values: [Double]) {
        precondition(values.count == rows * columns, "a \(rows)×\(columns) matrix needs \(rows * columns) values, got \(values.count)")
        self.rows = rows
        self.columns = columns
        self.values = values
    }

    public static func zeros(_ rows: Int, _ columns: Int) -> DenseMatrix {
        DenseMatrix(rows: rows, columns: columns, values: .init(repeating: 0, count: rows * columns))
    }

    public static func identity(_ n: Int) -> DenseMatrix { diagonal(.init(repeating: 1, count: n)) }

    public static func diagonal(_ d: [Double]) -> DenseMatrix {
        var m = zeros(d.count, d.count)
        for i in 0..<d.count { m[i, i] = d[i] }
        return m
    }

    /// A column vector.
    public static func column(_ v: [Double]) -> DenseMatrix { DenseMatrix(rows: v.count, columns: 1, values: v) }

    public subscript(i: Int, j: Int) -> Double {
        get { values[i * columns + j] }
        set { values[i * columns + j] = newValue }
    }

    public var transposed: DenseMatrix {
        var t = DenseMatrix.zeros(columns, rows)
        for i in 0..<rows { for j in 0..<columns { t.values[j * rows + i] = values[i * columns + j] } }
        return t
    }

    /// `(M + Mᵀ)/2`: removes the round-off asymmetry that products like `Aᵀ X A` accumulate.
    public var symmetrised: DenseMatrix {
        precondition(rows == columns)
        var s = self
        for i in 0..<rows {
            for j in (i + 1)..<columns {
                let v = 0.5 * (values[i * columns + j] + values[j * columns + i])
                s.values[i * columns + j] = v
                s.values[j * columns + i] = v
            }
        }
        return s
    }

    public var frobeniusNorm: Double { values.reduce(0) { $0 + $1 * $1 }.squareRoot() }

    /// `op(A) · op(B)` through `dgemm`.
    public static func product(_ a: DenseMatrix, _ b: DenseMatrix, transposeA ta: Bool = false, transposeB tb: Bool = false) -> DenseMatrix {
        let m = ta ? a.columns : a.rows, k = ta ? a.rows : a.columns
        let kb = tb ? b.columns : b.rows, n = tb ? b.rows : b.columns
        precondition(k == kb, "inner dimensions differ: \(k) and \(kb)")
        var c = DenseMatrix.zeros(m, n)
        guard m > 0, n > 0, k > 0 else { return c }
        a.values.withUnsafeBufferPointer { ap in
            b.values.withUnsafeBufferPointer { bp in
                c.values.withUnsafeMutableBufferPointer { cp in
                    BLAS.gemm(transA: ta, transB: tb, m: m, n: n, k: k, a: ap.baseAddress!, lda: a.columns,
                              b: bp.baseAddress!, ldb: b.columns, beta: 0, c: cp.baseAddress!, ldc: n)
                }
            }
        }
        return c
    }

    /// `Aᵀ B`.
    public static func transposedProduct(_ a: DenseMatrix, _ b: DenseMatrix) -> DenseMatrix { product(a, b, transposeA: true) }

    public static func * (a: DenseMatrix, b: DenseMatrix) -> DenseMatrix { product(a, b) }

    public static func + (a: DenseMatrix, b: DenseMatrix) -> DenseMatrix {
        precondition(a.rows == b.rows && a.columns == b.columns)
        return DenseMatrix(rows: a.rows, columns: a.columns, values: zip(a.values, b.values).map { $0 + $1 })
    }

    public static func - (a: DenseMatrix, b: DenseMatrix) -> DenseMatrix {
        precondition(a.rows == b.rows && a.columns == b.columns)
        return DenseMatrix(rows: a.rows, columns: a.columns, values: zip(a.values, b.values).map { $0 - $1 })
    }

    public static func * (s: Double, a: DenseMatrix) -> DenseMatrix {
        DenseMatrix(rows: a.rows, columns: a.columns, values: a.values.map { s * $0 })
    }

    /// `A v` for a vector `v`.
    public func applied(to v: [Double]) -> [Double] {
        precondition(v.count == columns)
        return DenseMatrix.product(self, .column(v)).values
    }

    /// `A⁻¹ B` by LU with partial pivoting (LAPACK `dgesv`); never forms the inverse.
    public func solving(_ b: DenseMatrix) throws -> DenseMatrix {
        precondition(rows == columns && b.rows == rows)
        var lu = values
        var x = b.values
        let info = LAPACK.gesv(&lu, n: rows, &x, columns: b.columns)
        if info != 0 { throw EddyError("a \(rows)×\(rows) matrix in the control design is singular (LAPACK dgesv info \(info))") }
        return DenseMatrix(rows: b.rows, columns: b.columns, values: x)
    }

    /// Eigenvalues (LAPACK `dgeev`), as (real, imaginary) pairs.
    public var eigenvalues: [(real: Double, imaginary: Double)] {
        precondition(rows == columns)
        guard rows > 0 else { return [] }
        let (re, im, info) = LAPACK.geev(values, n: rows)
        guard info == 0 else { return [(Double.nan, Double.nan)] }
        return Array(zip(re, im)).map { (real: $0.0, imaginary: $0.1) }
    }

    /// The largest eigenvalue modulus: a discrete-time system `s⁺ = A s` is asymptotically stable iff it is below 1.
    public var spectralRadius: Double {
        eigenvalues.reduce(0.0) { max($0, ($1.real * $1.real + $1.imaginary * $1.imaginary).squareRoot()) }
    }

    /// Smallest and largest eigenvalue of a symmetric matrix (LAPACK `dsyevd`).
    var symmetricEigenvalueRange: (lowest: Double, highest: Double) {
        precondition(rows == columns && rows > 0)
        var a = values
        let (w, info) = LAPACK.syevd(&a, n: rows)
        guard info == 0 else { return (.nan, .nan) }
        return (w.first!, w.last!)
    }

    /// `e^A` by scaling and squaring with a Taylor polynomial (Moler & Van Loan 2003, "Nineteen dubious ways", method 3):
    /// `A` is scaled by `2^-s` until its 1-norm is at most 1/2, where 20 Taylor terms leave a remainder below 1e-25.
    /// For the small matrices here (a linearised ODE with its inputs) this is accurate to round-off.
    public var exponential: DenseMatrix {
        precondition(rows == columns)
        var norm = 0.0
        for j in 0..<columns {
            var s = 0.0
            for i in 0..<rows { s += abs(self[i, j]) }
            norm = max(norm, s)
        }
        var squarings = 0
        var scale = 1.0
        while norm * scale > 0.5 && squarings < 1000 { scale *= 0.5; squarings += 1 }
        let a = scale * self
        var result = DenseMatrix.identity(rows)
        var term = DenseMatrix.identity(rows)
        for k in 1...20 {
            term = (1 / Double(k)) * (term * a)
            result = result + term
        }
        for _ in 0..<squarings { result = result * result }
        return result
    }

    /// The block `[r0..<r1, c0..<c1]`.
    public func block(rows r: Range<Int>, columns c: Range<Int>) -> DenseMatrix {
        var out = DenseMatrix.zeros(r.count, c.count)
        for (i, ri) in r.enumerated() { for (j, cj) in c.enumerated() { out[i, j] = self[ri, cj] } }
        return out
    }
}
