import ArgumentParser
import Eddy

struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Choose the width, ridge and form from one data pass: every narrower model is a block of the widest one's Gram.",
        discussion: """
        One accumulation pass per combination of sampler, seed and delays; every width and ridge is then solved from sub-blocks of the sums (Cholesky per ridge, or one eigendecomposition per width when there are many ridges) and scored on validation trajectories by the mean standardised MSE over the horizon (or --score-steps). The best model is written with the sweep's choice in its metadata.

        Example: eddy sweep --data train.csv --validation val.csv --widths 64,128,256,512 --ridges 1e-12,1e-10,1e-8,1e-6 --horizon 50 --forms recurrent,koopman --out best.safetensors --plot sweep.svg
        """
    )

    @OptionGroup var data: DataOptions
    @Option(help: "Validation trajectories (same variables and inputs as --data).") var validation: String?
    @Option(parsing: .unconditional, help: "Instead of --validation: hold out the last fraction of every training trajectory.") var validationFraction: Double?
    @Option(help: "Validation rows at or after this time (with --validation; e.g. the same file as --data with another window).") var validationFrom: String?
    @Option(help: "Validation rows before this time.") var validationUntil: String?
    // Every model option takes a list here, under train's name and its plural (README, "One vocabulary").
    @Option(name: [.customLong("widths"), .customLong("width")], parsing: .unconditional,
            help: "Widths M, strictly increasing, comma-separated (--width 400 is one).") var widths: String
    @Option(name: [.customLong("ridges"), .customLong("ridge")], parsing: .unconditional,
            help: "Relative ridges α, strictly increasing, comma-separated (default 1e-12,1e-10,1e-8,1e-6; 0 for --solver qr).") var ridges: String?
    @Option(parsing: .unconditional, help: "Forecast steps per validation origin.") var horizon: Int
    @Option(name: [.customLong("origin-stride"), .customLong("validation-every")], parsing: .unconditional,
            help: "Rows between validation origins (default: the horizon, or less — overlapping forecasts — so that there are at least 32 origins); 1 scores on every validation origin.") var originStride: Int?
    @Option(name: [.customLong("forms"), .customLong("form")], help: "Forms to score: recurrent, koopman or both.") var forms = "recurrent"
    @Option(name: [.customLong("samplers"), .customLong("sampler")], help: "Samplers: swim, random or both (one pass each).") var samplers = "swim"
    @Option(name: [.customLong("seeds"), .customLong("seed")], parsing: .unconditional,
            help: "Sampling seeds, comma-separated (one pass each), e.g. --seed 7 or --seeds 0,1,2.") var seeds = "0"
    @Option(parsing: .unconditional, help: "Delays k, strictly increasing, comma-separated (one pass each).") var delays = "1"
    @Option(help: "Horizon steps (1-based) whose error is averaged into the score; default every step.") var scoreSteps: String?
    @Option(parsing: .unconditional, help: "Largest Lyapunov exponent, to report valid prediction times in Lyapunov times.") var lyapunov: Double?
    @Option(help: "Activation: tanh or relu.") var activation = "tanh"
    @Option(name: [.customLong("scales"), .customLong("scale")],
            help: "Standard deviations of random-feature weights (--sampler random), strictly increasing, comma-separated (one pass each; default 1).") var scales: String?
    @Option(parsing: .unconditional, help: "SWIM candidate pool size.") var swimPool = 65536
    @Option(parsing: .unconditional, help: "Reduce the variables to their leading K principal components (EOFs, fitted on the training data) first; a list (10,40,80) tries each K, one pass each. The best model forecasts the variables.") var pca: String?
    @Flag(inversion: .prefixedNo, help: "With --pca: weight grid points with a latitude (VAR[…:lat=φ:…]) by √cos φ, so each stands for its area.") var areaWeights = true
    @Option(parsing: .unconditional, help: "Windows per chunk in the streamed pass.") var chunkRows = 4096
    @Option(parsing: .unconditional, help: "Raw rows per block of the data (a directory: its files): the unit the statistics are merged in and that MPI shards are made of.") var shardRows = 4096
    @Option(parsing: .unconditional, help: "Time step (default: read off a t/time column, else 1).") var dt: Double?
    @Option(name: [.customLong("solver"), .customLong("sweep-solver")],
            help: "How each width is solved: qr (default: a streamed QR factor of the rows per pass, one SVD per width serving every ridge and cut-off: least-squares accuracy), or from the Gram: auto (cholesky per ridge, or eigh for many ridges; the default with --precision mixed), eigh, cholesky.") var sweepSolver: String?
    @Option(name: [.customLong("rconds"), .customLong("rcond")], help: "Cut-offs for --solver qr, strictly increasing, comma-separated (e.g. 1e-14,1e-12,1e-10): singular values of the rows below rcond·σ_max are dropped (default: machine ε).") var rconds: String?
    @Option(parsing: .unconditional, help: "Width to sample (default: the largest of --widths); every width must be at most this.") var sampleWidth: Int?
    @Option(help: "Compute backend for the pass: auto, cpu or opencl (solves run on the CPU in double).") var backend = "auto"
    @Option(help: "OpenCL device: an index or part of a name, as eddy devices lists them.") var device: String?
    @Option(help: "OpenCL precision: double, or mixed (float lift and chunk products, summed in double).") var precision = "double"
    @Option(help: "Write the best model here.") var out: String?
    @Flag(inversion: .prefixedNo, help: "With --validation-fraction: solve the chosen model again on all the data (the merge of the training and validation parts' pass states) before writing it.") var refit = true
    @Option(help: "Write every candidate as CSV here (- for standard output, instead of the table).") var csv: String?
    @Option(help: "Draw validation error against width (one line per form and ridge) as SVG here.") var plot: String?
    @Option(parsing: .unconditional, help: "Rows of the table to print.") var top = 15
    @Option(help: "Units of the variables, NAME=UNIT pairs, comma-separated (temp=°F,humid=%): stored in the best model for plot axes.") var units: String?
    @Flag(help: "Print JSON instead of the table.") var json = false

    func numbers<T: LosslessStringConvertible>(_ text: String, _ option: String) throws -> [T] {
        let parts = splitList(text)
        let values = parts.compactMap { T($0) }
        guard !parts.isEmpty, values.count == parts.count else { throw EddyError("\(option): expected a comma-separated list of numbers, got '\(text)'") }
        return values
    }

    func run() throws {
        try reportingErrors {
            if top < 0 { throw EddyError("--top must be 0 or more (rows of the table to print), got \(top)") }
            try OutputPath.checkStdout([("--csv", csv)], json: json)
            try OutputGuard.check(outputs: OutputPath.files([("--out", out), ("--csv", csv), ("--plot", plot)]),
                                  inputs: [("--data", data.data), ("--validation", validation)])
            try OutputPath.check(out, option: "--out", [".safetensors", ".st"])
            try OutputPath.check(csv, option: "--csv", [".csv"], stdout: true)
            try OutputPath.check(plot, option: "--plot", [".svg"])
            for (option, path) in [("--data", data.data), ("--validation", validation)] {
                guard let path else { continue }
                try InputGuard.requireRegularFile(path, option: option, reason: "a sweep reads its data once per pass; write it to a file first")
            }
            let train = try data.spec(dt: dt)
            let unitMap = try parseUnits(units)
            let source: ValidationSource
            switch (validation, validationFraction) {
            case (let v?, nil):
                // The validation data are read like the training data, with their own time window.
                var spec = train
                spec.path = v
                spec.from = try validationFrom.map { try parseTime($0, "--validation-from", format: train.timeFormat) }
                spec.until = try validationUntil.map { try parseTime($0, "--validation-until", format: train.timeFormat) }
                source = .data(spec)
            case (nil, let f?): source = .fraction(f)
            case (nil, nil): throw EddyError("give validation data with --validation FILE or --validation-fraction F")
            default: throw EddyError("give either --validation or --validation-fraction, not both")
            }
            let solver: SweepSolver = try parseChoice(sweepSolver ?? (precision == "mixed" ? "auto" : "qr"), "--solver")
            let ridgeList: [Double] = try ridges.map { try numbers($0, "--ridges") } ?? (solver == .qr ? [0] : [1e-12, 1e-10, 1e-8, 1e-6])
            var config = SweepConfig(data: train, validation: source, widths: try numbers(widths, "--widths"), ridges: ridgeList, horizon: horizon)
            if let rconds {
                let list: [Double] = try numbers(rconds, "--rconds")
                for i in 1..<max(1, list.count) where !(list[i] > list[i - 1]) {
                    throw EddyError("--rconds must be strictly increasing without duplicates: \(list[i]) follows \(list[i - 1])")
                }
                config.rconds = list
            }
            config.forms = try splitList(forms).map { try parseChoice($0, "--forms") }
            config.samplers = try splitList(samplers).map { try parseChoice($0, "--samplers") }
            config.seeds = try splitList(seeds).map { try SeedOption(argument: $0)!.value("--seeds") }
            if config.seeds.isEmpty { throw EddyError("--seeds: expected seeds like 7 or 0,1,2, got '\(seeds)'") }
            if Set(config.seeds).count != config.seeds.count { throw EddyError("--seeds: a seed is listed twice in '\(seeds)'") }
            // --seeds used to be a count (0…N−1); a single number typed as --seeds is now that one seed.
            if config.seeds.count == 1, config.seeds[0] > 0, CommandLine.arguments.contains(where: { $0 == "--seeds" || $0.hasPrefix("--seeds=") }), !json {
                printError("eddy: note: --seeds \(seeds) is the one seed \(seeds): --seeds lists seeds (as --seed), it is no longer a count; for seeds 0…\(config.seeds[0] - 1) write --seeds \((0..<min(config.seeds[0], 4)).map(String.init).joined(separator: ","))\(config.seeds[0] > 4 ? ",…" : "")")
            }
            config.delays = try numbers(delays, "--delays")
            config.scoreSteps = try scoreSteps.map { try numbers($0, "--score-steps") }
            config.lyapunov = lyapunov
            config.activation = try parseChoice(activation, "--activation")
            // One scale is the pass's scale; several are searched.
            let scaleList: [Double]? = try scales.map { try numbers($0, "--scales") }
            if let one = scaleList, one.count == 1 {
                if !(one[0] > 0 && one[0].isFinite) { throw EddyError("--scale must be positive and finite, got \(one[0])") }
                config.randomScale = one[0]
            } else {
                config.scales = scaleList
            }
            config.swimPool = swimPool
            config.chunkRows = chunkRows
            config.shardRows = shardRows
            config.pca = try pca.map { try numbers($0, "--pca") }
            config.areaWeights = areaWeights
            config.dt = dt
            config.solver = solver
            config.originStride = originStride
            config.refit = refit
            if solver == .qr && precision == "mixed" {
                throw EddyError("--precision \(precision) does not apply to --solver qr: the factor is computed from rows in double precision")
            }
            config.sampleWidth = sampleWidth
            let (device, reason) = try selectBackend(backend, device: self.device, precision: precision, chunkRows: chunkRows)
            if !json { try reportBackend(reason) }
            let progress = TerminalProgress()
            let result = try Sweep(config: config, backend: device, progress: progress.handler()).run()
            progress.clear()
            // Everything is computed; now write the outputs (each atomically).
            try checkUnits(unitMap, variables: result.best.metadata.variables)
            if let out {
                var best = result.best
                if let f = train.timeFormat { best.metadata.shaping?.timeFormat = f }   // new data are read with the same format
                if !unitMap.isEmpty { best.metadata.units = unitMap }
                try ModelFile.write(best, to: out)
            }
            if let csv { try OutputPath.write(sweepCSV(result), to: csv) }
            if let plot { try AtomicFile.write(sweepPlot(result, config: config), to: plot) }
            for w in result.warnings { printError("eddy: warning: \(w)") }
            if json {
                print(sweepJSON(result).text)
                return
            }
            if csv == "-" { return }
            print("\(plural(result.candidates.count, "candidate")) from \(plural(result.passes, "data pass", "data passes")), scored on \(plural(result.validationOrigins, "validation origin")) of \(plural(horizon, "step")), \(plural(result.originStride, "row")) apart")
            if let line = pcaLine(result.best) { print(line) }
            print("time: pass \(Format.fixed(result.seconds["pass"] ?? 0, 2)) s, solves \(Format.fixed(result.seconds["solve"] ?? 0, 2)) s, scoring \(Format.fixed(result.seconds["score"] ?? 0, 2)) s")
            print("")
            let pcaColumn = config.pca != nil
            let qr = config.solver == .qr
            print("rank  form       width  ridge     " + (qr ? "rcond    dropped  " : "") + "delays  " + (pcaColumn ? "pca   " : "")
                  + "sampler  seed  score (std MSE)  " + (lyapunov == nil ? "VPT steps  " : "VPT (Λt)   ") + "solver    " + (qr ? "cond(Φ)" : "condition"))
            for (i, c) in result.candidates.prefix(max(0, top)).enumerated() {
                let cut = qr ? pad(Format.scientific(c.rcond ?? 0, 0), 9) + pad("\(c.dropped ?? 0)", 9) : ""
                let row = pad("\(i + 1)", 6) + pad(c.form.rawValue, 11) + pad("\(c.width)", 7) + pad(Format.scientific(c.ridge, 0), 10) + cut
                    + pad("\(c.delays)", 8) + (pcaColumn ? pad(c.pca.map { "\($0)" } ?? "", 6) : "")
                let scores = pad(c.sampler.rawValue + (c.scale.map { config.scales == nil ? "" : " \(Format.general($0))" } ?? ""), 9) + pad("\(c.seed)", 6) + pad(Format.scientific(c.score), 17)
                    + pad(Format.general(c.validPredictionLyapunov ?? c.validPredictionSteps), 11)
                print(row + scores + pad(c.solver.rawValue, 10) + Format.scientific(c.condition, 1))
            }
            if let out {
                let t = result.best.metadata.training
                let from = result.best.metadata.sweep?.weightsFrom ?? "training part"
                print("wrote the best model to \(out): weights solved from the \(from) (\(t.pairs) pairs)"
                      + (from == "training part" ? "" : "; hidden layer and normalisation from the training part"))
            }
        }
    }
}

