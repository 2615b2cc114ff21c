import CLAPACKE

public enum SolverKind: String, Codable, CaseIterable, Sendable {
    /// `(G + λI) Θ = R` by Cholesky (LAPACK `dpotrf`/`dpotrs`); λ > 0 required.
    case cholesky
    /// Symmetric eigendecomposition of `G` (`dsyevd`): any λ, and a spectral cut-off.
    case eigh
    /// SVD directly on the rows (`dgelsd`), in memory: the reference implementation's way.
    case lstsq
    /// Streamed QR (TSQR) of the rows `[Φ | Y]`, then an SVD of the triangular factor: `lstsq`'s accuracy in `O(D²)`
    /// memory (METHOD.md, "Streamed QR").
    case qr

    /// The default relative ridge α: the Gram solvers need one; the row solvers (`qr`; `lstsq` keeps its old default)
    /// regularise by the cut-off instead.
    public var defaultRidge: Double { self == .qr ? 0 : 1e-10 }

    /// Whether `--rcond` means anything to this solver.
    public var takesCutoff: Bool { self != .cholesky }
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
    /// `qr`: the condition number of the feature rows `Φ` itself, σ_max/σ_min (not of `G`, which squares it).
    public var rowsCondition: Double? = nil
    /// `qr`: the root-mean-square residual of the fit per pair and target (standardised units), from the factor.
    public var residual: Double? = nil
    /// `qr`: the cut-off actually applied (the default when none was given).
    public var rcond: Double? = nil
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
        case .lstsq, .qr:
            throw EddyError("internal: \(solver.rawValue) solves from the rows or their factor, not from G")
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

    /// The cut-off `qr` applies without `--rcond`: machine ε relative to σ_max, as `lstsq` (LAPACK's default). Lower
    /// cut-offs keep the directions that carry long chaotic forecasts (README, "Solvers").
    public static let defaultQRCutoff = Double.ulpOfOne

    /// Every (ridge, cut-off) solution of one prefix of a QR factor (METHOD.md, "Streamed QR"): one SVD of the leading
    /// block `R₁₁ = U S Vᵀ` of the feature columns serves them all, `Θ = V diag(g(σ)) Uᵀ R₁₂` with `g = σ/(σ² + λ)` for σ
    /// above `rcond · σ_max`, else 0. `width` selects the first `width` neurons (factor order keeps `[1, z, u]` first);
    /// `targets` the target columns. Returns `[ridge][cut-off]`, weights in dictionary order for the width-`width` layout.
    public static func factorPath(_ state: QRFactor, width: Int, targets: [Int], ridges alphas: [Double], rconds: [Double?]) throws -> [[Solution]] {
        let big = state.layout, n = state.size, fBig = big.featureCount
        let layout = DictionaryLayout(variables: big.variables, delays: big.delays, width: width, inputs: big.inputs, form: big.form)
        let k = layout.featureCount, t = targets.count
        guard width <= big.width, k > 0, t > 0 else { throw EddyError("internal: width \(width) is not a prefix of the factor's \(big.width)") }
        var r11 = [Double](repeating: 0, count: k * k)      // row-major
        var r12 = [Double](repeating: 0, count: k * t)
        for i in 0..<k {
            for j in i..<k { r11[i * k + j] = state.factor[i + j * n] }
            for (b, c) in targets.enumerated() { r12[i * t + b] = state.factor[i + (fBig + c) * n] }
        }
        // What no width-`width` model can fit: the target columns' rows below the prefix (unused features, then R_YY).
        var rest = 0.0
        for c in targets {
            let col = fBig + c
            for i in k...col { rest += state.factor[i + col * n] * state.factor[i + col * n] }
        }
        guard r11.allSatisfy(\.isFinite), r12.allSatisfy(\.isFinite) else {
            throw EddyError("the QR factor holds non-finite values: the lifted rows overflowed (check the data for values near the floating-point range)")
        }
        var sv = [Double](repeating: 0, count: k)
        var u = [Double](repeating: 0, count: k * k), vt = [Double](repeating: 0, count: k * k)
        let info = r11.withUnsafeMutableBufferPointer { a in
            LAPACKE_dgesdd(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "A")), Int32(k), Int32(k), a.baseAddress, Int32(k), &sv, &u, Int32(k), &vt, Int32(k))
        }
        if info != 0 { throw EddyError("SVD of the QR factor did not converge (LAPACK dgesdd info \(info))") }
        var c = [Double](repeating: 0, count: k * t)     // Uᵀ R₁₂
        BLAS.multiplyTransposedA(u, rows: k, columns: k, r12, columnsB: t, into: &c)
        var rowNorms = [Double](repeating: 0, count: k)
        for i in 0..<k { for j in 0..<t { rowNorms[i] += c[i * t + j] * c[i * t + j] } }
        let top = sv.first ?? 0, bottom = sv.last ?? 0
        let trace = sv.reduce(0) { $0 + $1 * $1 }
        let rowsCondition = bottom > 0 ? top / bottom : .infinity
        let dictionaryRow = (0..<k).map { QRFactor.factorColumn($0, layout: layout) }   // factor row of dictionary row
        let pairs = max(state.pairs, 1)
        return alphas.map { alpha in
            let lambda = relativeRidge(alpha, trace: trace, size: k)
            return rconds.map { given in
                let rcond = given ?? defaultQRCutoff
                let cut = rcond * top
                var scaled = c
                var dropped = 0, misfit = 0.0, smallest = Double.infinity
                for i in 0..<k {
                    let s = sv[i]
                    let keep = s > cut && s > 0
                    let g = keep ? s / (s * s + lambda) : 0
                    if keep { smallest = min(smallest, s) } else { dropped += 1 }
                    let e = s * g - 1
                    misfit += e * e * rowNorms[i]
                    for j in 0..<t { scaled[i * t + j] *= g }
                }
                var factorTheta = [Double](repeating: 0, count: k * t)
                BLAS.multiplyTransposedA(vt, rows: k, columns: k, scaled, columnsB: t, into: &factorTheta)
                var theta = [Double](repeating: 0, count: k * t)
                for i in 0..<k { for j in 0..<t { theta[i * t + j] = factorTheta[dictionaryRow[i] * t + j] } }
                let effective = smallest.isFinite ? ((top * top + lambda) / (smallest * smallest + lambda)).squareRoot() : .infinity
                var w: [String] = []
                if lambda == 0 && rcond == 0 && effective > nearSingular {
                    w.append("qr: the rows are singular to double precision (condition of Φ ≈ \(Format.scientific(effective, 1))) and nothing is cut: the weights depend on rounding; give --rcond (e.g. 1e-15) or --ridge")
                }
                if dropped == k { w.append("qr: every direction fell below the cut-off; the weights are zero") }
                return Solution(theta: theta, lambda: lambda, condition: rowsCondition, dropped: dropped, warnings: w,
                                rowsCondition: rowsCondition, residual: ((misfit + rest) / Double(pairs * t)).squareRoot(), rcond: rcond)
            }
        }
    }

    static func warnings(condition: Double) -> [String] {
        guard condition > nearSingular else { return [] }
        let c = condition.isFinite ? "\(Format.scientific(condition, 1))" : "infinite"
        return ["G + λI is singular to double precision (condition ≈ \(c)): the weights depend on rounding. On clean simulated data this is often the best model (the smallest ridges forecast best: compare with eddy sweep); for weights that do not depend on rounding, raise --ridge, lower --width or use --solver qr"]
    }
}
