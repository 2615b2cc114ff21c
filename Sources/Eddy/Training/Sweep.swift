/// Where a sweep's validation trajectories come from.
public enum ValidationSource: Sendable {
    /// A separate dataset (same variables and inputs as the training data).
    case data(DataSpec)
    /// The last fraction of every training segment, held out of training.
    case fraction(Double)
}

/// How each width's ridge values are solved.
public enum SweepSolver: String, CaseIterable, Sendable {
    /// Cholesky per ridge while that is cheaper than one eigendecomposition (fewer than ~27 ridges), else eigh.
    case auto
    /// One symmetric eigendecomposition per width serves every ridge (METHOD.md, "Sweeps").
    case eigh
    /// One Cholesky factorisation per width and ridge.
    case cholesky
    /// One streamed QR pass (TSQR) per sampler × seed × delays; one SVD of each width's leading block of the factor
    /// serves every ridge and cut-off (METHOD.md, "Streamed QR").
    case qr

    /// What a pass reduces to for this solver.
    public var statistic: PassStatistic { self == .qr ? .qr : .gram }
}

public struct SweepConfig: Sendable {
    public var data: DataSpec
    public var validation: ValidationSource
    public var widths: [Int]
    public var ridges: [Double]
    public var forms: [Form] = [.recurrent]
    public var samplers: [SamplerKind] = [.swim]
    public var seeds: [UInt64] = [0]
    public var delays: [Int] = [1]
    public var activation: Activation = .tanh
    public var horizon: Int
    /// Steps (1-based) whose standardised MSE is averaged into the score; nil: every step 1…H.
    public var scoreSteps: [Int]?
    public var lyapunov: Double?
    public var threshold = 0.5
    public var randomScale = 1.0
    /// Random-feature scales to search (one pass each, random sampler only); nil: `randomScale` alone.
    public var scales: [Double]?
    public var swimPool = 65536
    public var chunkRows = 4096
    /// Raw rows per global block of the data (`ShardPlan`), as `TrainingConfig.shardRows`.
    public var shardRows = ShardPlan.defaultBlockRows
    public var dt: Double?
    public var solver: SweepSolver = .auto
    /// Rows between validation origins; nil: the horizon, or less (overlapping forecasts) when that gives fewer than
    /// `minimumOrigins` origins — a handful of origins cannot separate good candidates.
    public var originStride: Int?
    public static let minimumOrigins = 32
    /// Cut-offs (`qr` only): singular values of the rows below `rcond · σ_max` are dropped; nil is the default cut-off.
    public var rconds: [Double?] = [nil]
    /// The width to sample (default: the largest of `widths`).
    public var sampleWidth: Int?
    /// Reduce the variables to their leading K EOFs first (fitted on the training part only), for each K listed
    /// (strictly increasing; one fit for the largest, whose leading columns are every smaller basis; one pass each).
    public var pca: [Int]?
    /// With `pca`: weight grid points by `√cos φ` (see `EOFBasis`).
    public var areaWeights = true
    /// With `.fraction` validation: after choosing, solve the chosen candidate again from the merge of the training
    /// part's pass state and the validation part's (one more pass over the validation part only), so the written model
    /// has seen all the data. Its layer and normalisation stay those of the training part.
    public var refit = true

    public init(data: DataSpec, validation: ValidationSource, widths: [Int], ridges: [Double], horizon: Int) {
        self.data = data
        self.validation = validation
        self.widths = widths
        self.ridges = ridges
        self.horizon = horizon
    }

