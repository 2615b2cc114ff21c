/// The stabilising solution of a discrete algebraic Riccati equation and how well it satisfies the equation.
public struct RiccatiSolution: Sendable {
    /// `X = Xᵀ ⪰ 0`.
    public var x: DenseMatrix
    public var iterations: Int
    /// The relative residual `‖AᵀXA − X − AᵀXB(R + BᵀXB)⁻¹BᵀXA + Q‖_F / max(1, ‖X‖_F)`.
    public var residual: Double
}

/// The discrete algebraic Riccati equation (DARE) of the infinite-horizon LQR (METHOD.md, "Control"):
///
///     X = AᵀXA − AᵀXB (R + BᵀXB)⁻¹ BᵀXA + Q
///
/// solved in double by the structure-preserving doubling algorithm (SDA; Chu, Fan & Lin, "A structure-preserving
/// doubling algorithm for discrete-time algebraic Riccati equations", Linear Algebra Appl. 396, 2005):
///
///     A₀ = A, G₀ = B R⁻¹ Bᵀ, H₀ = Q;   W = I + G_k H_k
///     A_{k+1} = A_k W⁻¹ A_k,   G_{k+1} = G_k + A_k W⁻¹ G_k A_kᵀ,   H_{k+1} = H_k + A_kᵀ H_k W⁻¹ A_k
///
/// `H_k → X` quadratically when `(A, B)` is stabilisable and `(A, Q^{1/2})` detectable; each step is a few
/// `dgemm` and one LU solve (`dgesv`), no eigenvector ordering as the Schur method needs. After `k` steps `H_k`
/// is the cost of the first `2^k` steps of the LQR problem, so the iteration also says how long the horizon had to be.
public enum Riccati {
    /// Solves the DARE for `A` (N×N), `B` (N×m), `Q = Qᵀ ⪰ 0` (N×N), `R = Rᵀ ≻ 0` (m×m). Throws when the iteration
    /// does not converge (an unstable mode that the input cannot reach, or one the cost does not see).
    public static func discrete(a: DenseMatrix, b: DenseMatrix, q: DenseMatrix, r: DenseMatrix,
                                tolerance: Double = 1e-13, maxIterations: Int = 60) throws -> RiccatiSolution {
        let n = a.rows
        precondition(a.columns == n && b.rows == n && q.rows == n && q.columns == n && r.rows == b.columns && r.columns == b.columns)
        var ak = a
        var g = DenseMatrix.product(b, try r.solving(b.transposed)).symmetrised   // B R⁻¹ Bᵀ
        var h = q.symmetrised
        let identity = DenseMatrix.identity(n)
        for k in 1...maxIterations {
            let w = identity + g * h
            // One LU of W serves both right-hand sides: W⁻¹ [A_k, G_k].
            var rhs = DenseMatrix.zeros(n, 2 * n)
            for i in 0..<n {
                for j in 0..<n {
                    rhs[i, j] = ak[i, j]
                    rhs[i, n + j] = g[i, j]
                }
            }
            let solved = try w.solving(rhs)
            let wa = solved.block(rows: 0..<n, columns: 0..<n)
            let wg = solved.block(rows: 0..<n, columns: n..<(2 * n))
            let hNext = (h + DenseMatrix.transposedProduct(ak, h * wa)).symmetrised
            g = (g + DenseMatrix.product(ak * wg, ak, transposeB: true)).symmetrised
            ak = ak * wa
            let change = (hNext - h).frobeniusNorm
            h = hNext
            guard h.values.allSatisfy(\.isFinite), g.values.allSatisfy(\.isFinite), ak.values.allSatisfy(\.isFinite) else { break }
            if change <= tolerance * max(1, h.frobeniusNorm) || ak.frobeniusNorm < 1e-300 {
                return RiccatiSolution(x: h, iterations: k, residual: residual(x: h, a: a, b: b, q: q, r: r))
            }
        }
        throw EddyError("the Riccati equation (state size \(n)) has no stabilising solution: the doubling iteration did not converge in \(maxIterations) steps; the model has an unstable mode that the input cannot move or the cost does not see")
    }

    /// The relative residual of the DARE at `X` (see `RiccatiSolution.residual`).
    public static func residual(x: DenseMatrix, a: DenseMatrix, b: DenseMatrix, q: DenseMatrix, r: DenseMatrix) -> Double {
        let xa = x * a, xb = x * b
        let atxa = DenseMatrix.transposedProduct(a, xa)
        let btxa = DenseMatrix.transposedProduct(b, xa)
        let s = r + DenseMatrix.transposedProduct(b, xb)
        guard let gain = try? s.solving(btxa) else { return .infinity }
        let res = atxa - x - DenseMatrix.transposedProduct(btxa, gain) + q
        return res.frobeniusNorm / max(1, x.frobeniusNorm)
    }
}
