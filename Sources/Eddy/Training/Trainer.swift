#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Everything `eddy train` decides.
public struct TrainingConfig: Sendable {
    public var data: DataSpec
    public var delays = 1
    public var width = 256
    public var sampler: SamplerKind = .swim
    public var activation: Activation = .tanh
    public var form: Form = .recurrent
    /// Relative ridge α (METHOD.md, "Solve").
    public var ridge = 1e-10
    public var solver: SolverKind = .cholesky
    public var rcond: Double?
    public var seed: UInt64 = 0
    /// Windows per chunk of the streamed pass.
    public var chunkRows = 4096
    /// Capacity of SWIM's candidate reservoir.
    public var swimPool = 65536
    /// Standard deviation of random-feature weights.
    public var randomScale = 1.0
    /// Time step; nil reads it off a `t`/`time` column, else 1.
    public var dt: Double?

    public init(data: DataSpec) { self.data = data }

    public func validate() throws {
        if width < 0 { throw EddyError("--width must be at least 0 (0 = a linear model on the delays), got \(width)") }
        if delays < 1 { throw EddyError("--delays must be at least 1, got \(delays)") }
        if !(ridge >= 0) || !ridge.isFinite { throw EddyError("--ridge must be a finite number ≥ 0, got \(ridge)") }
        if chunkRows < 2 { throw EddyError("--chunk-rows must be at least 2, got \(chunkRows)") }
        if swimPool < 2 { throw EddyError("--swim-pool must be at least 2, got \(swimPool)") }
        if let dt, !(dt > 0) { throw EddyError("--dt must be positive, got \(dt)") }
        if let r = rcond, !(r >= 0) { throw EddyError("--rcond must be ≥ 0, got \(r)") }
        if !(randomScale > 0) { throw EddyError("--scale must be positive, got \(randomScale)") }
    }
}

/// What a training run measured and noticed.
public struct TrainingReport: Sendable {
    public var backend: String
    public var statistics: DataStatistics
    public var seconds: [String: Double] = [:]
    public var condition: Double
    public var warnings: [String] = []
}

/// Observes progress of long passes (fraction 0…1 and a label).
public typealias ProgressHandler = @Sendable (_ label: String, _ done: Int, _ total: Int) -> Void

/// One streamed training run (METHOD.md): a statistics pass, sampling, one accumulation pass through the
/// backend, and a double-precision solve. Memory is O(D² + chunk·D), independent of the number of rows
/// (except `lstsq`, which keeps the rows by definition).
public struct Trainer {
    public var config: TrainingConfig
    public var backend: Backend
    public var progress: ProgressHandler?

    public init(config: TrainingConfig, backend: Backend, progress: ProgressHandler? = nil) {
        self.config = config
        self.backend = backend
        self.progress = progress
    }

