#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// The built-in dynamical systems that `eddy generate` can integrate.
public enum SystemName: String, CaseIterable, Sendable {
    case vanderpol, lorenz63, rossler, lorenz96, forcedVanderpol = "forced-vanderpol", pendulum
}

/// The input signal driving a system with inputs (ignored for autonomous systems).
public enum InputSignal: String, CaseIterable, Sendable { case noise, steps, chirp, zero }

/// An ODE x' = f(x, u) with names and defaults.
///
/// Parameters: Van der Pol μ = 1 (x' = y, y' = μ(1 − x²)y − x; the forced variant adds u to y');
/// Lorenz-63 σ = 10, ρ = 28, β = 8/3; Rössler a = b = 0.2, c = 5.7;
/// Lorenz-96 F = 8 (x_i' = (x_{i+1} − x_{i−2}) x_{i−1} − x_i + F, cyclic);
/// damped pendulum θ' = ω, ω' = −sin θ − 0.1 ω + u.
public struct DynamicalSystem: Sendable {
    public let name: SystemName
    /// State size n.
    public let dimension: Int
    /// Input count m (0 for autonomous systems).
    public let inputCount: Int
    public let variableNames: [String]
    public let inputNames: [String]
    /// Default output sampling interval.
    public let defaultDt: Double
    /// Steps of `defaultDt` discarded before recording, so trajectories start on the attractor.
    public let defaultTransient: Int
    /// Largest Lyapunov exponent (per time unit) for the chaotic systems, nil otherwise.
    public let lyapunovExponent: Double?

    // Parameters.
    static let vanDerPolMu = 1.0
    static let lorenzSigma = 10.0, lorenzRho = 28.0, lorenzBeta = 8.0 / 3.0
    static let rosslerA = 0.2, rosslerB = 0.2, rosslerC = 5.7
    static let lorenz96Forcing = 8.0
    static let pendulumDamping = 0.1

    /// `dimension` is used by Lorenz-96 only and must be at least 4 there (the CLI validates it first).
    public init(_ name: SystemName, dimension: Int = 40) {
        self.name = name
        switch name {
        case .vanderpol:
            self.dimension = 2; inputCount = 0
            variableNames = ["x", "y"]; inputNames = []
            defaultDt = 0.05; defaultTransient = 0; lyapunovExponent = nil
        case .forcedVanderpol:
            self.dimension = 2; inputCount = 1
            variableNames = ["x", "y"]; inputNames = ["u"]
            defaultDt = 0.05; defaultTransient = 0; lyapunovExponent = nil
        case .pendulum:
            self.dimension = 2; inputCount = 1
            variableNames = ["theta", "omega"]; inputNames = ["u"]
            defaultDt = 0.05; defaultTransient = 0; lyapunovExponent = nil
        case .lorenz63:
            self.dimension = 3; inputCount = 0
            variableNames = ["x", "y", "z"]; inputNames = []
            defaultDt = 0.01; defaultTransient = 1000; lyapunovExponent = 0.906
        case .rossler:
            self.dimension = 3; inputCount = 0
            variableNames = ["x", "y", "z"]; inputNames = []
            defaultDt = 0.05; defaultTransient = 1000; lyapunovExponent = 0.0714
        case .lorenz96:
            precondition(dimension >= 4, "Lorenz-96 needs dimension at least 4, got \(dimension)")
            self.dimension = dimension; inputCount = 0
            variableNames = (1...dimension).map { "x\($0)" }; inputNames = []
            defaultDt = 0.05; defaultTransient = 1000; lyapunovExponent = 1.68
        }
    }

    /// Writes f(x, u) into `dx` (which must have `dimension` elements).
    public func derivative(_ x: [Double], input u: [Double], into dx: inout [Double]) {
        precondition(x.count == dimension && dx.count == dimension, "state size must be \(dimension)")
        precondition(u.count >= inputCount, "\(name.rawValue) needs \(inputCount) input(s), got \(u.count)")
        x.withUnsafeBufferPointer { xp in
            u.withUnsafeBufferPointer { up in
                dx.withUnsafeMutableBufferPointer { dp in
                    evaluate(xp, up, dp)
                }
            }
        }
    }

