/// An infinite-horizon linear-quadratic regulator for `s⁺ = A s + B u`: the input `u = −L s` minimises
/// `Σ_t s_tᵀ Q s_t + u_tᵀ R u_t`, with `L = (R + BᵀXB)⁻¹ BᵀXA` and `X` the stabilising solution of the DARE
/// (`Riccati.discrete`).
public struct LQRDesign: Sendable {
    /// `L` (m × N).
    public var gain: DenseMatrix
    public var riccati: RiccatiSolution
    /// Largest eigenvalue modulus of `A` and of `A − BL` (below 1: the design stabilises its model).
    public var openLoopSpectralRadius: Double
    public var closedLoopSpectralRadius: Double

    public static func design(a: DenseMatrix, b: DenseMatrix, q: DenseMatrix, r: DenseMatrix) throws -> LQRDesign {
        let x = try Riccati.discrete(a: a, b: b, q: q, r: r)
        let xb = x.x * b
        let s = r + DenseMatrix.transposedProduct(b, xb)
        let gain = try s.solving(DenseMatrix.transposedProduct(xb, a))
        let closed = (a - b * gain).spectralRadius
        guard closed < 1 else {
            throw EddyError("the LQR design does not stabilise its own model (closed-loop spectral radius \(Format.general(closed, 6))): the model has an unstable mode the input cannot reach")
        }
        return LQRDesign(gain: gain, riccati: x, openLoopSpectralRadius: a.spectralRadius, closedLoopSpectralRadius: closed)
    }
}

extension LiftedLinearModel {
    /// The feed-forward input that carries the model from the reference's lifted point `s*_t` to `s*_{t+1}`:
    /// `u* = argmin_u ‖A s*_t + B u + c − s*_{t+1}‖²_Q`, i.e. `(BᵀQB) u* = BᵀQ (s*_{t+1} − A s*_t − c)`. For a set
    /// point this is the input that holds it; with the constant's row of `K` in `c`, it is where the affine term goes.
    func holdingInput(from s0: [Double], to s1: [Double], q: DenseMatrix, normal: DenseMatrix) -> [Double] {
        let drift = next(s0, input: .init(repeating: 0, count: inputs))
        let miss = (0..<stateSize).map { s1[$0] - drift[$0] }
        let rhs = DenseMatrix.transposedProduct(b, .column((0..<stateSize).map { q[$0, $0] * miss[$0] }))
        return (try? normal.solving(rhs).values) ?? .init(repeating: 0, count: inputs)
    }

    /// `BᵀQB` for a diagonal `Q`, nudged to be invertible.
    func holdingNormalMatrix(q: DenseMatrix) -> DenseMatrix {
        var qb = b
        for i in 0..<stateSize { for j in 0..<inputs { qb[i, j] *= q[i, i] } }
        var normal = DenseMatrix.transposedProduct(b, qb)
        let scale = (0..<inputs).map { normal[$0, $0] }.max() ?? 1
        for j in 0..<inputs { normal[j, j] += 1e-12 * max(scale, 1e-300) }
        return normal
    }
}

/// Eddy-LQR: the LQR of the learned lifted model (`LiftedLinearModel`) in error coordinates about the reference,
///
///     u_t = u*_t − L Vᵀ (s_t − s*_t),   s_t = lift(measured window),   s*_t = lift(reference window),
///
/// designed on the `ErrorModel` (the kept modes `V`), in standardised units and converted to data units on the way
/// out. One gain serves every reference, since the Koopman model is linear in the lifted state (a recurrent model's
/// linearisation is taken once, at the reference's centre).
public struct LiftedLQR: Controller {
    public let model: LiftedLinearModel
    public let errorModel: ErrorModel
    public let design: LQRDesign
    let reference: TrackingReference
    let dt: Double
    let q: DenseMatrix
    let normal: DenseMatrix
    var window: MeasurementWindow