func sweepCSV(_ r: SweepResult) -> String {
    var text = "rank,form,width,ridge,delays,sampler,seed,score,vpt_steps,vpt_lyapunov,condition,solver,non_finite,pca,rcond,dropped,scale\n"
    for (i, c) in r.candidates.enumerated() {
        text += "\(i + 1),\(c.form.rawValue),\(c.width),\(c.ridge),\(c.delays),\(c.sampler.rawValue),\(c.seed),\(c.score),\(c.validPredictionSteps),"
        text += "\(c.validPredictionLyapunov.map { "\($0)" } ?? ""),\(c.condition),\(c.solver.rawValue),\(c.nonFinite),\(c.pca.map { "\($0)" } ?? ""),"
        text += "\(c.rcond.map { "\($0)" } ?? ""),\(c.dropped.map { "\($0)" } ?? ""),\(c.scale.map { "\($0)" } ?? "")\n"
    }
    return text
}

func sweepJSON(_ r: SweepResult) -> JSON {
    // An ordered list of pairs (a dictionary literal joined with + would come out in hash order).
    .object(pcaJSON(r.best) + [
        ("passes", .int(r.passes)), ("validation_origins", .int(r.validationOrigins)), ("origin_stride", .int(r.originStride)),
        ("seconds", .object(r.seconds.sorted { $0.key < $1.key }.map { ($0.key, JSON.seconds($0.value)) })),
        ("warnings", .array(r.warnings.map { .string($0) })),
        ("candidates", .array(r.candidates.map { c in candidateJSON(c) })),
    ])
}

