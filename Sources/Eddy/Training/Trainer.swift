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
    /// Reduce the variables to their leading K EOFs (principal components) first; forecasts map back.
    public var pca: Int?
    /// With `pca`: weight grid points by `√cos φ` (see `EOFBasis`).
    public var areaWeights = true

    public init(data: DataSpec) { self.data = data }

    public func validate() throws {
        if width < 0 { throw EddyError("--width must be at least 0 (0 = a linear model on the delays), got \(width)") }
        if delays < 1 { throw EddyError("--delays must be at least 1, got \(delays)") }
        if !(ridge >= 0) || !ridge.isFinite { throw EddyError("--ridge must be a finite number ≥ 0, got \(ridge)") }
        if chunkRows < 2 { throw EddyError("--chunk-rows must be at least 2, got \(chunkRows)") }
        if swimPool < 2 { throw EddyError("--swim-pool must be at least 2, got \(swimPool)") }
        if let dt, !(dt > 0) { throw EddyError("--dt must be positive, got \(dt)") }
        if let r = rcond, !(r >= 0 && r < 1) { throw EddyError("--rcond must be a number in [0, 1), got \(r)") }
        if !(randomScale > 0) { throw EddyError("--scale must be positive, got \(randomScale)") }
        if let k = pca, k < 1 { throw EddyError("--pca must be at least 1, got \(k)") }
    }
}

/// What a training run measured and noticed.
public struct TrainingReport: Sendable {
    public var backend: String
    public var statistics: DataStatistics
    public var seconds: [String: Double] = [:]
    public var condition: Double
    public var warnings: [String] = []
    /// The merged pass state the weights were solved from (nil for lstsq).
    public var state: PassState?
    /// What `--fill-gaps` filled (in the statistics pass; every pass reads the same).
    public var fill = FillReport()
}

/// Observes progress of long passes (a label, work done, total or 0 when unknown).
public typealias ProgressHandler = @Sendable (_ label: String, _ done: Int, _ total: Int) -> Void

/// Opens the training data afresh for each pass.
public typealias ReaderFactory = () throws -> RowReader

/// What the statistics pass learns: names, counts, the normalisation, and SWIM's candidate pool (standardised).
public struct PreparedData: Sendable {
    public var path: String
    public var variableNames: [String]
    public var inputNames: [String]
    public var delays: Int
    public var statistics: DataStatistics
    public var normalisation: Normalisation
    public var pool: PairReservoir
    public var inferredDt: Double?
    public var timesAreDates = false
    public var warnings: [String]
    /// With `--pca`: the EOFs the variables were reduced by (`variableNames` are then the components).
    public var reduction: Reduction?
    /// What `--fill-gaps` filled.
    public var fill = FillReport()

    /// The variables the model reads and forecasts (the columns, also with `--pca`).
    public var outputNames: [String] { reduction?.variableNames ?? variableNames }

    /// The fingerprint of the data as read (the columns, not their components).
    public var fingerprint: String { (reduction?.statistics ?? statistics).fingerprintHex }
}

/// The stages of a training run (METHOD.md, "Solve"): a statistics pass, sampling, one accumulation pass through
/// the backend, and a double-precision solve. Memory is O(D² + chunk·D), independent of the number of rows
/// (except `lstsq`, which keeps the rows by definition). `eddy sweep` reuses the same stages.
public struct Trainer {
    public var config: TrainingConfig
    public var backend: Backend
    public var progress: ProgressHandler?

    public init(config: TrainingConfig, backend: Backend, progress: ProgressHandler? = nil) {
        self.config = config
        self.backend = backend
        self.progress = progress
    }