    public var name: String { "eddy-lqr" }

    public init(model: LiftedLinearModel, weights: ControlWeights, reference: TrackingReference, dt: Double,
                modes: LiftedModes = .auto) throws {
        let errorModel = try ErrorModel(model: model, weights: weights, modes: modes)
        self.model = model
        self.errorModel = errorModel
        self.design = try LQRDesign.design(a: errorModel.a, b: errorModel.b, q: errorModel.q, r: errorModel.r)
        self.reference = reference
        self.dt = dt
        self.q = model.costMatrices(weights).q
        self.normal = model.holdingNormalMatrix(q: q)
        window = MeasurementWindow(delays: model.delays)
    }

    /// The standardised lifted point of the reference at `time`.
    func target(_ time: Double) -> [Double] {
        model.state(window: model.standardisedWindow(referenceWindow(reference, at: time, dt: dt, delays: model.delays)))
    }

    public mutating func input(step: Int, time: Double, state x: [Double]) throws -> [Double] {
        window.push(x)
        let s = model.state(window: model.standardisedWindow(window.rows))
        let now = target(time), next = target(time + dt)
        let feedforward = model.holdingInput(from: now, to: next, q: q, normal: normal)
        let feedback = design.gain.applied(to: errorModel.coordinates((0..<s.count).map { s[$0] - now[$0] }))
        return model.dataInput((0..<model.inputs).map { feedforward[$0] - feedback[$0] })
    }

    public var report: [(String, Double)] {
        [("lifted_state_size", Double(model.stateSize)), ("design_state_size", Double(errorModel.stateSize)),
         ("dropped_modes", Double(errorModel.droppedModes)), ("lifted_spectral_radius", model.a.spectralRadius),
         ("riccati_iterations", Double(design.riccati.iterations)), ("riccati_residual", design.riccati.residual),
         ("open_loop_spectral_radius", design.openLoopSpectralRadius), ("closed_loop_spectral_radius", design.closedLoopSpectralRadius)]
    }
}

/// The true system's linearisation at a state and input: `x' ≈ f(x̄, ū) + A_c (x − x̄) + B_c (u − ū)` with the
/// Jacobians by central differences of `DynamicalSystem.derivative`, discretised for a zero-order hold over `dt`
/// by the matrix exponential `exp([[A_c, B_c], [0, 0]] dt) = [[A_d, B_d], [0, I]]` (Van Loan 1978).
public struct SystemLinearisation: Sendable {
    public var a: DenseMatrix
    public var b: DenseMatrix
    public var continuousA: DenseMatrix
    public var continuousB: DenseMatrix

    public init(system: DynamicalSystem, state: [Double], input: [Double], dt: Double) {
        let n = system.dimension, m = system.inputCount
        var ac = DenseMatrix.zeros(n, n), bc = DenseMatrix.zeros(n, m)
        var fp = [Double](repeating: 0, count: n), fm = fp
        for j in 0..<(n + m) {
            var xp = state, xm = state, up = input, um = input
            let base = j < n ? state[j] : input[j - n]
            let h = 1e-6 * max(1, abs(base))   // central differences: error O(h²)·f''' ≈ 1e-12, round-off ≈ 1e-10
            if j < n { xp[j] += h; xm[j] -= h } else { up[j - n] += h; um[j - n] -= h }
            system.derivative(xp, input: up, into: &fp)
            system.derivative(xm, input: um, into: &fm)
            for i in 0..<n {
                let d = (fp[i] - fm[i]) / (2 * h)
                if j < n { ac[i, j] = d } else { bc[i, j - n] = d }
            }
        }
        var block = DenseMatrix.zeros(n + m, n + m)
        for i in 0..<n {
            for j in 0..<n { block[i, j] = ac[i, j] * dt }
            for j in 0..<m { block[i, n + j] = bc[i, j] * dt }
        }
        let e = block.exponential
        a = e.block(rows: 0..<n, columns: 0..<n)
        b = e.block(rows: 0..<n, columns: n..<(n + m))
        continuousA = ac
        continuousB = bc
    }
}