    public func validate() throws {
        func increasing<T: Comparable>(_ list: [T], _ name: String) throws {
            if list.isEmpty { throw EddyError("\(name) is empty; give at least one value") }
            for i in 1..<max(1, list.count) where !(list[i] > list[i - 1]) {
                throw EddyError("\(name) must be strictly increasing without duplicates: \(list[i]) follows \(list[i - 1])")
            }
        }
        try increasing(widths, "--widths")
        try increasing(ridges, "--ridges")
        try increasing(delays, "--delays")
        if widths[0] < 0 { throw EddyError("--widths must be ≥ 0, got \(widths[0])") }
        if let s = sampleWidth {
            if s < 0 { throw EddyError("--sample-width must be ≥ 0, got \(s)") }
            if let w = widths.last, w > s { throw EddyError("--widths: \(w) is above the sampled maximum --sample-width \(s)") }
        }
        if ridges[0] < 0 || !(ridges.last!.isFinite) { throw EddyError("--ridges must be finite and ≥ 0") }
        if delays[0] < 1 { throw EddyError("--delays must be ≥ 1, got \(delays[0])") }
        if let list = pca {
            try increasing(list, "--pca")
            if list[0] < 1 { throw EddyError("--pca must be at least 1, got \(list[0])") }
        }
        if forms.isEmpty || Set(forms).count != forms.count { throw EddyError("--forms must name each form at most once") }
        if samplers.isEmpty || Set(samplers).count != samplers.count { throw EddyError("--samplers must name each sampler at most once") }
        if seeds.isEmpty { throw EddyError("--seeds must give at least one seed") }
        if horizon < 1 { throw EddyError("--horizon must be at least 1, got \(horizon)") }
        if let steps = scoreSteps {
            if steps.isEmpty || steps.contains(where: { $0 < 1 || $0 > horizon }) {
                throw EddyError("--score-steps must lie in 1…\(horizon) (the horizon)")
            }
        }
        if let list = scales {
            try increasing(list, "--scales")
            if !(list[0] > 0) || !list.last!.isFinite { throw EddyError("--scales must be positive and finite") }
        }
        if let s = originStride, s < 1 { throw EddyError("--origin-stride must be at least 1, got \(s)") }
        if rconds.isEmpty { throw EddyError("--rconds is empty; give at least one value") }
        if solver != .qr && rconds != [nil] { throw EddyError("--rconds applies to --solver qr only (the Gram solvers use --ridges)") }
        for r in rconds { if let r, !(r >= 0 && r < 1) { throw EddyError("--rconds must lie in [0, 1), got \(r)") } }
        if case .fraction(let f) = validation, !(f > 0 && f < 1) {
            throw EddyError("--validation-fraction must lie strictly between 0 and 1, got \(f)")
        }
    }
}

/// One scored candidate.
public struct SweepCandidate: Sendable {
    public var sampler: SamplerKind
    public var seed: UInt64
    public var delays: Int
    public var width: Int
    public var ridge: Double
    public var form: Form
    /// Mean standardised MSE over the score steps on the validation origins (lower is better).
    public var score: Double
    public var validPredictionSteps: Double
    public var validPredictionLyapunov: Double?
    public var condition: Double
    public var nonFinite: Int
    public var solver: SolverKind
    /// Principal components of the state (`--pca`), nil without a reduction.
    public var pca: Int? = nil
    /// `qr`: the cut-off applied and the directions it dropped.
    public var rcond: Double? = nil
    public var dropped: Int? = nil
    /// What the solve warned about (as `train` would print it).
    public var warnings: [String] = []
    /// Random features: the weights' scale.
    public var scale: Double? = nil
}

public struct SweepResult: Sendable {
    /// Sorted by validation score, best first (non-finite scores last).
    public var candidates: [SweepCandidate]
    public var best: Model
    public var passes: Int
    public var validationOrigins: Int
    public var seconds: [String: Double]
    public var warnings: [String]
    /// Rows between validation origins (chosen automatically unless given).
    public var originStride = 0
}

/// Sweeps widths, ridges and forms from one accumulation pass per sampler × seed × delays (METHOD.md, "Sweeps"):
/// samples are i.i.d. in draw order and the dictionary keeps `[1, z]` first, so the Gram of the widest model holds
/// every narrower one as its leading block (plus the input columns at the end).
public struct Sweep {
    public var config: SweepConfig
    public var backend: Backend
    public var progress: ProgressHandler?
    /// Sees every candidate with its model as it is scored (tests compare them with direct training).
    public var observer: ((SweepCandidate, Model) -> Void)?

    public init(config: SweepConfig, backend: Backend, progress: ProgressHandler? = nil) {
        self.config = config
        self.backend = backend
        self.progress = progress
    }