    /// Pass 1: statistics, fingerprint, pair count and SWIM's candidate reservoir.
    /// With a `reduction`, `open` reads its components (`Reduction.wrap`); they share one scale, the root of their mean
    /// variance, so distances and errors in the state keep the weights of the scaled data (a per-component scale would
    /// blow the weakest components up to the strongest).
    public static func prepare(_ open: ReaderFactory, path: String, delays: Int, seed: UInt64, poolSize: Int, chunkRows: Int,
                               reduction: Reduction? = nil, progress: ProgressHandler? = nil) throws -> PreparedData {
        let reader = try open()
        let n = reader.variableNames.count, m = reader.inputNames.count
        var stats = DataStatistics(width: n + m)
        var raw = WindowBuilder(normalisation: .identity(variables: n, inputs: m), delays: delays, chunkRows: chunkRows)
        var reservoir = PairReservoir(capacity: poolSize, windowSize: n * delays, targetSize: n, seed: seed)
        while let block = try reader.next() {
            stats.add(block, width: n + m, dt: reader.inferredDt)
            raw.add(block)
            while let chunk = raw.take() { stats.pairs += chunk.pairCount; reservoir.offer(chunk) }
            progress?("reading", stats.rows, 0)
        }
        raw.finish()
        while let chunk = raw.take() { stats.pairs += chunk.pairCount; reservoir.offer(chunk) }
        let names = reader.variableNames + reader.inputNames
        for c in 0..<(n + m) where reader.validCounts[c] == 0 {
            throw EddyError("\(path): column '\(names[c])' has no valid value (every row is NA, NaN or empty)")
        }
        // What the reader noticed (irregular NetCDF times, say) explains too few pairs better than the count does.
        let noticed = reader.warnings.isEmpty ? "" : "; " + reader.warnings.joined(separator: "; ")
        guard stats.pairs > 0, stats.pairs > 1 || noticed.isEmpty else {
            throw EddyError("\(path): no trajectory has \(delays + 1) consecutive valid rows (delays k = \(delays) need k + 1 rows for one training pair; \(stats.rows) valid rows in \(stats.segments) segment(s), \(stats.pairs) pair(s))\(noticed)")
        }
        var warnings: [String] = reader.warnings
        var std = stats.std
        if reduction != nil {
            let common = (std[0..<n].map { $0 * $0 }.reduce(0, +) / Double(n)).squareRoot()
            for c in 0..<n { std[c] = common }
        }
        for c in 0..<(n + m) where !stats.mean[c].isFinite || std[c].isInfinite {
            throw EddyError("\(path): column '\(names[c])' has values so large that its mean or variance overflows double precision (largest magnitude \(Format.scientific(max(abs(stats.minimum[c]), abs(stats.maximum[c])), 1))); rescale the column")
        }
        for c in 0..<(n + m) where !(std[c] > 0) {
            std[c] = 1
            warnings.append("column '\(names[c])' is constant in the training data; it is centred but not scaled")
        }
        let norm = Normalisation(variableMean: Array(stats.mean[0..<n]), variableStd: Array(std[0..<n]),
                                 inputMean: Array(stats.mean[n...]), inputStd: Array(std[n...]))
        reservoir.standardise(norm)
        var data = PreparedData(path: path, variableNames: reader.variableNames, inputNames: reader.inputNames, delays: delays,
                                statistics: stats, normalisation: norm, pool: reservoir, inferredDt: reader.inferredDt,
                                timesAreDates: reader.timesAreDates, warnings: warnings, reduction: reduction)
        data.fill = reader.fill
        return data
    }

    /// Samples the hidden layer (METHOD.md, "Hidden layer").
    public static func sample(_ data: PreparedData, sampler: SamplerKind, width: Int, activation: Activation, scale: Double, seed: UInt64) throws -> HiddenLayer {
        let p = data.variableNames.count * data.delays
        if width == 0 { return HiddenLayer(inputSize: p, width: 0, weights: [], biases: [], activation: activation) }
        switch sampler {
        case .swim: return try Sampler.swim(pool: data.pool, width: width, activation: activation, seed: seed)
        case .random: return Sampler.random(inputSize: p, width: width, activation: activation, scale: scale, seed: seed)
        }
    }