    /// The right-hand side on raw buffers (no checks; the hot path of the integrator).
    @inline(__always)
    func evaluate(_ x: UnsafeBufferPointer<Double>, _ u: UnsafeBufferPointer<Double>,
                  _ dx: UnsafeMutableBufferPointer<Double>) {
        switch name {
        case .vanderpol:
            dx[0] = x[1]
            dx[1] = Self.vanDerPolMu * (1 - x[0] * x[0]) * x[1] - x[0]
        case .forcedVanderpol:
            dx[0] = x[1]
            dx[1] = Self.vanDerPolMu * (1 - x[0] * x[0]) * x[1] - x[0] + u[0]
        case .pendulum:
            dx[0] = x[1]
            dx[1] = -sin(x[0]) - Self.pendulumDamping * x[1] + u[0]
        case .lorenz63:
            dx[0] = Self.lorenzSigma * (x[1] - x[0])
            dx[1] = x[0] * (Self.lorenzRho - x[2]) - x[1]
            dx[2] = x[0] * x[1] - Self.lorenzBeta * x[2]
        case .rossler:
            dx[0] = -x[1] - x[2]
            dx[1] = x[0] + Self.rosslerA * x[1]
            dx[2] = Self.rosslerB + x[2] * (x[0] - Self.rosslerC)
        case .lorenz96:
            let n = dimension
            for i in 0..<n {
                let ip1 = i + 1 == n ? 0 : i + 1
                let im1 = i == 0 ? n - 1 : i - 1
                let im2 = i >= 2 ? i - 2 : i + n - 2
                dx[i] = (x[ip1] - x[im2]) * x[im1] - x[i] + Self.lorenz96Forcing
            }
        }
    }

    /// One step of length dt by `substeps` classical RK4 sub-steps, input held constant (zero-order hold).
    public func step(_ x: inout [Double], input u: [Double], dt: Double, substeps: Int) {
        precondition(x.count == dimension, "state size must be \(dimension)")
        precondition(u.count >= inputCount, "\(name.rawValue) needs \(inputCount) input(s), got \(u.count)")
        var integrator = RK4Integrator(self)
        integrator.step(&x, input: u, dt: dt, substeps: substeps)
    }

    /// Random initial condition: uniform in the system's default box, or in [lo, hi]^n when `range` is given.
    public func initialCondition(using rng: inout SeededGenerator, range: (Double, Double)?) -> [Double] {
        if let (lo, hi) = range {
            return (0..<dimension).map { _ in lo + (hi - lo) * rng.uniform() }
        }
        func u(_ lo: Double, _ hi: Double) -> Double { lo + (hi - lo) * rng.uniform() }
        switch name {
        case .vanderpol, .forcedVanderpol:
            let x = u(-3, 3), y = u(-3, 3)
            return [x, y]
        case .pendulum:
            let theta = u(-Double.pi, Double.pi), omega = u(-1, 1)
            return [theta, omega]
        case .lorenz63:
            let x = u(-15, 15), y = u(-15, 15), z = u(5, 40)
            return [x, y, z]
        case .rossler:
            let x = u(-5, 5), y = u(-5, 5), z = u(0, 1)
            return [x, y, z]
        case .lorenz96:
            return (0..<dimension).map { _ in Self.lorenz96Forcing + u(-1, 1) }
        }
    }
}

/// Classical RK4 with preallocated stage buffers, so integrating millions of steps allocates nothing.
struct RK4Integrator {
    let system: DynamicalSystem
    private var k1: [Double], k2: [Double], k3: [Double], k4: [Double], tmp: [Double]

    init(_ system: DynamicalSystem) {
        self.system = system
        let zero = [Double](repeating: 0, count: system.dimension)
        k1 = zero; k2 = zero; k3 = zero; k4 = zero; tmp = zero
    }

    /// Advances `x` by dt using `substeps` RK4 sub-steps with the input held at `u`.
    mutating func step(_ x: inout [Double], input u: [Double], dt: Double, substeps: Int) {
        precondition(substeps >= 1, "substeps must be at least 1")
        let n = system.dimension
        let h = dt / Double(substeps)
        let sys = system
        x.withUnsafeMutableBufferPointer { xp in
            u.withUnsafeBufferPointer { up in
                k1.withUnsafeMutableBufferPointer { a in
                    k2.withUnsafeMutableBufferPointer { b in
                        k3.withUnsafeMutableBufferPointer { c in
                            k4.withUnsafeMutableBufferPointer { d in
                                tmp.withUnsafeMutableBufferPointer { t in
                                    let xc = UnsafeBufferPointer(xp), tc = UnsafeBufferPointer(t)
                                    for _ in 0..<substeps {
                                        sys.evaluate(xc, up, a)
                                        for i in 0..<n { t[i] = xp[i] + 0.5 * h * a[i] }
                                        sys.evaluate(tc, up, b)
                                        for i in 0..<n { t[i] = xp[i] + 0.5 * h * b[i] }
                                        sys.evaluate(tc, up, c)
                                        for i in 0..<n { t[i] = xp[i] + h * c[i] }
                                        sys.evaluate(tc, up, d)
                                        for i in 0..<n {
                                            xp[i] += h / 6 * (a[i] + 2 * b[i] + 2 * c[i] + d[i])
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