    public func run() throws -> SweepResult {
        try config.validate()
        var clock = Stopwatch()
        var seconds: [String: Double] = ["pass": 0, "solve": 0, "score": 0]
        let spec = config.data
        var open: ReaderFactory = { try DataSource.open(spec) }
        var validationSegments: [Segment]
        var validationPath: String
        var tailPlan: ShardPlan?
        var warnings: [String] = []
        // The training data are read in shards under MPI, as by `Trainer`. With a validation file every process holds
        // the validation cases; with a validation fraction every trajectory is split by its length (a counting pass
        // over the shards, `ShardPlan.splitting`) and the held-out tails are gathered from the shards.
        var plan = try ShardPlan.make(spec, delays: config.delays.max() ?? 1, blockRows: config.shardRows)
        switch config.validation {
        case .data(let v):
            let (reader, segments) = try DataSource.loadSegments(v)
            let train = try DataSource.open(spec)
            if reader.variableNames != train.variableNames || reader.inputNames != train.inputNames {
                throw EddyError("\(v.path): validation columns \(reader.variableNames + reader.inputNames) differ from the training data's \(train.variableNames + train.inputNames)")
            }
            validationSegments = segments
            validationPath = v.path
        case .fraction(let f):
            plan = try plan.splitting(fraction: f, part: .head)
            var tail = plan
            tail.split?.part = .tail
            validationSegments = try tail.segments()
            validationPath = "\(spec.path) (last \(Format.general(f)) of each trajectory)"
            tailPlan = tail
            let head = plan
            open = { try head.open(reduction: nil) }
        }
        if validationSegments.isEmpty {
            throw EddyError("\(validationPath): the validation set is empty (no valid rows)")
        }
        let fitted = try config.pca.map {
            try EOFAnalysis.fit(open, components: $0.last!, path: spec.path, areaWeights: config.areaWeights, shards: plan, progress: progress)
        }
        let reductions: [Reduction?] = config.pca.map { list in list.map { fitted!.truncated(to: $0) } } ?? [nil]
        let rawOpen = open
        let sampleWidth = config.sampleWidth ?? config.widths.last!
        let accumulateForm: Form = config.forms.contains(.koopman) ? .koopman : .recurrent
        var candidates: [SweepCandidate] = []
        var bestModel: Model?
        var bestScore = Double.infinity
        var bestPass: BestPass?
        var passes = 0
        var origins = 0
        var stride = config.horizon
        let scaleList = config.scales ?? [config.randomScale]
        let total = reductions.count * config.delays.count * config.seeds.count
            * config.samplers.reduce(0) { $0 + ($1 == .random ? scaleList.count : 1) }
        for reduction in reductions {
        let open = reduction?.wrap(rawOpen) ?? rawOpen
        for delays in config.delays {
            for sampler in config.samplers {
                for scale in sampler == .random ? scaleList : [config.randomScale] {
                for seed in config.seeds {
                    let data = try Trainer.prepare(open, path: spec.path, delays: delays, seed: seed, poolSize: config.swimPool,
                                                   chunkRows: config.chunkRows, reduction: reduction, shards: plan, progress: progress)
                    warnings += data.warnings.filter { !warnings.contains($0) }
                    try MemoryBudget.checkTraining(variables: data.variableNames.count, delays: delays, width: sampleWidth,
                                                   inputs: data.inputNames.count, form: accumulateForm,
                                                   solver: config.solver == .qr ? .qr : .eigh, chunkRows: config.chunkRows,
                                                   pairs: data.statistics.pairs, advice: "use --pca, smaller --widths or fewer --delays")
                    let layer = try Trainer.sample(data, sampler: sampler, width: sampleWidth, activation: config.activation,
                                                   scale: scale, seed: seed)
                    let (state, passWarning, _) = try Trainer.reduce(open, data, layer: layer, form: accumulateForm, statistic: config.solver.statistic,
                                                                  backend: backend, chunkRows: config.chunkRows, progress: progress)
                    if let passWarning, !warnings.contains(passWarning) { warnings.append(passWarning) }
                    let bigLayout = state.layout
                    passes += 1
                    seconds["pass"]! += clock.lap()
                    var base = ModelMetadata(
                        variables: data.variableNames, inputs: data.inputNames, delays: delays, width: 0, form: .recurrent,
                        sampler: sampler, activation: config.activation, seed: seed,
                        randomScale: sampler == .random ? scale : nil, swimPool: sampler == .swim ? config.swimPool : nil,
                        dt: config.dt ?? data.inferredDt ?? 1, solver: .cholesky, ridge: 0, lambda: 0, rcond: nil, condition: nil,
                        training: .init(path: spec.path, episodeColumn: spec.episodeColumn, rows: data.statistics.rows,
                                        segments: data.statistics.segments, pairs: data.statistics.pairs, fingerprint: data.fingerprint))
                    Trainer.describe(data, spec: spec, into: &base)
                    let climatology = Trainer.climatology(data)
                    // Validation cases depend only on the delays and the normalisation: build them once per pass.
                    let probe = Model(metadata: base, layer: layer.prefix(0), normalisation: data.normalisation,
                                      theta: [Double](repeating: 0, count: (1 + data.variableNames.count * delays + data.inputNames.count) * data.variableNames.count),
                                      eof: reduction?.basis)
                    stride = config.originStride ?? Sweep.automaticStride(validationSegments, delays: delays, horizon: config.horizon)
                    let cases = try Forecaster.cases(model: probe, segments: validationSegments, origins: .every(stride: stride),
                                                     horizon: config.horizon, path: validationPath)
                    origins = cases.count
                    for width in config.widths {
                        let solvedList: [(ridge: Double, rcond: Double?, solved: Solved)]
                        switch state {
                        case .gram(let sums):
                            solvedList = try zip(config.ridges, solveWidth(sums, width: width)).map { ($0, nil, $1) }
                        case .factor(let factor):
                            let path = try Solver.factorPath(factor, width: width, targets: Sweep.targetColumns(width: width, layout: bigLayout),
                                                             ridges: config.ridges, rconds: config.rconds)
                            solvedList = zip(config.ridges, path).flatMap { ridge, row in
                                zip(config.rconds, row).map { (ridge, $0, Solved(solution: $1, solver: .qr)) }
                            }
                        }
                        seconds["solve"]! += clock.lap()
                        for (ridge, _, s) in solvedList {
                            for form in config.forms {
                                var meta = base
                                meta.width = width
                                meta.form = form
                                meta.solver = s.solver
                                meta.ridge = ridge
                                meta.lambda = s.solution.lambda
                                meta.condition = s.solution.condition.isFinite ? s.solution.condition : nil
                                meta.record(s.solution)
                                let theta = Sweep.theta(s.solution.theta, width: width, layout: bigLayout, form: form)
                                let model = Model(metadata: meta, layer: layer.prefix(width), normalisation: data.normalisation, theta: theta,
                                                  climatology: climatology, eof: reduction?.basis)
                                let forecasts = Forecaster.run(model: model, cases: cases, horizon: config.horizon)
                                let ev = Evaluator.evaluate(model: model, cases: cases, forecasts: forecasts, horizon: config.horizon,
                                                            threshold: config.threshold, lyapunov: config.lyapunov)
                                let steps = config.scoreSteps ?? Array(1...config.horizon)
                                let byStep = Dictionary(uniqueKeysWithValues: ev.steps.map { ($0.step, $0.mseStandardised) })
                                let values = steps.compactMap { byStep[$0] }
                                var score = values.isEmpty ? Double.infinity : values.reduce(0, +) / Double(values.count)
                                if !score.isFinite || ev.nonFiniteForecasts > 0 { score = .infinity }
                                candidates.append(SweepCandidate(
                                    sampler: sampler, seed: seed, delays: delays, width: width, ridge: ridge, form: form, score: score,
                                    validPredictionSteps: ev.validPredictionTime.medianSteps,
                                    validPredictionLyapunov: ev.validPredictionTime.medianLyapunovTimes,
                                    condition: s.solution.condition, nonFinite: ev.nonFiniteForecasts, solver: s.solver,
                                    pca: reduction?.basis.components, rcond: s.solution.rcond,
                                    dropped: s.solver == .qr ? s.solution.dropped : nil, warnings: s.solution.warnings,
                                    scale: sampler == .random ? scale : nil))
                                observer?(candidates[candidates.count - 1], model)
                                if score < bestScore || bestModel == nil {
                                    bestScore = score
                                    bestModel = model
                                    bestPass = BestPass(state: state, data: data, layer: layer, reduction: reduction, width: width,
                                                        ridge: ridge, rcond: s.solution.rcond, form: form, solver: s.solver)
                                }
                            }
                        }
                        seconds["score"]! += clock.lap()
                        progress?("solving and scoring", candidates.count,
                                  total * config.widths.count * config.ridges.count * config.rconds.count * config.forms.count)
                    }
                }
                }
            }
        }
        }
        candidates.sort { ($0.score, $0.width) < ($1.score, $1.width) }
        var best = bestModel!
        var weightsFrom = "training part"
        if config.refit, let tailPlan, let pass = bestPass {
            do {
                best = try refit(best, pass: pass, tail: tailPlan, form: accumulateForm)
                weightsFrom = "training and validation parts"
                seconds["refit"] = clock.lap()
            } catch let e as EddyError {
                warnings.append("the chosen model was not refitted on the validation part (\(e.message)); its weights come from the training part only")
            }
        }
        best.metadata.sweep = .init(validation: validationPath, score: bestScore.isFinite ? bestScore : nil,
                                    scoreSteps: config.scoreSteps, horizon: config.horizon,
                                    widths: config.widths, ridges: config.ridges, forms: config.forms, samplers: config.samplers,
                                    seeds: config.seeds, delays: config.delays, candidates: candidates.count, pca: config.pca,
                                    rconds: config.solver == .qr ? config.rconds.map { $0 ?? Solver.defaultQRCutoff } : nil,
                                    weightsFrom: weightsFrom)
        if !bestScore.isFinite {
            warnings.append("no candidate gave finite validation forecasts; the written model is the first one tried")
        }
        // A validation that cannot tell the leaders apart says so: their valid prediction reaches the horizon.
        let leaders = candidates.prefix(3)
        if !leaders.isEmpty, leaders.allSatisfy({ $0.validPredictionSteps >= 0.9 * Double(config.horizon) }) {
            warnings.append("the best candidates forecast validly for (nearly) the whole --horizon \(config.horizon): validation cannot separate them; raise --horizon (and give more validation data) to choose among them")
        }
        if let top = candidates.first, let w = top.warnings.first { warnings.append("best candidate: \(w)") }
        return SweepResult(candidates: candidates, best: best, passes: passes, validationOrigins: origins, seconds: seconds, warnings: warnings,
                           originStride: stride)
    }

