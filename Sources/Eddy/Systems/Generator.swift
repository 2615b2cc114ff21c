#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// What `eddy generate` integrates and writes.
public struct GenerateOptions: Sendable {
    public var system: SystemName
    public var trajectories: Int
    /// Rows written per trajectory.
    public var steps: Int
    /// Sampling interval; nil → the system's default.
    public var dt: Double? = nil
    public var seed: UInt64 = 0
    /// RK4 sub-steps per dt.
    public var substeps: Int = 10
    /// State size of Lorenz-96 (ignored by the other systems).
    public var dimension: Int = 40
    /// Initial conditions uniform in [lo, hi]^n; nil → the system's default box.
    public var initialRange: (Double, Double)? = nil
    /// Steps of dt discarded before recording; nil → the system's default transient time
    /// (`defaultTransient` steps of `defaultDt`), rounded up to whole steps of dt.
    public var transient: Int? = nil
    public var inputSignal: InputSignal = .noise
    public var inputAmplitude: Double = 1

    public init(system: SystemName, trajectories: Int, steps: Int) {
        self.system = system
        self.trajectories = trajectories
        self.steps = steps
    }
}

public struct GenerationSummary: Sendable {
    public let path: String
    public let trajectories: Int
    public let steps: Int
    public let variableNames: [String]
    public let inputNames: [String]
    public let dt: Double
}

/// Integrates `options.trajectories` trajectories and writes them to `path` (`.csv` or `.npy`).
///
/// Streaming: rows are written block by block as they are produced, so memory does not grow with
/// steps × trajectories. Atomic: the file appears only when complete. Reproducible: trajectory k draws its
/// initial condition from `SeededGenerator(seed:stream: "generate.initial.k")` and its input from
/// `"generate.input.k"`, so the same options give byte-identical files.
///
/// Row k holds the state at t = k·dt and the input applied from row k to row k + 1 (zero-order hold).
public func generateTrajectories(_ options: GenerateOptions, to path: String,
                                 progress: ((Double) -> Void)? = nil) throws -> GenerationSummary {
    try validate(options)
    let format = try OutputFormat(path: path)

    let system = DynamicalSystem(options.system, dimension: options.dimension)
    let dt = options.dt ?? system.defaultDt
    let transient: Int
    if let t = options.transient {
        transient = t
    } else {
        let time = Double(system.defaultTransient) * system.defaultDt
        let count = (time / dt - 1e-9).rounded(.up)
        if count > 1e12 {
            throw EddyError("--dt \(dt) makes the default transient of \(time) time units too many steps; pass --transient")
        }
        transient = Int(count)
    }
    let n = system.dimension, m = system.inputCount, width = n + m
    let E = options.trajectories, T = options.steps

    let file = try AtomicFile(path: path)
    switch format {
    case .csv:
        try file.write((["episode", "t"] + system.variableNames + system.inputNames).joined(separator: ",") + "\n")
    case .npy:
        try file.write(NPY.header(shape: [E, T, width]))
    }

    let blockRows = max(1, min(T, 8192 / width))
    var block = [Double](repeating: 0, count: blockRows * width)
    var text = ""
    var integrator = RK4Integrator(system)
    let totalRows = Double(E) * Double(T)
    var lastReported = -1.0

    for episode in 0..<E {
        var icRNG = SeededGenerator(seed: options.seed, stream: "generate.initial.\(episode)")
        var input = InputProcess(signal: options.inputSignal, amplitude: options.inputAmplitude, dt: dt,
                                 steps: T, rng: SeededGenerator(seed: options.seed, stream: "generate.input.\(episode)"))
        var x = system.initialCondition(using: &icRNG, range: options.initialRange)
        var u = [Double](repeating: 0, count: m)

        for s in 0..<transient {
            if m > 0 { u[0] = input.transientValue() }
            integrator.step(&x, input: u, dt: dt, substeps: options.substeps)
            try checkFinite(x, system: system, episode: episode, time: Double(s + 1 - transient) * dt)
        }

        var row = 0
        while row < T {
            let count = min(blockRows, T - row)
            for r in 0..<count {
                let k = row + r
                if m > 0 { u[0] = input.value(at: k) }
                let base = r * width
                for i in 0..<n { block[base + i] = x[i] }
                for j in 0..<m { block[base + n + j] = u[j] }
                if k + 1 < T {
                    integrator.step(&x, input: u, dt: dt, substeps: options.substeps)
                    try checkFinite(x, system: system, episode: episode, time: Double(k + 1) * dt)
                }
            }
            switch format {
            case .csv:
                text.removeAll(keepingCapacity: true)
                let prefix = "\(episode),"
                for r in 0..<count {
                    text += prefix
                    text += "\(Double(row + r) * dt)"
                    let base = r * width
                    for i in 0..<width {
                        text += ","
                        text += "\(block[base + i])"
                    }
                    text += "\n"
                }
                try file.write(text)
            case .npy:
                try writeLittleEndian(block, count: count * width, to: file)
            }
            row += count
            if let progress {
                let fraction = (Double(episode) * Double(T) + Double(row)) / totalRows
                if fraction - lastReported >= 0.001 || fraction >= 1 {
                    lastReported = fraction
                    progress(fraction)
                }
            }
        }
    }
    try file.commit()
    return GenerationSummary(path: path, trajectories: E, steps: T, variableNames: system.variableNames,
                             inputNames: system.inputNames, dt: dt)
}

