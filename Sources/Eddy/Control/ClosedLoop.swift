#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// What the closed loop should follow, in data units, for every time (negative times included, so a delay window
/// of the reference exists from the first step).
public enum TrackingReference: Sendable, Equatable {
    /// A constant state.
    case setpoint([Double])
    /// `offset + amplitude · sin(2πt / period)` on the first variable. Both control systems here are second order
    /// with the second variable the first one's rate (`x' = y`, `θ' = ω`), so the second variable follows the
    /// derivative `amplitude · (2π/period) · cos(2πt / period)`: a reference the system can actually follow. Further
    /// variables, if any, are 0.
    case sine(amplitude: Double, period: Double, offset: Double, variables: Int)

    /// Parses `setpoint:v1,v2,…` (one value per variable) or `sine:AMPLITUDE,PERIOD[,OFFSET]`.
    public static func parse(_ spec: String, variables names: [String]) throws -> TrackingReference {
        let n = names.count
        guard let colon = spec.firstIndex(of: ":") else {
            throw EddyError("--reference: expected 'setpoint:v1,…,v\(n)' or 'sine:AMPLITUDE,PERIOD[,OFFSET]', got '\(spec)'")
        }
        let kind = String(spec[..<colon])
        let parts = spec[spec.index(after: colon)...].split(separator: ",", omittingEmptySubsequences: false)
            .map { String($0).filter { $0 != " " } }
        let numbers = parts.compactMap(Double.init)
        guard numbers.count == parts.count, numbers.allSatisfy(\.isFinite) else {
            throw EddyError("--reference: '\(spec)' has a value that is not a finite number")
        }
        switch kind {
        case "setpoint":
            guard numbers.count == n else {
                throw EddyError("--reference: a set point needs \(n) values (\(names.joined(separator: ","))), got \(numbers.count) in '\(spec)'")
            }
            return .setpoint(numbers)
        case "sine":
            guard numbers.count == 2 || numbers.count == 3 else {
                throw EddyError("--reference: expected 'sine:AMPLITUDE,PERIOD[,OFFSET]' (2 or 3 numbers), got \(numbers.count) in '\(spec)'")
            }
            guard numbers[1] > 0 else { throw EddyError("--reference: the sine's period must be positive, got \(numbers[1])") }
            return .sine(amplitude: numbers[0], period: numbers[1], offset: numbers.count == 3 ? numbers[2] : 0, variables: n)
        default:
            throw EddyError("--reference: unknown kind '\(kind)'; expected setpoint or sine")
        }
    }

    public var variableCount: Int {
        switch self {
        case .setpoint(let v): return v.count
        case .sine(_, _, _, let n): return n
        }
    }

    /// `r(t)`.
    public func value(at t: Double) -> [Double] {
        switch self {
        case .setpoint(let v): return v
        case .sine(let a, let period, let offset, let n):
            let w = 2 * Double.pi / period
            var r = [Double](repeating: 0, count: n)
            if n > 0 { r[0] = offset + a * sin(w * t) }
            if n > 1 { r[1] = a * w * cos(w * t) }
            return r
        }
    }

    /// `dr/dt`, for the feed-forward input of the controller on the true model.
    public func rate(at t: Double) -> [Double] {
        switch self {
        case .setpoint(let v): return .init(repeating: 0, count: v.count)
        case .sine(let a, let period, _, let n):
            let w = 2 * Double.pi / period
            var r = [Double](repeating: 0, count: n)
            if n > 0 { r[0] = a * w * cos(w * t) }
            if n > 1 { r[1] = -a * w * w * sin(w * t) }
            return r
        }
    }

    /// The point a single linearisation is taken at: the set point, or the sine's centre (at rest).
    public var centre: [Double] {
        switch self {
        case .setpoint(let v): return v
        case .sine(_, _, let offset, let n):
            var r = [Double](repeating: 0, count: n)
            if n > 0 { r[0] = offset }
            return r
        }
    }
}

/// Quadratic costs in data units: `Σ_t Σ_i q_i (x_i − r_i)² + Σ_j r_j (u_j − u*_j)²`, with `u*` the feed-forward
/// input that holds the reference. Every controller is designed with the same weights.
public struct ControlWeights: Sendable, Equatable {
    /// `q_i ≥ 0`, one per variable.
    public var state: [Double]
    /// `r_j > 0`, one per input.
    public var input: [Double]
    /// Weight of the lifted coordinates that are not the current state (features, older delays), relative to the
    /// largest state weight (in standardised units). Small but positive, so every lifted mode is seen by the cost
    /// (detectability, which the Riccati equation needs) without it competing with the tracking error.
    public var liftedWeight: Double = 1e-6

