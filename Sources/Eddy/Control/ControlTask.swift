/// The controllers `eddy control` compares on one task.
public enum ControllerKind: String, CaseIterable, Sendable {
    /// No input: the system left to itself.
    case none
    /// LQR on the true system's linearisation at the target (knows the equations; the benchmark).
    case trueLQR = "true-lqr"
    /// LQR on the learned lifted model.
    case eddyLQR = "eddy-lqr"
    /// MPC with input bounds on the learned lifted model.
    case eddyMPC = "eddy-mpc"
}

/// One control task: a true system, a reference, a start, a length, costs and actuator limits. Every controller
/// runs on the same task (same initial state, same integrator, same saturation), so the numbers compare.
public struct ControlTask: Sendable {
    public var system: DynamicalSystem
    public var reference: TrackingReference
    public var initial: [Double]
    public var steps: Int
    /// The control period: the model's sampling interval, the only one its `K` and `B` are valid for.
    public var dt: Double
    public var substeps = 10
    public var weights: ControlWeights
    public var bounds: InputBounds
    public var horizon = 40
    /// Which lifted modes Eddy-LQR keeps (Eddy-MPC keeps them all; see `LiftedMPC`).
    public var modes: LiftedModes = .auto

    public init(system: DynamicalSystem, reference: TrackingReference, initial: [Double], steps: Int, dt: Double,
                weights: ControlWeights, bounds: InputBounds) {
        self.system = system
        self.reference = reference
        self.initial = initial
        self.steps = steps
        self.dt = dt
        self.weights = weights
        self.bounds = bounds
    }

    public func validate() throws {
        let n = system.dimension, m = system.inputCount
        guard m > 0 else { throw EddyError("\(system.name.rawValue) has no input to control; use forced-vanderpol or pendulum") }
        if steps < 1 { throw EddyError("--steps must be at least 1, got \(steps)") }
        if !(dt > 0 && dt.isFinite) { throw EddyError("the control period dt must be positive, got \(dt)") }
        if substeps < 1 { throw EddyError("--substeps must be at least 1, got \(substeps)") }
        if horizon < 1 { throw EddyError("--horizon must be at least 1, got \(horizon)") }
        if reference.variableCount != n {
            throw EddyError("--reference: \(system.name.rawValue) has \(n) variables (\(system.variableNames.joined(separator: ","))), the reference \(reference.variableCount)")
        }
        if initial.count != n || !initial.allSatisfy(\.isFinite) {
            throw EddyError("--initial: expected \(n) finite values (\(system.variableNames.joined(separator: ","))), got \(initial.count)")
        }
        if bounds.lower.count != m { throw EddyError("--umin/--umax: expected \(m) value(s), one per input, got \(bounds.lower.count)") }
        try weights.validate(variables: n, inputs: m)
    }

    /// Checks that a model can control this task's system: same variables and inputs, in the same order.
    public func check(model: Model, path: String) throws {
        let meta = model.metadata
        if meta.inputs.isEmpty {
            throw EddyError("\(path): the model was trained without inputs (variables \(meta.variables.joined(separator: ",")) only); control needs a model of \(system.name.rawValue) with its input \(system.inputNames.joined(separator: ",")) (train with --inputs \(system.inputNames.joined(separator: ",")))")
        }
        if meta.variables != system.variableNames || meta.inputs != system.inputNames {
            throw EddyError("\(path): the model's variables (\(meta.variables.joined(separator: ","))) and inputs (\(meta.inputs.joined(separator: ","))) do not match \(system.name.rawValue)'s (\(system.variableNames.joined(separator: ",")); \(system.inputNames.joined(separator: ",")))")
        }
    }

    /// The learned model as a lifted linear model: exact for the Koopman form, linearised at the reference's
    /// centre for the recurrent form.
    public func liftedModel(_ model: Model) throws -> LiftedLinearModel {
        switch model.metadata.form {
        case .koopman: return try LiftedLinearModel(model)
        case .recurrent:
            let centre = Array(repeating: reference.centre, count: model.layout.delays)
            return try LiftedLinearModel(model, linearisedAt: LiftedLinearModel.standardisedWindow(centre, model: model))
        }
    }

    /// Runs one controller in the loop. `model` is needed by the Eddy controllers only.
    public func run(_ kind: ControllerKind, model: LiftedLinearModel?) throws -> ClosedLoopRun {
        func loop<C: Controller>(_ c: C) throws -> ClosedLoopRun {
            var controller = c
            return try ClosedLoop.run(system: system, controller: &controller, reference: reference, initial: initial,
                                      steps: steps, dt: dt, substeps: substeps, bounds: bounds)
        }
        switch kind {
        case .none: return try loop(NoControl(inputs: system.inputCount))
        case .trueLQR: return try loop(try LinearisationLQR(system: system, weights: weights, reference: reference, dt: dt))
        case .eddyLQR, .eddyMPC:
            guard let model else { preconditionFailure("the Eddy controllers need a model") }
            if kind == .eddyLQR { return try loop(try LiftedLQR(model: model, weights: weights, reference: reference, dt: dt, modes: modes)) }
            return try loop(try LiftedMPC(model: model, weights: weights, reference: reference, dt: dt, horizon: horizon, bounds: bounds))
        }
    }
}