    /// Pass 2: streams standardised windows through `visit`, chunk by chunk. With `split`, the chunks are shared out
    /// among the processes of `Processes.group` (each reads the whole stream and visits its own chunks; see
    /// `Processes.owns`); without, every process visits every chunk.
    static func streamChunks(_ open: ReaderFactory, _ data: PreparedData, chunkRows: Int, progress: ProgressHandler?, split: Bool = false,
                             _ visit: (WindowChunk) throws -> Void) throws {
        let reader = try open()
        let group = Processes.group
        var windows = WindowBuilder(normalisation: data.normalisation, delays: data.delays, chunkRows: chunkRows)
        var done = 0, index = 0
        func offer(_ c: WindowChunk) throws {
            defer { index += 1 }
            if split && !Processes.owns(chunk: index, in: group) { return }
            try visit(c)
        }
        while let block = try reader.next() {
            windows.add(block)
            while let c = windows.take() {
                try offer(c)
                done += c.pairCount
                progress?("accumulating", done, data.statistics.pairs)
            }
        }
        windows.finish()
        while let c = windows.take() { try offer(c) }
    }

    /// Pass 2 through a backend into `statistic`. A backend that cannot produce it is replaced by the CPU for this
    /// pass; the reason comes back as a warning. `mergeSeconds`: the time the merge over the processes took (0 alone).
    public static func reduce(_ open: ReaderFactory, _ data: PreparedData, layer: HiddenLayer, form: Form, statistic: PassStatistic,
                              backend: Backend, chunkRows: Int, progress: ProgressHandler? = nil) throws
        -> (state: PassState, warning: String?, mergeSeconds: Double) {
        let layout = DictionaryLayout(variables: data.variableNames.count, delays: data.delays, width: layer.width,
                                      inputs: data.inputNames.count, form: form)
        var device = backend
        var warning: String?
        if let reason = backend.unsupported(statistic) {
            warning = "\(backend.name) cannot produce the \(statistic.rawValue) pass (\(reason)); this pass ran on the CPU"
            device = CPUBackend()
        }
        try device.beginPass(layer: layer, layout: layout, statistic: statistic)
        try streamChunks(open, data, chunkRows: chunkRows, progress: progress, split: true) { try device.accumulate($0) }
        let partial = try device.endPass()
        var clock = Stopwatch()
        let state = try Processes.merge(partial)
        let mergeSeconds = clock.lap()
        let noticed = device.takeWarnings()
        if !noticed.isEmpty { warning = ([warning].compactMap { $0 } + noticed.map { "\(backend.name): \($0)" }).joined(separator: "; ") }
        if state.pairs != data.statistics.pairs {
            throw EddyError("internal: the accumulation pass saw \(state.pairs) pairs, the statistics pass \(data.statistics.pairs)")
        }
        return (state, warning, mergeSeconds)
    }

    /// Pass 2 kept in memory for `lstsq`: the source rows and their targets.
    static func collectRows(_ open: ReaderFactory, _ data: PreparedData, layer: HiddenLayer, layout: DictionaryLayout,
                            chunkRows: Int, progress: ProgressHandler?) throws -> (rows: [Double], targets: [Double], count: Int) {
        var rowsS: [Double] = [], rowsT: [Double] = []
        var count = 0
        let f = layout.featureCount, p = layout.windowSize, n = layout.variables
        try streamChunks(open, data, chunkRows: chunkRows, progress: progress) { chunk in
            let phi = Lift.rows(windows: chunk.windows, inputs: chunk.inputs, count: chunk.count, layer: layer, layout: layout)
            for i in 0..<chunk.count where chunk.linked[i] {
                rowsS += phi[(i * f)..<((i + 1) * f)]
                switch layout.form {
                case .koopman: rowsT += phi[((i + 1) * f)..<((i + 1) * f + layout.dictionarySize)]
                case .recurrent: rowsT += chunk.windows[((i + 1) * p)..<((i + 1) * p + n)]
                }
                count += 1
            }
        }
        return (rowsS, rowsT, count)
    }

