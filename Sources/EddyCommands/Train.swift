import ArgumentParser
import Eddy

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model: sample the hidden layer, reduce the pairs in one streamed pass (a QR factor of the rows, or G and R), solve in double precision.",
        discussion: """
        Two passes over the data, each streamed in chunks: the first computes means, standard deviations and SWIM's candidate pool, the second lifts every pair [1, z, φ(z), u] and folds it into the triangular factor of the rows [Φ | Y] (--solver qr, the default) or adds it to G = ΣΦᵀΦ and R = ΣΦᵀY (cholesky, eigh). Memory does not grow with the number of rows (except --solver lstsq, which keeps the rows).
        Example: eddy train --data train.csv --episode-column episode --width 400 --form recurrent --out model.safetensors
        """
    )

    @OptionGroup var data: DataOptions
    @Option(parsing: .unconditional, help: "Delays k: the window z_t = [x_t, …, x_{t-k+1}].") var delays = 1
    @Option(parsing: .unconditional, help: "Neurons M in the sampled hidden layer (0: a linear model on the delays).") var width: Int
    @Option(help: "Hidden-layer sampler: swim (data-driven pairs) or random (Gaussian weights, uniform biases).") var sampler: String = "swim"
    @Option(help: "Activation: tanh or relu.") var activation: String = "tanh"
    @Option(help: "Model form: recurrent (x_{t+1} = Ψ(z_t)A + u_tB, re-lifted every step) or koopman (Ψ_{t+1} = Ψ_tK + u_tB).") var form: String = "recurrent"
    @Option(parsing: .unconditional, help: "Relative ridge α: λ = α·trace(G)/(D+m) (default 0 for qr, which regularises by its cut-off --rcond; 1e-10 for the others).") var ridge: Double?
    @Option(help: "Solver: qr (default: a streamed QR factor of the rows, then an SVD of the factor — least-squares accuracy in one pass, 2–3× cholesky's time), cholesky (normal equations G = ΦᵀΦ: fastest, but squares the conditioning; the default with --precision mixed), eigh (eigendecomposition of G, --rcond cut-off) or lstsq (SVD on the rows, in memory). All solve the same ridge problem; qr and lstsq with --ridge 0 are NumPy's lstsq.") var solver: String?
    @Option(parsing: .unconditional, help: "Cut-off for eigh, qr and lstsq: singular values of the rows below rcond·σ_max are dropped (as NumPy's lstsq; qr's default: machine ε).") var rcond: Double?
    @Option(help: "Random seed for sampling.") var seed = SeedOption(0)
    @Option(parsing: .unconditional, help: "Time step of the data (default: read off a t/time column, else 1; .npy files have none, so give it).") var dt: Double?
    @Option(parsing: .unconditional, help: "Standard deviation of random-feature weights (--sampler random).") var scale = 1.0
    @Option(parsing: .unconditional, help: "Reduce the variables to their leading K principal components (EOFs, one more streamed pass) and train on those; forecasts come back as the variables. For wide states such as gridded fields.") var pca: Int?
    @Flag(inversion: .prefixedNo, help: "With --pca: weight grid points with a latitude (VAR[…:lat=φ:…]) by √cos φ, so each stands for its area.") var areaWeights = true
    @Option(parsing: .unconditional, help: "Windows per chunk in the streamed pass.") var chunkRows = 4096
    @Option(parsing: .unconditional, help: "Raw rows per block of the data (a directory: its files): the unit the statistics are merged in and that MPI shards are made of. Results do not depend on the number of processes; use fewer rows than rows ÷ processes so every process gets some.") var shardRows = 4096
    @Option(help: ArgumentHelp("Rows per QR block update on the CPU (default: about 64 MiB of rows, 256…8192).", visibility: .hidden)) var qrBlockRows: Int?
    @Option(parsing: .unconditional, help: "SWIM candidate pool: a uniform reservoir of at most this many training pairs.") var swimPool = 65536
    @Option(help: "Compute backend: auto (an OpenCL GPU that passes a self-test, else the CPU), cpu or opencl.") var backend: String = "auto"
    @Option(help: "OpenCL device: an index or part of a name, as eddy devices lists them.") var device: String?
    @Option(help: "OpenCL precision: double, or mixed (float lift and chunk products, summed in double).") var precision: String = "double"
    @Option(help: "Where to write the model (safetensors with JSON metadata).") var out: String
    @Option(help: "Also write the pass's merged state as a 2-D .npy: [G | R] (the Gram sums, for cholesky and eigh) or the upper-triangular factor R of [Φ | Y] in factor order [1, z, u, φ | Y] (qr). For checks and for comparing runs.") var saveState: String?
    @Option(help: "Units of the variables, NAME=UNIT pairs, comma-separated (temp=°F,humid=%): stored in the model for plot axes.") var units: String?
    @Flag(help: "Print a JSON report on stdout.") var json = false

    func run() throws {
        try reportingErrors {
            // Outputs are checked before any work: never an input, a special file or an unwritable place.
            try OutputGuard.check(outputs: [("--out", out), ("--save-state", saveState)], inputs: [("--data", data.data)])
            try OutputPath.check(out, option: "--out", [".safetensors", ".st"])
            if let saveState, !saveState.lowercased().hasSuffix(".npy") {
                throw EddyError("--save-state \(saveState): the state is written as .npy; name a file ending in .npy")
            }
            try InputGuard.requireRegularFile(data.data, option: "--data",
                                              reason: "training reads its data two or three times (statistics, the pass, --pca); write it to a file first")
            let unitMap = try parseUnits(units)
            var config = TrainingConfig(data: try data.spec(dt: dt))
            config.delays = delays
            config.width = width
            config.sampler = try parseChoice(sampler, "--sampler")
            config.activation = try parseChoice(activation, "--activation")
            config.form = try parseChoice(form, "--form")
            // Mixed precision is a Gram-pass feature: without an explicit --solver it takes cholesky.
            config.solver = try parseChoice(solver ?? (precision == "mixed" ? "cholesky" : "qr"), "--solver")
            config.ridge = ridge ?? config.solver.defaultRidge
            config.rcond = rcond
            if rcond != nil && !config.solver.takesCutoff {
                throw EddyError("--rcond does not apply to --solver cholesky (it has no cut-off); use --solver qr, eigh or lstsq")
            }
            if config.solver == .qr && precision == "mixed" {
                throw EddyError("--precision \(precision) does not apply to --solver qr: the factor is computed from rows in double precision")
            }
            config.seed = try seed.value()
            config.dt = dt
            config.randomScale = scale
            config.chunkRows = chunkRows
            config.shardRows = shardRows
            config.swimPool = swimPool
            config.pca = pca
            config.areaWeights = areaWeights
            if width <= 0 && width != 0 { throw EddyError("--width must be positive (or 0 for a linear model), got \(width)") }
            let (device, reason) = try selectBackend(backend, device: self.device, precision: precision, chunkRows: chunkRows)
            if !json { try reportBackend(reason) }
            if let qrBlockRows {
                if qrBlockRows < 1 { throw EddyError("--qr-block-rows must be at least 1, got \(qrBlockRows)") }
                guard let cpu = device as? CPUBackend else { throw EddyError("--qr-block-rows applies to --backend cpu only") }
                cpu.qrBlockRows = qrBlockRows
            }
            let progress = TerminalProgress()
            // Statistics and the pass; --pca adds its EOF passes: one for the exact fit, or a statistics pass and the
            // power iterations of the randomized path (chosen by the column count, read off the data's header here).
            if pca == nil {
                progress.passes = 2
            } else if progress.enabled, let columns = try? DataSource.open(config.data).variableNames.count {
                progress.passes = 2 + (columns > EOFAnalysis.maximumColumns ? 1 + EOFAnalysis.powerPasses : 1)
            }
            var clock = Stopwatch()
            var (model, report) = try Trainer(config: config, backend: device, progress: progress.handler()).train()
            // Forecasts read new data with the same date format.
            if let f = config.data.timeFormat { model.metadata.shaping?.timeFormat = f }
            if !unitMap.isEmpty {
                try checkUnits(unitMap, variables: model.metadata.variables)
                model.metadata.units = unitMap
            }
            progress.clear()
            // All outputs or none: the state is written to its temporary file first, then the model, then both move into place.
            var stateFile: AtomicFile?
            if let saveState {
                guard let state = report.state else { throw EddyError("--save-state: --solver lstsq keeps rows, not a pass state") }
                let (rows, columns, values) = state.matrix
                let file = try AtomicFile(path: saveState)
                try file.write(NPY.header(shape: [rows, columns]))
                try file.write(doubles: values)
                stateFile = file
            }
            try ModelFile.write(model, to: out)
            try stateFile?.commit()
            let total = clock.lap()
            // Under eddy-mpi: every rank's CPU seconds (the work each did), gathered to rank 0's report.
            let ranks = !(Processes.group is SingleProcess) ? try Processes.gather(Format.fixed(processCPUSeconds(), 3)).map { Double($0) ?? .nan } : []
            for w in report.warnings { printError("eddy: warning: \(w)") }
            let s = report.statistics
            let filled = report.fill.summary.map { "--fill-gaps \(config.data.fillGaps) filled \($0) by linear interpolation" }
            if let filled { printError("eddy: note: \(filled)") }
            if json {
                let m = model.metadata
                let rcondJSON: JSON = m.rcond.map { .number($0) } ?? .null
                let droppedJSON: JSON = m.dropped.map { .int($0) } ?? .null
                let residualJSON: JSON = m.residual.map { .number($0) } ?? .null
                // Built as an ordered list of pairs: a dictionary literal joined with + iterates in hash order,
                // which changed the key order from run to run.
                let pairs: [(String, JSON)] = [
                    ("model", .string(out)), ("backend", .string(report.backend)), ("rows", .int(s.rows)), ("segments", .int(s.segments)),
                    ("pairs", .int(s.pairs)), ("features", .int(model.layout.featureCount)), ("form", .string(model.metadata.form.rawValue)),
                    ("solver", .string(model.metadata.solver.rawValue)), ("ridge", .number(model.metadata.ridge)), ("lambda", .number(model.metadata.lambda)),
                    ("condition", .number(report.condition)), ("rcond", rcondJSON), ("dropped", droppedJSON), ("residual", residualJSON),
                    ("fingerprint", .string(s.fingerprintHex)), ("dt", .number(model.metadata.dt)),
                    ("seconds", .object(report.seconds.sorted { $0.key < $1.key }.map { ($0.key, JSON.seconds($0.value)) } + [("total", .seconds(total))])),
                    ("warnings", .array(report.warnings.map { .string($0) })),
                    ("filled_rows", .int(report.fill.rows)), ("filled_gaps", .int(report.fill.gaps)), ("longest_filled_gap", .int(report.fill.longest)),
                ]
                print(JSON.object(pairs + pcaJSON(model) + (ranks.isEmpty ? [] : [("ranks", .object([("count", .int(ranks.count)),
                                                                                                   ("cpu_seconds", .array(ranks.map { .seconds($0) }))]))])).text)
            } else {
                print("trained \(model.metadata.form.rawValue) model: \(plural(s.pairs, "pair")) from \(plural(s.rows, "row")) in \(plural(s.segments, "segment")); D = \(model.layout.dictionarySize) (+\(model.layout.inputs) inputs)")
                if let line = pcaLine(model) { print(line) }
                if let filled { print(filled) }
                if model.metadata.solver == .qr {
                    let m = model.metadata
                    print("solver qr, ridge α = \(Format.general(config.ridge)), cut-off rcond = \(Format.scientific(m.rcond ?? 0)): \(m.dropped ?? 0) of \(model.layout.featureCount) directions dropped; condition of Φ ≈ \(Format.scientific(report.condition)); residual RMS \(Format.scientific(m.residual ?? .nan)) (standardised)")
                } else {
                    print("solver \(model.metadata.solver.rawValue), ridge α = \(Format.general(config.ridge)) (λ = \(Format.scientific(model.metadata.lambda))), condition ≈ \(Format.scientific(report.condition))")
                }
                print("time: \(Format.fixed(total, 2)) s (statistics \(Format.fixed(report.seconds["statistics"] ?? 0, 2)), accumulate \(Format.fixed(report.seconds["accumulate"] ?? 0, 2)), solve \(Format.fixed(report.seconds["solve"] ?? 0, 2)))")
                if !ranks.isEmpty {
                    print("\(ranks.count) processes: CPU seconds per rank \(ranks.map { Format.fixed($0, 2) }.joined(separator: ", ")) (sum \(Format.fixed(ranks.reduce(0, +), 2))); merging the pass took \(Format.fixed(report.seconds["merge"] ?? 0, 3)) s")
                }
                if dt == nil && model.metadata.dt == 1 {
                    print("dt = 1 (no t/time column; give --dt for times, frequencies and Lyapunov times in real units)")
                }
                print("wrote \(out)")
            }
        }
    }
}

/// The EOF reduction in one line, for tables.
func pcaLine(_ model: Model) -> String? {
    guard let r = model.metadata.reduction else { return nil }
    return "state: \(r.components) principal components of \(model.outputCount) variables, keeping \(Format.fixed(100 * r.explained, 2))% of the \(r.scaling.hasPrefix("field, area") ? "field-scaled, area-weighted" : "field-scaled") variance"
}

/// The EOF reduction for JSON reports (nothing without one).
func pcaJSON(_ model: Model) -> [(String, JSON)] {
    guard let r = model.metadata.reduction else { return [] }
    return [("pca", .object([("components", .int(r.components)), ("variables", .int(model.outputCount)), ("explained", .number(r.explained)),
                             ("scaling", .string(r.scaling))]))]
}

/// Parses a closed set of names with a message that lists them.
func parseChoice<T: RawRepresentable & CaseIterable>(_ text: String, _ option: String) throws -> T where T.RawValue == String {
    guard let v = T(rawValue: text) else {
        throw EddyError("\(option): unknown value '\(text)'; expected one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    return v
}