    public func train() throws -> (Model, TrainingReport) {
        try config.validate()
        var clock = Stopwatch()
        var seconds: [String: Double] = [:]

        // Pass 1: statistics, fingerprint, pair count and SWIM's candidate reservoir (raw values).
        let reader = try DataSource.open(config.data)
        let n = reader.variableNames.count, m = reader.inputNames.count
        var stats = DataStatistics(width: n + m)
        var raw = WindowBuilder(normalisation: .identity(variables: n, inputs: m), delays: config.delays, chunkRows: config.chunkRows)
        var reservoir = PairReservoir(capacity: config.swimPool, windowSize: n * config.delays, targetSize: n, seed: config.seed)
        while let block = try reader.next() {
            stats.add(block, width: n + m)
            raw.add(block)
            while let chunk = raw.take() { stats.pairs += chunk.pairCount; reservoir.offer(chunk) }
            progress?("reading", stats.rows, 0)
        }
        raw.finish()
        while let chunk = raw.take() { stats.pairs += chunk.pairCount; reservoir.offer(chunk) }
        let names = reader.variableNames + reader.inputNames
        for c in 0..<(n + m) where reader.validCounts[c] == 0 {
            throw EddyError("\(config.data.path): column '\(names[c])' has no valid value (every row is NA, NaN or empty)")
        }
        guard stats.pairs > 0 else {
            throw EddyError("\(config.data.path): no trajectory has \(config.delays + 1) consecutive valid rows (delays k = \(config.delays) need k + 1 rows for one training pair; \(stats.rows) valid rows in \(stats.segments) segment(s))")
        }
        var warnings: [String] = []
        let std = stats.std
        var safeStd = std
        for c in 0..<(n + m) where !(std[c] > 0) {
            safeStd[c] = 1
            warnings.append("column '\(names[c])' is constant in the training data; it is centred but not scaled")
        }
        let norm = Normalisation(variableMean: Array(stats.mean[0..<n]), variableStd: Array(safeStd[0..<n]),
                                 inputMean: Array(stats.mean[n...]), inputStd: Array(safeStd[n...]))
        seconds["statistics"] = clock.lap()

        // Sample the hidden layer.
        let p = n * config.delays
        let layer: HiddenLayer
        switch config.sampler {
        case .swim:
            if config.width == 0 {
                layer = HiddenLayer(inputSize: p, width: 0, weights: [], biases: [], activation: config.activation)
            } else {
                reservoir.standardise(norm)
                layer = try Sampler.swim(pool: reservoir, width: config.width, activation: config.activation, seed: config.seed)
            }
        case .random:
            layer = Sampler.random(inputSize: p, width: config.width, activation: config.activation, scale: config.randomScale, seed: config.seed)
        }
        seconds["sample"] = clock.lap()

        // Pass 2: lift and accumulate (or keep the rows, for lstsq).
        let layout = DictionaryLayout(variables: n, delays: config.delays, width: config.width, inputs: m, form: config.form)
        let solution: Solution
        let pass = try DataSource.open(config.data)
        var windows = WindowBuilder(normalisation: norm, delays: config.delays, chunkRows: config.chunkRows)
        var done = 0
        if config.solver == .lstsq {
            var rowsS: [Double] = [], rowsT: [Double] = []
            var count = 0
            func collect(_ chunk: WindowChunk) {
                let phi = Lift.rows(windows: chunk.windows, inputs: chunk.inputs, count: chunk.count, layer: layer, layout: layout)
                let f = layout.featureCount
                for i in 0..<chunk.count where chunk.linked[i] {
                    rowsS += phi[(i * f)..<((i + 1) * f)]
                    switch layout.form {
                    case .koopman: rowsT += phi[((i + 1) * f)..<((i + 1) * f + layout.dictionarySize)]
                    case .recurrent: rowsT += chunk.windows[((i + 1) * p)..<((i + 1) * p + n)]
                    }
                    count += 1
                }
            }
            while let block = try pass.next() {
                windows.add(block)
                while let c = windows.take() { collect(c); done += c.pairCount; progress?("accumulating", done, stats.pairs) }
            }
            windows.finish()
            while let c = windows.take() { collect(c) }
            seconds["accumulate"] = clock.lap()
            solution = try Solver.lstsq(rows: rowsS, targets: rowsT, count: count, features: layout.featureCount,
                                        targetCount: layout.targetCount, ridge: config.ridge, rcond: config.rcond)
        } else {
            try backend.beginPass(layer: layer, layout: layout)
            while let block = try pass.next() {
                windows.add(block)
                while let c = windows.take() { try backend.accumulate(c); done += c.pairCount; progress?("accumulating", done, stats.pairs) }
            }
            windows.finish()
            while let c = windows.take() { try backend.accumulate(c) }
            let sums = try backend.endPass()
            if sums.pairs != stats.pairs {
                throw EddyError("internal: the accumulation pass saw \(sums.pairs) pairs, the statistics pass \(stats.pairs)")
            }
            seconds["accumulate"] = clock.lap()
            solution = try Solver.solve(sums, solver: config.solver, ridge: config.ridge, rcond: config.rcond)
        }
        seconds["solve"] = clock.lap()
        guard solution.theta.allSatisfy(\.isFinite) else {
            throw EddyError("the solve produced non-finite weights (condition ≈ \(Format.scientific(solution.condition))); raise --ridge")
        }
        warnings += solution.warnings

        let metadata = ModelMetadata(
            variables: reader.variableNames, inputs: reader.inputNames, delays: config.delays, width: config.width,
            form: config.form, sampler: config.sampler, activation: config.activation, seed: config.seed,
            randomScale: config.sampler == .random ? config.randomScale : nil,
            swimPool: config.sampler == .swim ? config.swimPool : nil,
            dt: config.dt ?? reader.inferredDt ?? 1, solver: config.solver, ridge: config.ridge, lambda: solution.lambda,
            rcond: config.rcond, condition: solution.condition.isFinite ? solution.condition : nil,
            training: .init(path: config.data.path, episodeColumn: config.data.episodeColumn, rows: stats.rows,
                            segments: stats.segments, pairs: stats.pairs, fingerprint: stats.fingerprintHex))
        let model = Model(metadata: metadata, layer: layer, normalisation: norm, theta: solution.theta)
        let report = TrainingReport(backend: backend.name, statistics: stats, seconds: seconds, condition: solution.condition, warnings: warnings)
        return (model, report)
    }
}

/// Wall-clock lap timer.
public struct Stopwatch {
    private var last: timespec

    public init() {
        last = timespec()
        clock_gettime(CLOCK_MONOTONIC, &last)
    }

    /// Seconds since the previous lap (or creation).
    public mutating func lap() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let s = Double(now.tv_sec - last.tv_sec) + Double(now.tv_nsec - last.tv_nsec) * 1e-9
        last = now
        return s
    }
}
