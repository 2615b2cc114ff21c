/// A trained model as the controllers see it: an affine state-space model in the model's standardised units,
///
///     s_{t+1} = A s_t + B u_t + c,    x_t = s_t[0..<n]   (the newest row of the delay window),
///
/// in the column convention of control texts (the model file keeps the row convention `Ψ_{t+1} = Ψ_t K + u_t B`).
///
/// **Koopman form** (exact; METHOD.md, "Control"): `s` is the lifted row `Ψ(z) = [1, z, φ(z)]` *without its constant*.
/// The constant is a unit mode that no input moves (`1 → 1`), so a Riccati equation with it in the state has no
/// stabilising solution and a QP would spend effort on it. Since it is always 1, its row of `K` is an affine term:
/// `A = K[1:,1:]ᵀ`, `B = B[:,1:]ᵀ`, `c = K[0,1:]ᵀ`. The controllers then work in error coordinates about the
/// reference's lifted point `s*_t = Ψ(z*_t)[1:]` with a feed-forward input `u*_t` that carries the lifted model from
/// `s*_t` to `s*_{t+1}` (least squares in the cost's metric), so `c` and whatever the model cannot hold exactly
/// enter once, through `u*`, instead of as a mode of the design. (The model's own evolution of the constant,
/// `Ψ_{t+1}[0]`, is `1` up to the ridge and is not used.)
///
/// **Recurrent form** (`x_{t+1} = Ψ(z_t) A + u_t B`, re-lifted every step): linearised at one window `z̄` (the
/// reference's centre), `s = z`: the newest row follows the Jacobian of `Ψ(z) A` (analytic: the state columns of `A`
/// plus `W diag(σ'(Wz̄ + b))` times its feature rows), the older rows shift down. Inputs enter linearly in both forms,
/// so `B` is exact.
public struct LiftedLinearModel: Sendable {
    public let model: Model
    public let a: DenseMatrix
    public let b: DenseMatrix
    public let offset: [Double]
    /// The standardised window a recurrent model was linearised at (nil for the Koopman form, which is linear).
    public let linearisedAt: [Double]?

    public var stateSize: Int { a.rows }
    public var variables: Int { model.layout.variables }
    public var inputs: Int { model.layout.inputs }
    public var delays: Int { model.layout.delays }

    /// `window` (recurrent form only): the standardised window `z̄` to linearise at; required there.
    public init(_ model: Model, linearisedAt window: [Double]? = nil) throws {
        let l = model.layout
        let n = l.variables, m = l.inputs, p = l.windowSize, d = l.dictionarySize, mw = l.width
        guard m > 0 else {
            throw EddyError("the model was trained without inputs (variables \(model.metadata.variables.joined(separator: ",")) only); control needs a model with the system's inputs: train it with --inputs")
        }
        guard model.eof == nil else {
            throw EddyError("the model runs on \(n) principal components (--pca); control works on the system's own variables: train it without --pca")
        }
        self.model = model
        let theta = model.theta
        switch l.form {
        case .koopman:
            // theta = [K; B], (D + m) × D; drop the constant (index 0) from the state.
            var a = DenseMatrix.zeros(d - 1, d - 1), b = DenseMatrix.zeros(d - 1, m)
            var c = [Double](repeating: 0, count: d - 1)
            for j in 1..<d {
                c[j - 1] = theta[j]
                for i in 1..<d { a[j - 1, i - 1] = theta[i * d + j] }
                for u in 0..<m { b[j - 1, u] = theta[(d + u) * d + j] }
            }
            self.a = a; self.b = b; offset = c; linearisedAt = nil
        case .recurrent:
            guard let z = window, z.count == p else {
                preconditionFailure("a recurrent model is linearised at a window of \(p) values")
            }
            // theta = [A_r; B_r], (D + m) × n. f(z) = Ψ(z) A_r; ∂f_i/∂z_q = A_r[1+q, i] + Σ_k W[q,k] σ'(a_k) A_r[1+p+k, i].
            let psi = Lift.rows(windows: z, inputs: .init(repeating: 0, count: m), count: 1, layer: model.layer, layout: l)
            var slope = [Double](repeating: 0, count: mw)
            for k in 0..<mw {
                let h = psi[1 + p + k]
                switch model.layer.activation {
                case .tanh: slope[k] = 1 - h * h
                case .relu: slope[k] = h > 0 ? 1 : 0
                }
            }
            var a = DenseMatrix.zeros(p, p), b = DenseMatrix.zeros(p, m)
            var c = [Double](repeating: 0, count: p)
            let w = model.layer.weights
            for i in 0..<n {
                var f = 0.0
                for r in 0..<d { f += psi[r] * theta[r * n + i] }
                var jz = 0.0
                for q in 0..<p {
                    var g = theta[(1 + q) * n + i]
                    for k in 0..<mw { g += w[q * mw + k] * slope[k] * theta[(1 + p + k) * n + i] }
                    a[i, q] = g
                    jz += g * z[q]
                }
                c[i] = f - jz
                for u in 0..<m { b[i, u] = theta[(d + u) * n + i] }
            }
            for r in 0..<(p - n) { a[n + r, r] = 1 }   // the older rows of the window shift down
            self.a = a; self.b = b; offset = c; linearisedAt = z
        }
    }

