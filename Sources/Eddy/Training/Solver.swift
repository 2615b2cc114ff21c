public enum SolverKind: String, Codable, CaseIterable, Sendable {
    /// `(G + λI) Θ = R` by Cholesky (LAPACK `dpotrf`/`dpotrs`); λ > 0 required.
    case cholesky
    /// Symmetric eigendecomposition of `G` (`dsyevd`): any λ, and a spectral cut-off.
    case eigh
    /// SVD directly on the rows (`dgelsd`), in memory: the reference implementation's way.
    case lstsq
}

/// The outer weights and how well-posed the solve was.
public struct Solution: Sendable {
    /// featureCount × targetCount, row-major.
    public var theta: [Double]
    /// The absolute ridge `λ = α · trace(G) / (D + m)`.
    public var lambda: Double
    /// Condition number of `G + λI` (1-norm estimate for Cholesky, exact 2-norm for the others).
    public var condition: Double
    /// Directions dropped by the cut-off (eigh, lstsq).
    public var dropped: Int
    public var warnings: [String]
}

/// Solves for the outer weights in double precision (METHOD.md, "Solve"). Never forms an inverse.
public enum Solver {
    /// At this condition number of `G + λI` (about 1/(4.5 ε)) the matrix is singular to working precision: the
    /// weights then depend on rounding. Ridge solves below it are backward stable and forecast well (Van der Pol's
    /// best models sit near 1e15 with a 1-norm estimate), so Eddy does not warn earlier.
    public static let nearSingular = 1e15

    public static func relativeRidge(_ alpha: Double, trace: Double, size: Int) -> Double {
        alpha * trace / Double(max(size, 1))
    }

    /// Solves from the accumulated sums with `cholesky` or `eigh`. `rcond` cuts singular values below
    /// `rcond · σ_max` of the rows, i.e. eigenvalues of `G` below `rcond² · λ_max`, as a pseudo-inverse would.
    public static func solve(_ sums: GramSums, solver: SolverKind, ridge alpha: Double, rcond: Double? = nil) throws -> Solution {
        let f = sums.layout.featureCount, r = sums.layout.targetCount
        var trace = 0.0
        for i in 0..<f { trace += sums.gram[i * f + i] }
        let lambda = relativeRidge(alpha, trace: trace, size: f)
        switch solver {
        case .cholesky:
            guard alpha > 0 else {
                throw EddyError("--solver cholesky needs a positive --ridge (got \(alpha)); use --solver eigh or lstsq for an unregularised solve")
            }
            var a = sums.gram
            for i in 0..<f { a[i * f + i] += lambda }
            var anorm = 0.0   // 1-norm = largest column sum = largest row sum (symmetric), read row by row
            for i in 0..<f {
                var s = 0.0
                for j in 0..<f { s += abs(a[i * f + j]) }
                anorm = max(anorm, s)
            }
            let info = LAPACK.potrf(&a, n: f)
            if info > 0 {
                throw EddyError("Cholesky failed: G + λI is not positive definite (leading minor \(info) of \(f)); raise --ridge (now \(alpha)) or use --solver eigh")
            }
            var theta = sums.rightHandSide
            let info2 = LAPACK.potrs(a, n: f, &theta, columns: r)
            if info2 != 0 { throw EddyError("Cholesky solve failed (LAPACK info \(info2))") }
            let rc = LAPACK.pocon(a, n: f, anorm: anorm)
            let condition = rc > 0 ? 1 / rc : .infinity
            return Solution(theta: theta, lambda: lambda, condition: condition, dropped: 0, warnings: warnings(condition: condition))
        case .eigh:
            return try ridgePath(sums, ridges: [alpha], rcond: rcond)[0]
        case .lstsq:
            throw EddyError("internal: lstsq solves from the rows, not from G")
        }
    }