/// The benchmark: an LQR designed on the *true* system's linearisation at the target, with the same weights,
///
///     u_t = u*_t − L(r_t) (x_t − r_t),
///
/// where `u*_t` solves `f(r_t, u*) = ṙ_t` in the least-squares sense (exact for these control-affine systems: the
/// input that makes the reference a solution) and `L(r_t)` is the LQR gain of the zero-order-hold discretisation
/// at `(r_t, u*_t)`. For a set point that is one design; a moving reference is re-linearised at every step (gain
/// scheduling on the true model, which only a controller that knows the equations can do).
public struct LinearisationLQR: Controller {
    public let system: DynamicalSystem
    let weights: ControlWeights
    let reference: TrackingReference
    let dt: Double
    var designedAt: [Double]?
    var design: LQRDesign?
    var firstDesign: LQRDesign?
    var designs = 0

    public var name: String { "true-lqr" }

    public init(system: DynamicalSystem, weights: ControlWeights, reference: TrackingReference, dt: Double) throws {
        try weights.validate(variables: system.dimension, inputs: system.inputCount)
        self.system = system
        self.weights = weights
        self.reference = reference
        self.dt = dt
        // Design once up front so a reference the linearisation cannot stabilise fails before any run.
        _ = try gain(at: reference.value(at: 0), rate: reference.rate(at: 0))
    }

    /// `u*` with `f(r, u*) ≈ ṙ`: one Gauss–Newton step from `u = 0` (exact when `f` is affine in `u`).
    func feedforward(at r: [Double], rate: [Double]) -> [Double] {
        let n = system.dimension, m = system.inputCount
        let zero = [Double](repeating: 0, count: m)
        var f0 = [Double](repeating: 0, count: n)
        system.derivative(r, input: zero, into: &f0)
        let lin = SystemLinearisation(system: system, state: r, input: zero, dt: dt)
        let g = lin.continuousB
        var normal = DenseMatrix.transposedProduct(g, g)
        for j in 0..<m { normal[j, j] += 1e-12 }
        let rhs = DenseMatrix.transposedProduct(g, .column((0..<n).map { rate[$0] - f0[$0] }))
        return (try? normal.solving(rhs).values) ?? zero
    }

    mutating func gain(at r: [Double], rate: [Double]) throws -> (gain: DenseMatrix, feedforward: [Double]) {
        let u = feedforward(at: r, rate: rate)
        if let designedAt, let design, designedAt == r + u { return (design.gain, u) }
        let lin = SystemLinearisation(system: system, state: r, input: u, dt: dt)
        let d = try LQRDesign.design(a: lin.a, b: lin.b, q: .diagonal(weights.state.map { max($0, weights.liftedWeight * (weights.state.max() ?? 1)) }),
                                     r: .diagonal(weights.input))
        design = d
        designedAt = r + u
        if firstDesign == nil { firstDesign = d }
        designs += 1
        return (d.gain, u)
    }

    public mutating func input(step: Int, time: Double, state x: [Double]) throws -> [Double] {
        let r = reference.value(at: time)
        let (l, u) = try gain(at: r, rate: reference.rate(at: time))
        let feedback = l.applied(to: (0..<x.count).map { x[$0] - r[$0] })
        return (0..<u.count).map { u[$0] - feedback[$0] }
    }

    public var report: [(String, Double)] {
        guard let d = firstDesign else { return [] }
        return [("designs", Double(designs)), ("riccati_iterations", Double(d.riccati.iterations)), ("riccati_residual", d.riccati.residual),
                ("open_loop_spectral_radius", d.openLoopSpectralRadius), ("closed_loop_spectral_radius", d.closedLoopSpectralRadius)]
    }
}