    public func train() throws -> (Model, TrainingReport) {
        try config.validate()
        var clock = Stopwatch()
        var seconds: [String: Double] = [:]
        let spec = config.data
        var open: ReaderFactory = { try DataSource.open(spec) }
        let reduction = try config.pca.map {
            try EOFAnalysis.fit(open, components: $0, path: spec.path, areaWeights: config.areaWeights, progress: progress)
        }
        if let reduction { open = reduction.wrap(open) }
        let data = try Trainer.prepare(open, path: spec.path, delays: config.delays, seed: config.seed, poolSize: config.swimPool,
                                       chunkRows: config.chunkRows, reduction: reduction, progress: progress)
        seconds["statistics"] = clock.lap()
        try MemoryBudget.checkTraining(variables: data.variableNames.count, delays: config.delays, width: config.width,
                                       inputs: data.inputNames.count, form: config.form, solver: config.solver,
                                       chunkRows: config.chunkRows, pairs: data.statistics.pairs)
        let layer = try Trainer.sample(data, sampler: config.sampler, width: config.width, activation: config.activation,
                                       scale: config.randomScale, seed: config.seed)
        seconds["sample"] = clock.lap()
        let layout = DictionaryLayout(variables: data.variableNames.count, delays: config.delays, width: config.width,
                                      inputs: data.inputNames.count, form: config.form)
        let solution: Solution
        // Under MPI only rank 0 solves (and writes the model): the other ranks hold the same merged state, and solving
        // it again would only compete for the cores of a shared machine.
        let solvesHere = Processes.group.rank == 0
        var passWarnings: [String] = []
        var passState: PassState?
        if config.solver == .lstsq {
            if Processes.group.size > 1 {
                throw EddyError("--solver lstsq keeps every row in one process; under MPI use --solver qr (the same least-squares solution, streamed)")
            }
            let (rows, targets, count) = try Trainer.collectRows(open, data, layer: layer, layout: layout, chunkRows: config.chunkRows, progress: progress)
            seconds["accumulate"] = clock.lap()
            solution = try Solver.lstsq(rows: rows, targets: targets, count: count, features: layout.featureCount,
                                        targetCount: layout.targetCount, ridge: config.ridge, rcond: config.rcond)
        } else {
            // One streamed pass into the solver's statistic: the QR factor (qr) or the Gram sums (cholesky, eigh).
            let (state, warning, merge) = try Trainer.reduce(open, data, layer: layer, form: config.form, statistic: config.solver == .qr ? .qr : .gram,
                                                             backend: backend, chunkRows: config.chunkRows, progress: progress)
            if Processes.group.size > 1 { seconds["merge"] = merge }
            passWarnings += warning.map { [$0] } ?? []
            passState = state
            seconds["accumulate"] = clock.lap()
            if !solvesHere {
                solution = Trainer.unsolved(layout)
            } else if config.solver == .qr {
                solution = try Solver.factorPath(try state.factor(), width: config.width, targets: Array(0..<layout.targetCount),
                                                 ridges: [config.ridge], rconds: [config.rcond])[0][0]
            } else {
                solution = try Solver.solve(try state.gram(), solver: config.solver, ridge: config.ridge, rcond: config.rcond)
            }
        }
        seconds["solve"] = clock.lap()
        guard solution.theta.allSatisfy(\.isFinite) else {
            throw EddyError("the solve produced non-finite weights (condition ≈ \(Format.scientific(solution.condition))); raise --ridge")
        }
        let model = Model(metadata: metadata(data, solution: solution), layer: layer, normalisation: data.normalisation, theta: solution.theta,
                          climatology: Trainer.climatology(data), eof: data.reduction?.basis)
        var report = TrainingReport(backend: backend.name, statistics: data.statistics, seconds: seconds, condition: solution.condition,
                                    warnings: data.warnings + passWarnings + solution.warnings, state: passState)
        report.fill = data.fill
        return (model, report)
    }

