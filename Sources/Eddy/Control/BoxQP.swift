/// A solution of a box-constrained QP and how it was reached.
public struct BoxQPSolution: Sendable {
    public var x: [Double]
    public var iterations: Int
    /// `‖x − Π(x − (Hx + f)/L)‖_∞`: zero exactly at the minimiser (the projected-gradient fixed point).
    public var residual: Double
    /// Whether the final active-set solve (exact on the free variables) gave the answer.
    public var polished: Bool
}

/// A strictly convex QP with box constraints, `min ½ xᵀHx + fᵀx  s.t.  lo ≤ x ≤ hi`, for the condensed MPC.
///
/// Accelerated projected gradient (Nesterov's constant momentum for strongly convex problems,
/// `β = (√L − √μ)/(√L + √μ)`, with step `1/L`; Nesterov, *Introductory Lectures on Convex Optimization*, 2.2.4)
/// restarted when the step turns against the momentum (O'Donoghue & Candès 2015), interleaved with an active-set
/// polish: the variables at a bound whose gradient pushes outward are fixed and the rest solved exactly (LU),
/// accepted when that is feasible and meets the tolerance. `L` and `μ` are the extreme eigenvalues of `H` (LAPACK
/// `dsyevd`, once per Hessian), so the step needs no line search.
public struct BoxQP: Sendable {
    public let hessian: DenseMatrix
    public let lipschitz: Double
    public let convexity: Double

    public init(hessian: DenseMatrix) {
        precondition(hessian.rows == hessian.columns && hessian.rows > 0)
        self.hessian = hessian.symmetrised
        let (lo, hi) = self.hessian.symmetricEigenvalueRange
        lipschitz = hi
        convexity = max(lo, 0)
    }

    func gradient(_ x: [Double], _ f: [Double]) -> [Double] {
        let hx = hessian.applied(to: x)
        return (0..<x.count).map { hx[$0] + f[$0] }
    }

    func residual(_ x: [Double], _ f: [Double], _ lo: [Double], _ hi: [Double]) -> Double {
        let g = gradient(x, f)
        var r = 0.0
        for i in 0..<x.count { r = max(r, abs(x[i] - min(max(x[i] - g[i] / lipschitz, lo[i]), hi[i]))) }
        return r
    }

    public func solve(linear f: [Double], lower lo: [Double], upper hi: [Double], start: [Double]? = nil,
                      tolerance: Double = 1e-10, maxIterations: Int = 20000) -> BoxQPSolution {
        let n = hessian.rows
        precondition(f.count == n && lo.count == n && hi.count == n)
        func project(_ v: [Double]) -> [Double] { (0..<n).map { min(max(v[$0], lo[$0]), hi[$0]) } }
        var x = project(start ?? .init(repeating: 0, count: n))
        var y = x
        let step = 1 / lipschitz
        let root = (lipschitz / max(convexity, lipschitz * 1e-16)).squareRoot()
        let beta = (root - 1) / (root + 1)
        var iterations = 0
        var r = residual(x, f, lo, hi)
        while r > tolerance && iterations < maxIterations {
            // Every few steps, guess the active set from the iterate and solve the rest exactly: with a warm start
            // or inactive bounds the first guess is usually right, and then no gradient steps are needed at all.
            if iterations % 25 == 0, let p = polish(x, f, lo, hi) {
                let rp = residual(p, f, lo, hi)
                if rp <= tolerance { return BoxQPSolution(x: p, iterations: iterations, residual: rp, polished: true) }
            }
            for _ in 0..<5 {
                iterations += 1
                let g = gradient(y, f)
                let xNext = project((0..<n).map { y[$0] - step * g[$0] })
                // Gradient restart: when the new step points against the momentum, drop the momentum.
                var against = 0.0
                for i in 0..<n { against += (y[i] - xNext[i]) * (xNext[i] - x[i]) }
                if against > 0 { y = xNext } else { y = (0..<n).map { xNext[$0] + beta * (xNext[$0] - x[$0]) } }
                x = xNext
            }
            r = residual(x, f, lo, hi)
        }
        if let p = polish(x, f, lo, hi) {
            let rp = residual(p, f, lo, hi)
            if rp < r { return BoxQPSolution(x: p, iterations: iterations, residual: rp, polished: true) }
        }
        return BoxQPSolution(x: x, iterations: iterations, residual: r, polished: false)
    }

    /// Fixes the variables at a bound whose gradient points outward and solves `H_FF x_F = −(f_F + H_FA x_A)` exactly.
    func polish(_ x: [Double], _ f: [Double], _ lo: [Double], _ hi: [Double]) -> [Double]? {
        let n = x.count
        let g = gradient(x, f)
        let slack = 1e-9 * max(1, x.map(abs).max() ?? 0)
        var fixed = [Double?](repeating: nil, count: n)
        for i in 0..<n {
            if x[i] <= lo[i] + slack && g[i] > 0 { fixed[i] = lo[i] }
            else if x[i] >= hi[i] - slack && g[i] < 0 { fixed[i] = hi[i] }
        }
        let free = (0..<n).filter { fixed[$0] == nil }
        var out = (0..<n).map { fixed[$0] ?? 0 }
        guard !free.isEmpty else { return out }
        var hff = DenseMatrix.zeros(free.count, free.count)
        var rhs = [Double](repeating: 0, count: free.count)
        for (a, i) in free.enumerated() {
            var v = -f[i]
            for j in 0..<n { if let c = fixed[j] { v -= hessian[i, j] * c } }
            rhs[a] = v
            for (b, j) in free.enumerated() { hff[a, b] = hessian[i, j] }
        }
        guard let solved = try? hff.solving(.column(rhs)) else { return nil }
        for (a, i) in free.enumerated() {
            let v = solved.values[a]
            guard v >= lo[i] - slack && v <= hi[i] + slack else { return nil }
            out[i] = min(max(v, lo[i]), hi[i])
        }
        return out
    }
}