    /// The horizon as stride when it gives at least `minimumOrigins` origins; else the stride that does (at least 1).
    static func automaticStride(_ segments: [Segment], delays: Int, horizon: Int) -> Int {
        let positions = segments.reduce(0) { $0 + max(0, $1.rowCount - (delays - 1) - horizon) }
        if positions >= SweepConfig.minimumOrigins * horizon { return horizon }
        return max(1, positions / SweepConfig.minimumOrigins)
    }

    struct Solved {
        var solution: Solution
        var solver: SolverKind
    }

    /// What the best candidate came from, to refit it.
    struct BestPass {
        var state: PassState
        var data: PreparedData
        var layer: HiddenLayer
        var reduction: Reduction?
        var width: Int
        var ridge: Double
        var rcond: Double?
        var form: Form
        var solver: SolverKind
    }

    /// The chosen candidate solved from the merge of its pass state and the validation part's (same layer and
    /// normalisation): the weights of a model that saw every pair of both parts.
    func refit(_ model: Model, pass: BestPass, tail: ShardPlan, form accumulated: Form) throws -> Model {
        let open: ReaderFactory = { try tail.open(reduction: pass.reduction) }
        var tailData = try Trainer.prepare(open, path: config.data.path, delays: pass.data.delays, seed: 0, poolSize: 2,
                                           chunkRows: config.chunkRows, reduction: pass.reduction, shards: tail)
        tailData.normalisation = pass.data.normalisation
        let (tailState, _, _) = try Trainer.reduce(open, tailData, layer: pass.layer, form: accumulated, statistic: config.solver.statistic,
                                                backend: backend, chunkRows: config.chunkRows)
        let whole = try pass.state + tailState
        let layout = whole.layout
        let solution: Solution
        switch whole {
        case .gram(let sums):
            solution = try Solver.solve(Sweep.subSums(sums, width: pass.width), solver: pass.solver == .eigh ? .eigh : .cholesky, ridge: pass.ridge)
        case .factor(let factor):
            solution = try Solver.factorPath(factor, width: pass.width, targets: Sweep.targetColumns(width: pass.width, layout: layout),
                                             ridges: [pass.ridge], rconds: [pass.rcond])[0][0]
        }
        guard solution.theta.allSatisfy(\.isFinite) else { throw EddyError("the refitted solve gave non-finite weights") }
        var out = model
        out.theta = Sweep.theta(solution.theta, width: pass.width, layout: layout, form: pass.form)
        out.metadata.lambda = solution.lambda
        out.metadata.condition = solution.condition.isFinite ? solution.condition : nil
        out.metadata.record(solution)
        out.metadata.training.rows += tailData.statistics.rows
        out.metadata.training.segments += tailData.statistics.segments
        out.metadata.training.pairs += tailData.statistics.pairs
        return out
    }