    public init(state: [Double], input: [Double], liftedWeight: Double = 1e-6) {
        self.state = state
        self.input = input
        self.liftedWeight = liftedWeight
    }

    func validate(variables n: Int, inputs m: Int) throws {
        if state.count != n { throw EddyError("--q: expected \(n) state weight(s), one per variable, got \(state.count)") }
        if input.count != m { throw EddyError("--r: expected \(m) input weight(s), one per input, got \(input.count)") }
        if !state.allSatisfy({ $0 >= 0 && $0.isFinite }) || !state.contains(where: { $0 > 0 }) {
            throw EddyError("--q: state weights must be finite, ≥ 0 and not all 0, got \(state.map { Format.general($0) }.joined(separator: ","))")
        }
        if !input.allSatisfy({ $0 > 0 && $0.isFinite }) {
            throw EddyError("--r: input weights must be finite and > 0, got \(input.map { Format.general($0) }.joined(separator: ","))")
        }
        if !(liftedWeight > 0 && liftedWeight.isFinite) { throw EddyError("the lifted weight must be positive, got \(liftedWeight)") }
    }
}

/// Actuator limits in data units (±∞ where there is none). Every controller's input is saturated to them before it
/// reaches the plant; a demand outside them counts as a constraint violation.
public struct InputBounds: Sendable, Equatable {
    public var lower: [Double]
    public var upper: [Double]

    public init(lower: [Double], upper: [Double]) throws {
        guard lower.count == upper.count else {
            throw EddyError("--umin and --umax: expected the same number of values, got \(lower.count) and \(upper.count)")
        }
        for j in 0..<lower.count where lower[j].isNaN || upper[j].isNaN || lower[j] > upper[j] {
            throw EddyError("infeasible input bounds: --umin \(Format.general(lower[j])) > --umax \(Format.general(upper[j])) for input \(j + 1)")
        }
        self.lower = lower
        self.upper = upper
    }

    private init(checked lower: [Double], upper: [Double]) {
        self.lower = lower
        self.upper = upper
    }

    public static func unbounded(_ m: Int) -> InputBounds {
        InputBounds(checked: .init(repeating: -.infinity, count: m), upper: .init(repeating: .infinity, count: m))
    }

    public var isBounded: Bool { lower.contains { $0.isFinite } || upper.contains { $0.isFinite } }

    func clamp(_ u: [Double]) -> [Double] { (0..<u.count).map { min(max(u[$0], lower[$0]), upper[$0]) } }
}

/// A feedback law: the input to hold from step `t` to `t + 1` given the measured state `x_t`, both in data units.
public protocol Controller {
    var name: String { get }
    mutating func input(step: Int, time: Double, state: [Double]) throws -> [Double]
    /// Numbers describing the design and the run so far (Riccati residual, QP iterations, …), for reports.
    var report: [(String, Double)] { get }
}

/// No input at all: how the system moves by itself.
public struct NoControl: Controller {
    public let inputs: Int
    public init(inputs: Int) { self.inputs = inputs }
    public var name: String { "none" }
    public func input(step: Int, time: Double, state: [Double]) throws -> [Double] { .init(repeating: 0, count: inputs) }
    public var report: [(String, Double)] { [] }
}

/// How well one closed-loop run did, in data units.
public struct ClosedLoopMetrics: Sendable {
    /// `sqrt(mean over steps 1…T and variables of (x − r)²)`; infinite if the run diverged.
    public var trackingRMSE: Double
    public var perVariableRMSE: [Double]
    /// The same over the second half of the run (after the transient).
    public var lateRMSE: Double
    /// `‖x_T − r_T‖₂`.
    public var finalError: Double
    /// Input energy `Σ_t ‖u_t‖² dt` of the applied (saturated) input.
    public var effort: Double
    public var maxAbsInput: Double
    /// Steps whose demanded input left the bounds (before saturation), and by how much at most.
    public var violations: Int
    public var maxViolation: Double
    /// The step at which the state left every sensible range (|x| > 1e6 or not finite), if it did.
    public var divergedAt: Int?
}

/// One closed-loop run: the true system integrated with a controller in the loop.
public struct ClosedLoopRun: Sendable {
    public var controller: String
    public var variables: Int
    public var inputs: Int
    /// `T + 1` times `t·dt`.
    public var times: [Double]
    /// `(T + 1) × n`, NaN after a divergence.
    public var states: [Double]
    public var references: [Double]
    /// `T × m` inputs applied (saturated) and demanded.
    public var applied: [Double]
    public var demanded: [Double]
    public var metrics: ClosedLoopMetrics
    public var report: [(String, Double)]
}