func candidateJSON(_ c: SweepCandidate) -> JSON {
    var extra: [(String, JSON)] = []
    if let p = c.pca { extra.append(("pca", .int(p))) }
    if let r = c.rcond { extra.append(("rcond", .number(r))) }
    if let d = c.dropped { extra.append(("dropped", .int(d))) }
    if let s = c.scale { extra.append(("scale", .number(s))) }
    if !c.warnings.isEmpty { extra.append(("warnings", .array(c.warnings.map { .string($0) }))) }
    let base: KeyValuePairs<String, JSON> = [
                "form": .string(c.form.rawValue), "width": .int(c.width), "ridge": .number(c.ridge), "delays": .int(c.delays),
                "sampler": .string(c.sampler.rawValue), "seed": .number(Double(c.seed)), "score": .number(c.score),
                "vpt_steps": .number(c.validPredictionSteps), "vpt_lyapunov": .optional(c.validPredictionLyapunov),
                "condition": .number(c.condition), "solver": .string(c.solver.rawValue), "non_finite": .int(c.nonFinite),
    ]
    return .object(base.map { ($0.key, $0.value) } + extra)
}

func sweepPlot(_ r: SweepResult, config: SweepConfig) -> String {
    var series: [LinePlot.Series] = []
    var keys: [String] = []
    var groups: [String: [(Double, Double)]] = [:]
    var ridgeOf: [String: Double] = [:]
    for c in r.candidates {
        let key = "\(c.form.rawValue) α=\(Format.scientific(c.ridge, 0))" + (config.rconds.count > 1 ? " rcond=\(Format.scientific(c.rcond ?? 0, 0))" : "")
            + (config.delays.count > 1 ? " k=\(c.delays)" : "") + (config.samplers.count > 1 ? " \(c.sampler.rawValue)" : "")
            + (config.seeds.count > 1 ? " seed \(c.seed)" : "") + ((config.scales?.count ?? 0) > 1 ? " scale \(Format.general(c.scale ?? 0))" : "") + ((config.pca?.count ?? 0) > 1 ? " pca \(c.pca ?? 0)" : "")
        if groups[key] == nil { keys.append(key) }
        groups[key, default: []].append((Double(c.width), c.score))
        ridgeOf[key] = c.ridge
    }
    // One colour per ridge (the same in both forms), dashed for the Koopman form, when form and ridge are all that
    // vary between lines: the lines of one ridge read together. Otherwise the palette in order.
    let ridges = Array(Set(r.candidates.map(\.ridge))).sorted()
    let byRidge = keys.count <= 2 * ridges.count && ridges.count <= LinePlot.palette.count
    for key in keys.sorted() {
        let points = groups[key]!.sorted { $0.0 < $1.0 }
        let colour = byRidge ? ridgeOf[key].flatMap { ridges.firstIndex(of: $0) }.map { LinePlot.palette[$0] } : nil
        series.append(LinePlot.Series(name: key, x: points.map(\.0), y: points.map(\.1), dashed: key.hasPrefix("koopman"), color: colour))
    }
    // Widths double from one to the next in a typical sweep: a log axis spaces them evenly (not with a linear model,
    // width 0, among them).
    let logWidths = r.candidates.allSatisfy { $0.width > 0 }
    var panel = LinePlot.Panel(title: "validation error against width", xLabel: logWidths ? "width M (neurons, log scale)" : "width M (neurons)",
                               yLabel: "score: mean standardised MSE (log scale)", series: series, logY: true, markers: true)
    panel.logX = logWidths
    panel.xTicks = Array(Set(r.candidates.map { Double($0.width) })).sorted()
    // A candidate that blew up (scores many decades above the best) would flatten the differences that decided the
    // choice: the axis then stops three decades above the best score, the lines leave through the top, and the label
    // says how many scores are off it.
    if let (range, above) = LinePlot.cappedLogRange(r.candidates.map(\.score)) {
        panel.yRange = range
        panel.yLabel = "score: mean standardised MSE (log scale; \(plural(above, "score")) above \(Format.general(range.upperBound)) off the top)"
    }
    // The chosen model: ringed and named (candidates are ranked best first).
    if let best = r.candidates.first {
        panel.highlights = [LinePlot.Highlight(x: Double(best.width), y: best.score,
                                               label: "chosen: \(best.form.rawValue), M = \(best.width), α = \(Format.scientific(best.ridge, 0))")]
    }
    var plot = LinePlot(title: "eddy sweep: \(plural(r.candidates.count, "candidate")) on \(plural(r.validationOrigins, "validation origin"))", panels: [panel])
    plot.panelHeight = 420
    return plot.render()
}