    /// The state `s` of a standardised window `z` (newest row first).
    public func state(window z: [Double]) -> [Double] {
        switch model.layout.form {
        case .koopman:
            let l = model.layout
            let psi = Lift.rows(windows: z, inputs: .init(repeating: 0, count: l.inputs), count: 1, layer: model.layer, layout: l)
            return Array(psi[1..<l.dictionarySize])
        case .recurrent:
            return z
        }
    }

    /// `A s + B u + c` (standardised units).
    public func next(_ s: [Double], input u: [Double]) -> [Double] {
        let as_ = a.applied(to: s), bu = b.applied(to: u)
        return (0..<stateSize).map { as_[$0] + bu[$0] + offset[$0] }
    }

    /// The standardised window of data-unit rows given newest first (`rows[0]` is `x_t`).
    public func standardisedWindow(_ rows: [[Double]]) -> [Double] { Self.standardisedWindow(rows, model: model) }

    static func standardisedWindow(_ rows: [[Double]], model: Model) -> [Double] {
        let norm = model.normalisation, n = model.layout.variables
        var z: [Double] = []
        z.reserveCapacity(n * model.layout.delays)
        for lag in 0..<model.layout.delays {
            for i in 0..<n { z.append((rows[lag][i] - norm.variableMean[i]) / norm.variableStd[i]) }
        }
        return z
    }

    func standardisedInput(_ u: [Double]) -> [Double] {
        let norm = model.normalisation
        return (0..<inputs).map { (u[$0] - norm.inputMean[$0]) / norm.inputStd[$0] }
    }

    func dataInput(_ us: [Double]) -> [Double] {
        let norm = model.normalisation
        return (0..<inputs).map { us[$0] * norm.inputStd[$0] + norm.inputMean[$0] }
    }

    /// The cost in the lifted, standardised coordinates: `q_i σ_i²` on the current state (the data-unit weight
    /// `q_i (x_i − r_i)²` is `q_i σ_i² (x̃_i − r̃_i)²` with `x̃ = (x − μ)/σ`), `liftedWeight · max_i q_i σ_i²` on every
    /// other coordinate, and `r_j σ_{u,j}²` on the inputs.
    func costMatrices(_ w: ControlWeights) -> (q: DenseMatrix, r: DenseMatrix) {
        let norm = model.normalisation
        let stateWeights = (0..<variables).map { w.state[$0] * norm.variableStd[$0] * norm.variableStd[$0] }
        let floor = w.liftedWeight * (stateWeights.max() ?? 1)
        var q = [Double](repeating: floor, count: stateSize)
        for i in 0..<variables { q[i] = max(stateWeights[i], floor) }
        let r = (0..<inputs).map { w.input[$0] * norm.inputStd[$0] * norm.inputStd[$0] }
        return (.diagonal(q), .diagonal(r))
    }
}

/// The delay window a controller keeps of its measurements, newest first; before `k` measurements exist, the
/// oldest one stands in for the missing rows (the system is taken to have rested there).
struct MeasurementWindow {
    let delays: Int
    private(set) var rows: [[Double]] = []

    init(delays: Int) { self.delays = delays }

    mutating func push(_ x: [Double]) {
        if rows.isEmpty { rows = Array(repeating: x, count: delays) }
        else { rows.insert(x, at: 0); rows.removeLast() }
    }
}

/// The reference's window at step `t`: `[r_t, r_{t−1}, …]`, data units.
func referenceWindow(_ reference: TrackingReference, at time: Double, dt: Double, delays: Int) -> [[Double]] {
    (0..<delays).map { reference.value(at: time - Double($0) * dt) }
}