// MARK: - Validation and formats

private func validate(_ o: GenerateOptions) throws {
    if o.trajectories < 1 { throw EddyError("--trajectories must be at least 1, got \(o.trajectories)") }
    if o.steps < 1 { throw EddyError("--steps must be at least 1, got \(o.steps)") }
    if let dt = o.dt, !(dt > 0 && dt.isFinite) { throw EddyError("--dt must be a positive number, got \(dt)") }
    if o.substeps < 1 { throw EddyError("--substeps must be at least 1, got \(o.substeps)") }
    if o.system == .lorenz96 && o.dimension < 4 {
        throw EddyError("--dim must be at least 4 for lorenz96, got \(o.dimension)")
    }
    if let t = o.transient, t < 0 { throw EddyError("--transient must be at least 0, got \(t)") }
    if !(o.inputAmplitude >= 0 && o.inputAmplitude.isFinite) {
        throw EddyError("--input-amplitude must be a finite number ≥ 0, got \(o.inputAmplitude)")
    }
    if let (lo, hi) = o.initialRange, !(lo.isFinite && hi.isFinite && lo <= hi) {
        throw EddyError("--initial-range must be two finite numbers LO ≤ HI, got \(lo) \(hi)")
    }
}

private enum OutputFormat {
    case csv, npy

    init(path: String) throws {
        let lower = path.lowercased()
        if lower.hasSuffix(".csv") { self = .csv }
        else if lower.hasSuffix(".npy") { self = .npy }
        else { throw EddyError("\(path): unknown output format; use .csv or .npy") }
    }
}

private func checkFinite(_ x: [Double], system: DynamicalSystem, episode: Int, time: Double) throws {
    for v in x where !v.isFinite {
        throw EddyError("\(system.name.rawValue) diverged in trajectory \(episode) at t = \(time); "
            + "use a smaller --dt or more --substeps")
    }
}

private func writeLittleEndian(_ values: [Double], count: Int, to file: AtomicFile) throws {
    #if _endian(big)
    let swapped = values[..<count].map { Double(bitPattern: $0.bitPattern.littleEndian) }
    try file.write(doubles: swapped)
    #else
    try values.withUnsafeBytes { try file.write(UnsafeRawBufferPointer(rebasing: $0[..<(count * 8)])) }
    #endif
}

// MARK: - Input signals

/// One trajectory's input signal, drawn step by step so nothing is stored.
struct InputProcess {
    let signal: InputSignal
    let amplitude: Double
    let dt: Double
    /// Recorded steps (the chirp sweeps over their duration).
    let steps: Int
    var rng: SeededGenerator
    private var current = 0.0
    private var started = false
    private var holdRemaining = 0

    /// Correlation time of the noise (Ornstein–Uhlenbeck) signal, in time units.
    static let noiseCorrelationTime = 1.0
    /// Chirp frequency sweep in Hz.
    static let chirpStart = 0.05, chirpEnd = 1.0

    init(signal: InputSignal, amplitude: Double, dt: Double, steps: Int, rng: SeededGenerator) {
        self.signal = signal
        self.amplitude = amplitude
        self.dt = dt
        self.steps = steps
        self.rng = rng
    }

    /// The input during the (unrecorded) transient: noise and steps run on continuously; chirp and zero give 0.
    mutating func transientValue() -> Double {
        switch signal {
        case .noise, .steps: return advance()
        case .chirp, .zero: return 0
        }
    }

    /// The input held from recorded step k to k + 1 (called with k = 0, 1, 2, … in order).
    mutating func value(at k: Int) -> Double {
        switch signal {
        case .noise, .steps: return advance()
        case .zero: return 0
        case .chirp:
            // Frequency sweeps linearly from chirpStart to chirpEnd over the trajectory's duration.
            let t = Double(k) * dt
            let duration = max(Double(steps) * dt, dt)
            let phase = 2 * Double.pi * (Self.chirpStart * t + (Self.chirpEnd - Self.chirpStart) * t * t / (2 * duration))
            return amplitude * sin(phase)
        }
    }

    /// Next value of the stochastic signals.
    private mutating func advance() -> Double {
        switch signal {
        case .noise:
            // Exact discretisation of an OU process with stationary standard deviation `amplitude`.
            if !started {
                started = true
                current = amplitude * rng.normal()
            } else {
                let phi = exp(-dt / Self.noiseCorrelationTime)
                current = phi * current + amplitude * (1 - phi * phi).squareRoot() * rng.normal()
            }
            return current
        case .steps:
            if holdRemaining == 0 {
                current = amplitude * (2 * rng.uniform() - 1)
                let duration = 0.5 + 2.5 * rng.uniform()
                holdRemaining = max(1, Int(min((duration / dt).rounded(), 1e15)))
            }
            holdRemaining -= 1
            return current
        case .chirp, .zero:
            return 0
        }
    }
}
