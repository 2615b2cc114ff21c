import ArgumentParser
import Eddy

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Integrate a reference system (RK4 with sub-steps) from random initial conditions and write the trajectories.",
        discussion: """
        Systems: vanderpol (μ=1), lorenz63, rossler, lorenz96 (--dim N, F=8), forced-vanderpol and pendulum (with an input u). The output is CSV (columns episode, t, the variables, the inputs) or .npy (E, T, n+m), chosen by the extension, written as it is integrated (constant memory) and moved into place only when complete.
        'tracer' writes a gridded field as CF netCDF (.nc), hourly, like reanalysis data: q(time, lat, lon) on a --lat × --lon grid, advected by a zonal jet, diffusing, heated by a daily cycle and stirred by random blobs (--blob-rate per hour).
        Example: eddy generate lorenz63 --trajectories 1 --steps 20000 --out lorenz.csv
        Example: eddy generate tracer --steps 8760 --lat 32 --lon 64 --out field.nc
        """
    )

    @Argument(help: "The system: \(SystemName.allCases.map(\.rawValue).joined(separator: ", ")), or tracer (a gridded field, .nc).")
    var system: String

    @Option(parsing: .unconditional, help: "Number of trajectories.") var trajectories = 1
    @Option(parsing: .unconditional, help: "Rows written per trajectory.") var steps: Int
    @Option(parsing: .unconditional, help: "Time step between rows (default: the system's own, e.g. 0.05 for vanderpol, 0.01 for lorenz63).") var dt: Double?
    @Option(help: "Random seed for initial conditions and input signals.") var seed = SeedOption(0)
    @Option(parsing: .unconditional, help: "RK4 sub-steps per time step.") var substeps = 10
    @Option(parsing: .unconditional, help: "State dimension of lorenz96.") var dim = 40
    @Option(help: "Initial conditions uniform in [LO, HI] in every variable, as LO,HI (default: the system's own box).") var initialRange: String?
    @Option(parsing: .unconditional, help: "Steps integrated and discarded before recording (default: the system's own, e.g. 10 time units for the chaotic ones).") var transient: Int?
    @Option(help: "Input signal of systems with inputs: \(InputSignal.allCases.map(\.rawValue).joined(separator: ", ")).") var inputSignal = "noise"
    @Option(parsing: .unconditional, help: "Amplitude of the input signal.") var inputAmplitude = 1.0
    @Option(parsing: .unconditional, help: "tracer: grid points in latitude.") var lat = 32
    @Option(parsing: .unconditional, help: "tracer: grid points in longitude.") var lon = 64
    @Option(parsing: .unconditional, help: "tracer: random blobs dropped per hour (the unpredictable part).") var blobRate = 0.5
    @Option(help: "Output file (.csv or .npy; .nc for tracer).") var out: String
    @Flag(help: "Print a JSON summary.") var json = false

    func run() throws {
        try reportingErrors {
            if system == "tracer" { return try tracer() }
            guard let name = SystemName(rawValue: system) else {
                throw EddyError("unknown system '\(system)'; expected one of \(SystemName.allCases.map(\.rawValue).joined(separator: ", ")), tracer")
            }
            try checkCounts()
            if name == .lorenz96, !(4...Self.maxDimension).contains(dim) {
                throw EddyError("--dim must be in 4…\(Self.maxDimension) for lorenz96, got \(dim)")
            }
            try OutputGuard.check(outputs: [("--out", out)])
            guard let signal = InputSignal(rawValue: inputSignal) else {
                throw EddyError("--input-signal: unknown signal '\(inputSignal)'; expected one of \(InputSignal.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            var options = GenerateOptions(system: name, trajectories: trajectories, steps: steps)
            options.dt = dt
            options.seed = try seed.value()
            options.substeps = substeps
            options.dimension = dim
            options.transient = transient
            options.inputSignal = signal
            options.inputAmplitude = inputAmplitude
            if let r = initialRange {
                let parts = splitList(r).compactMap(Double.init)
                guard parts.count == 2 else { throw EddyError("--initial-range: expected LO,HI (two numbers), got '\(r)'") }
                options.initialRange = (parts[0], parts[1])
            }
            let summary = try generating { try generateTrajectories(options, to: out, progress: $0) }
            if json {
                print(JSON.object([
                    "path": .string(summary.path), "system": .string(name.rawValue), "trajectories": .int(summary.trajectories),
                    "steps": .int(summary.steps), "dt": .number(summary.dt),
                    "variables": .array(summary.variableNames.map { .string($0) }), "inputs": .array(summary.inputNames.map { .string($0) }),
                ]).text)
            } else {
                print("wrote \(summary.path): \(plural(summary.trajectories, "trajectory", "trajectories")) × \(plural(summary.steps, "step")) of \(name.rawValue), dt = \(summary.dt), variables \(summary.variableNames.joined(separator: ","))\(summary.inputNames.isEmpty ? "" : ", inputs \(summary.inputNames.joined(separator: ","))")")
            }
        }
    }

    /// The most RK4 sub-steps per time step, and the largest lorenz96 state.
    static let maxSubsteps = 100_000
    static let maxDimension = 1_000_000

    /// Count options, before anything is written.
    func checkCounts() throws {
        if trajectories < 1 { throw EddyError("--trajectories must be at least 1, got \(trajectories)") }
        if steps < 1 { throw EddyError("--steps must be at least 1, got \(steps)") }
        if !(1...Self.maxSubsteps).contains(substeps) { throw EddyError("--substeps must be in 1…\(Self.maxSubsteps), got \(substeps)") }
        if let transient, transient < 0 { throw EddyError("--transient must be at least 0, got \(transient)") }
        // Rows are numbered in 64-bit integers (and an .npy header multiplies its shape).
        if SizeGuard.product([trajectories, steps, 1024]) == nil {
            throw EddyError("--trajectories \(trajectories) × --steps \(steps) is too many rows; use fewer")
        }
    }

    func tracer() throws {
        if trajectories != 1 || dt != nil || transient != nil || initialRange != nil {
            throw EddyError("tracer writes one hourly trajectory after 10 days of spin-up: --trajectories, --dt, --transient and --initial-range do not apply")
        }
        if steps < 1 { throw EddyError("--steps must be at least 1, got \(steps)") }
        // Checked here, before the library multiplies them.
        if !(3...4_000_000).contains(lat) || !(4...4_000_000).contains(lon) || lat * lon > 4_000_000 {
            throw EddyError("--lat must be at least 3 and --lon at least 4, with --lat × --lon at most 4,000,000 points; got \(lat) × \(lon)")
        }
        try OutputGuard.check(outputs: [("--out", out)])
        var options = TracerOptions(steps: steps)
        options.latitudes = lat
        options.longitudes = lon
        options.seed = try seed.value()
        options.blobRate = blobRate
        let summary = try generating { try generateTracerField(options, to: out, progress: $0) }
        if json {
            print(JSON.object([
                "path": .string(summary.path), "system": .string("tracer"), "steps": .int(summary.steps), "dt": .number(summary.dt),
                "lat": .int(lat), "lon": .int(lon), "variables": .int(lat * lon),
            ]).text)
        } else {
            print("wrote \(summary.path): \(summary.steps) hourly steps of q on a \(lat) × \(lon) grid (\(lat * lon) variables)")
        }
    }

    /// Runs a generator with a percentage on stderr when that is a terminal.
    func generating<T>(_ body: (((Double) -> Void)?) throws -> T) rethrows -> T {
        let progress = TerminalProgress()
        defer { progress.clear() }
        return try body(progress.enabled ? { f in printErrorInline("\rgenerating: \(Int(f * 100))%\u{1B}[K") } : nil)
    }
}