    /// The accumulated target columns a width-`w` model uses: Koopman `Ψ_{t+1}` is the first 1 + p + w columns;
    /// recurrent `x_{t+1}` is columns 1…n of `Ψ_{t+1}` (taken by `theta`), or, when only the recurrent form was
    /// accumulated, every target.
    static func targetColumns(width w: Int, layout big: DictionaryLayout) -> [Int] {
        big.form == .koopman ? Array(0..<(1 + big.windowSize + w)) : Array(0..<big.targetCount)
    }

    /// The sums of a width-`w` model: sub-blocks of the widest model's.
    static func subSums(_ sums: GramSums, width w: Int) -> GramSums {
        let big = sums.layout
        let idx = Sweep.featureIndices(width: w, layout: big)
        let f = idx.count, r = big.targetCount
        let targetColumns = Sweep.targetColumns(width: w, layout: big)
        var sub = GramSums(layout: DictionaryLayout(variables: big.variables, delays: big.delays, width: w, inputs: big.inputs,
                                                    form: big.form))
        for (a, i) in idx.enumerated() {
            for (b, j) in idx.enumerated() { sub.gram[a * f + b] = sums.gram[i * big.featureCount + j] }
            for (b, j) in targetColumns.enumerated() { sub.rightHandSide[a * targetColumns.count + b] = sums.rightHandSide[i * r + j] }
        }
        sub.pairs = sums.pairs
        return sub
    }