/// The closed loop (METHOD.md, "Control"): at each step the controller measures the state of the simulated true
/// system, its input is saturated to the actuator limits and held over `dt` (zero-order hold) while the system is
/// integrated by RK4 with `substeps` sub-steps — the same integrator that generated the training data.
public enum ClosedLoop {
    public static func run<C: Controller>(system: DynamicalSystem, controller: inout C, reference: TrackingReference,
                                          initial: [Double], steps: Int, dt: Double, substeps: Int = 10,
                                          bounds: InputBounds) throws -> ClosedLoopRun {
        let n = system.dimension, m = system.inputCount
        precondition(steps >= 1 && initial.count == n && reference.variableCount == n && bounds.lower.count == m)
        var x = initial
        var states = [Double](repeating: .nan, count: (steps + 1) * n)
        var references = [Double](repeating: .nan, count: (steps + 1) * n)
        var applied = [Double](repeating: .nan, count: steps * m)
        var demanded = [Double](repeating: .nan, count: steps * m)
        let times = (0...steps).map { Double($0) * dt }
        for t in 0...steps { references.replaceSubrange((t * n)..<((t + 1) * n), with: reference.value(at: times[t])) }
        states.replaceSubrange(0..<n, with: x)
        var divergedAt: Int?
        var violations = 0, maxViolation = 0.0
        for t in 0..<steps {
            let want = try controller.input(step: t, time: times[t], state: x)
            guard want.count == m, want.allSatisfy(\.isFinite) else { divergedAt = t; break }
            let u = bounds.clamp(want)
            let excess = (0..<m).map { max(0, bounds.lower[$0] - want[$0], want[$0] - bounds.upper[$0]) }.max() ?? 0
            if excess > 1e-9 * max(1, want.map(abs).max() ?? 0) { violations += 1 }
            maxViolation = max(maxViolation, excess)
            demanded.replaceSubrange((t * m)..<((t + 1) * m), with: want)
            applied.replaceSubrange((t * m)..<((t + 1) * m), with: u)
            system.step(&x, input: u, dt: dt, substeps: substeps)
            guard x.allSatisfy({ $0.isFinite && abs($0) < 1e6 }) else { divergedAt = t + 1; break }
            states.replaceSubrange(((t + 1) * n)..<((t + 2) * n), with: x)
        }
        let metrics = measure(states: states, references: references, applied: applied, steps: steps, n: n, m: m, dt: dt,
                              violations: violations, maxViolation: maxViolation, divergedAt: divergedAt)
        return ClosedLoopRun(controller: controller.name, variables: n, inputs: m, times: times, states: states,
                             references: references, applied: applied, demanded: demanded, metrics: metrics, report: controller.report)
    }

    static func measure(states: [Double], references: [Double], applied: [Double], steps: Int, n: Int, m: Int, dt: Double,
                        violations: Int, maxViolation: Double, divergedAt: Int?) -> ClosedLoopMetrics {
        var perVariable = [Double](repeating: 0, count: n)
        var late = 0.0, lateCount = 0
        let half = steps / 2
        for t in 1...steps {
            for i in 0..<n {
                let e = states[t * n + i] - references[t * n + i]
                perVariable[i] += e * e
                if t > half { late += e * e; lateCount += 1 }
            }
        }
        let count = Double(max(1, steps))
        let total = perVariable.reduce(0, +) / (count * Double(n))
        var final = 0.0
        for i in 0..<n { let e = states[steps * n + i] - references[steps * n + i]; final += e * e }
        var effort = 0.0, maxAbs = 0.0
        for v in applied where v.isFinite { effort += v * v * dt; maxAbs = max(maxAbs, abs(v)) }
        let diverged = divergedAt != nil
        return ClosedLoopMetrics(
            trackingRMSE: diverged ? .infinity : total.squareRoot(),
            perVariableRMSE: perVariable.map { diverged ? .infinity : ($0 / count).squareRoot() },
            lateRMSE: diverged ? .infinity : (late / Double(max(1, lateCount))).squareRoot(),
            finalError: diverged ? .infinity : final.squareRoot(),
            effort: effort, maxAbsInput: maxAbs, violations: violations, maxViolation: maxViolation, divergedAt: divergedAt)
    }
}