    /// Every ridge from one symmetric eigendecomposition `G = V diag(μ) Vᵀ` (METHOD.md, "Sweeps"):
    /// `Θ(λ) = V diag(1/(μ_i + λ)) Vᵀ R` over the eigenpairs above the cut-off.
    public static func ridgePath(_ sums: GramSums, ridges alphas: [Double], rcond: Double? = nil) throws -> [Solution] {
        let f = sums.layout.featureCount, r = sums.layout.targetCount
        var trace = 0.0
        for i in 0..<f { trace += sums.gram[i * f + i] }
        var v = sums.gram
        let (values, info) = LAPACK.syevd(&v, n: f)
        if info != 0 { throw EddyError("symmetric eigendecomposition failed (LAPACK info \(info))") }
        let top = values.last ?? 0
        let cut = rcond.map { $0 * $0 * top } ?? 0
        var vtr = [Double](repeating: 0, count: f * r)
        v.withUnsafeBufferPointer { vp in
            sums.rightHandSide.withUnsafeBufferPointer { rp in
                vtr.withUnsafeMutableBufferPointer {
                    BLAS.gemm(transA: true, transB: false, m: f, n: r, k: f, a: vp.baseAddress!, lda: f, b: rp.baseAddress!, ldb: r, beta: 0, c: $0.baseAddress!, ldc: r)
                }
            }
        }
        return alphas.map { alpha in
            let lambda = relativeRidge(alpha, trace: trace, size: f)
            var scaled = vtr
            var dropped = 0
            var smallest = Double.infinity
            for i in 0..<f {
                let mu = values[i] + lambda
                let keep = values[i] > cut && mu > 0
                if keep { smallest = min(smallest, mu) } else { dropped += 1 }
                let scale = keep ? 1 / mu : 0
                for j in 0..<r { scaled[i * r + j] *= scale }
            }
            var theta = [Double](repeating: 0, count: f * r)
            v.withUnsafeBufferPointer { vp in
                scaled.withUnsafeBufferPointer { t in
                    theta.withUnsafeMutableBufferPointer {
                        BLAS.gemm(transA: false, transB: false, m: f, n: r, k: f, a: vp.baseAddress!, lda: f, b: t.baseAddress!, ldb: r, beta: 0, c: $0.baseAddress!, ldc: r)
                    }
                }
            }
            let condition = smallest.isFinite ? (top + lambda) / smallest : .infinity
            var w = warnings(condition: condition)
            // Without --rcond only eigenvalues ≤ 0 (round-off in a positive semi-definite G) are dropped: no warning.
            if dropped > 0, rcond != nil { w.append("eigh: \(dropped) of \(f) directions fell below rcond and were dropped") }
            return Solution(theta: theta, lambda: lambda, condition: condition, dropped: dropped, warnings: w)
        }
    }

    /// Least squares on the rows themselves: `min ‖S Θ − T‖² + λ‖Θ‖²` by SVD (`dgelsd`) on `[S; √λ I]`.
    /// `rcond` as NumPy's `lstsq` (nil: machine precision).
    public static func lstsq(rows s: [Double], targets t: [Double], count: Int, features f: Int, targetCount r: Int,
                             ridge alpha: Double, rcond: Double?) throws -> Solution {
        var trace = 0.0
        for v in s { trace += v * v }
        let lambda = relativeRidge(alpha, trace: trace, size: f)
        let extra = lambda > 0 ? f : 0
        let n = count + extra
        var a = s
        var b = t
        if extra > 0 {
            a += [Double](repeating: 0, count: f * f)
            b += [Double](repeating: 0, count: f * r)
            let root = lambda.squareRoot()
            for i in 0..<f { a[(count + i) * f + i] = root }
        }
        if n < f {
            // dgelsd returns the solution in the first f rows of b, so b needs at least f rows.
            b += [Double](repeating: 0, count: (f - n) * r)
        }
        let (sv, _, info) = LAPACK.gelsd(&a, rows: n, cols: f, &b, nrhs: r, rcond: rcond ?? -1)
        if info != 0 { throw EddyError("SVD least squares did not converge (LAPACK info \(info))") }
        let top = sv.first ?? 0
        let threshold = (rcond ?? Double.ulpOfOne * Double(max(n, f))) * top
        let kept = sv.filter { $0 > threshold }
        let condition = kept.isEmpty ? .infinity : (top * top) / (kept.last! * kept.last!)
        var w = warnings(condition: condition)
        let dropped = sv.count - kept.count + max(0, f - sv.count)
        if dropped > 0, rcond != nil { w.append("lstsq: \(dropped) of \(f) directions fell below rcond and were dropped") }
        return Solution(theta: Array(b[0..<(f * r)]), lambda: lambda, condition: condition, dropped: dropped, warnings: w)
    }

    static func warnings(condition: Double) -> [String] {
        guard condition > nearSingular else { return [] }
        let c = condition.isFinite ? "\(Format.scientific(condition, 1))" : "infinite"
        return ["G + λI is singular to double precision (condition ≈ \(c)): the weights depend on rounding; raise --ridge or lower --width"]
    }
}