    /// Indices of a width-`w` model's features inside the widest model's: `[1, z, φ_1…φ_w]` then the inputs.
    static func featureIndices(width w: Int, layout: DictionaryLayout) -> [Int] {
        let leading = 1 + layout.windowSize + w
        return Array(0..<leading) + Array(layout.dictionarySize..<layout.featureCount)
    }

    /// Solves every ridge at one width from the sub-blocks of the widest model's sums.
    func solveWidth(_ sums: GramSums, width w: Int) throws -> [Solved] {
        let sub = Sweep.subSums(sums, width: w)
        let useEigh: Bool
        switch config.solver {
        case .eigh: useEigh = true
        case .cholesky: useEigh = false
        // Cholesky costs f³/3 per ridge, a symmetric eigendecomposition with vectors about 9 f³ once.
        case .auto, .qr: useEigh = config.ridges.count > 27 || config.ridges.contains(0)
        }
        if useEigh { return try Solver.ridgePath(sub, ridges: config.ridges).map { Solved(solution: $0, solver: .eigh) } }
        return try config.ridges.map { ridge in
            do {
                return Solved(solution: try Solver.solve(sub, solver: .cholesky, ridge: ridge), solver: .cholesky)
            } catch {
                // Not positive definite at this ridge: the eigendecomposition still gives the regularised solution.
                return Solved(solution: try Solver.solve(sub, solver: .eigh, ridge: ridge), solver: .eigh)
            }
        }
    }

    /// The outer weights of one form from a solution over the accumulated targets.
    static func theta(_ solved: [Double], width w: Int, layout big: DictionaryLayout, form: Form) -> [Double] {
        let f = 1 + big.windowSize + w + big.inputs
        let columns = big.form == .koopman ? 1 + big.windowSize + w : big.variables
        switch form {
        case .koopman:
            return solved
        case .recurrent:
            guard big.form == .koopman else { return solved }
            // x_{t+1} is the state block (columns 1…n) of the Koopman target Ψ_{t+1}.
            var out = [Double](repeating: 0, count: f * big.variables)
            for i in 0..<f { for j in 0..<big.variables { out[i * big.variables + j] = solved[i * columns + 1 + j] } }
            return out
        }
    }
}