    /// What a rank other than 0 holds in place of the solution: zero weights of the right shape (its model is never
    /// written or printed).
    static func unsolved(_ layout: DictionaryLayout) -> Solution {
        Solution(theta: [Double](repeating: 0, count: layout.featureCount * layout.targetCount), lambda: 0, condition: .nan, dropped: 0, warnings: [])
    }

    /// The climatology of the variables (not the inputs), when the data have a daily cycle.
    static func climatology(_ data: PreparedData) -> [Double]? {
        let s = data.reduction?.statistics ?? data.statistics
        guard let c = s.climatology, let p = s.period else { return nil }
        let n = data.outputNames.count, w = n + data.inputNames.count
        return (0..<(p * n)).map { c[($0 / n) * w + $0 % n] }
    }

    /// What the model records about its data beyond the names: how they were shaped, their range, the cycle.
    static func describe(_ data: PreparedData, spec: DataSpec, into meta: inout ModelMetadata) {
        let n = data.outputNames.count
        let s = data.reduction?.statistics ?? data.statistics
        meta.variables = data.outputNames
        meta.trainingRange = (0..<n).map { [s.minimum[$0], s.maximum[$0]] }
        meta.climatologyPeriod = s.period
        if let r = data.reduction {
            meta.reduction = .init(components: r.basis.components, componentVariance: r.basis.variance, totalVariance: r.basis.totalVariance,
                                   explained: r.basis.explained, scaling: r.areaWeighted ? "field, area (sqrt cos lat)" : "field")
        }
        let netcdf = !spec.ncVariables.isEmpty || spec.ncLevels != nil || spec.ncBox != nil || spec.ncTime != nil || spec.ncMonths
        if spec.timeColumn != nil || !spec.angles.isEmpty || !spec.calendar.isEmpty || spec.fillGaps > 0 || spec.pivot != nil || netcdf
            || data.timesAreDates {
            meta.shaping = .init(columns: spec.columns, inputs: spec.inputs, timeColumn: spec.timeColumn, angles: spec.angles, calendar: spec.calendar,
                                 fillGaps: spec.fillGaps, pivot: spec.pivot, dt: spec.dt, timesAreDates: data.timesAreDates,
                                 ncVariables: spec.ncVariables.isEmpty ? nil : spec.ncVariables, ncLevels: spec.ncLevels,
                                 ncBox: spec.ncBox.map { [$0.latMin, $0.latMax, $0.lonMin, $0.lonMax] }, ncTime: spec.ncTime, ncMonths: spec.ncMonths ? true : nil)
        }
    }

    func metadata(_ data: PreparedData, solution: Solution) -> ModelMetadata {
        var meta = ModelMetadata(
            variables: data.variableNames, inputs: data.inputNames, delays: config.delays, width: config.width,
            form: config.form, sampler: config.sampler, activation: config.activation, seed: config.seed,
            randomScale: config.sampler == .random ? config.randomScale : nil,
            swimPool: config.sampler == .swim ? config.swimPool : nil,
            dt: config.dt ?? data.inferredDt ?? 1, solver: config.solver, ridge: config.ridge, lambda: solution.lambda,
            rcond: config.rcond, condition: solution.condition.isFinite ? solution.condition : nil,
            training: .init(path: data.path, episodeColumn: config.data.episodeColumn, rows: data.statistics.rows,
                            segments: data.statistics.segments, pairs: data.statistics.pairs, fingerprint: data.fingerprint))
        Trainer.describe(data, spec: config.data, into: &meta)
        meta.record(solution)
        return meta
    }
}

/// CPU seconds (user + system) this process has used so far, all its threads together.
public func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) * 1e-6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
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
