import ArgumentParser
import Eddy

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score free-run forecasts against held-out trajectories: MSE and NRMSE per step, valid prediction time, and optionally long-run statistics.",
        discussion: """
        Forecasts start at every origin where the whole horizon has truth (default: every H rows from the first full window). NRMSE is the RMSE in units of each variable's training standard deviation. The valid prediction time is the first step whose normalised error exceeds --threshold (median over origins), in Lyapunov times when --lyapunov is given. --climate adds the histogram KL divergence and power-spectrum distance of one long free run per trajectory.
        Example: eddy evaluate --model m.safetensors --data test.csv --episode-column episode --horizon 1000 --lyapunov 0.906
        """
    )

    @OptionGroup var options: ForecastOptions
    @Option(parsing: .unconditional, help: "The largest Lyapunov exponent (per time unit), to report the valid prediction time in Lyapunov times.") var lyapunov: Double?
    @Option(parsing: .unconditional, help: "Error threshold on standardised variables for the valid prediction time.") var threshold = 0.5
    @Flag(help: "Also compare long free runs with the truth (histogram KL, power spectra).") var climate = false
    @Option(parsing: .unconditional, help: "Longest free run for --climate.") var freeRun = 10000
    @Option(parsing: .unconditional, help: "Print every Nth horizon step in the table (all steps are in --json).") var every: Int?
    @Flag(help: "Compare with baselines at --report-steps: persistence, the last day repeated (seasonal), the training climatology by hour of day and the trailing climatology (the mean of the last --trailing-days days at the same hour, up to the origin); skill = 1 − MSE/MSE(baseline). All but persistence need a time column with a daily cycle.") var baselines = false
    @Option(parsing: .unconditional, help: "Days in the trailing-climatology baseline (read from before --from too).") var trailingDays = 14
    @Option(help: "Horizon steps (1-based) of the per-variable and baseline tables (default: the horizon), as sweep's --score-steps.") var scoreSteps: String?
    @Option(name: .customLong("report-steps"), help: ArgumentHelp("Old name of --score-steps.", visibility: .hidden)) var oldReportSteps: String?
    @Option(parsing: .unconditional, help: "Time step of the data, for times and Lyapunov times (default: the model's dt; only where the model's dt was not read off a time column).") var dt: Double?
    @Option(help: "Gridded fields: the climatology the ACC's anomalies are taken from, a CSV 'phase,VARIABLE,…' with one row per phase of the day (24 rows: hourly; 1: one mean), by the model's variable names (default: the training climatology by hour of day).") var accClimatology: String?
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try reportingErrors {
            try options.checkOptions()
            try checkOptions()
            // Per origin and step: one more forecast per baseline (at most the three of them).
            var (model, segments, spec) = try options.load(heldPerStep: baselines ? Baseline.allCases.count : 0)
            try ModelTime.apply(dt, to: &model, path: options.model, reports: lyapunov != nil ? "the Lyapunov times" : nil)
            let h = options.horizon
            if oldReportSteps != nil { printError("eddy: note: --report-steps is now --score-steps (the old name still works)") }
            let reportSteps = scoreSteps ?? oldReportSteps
            let steps: [Int] = try reportSteps.map { text in
                let list = splitList(text).compactMap(Int.init)
                guard !list.isEmpty, list.count == splitList(text).count, list.allSatisfy({ (1...h).contains($0) }) else {
                    throw EddyError("\(scoreSteps == nil ? "--report-steps" : "--score-steps"): expected steps in 1…\(h), got '\(text)'")
                }
                return list
            } ?? [h]
            let kinds: [Baseline] = !baselines ? [] : model.metadata.climatologyPeriod == nil ? [.persistence] : Baseline.allCases
            if baselines && kinds.count == 1 { printError("eddy: note: no daily cycle in the training data's time column: only the persistence baseline") }
            let picks = try Forecaster.origins(model: model, segments: segments, choice: options.origin(default: .every(stride: h)),
                                               horizon: h, path: spec.path)
            // The trailing climatology looks back --trailing-days days from each origin, also before --from.
            var trailing: TrailingClimatology?
            if kinds.contains(.trailing), let period = model.metadata.climatologyPeriod {
                let day = Double(period) * model.metadata.dt
                var history = segments
                if let from = spec.from {
                    var earlier = spec
                    earlier.from = from - Double(trailingDays) * day
                    history = try DataSource.loadSegments(earlier).segments
                }
                trailing = TrailingClimatology(segments: history, days: trailingDays, period: period, dt: model.metadata.dt)
            }
            // Gridded fields (grid points with a latitude): WeatherBench-2 scores per field and level, every step.
            let groups = GriddedScores.groups(of: model.metadata.variables)
            var gridded = groups.isEmpty ? nil : GriddedScores(groups: groups, methods: ["eddy"] + kinds.map(\.rawValue), horizon: h)
            let given = try accClimatology.map { path -> ClimatologyFile in
                if groups.isEmpty { throw EddyError("--acc-climatology applies to gridded fields (variables with a latitude, VAR[…:lat=φ:…]); this model has none") }
                if model.metadata.shaping?.timesAreDates != true {
                    throw EddyError("--acc-climatology needs forecasts with dates (a time column of dates, or CF time units) to find each valid time's phase of the day")
                }
                return try ClimatologyFile(path: path, variables: model.metadata.variables)
            }
            if let given { gridded?.climatologySource = "\(given.path) (\(plural(given.period, "phase")) of the day)" }
            let climatologyAt: (ForecastCase, Int) -> [Double]? = { fc, step in
                if let given { return fc.time.map { given.at($0 + Double(step + 1) * model.metadata.dt) } }
                guard let p = model.metadata.climatologyPeriod, let clim = model.climatology, let t0 = fc.time else { return nil }
                let k = DataStatistics.phase(t0 + Double(step + 1) * model.metadata.dt, dt: model.metadata.dt, period: p)
                let n = model.outputCount
                return Array(clim[(k * n)..<((k + 1) * n)])
            }
            // Origins in batches of at most 4 Mi forecast values (32 MiB), so a wide state's forecasts are never all held.
            var sums = EvaluationSums(model: model, horizon: h, threshold: threshold)
            var comparisonSums = ComparisonSums(model: model, horizon: h, steps: steps, methods: ["eddy"] + kinds.map(\.rawValue))
            var diverged: [(episode: String, origin: Int, step: Int)] = []
            let batch = originsPerBatch(horizon: h, variables: model.outputCount)
            let progress = TerminalProgress()
            defer { progress.clear() }
            let report = progress.handler()
            for start in stride(from: 0, to: picks.count, by: batch) {
                let part = try Forecaster.cases(model: model, segments: segments, picks: picks[start..<min(picks.count, start + batch)],
                                                horizon: h, path: spec.path)
                let forecasts = Forecaster.run(model: model, cases: part, horizon: h)
                sums.add(cases: part, forecasts: forecasts)
                var methods = [forecasts]
                for b in kinds { methods.append(try Evaluator.baseline(b, model: model, segments: segments, cases: part, horizon: h, trailing: trailing)) }
                comparisonSums.add(cases: part, forecasts: methods)
                gridded?.add(cases: part, forecasts: methods, n: model.outputCount) { climatologyAt(part[$0], $1) }
                diverged += Evaluator.diverged(model: model, forecasts: forecasts, cases: part.count, horizon: h)
                    .map { (part[$0.case].episode, part[$0.case].origin, $0.step) }
                report?("forecasting", start + part.count, picks.count)
            }
            progress.clear()   // before the table (clearing twice is harmless)
            var result = sums.evaluation(lyapunov: lyapunov)
            if climate { result.climate = try Evaluator.climate(model: model, segments: segments, maxSteps: freeRun, path: spec.path) }
            let comparison = comparisonSums.comparison
            if json {
                var j = evaluationJSON(result)
                if case .object(var pairs) = j {
                    pairs.append(("comparison", comparisonJSON(comparison)))
                    if let gridded { pairs.append(("gridded", griddedJSON(gridded))) }
                    pairs.append(("diverged", .array(diverged.map { .object(["episode": .string($0.episode), "origin": .int($0.origin), "step": .int($0.step)]) })))
                    j = .object(pairs)
                }
                print(j.text)
                return
            }
            print("\(plural(result.origins, "forecast")) of \(plural(h, "step")) (dt = \(ModelTime.span(result.dt, model: model, bare: true))) on \(spec.path)")
            print("MSE over all steps: \(Format.scientific(result.mse)) (data units), \(Format.scientific(result.mseStandardised)) (standardised)")
            let vpt = result.validPredictionTime
            var line = "valid prediction time (error > \(Format.general(threshold))): median \(Format.general(vpt.medianSteps)) steps = \(ModelTime.span(vpt.medianTime, model: model))"
            if let l = vpt.medianLyapunovTimes { line += " = \(Format.general(l)) Lyapunov times" }
            if vpt.censored > 0 { line += " (\(vpt.censored) of \(result.origins) never exceeded it within the horizon)" }
            print(line)
            if result.nonFiniteForecasts > 0 { printError("eddy: warning: \(plural(result.nonFiniteForecasts, "forecast")) turned non-finite") }
            let stride = every ?? max(1, h / 10)
            print("")
            print("step      MSE          MSE (std)    NRMSE")
            for s in result.steps where s.step == 1 || s.step % stride == 0 || s.step == h {
                print(pad("\(s.step)", 8) + "  " + pad(Format.scientific(s.mse), 11) + "  " + pad(Format.scientific(s.mseStandardised), 11) + "  " + Format.scientific(s.nrmse))
            }
            if baselines || reportSteps != nil {
                print("")
                print(comparisonTable(comparison.byField()))
                if let gridded {
                    print("")
                    print(griddedTable(gridded, steps: steps))
                }
            }
            if !diverged.isEmpty {
                printError("eddy: warning: \(diverged.count) of \(plural(result.origins, "forecast")) left the training range by more than its width or turned non-finite (first at trajectory \(diverged[0].episode), origin \(diverged[0].origin), step \(diverged[0].step)); raise --ridge")
            }
            if let c = result.climate {
                print("")
                print("long free runs (\(c.steps) steps): histogram KL \(Format.scientific(c.histogramKL)), power-spectrum distance \(Format.fixed(c.spectrumDistance, 4))")
            }
        }
    }
}

extension Evaluate {
    /// Option ranges, before any file is read.
    func checkOptions() throws {
        if let every, every < 1 { throw EddyError("--every must be at least 1 (print every Nth step), got \(every)") }
        if freeRun < 1 { throw EddyError("--free-run must be at least 1 step, got \(freeRun)") }
        if trailingDays < 1 { throw EddyError("--trailing-days must be at least 1, got \(trailingDays)") }
        if !(threshold > 0 && threshold.isFinite) { throw EddyError("--threshold must be a finite number > 0, got \(threshold)") }
        if let lyapunov, !(lyapunov > 0 && lyapunov.isFinite) {
            throw EddyError("--lyapunov must be a finite exponent > 0 (per time unit), got \(lyapunov)")
        }
    }
}

func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s : s + String(repeating: " ", count: width - s.count) }

func evaluationJSON(_ r: Evaluation) -> JSON {
    let v = r.validPredictionTime
    var pairs: [(String, JSON)] = [
        ("variables", .array(r.variables.map { .string($0) })), ("horizon", .int(r.horizon)), ("dt", .number(r.dt)),
        ("origins", .int(r.origins)), ("mse", .number(r.mse)), ("mse_standardised", .number(r.mseStandardised)),
        ("mse_per_variable", .numbers(r.perVariableMSE)), ("non_finite_forecasts", .int(r.nonFiniteForecasts)),
        ("valid_prediction_time", .object([
            "threshold": .number(v.threshold), "median_steps": .number(v.medianSteps), "median_time": .number(v.medianTime),
            "median_lyapunov_times": .optional(v.medianLyapunovTimes), "lyapunov_exponent": .optional(v.lyapunovExponent),
            "censored": .int(v.censored),
        ])),
        ("steps", .array(r.steps.map { .object(["step": .int($0.step), "mse": .number($0.mse), "mse_standardised": .number($0.mseStandardised), "nrmse": .number($0.nrmse)]) })),
    ]
    if let c = r.climate {
        pairs.append(("climate", .object([
            "steps": .int(c.steps), "histogram_kl": .number(c.histogramKL), "spectrum_distance": .number(c.spectrumDistance),
            "histogram_kl_per_variable": .numbers(c.perVariableKL), "spectrum_distance_per_variable": .numbers(c.perVariableSpectrum),
        ])))
    }
    return .object(pairs)
}

/// Per step and variable: MSE of each method in data units, and Eddy's skill against each baseline.
func comparisonTable(_ c: Comparison) -> String {
    var lines: [String] = []
    let methods = c.mse.map(\.method)
    lines.append("per-variable MSE (data units; a gridded field's mean over its points) on \(c.origins) origins" + (methods.count > 1 ? "; skill = 1 − MSE(eddy)/MSE(baseline)" : ""))
    for (si, step) in c.steps.enumerated() {
        lines.append("")
        // Columns as wide as their headers: "skill vs persistence", never cut.
        let skillHeads = methods.dropFirst().map { "skill vs " + $0 }
        let mseWidth = max(13, (methods.map(\.count).max() ?? 0) + 2)
        let skillWidths = skillHeads.map { max(13, $0.count + 2) }
        let nameWidth = max(18, (c.variables.map(\.count).max() ?? 0) + 2)
        var head = pad("step \(step)", nameWidth) + methods.map { pad($0, mseWidth) }.joined()
        head += zip(skillHeads, skillWidths).map { pad($0, $1) }.joined()
        lines.append(head)
        for (i, v) in c.variables.enumerated() {
            let values = c.mse.map { $0.values[si][i] }
            var line = pad(v, nameWidth) + values.map { pad(Format.general($0, 4), mseWidth) }.joined()
            line += zip(values.dropFirst(), skillWidths).map { pad(Format.general(1 - values[0] / $0, 3), $1) }.joined()
            lines.append(line)
        }
    }
    return lines.joined(separator: "\n")
}

func comparisonJSON(_ c: Comparison) -> JSON {
    .object([
        "origins": .int(c.origins), "variables": .array(c.variables.map { .string($0) }), "steps": .array(c.steps.map { .int($0) }),
        "mse": .object(c.mse.map { m in (m.method, JSON.array(m.values.map { .numbers($0) })) }),
    ])
}

/// Latitude-weighted RMSE and ACC per field and level at the report steps, for the model and each baseline.
func griddedTable(_ g: GriddedScores, steps: [Int]) -> String {
    var lines = ["gridded fields, as WeatherBench 2: latitude-weighted RMSE (cos φ weights of mean 1, data units) and ACC "
                 + (g.hasACC ? "(anomalies from \(g.climatologySource); undefined for the climatology itself)" : "(none: no daily climatology)")]
    for step in steps {
        lines.append("")
        var head = pad("step \(step) (\(g.forecasts(step: step)))", 22) + g.methods.map { pad("RMSE " + $0.prefix(7), 14) }.joined()
        if g.hasACC { head += g.methods.map { pad("ACC " + $0.prefix(7), 13) }.joined() }
        lines.append(head)
        for (gi, group) in g.groups.enumerated() {
            var line = pad("\(group.name) (\(group.columns.count))", 22)
            line += g.methods.indices.map { pad(Format.general(g.rmse(method: $0, group: gi, step: step), 4), 14) }.joined()
            if g.hasACC {
                line += g.methods.indices.map { k in
                    let a = g.acc(method: k, group: gi, step: step)
                    return pad(a.isFinite ? Format.fixed(a, 3) : "—", 13)
                }.joined()
            }
            lines.append(line)
        }
    }
    return lines.joined(separator: "\n")
}

func griddedJSON(_ g: GriddedScores) -> JSON {
    let steps = Array(1...g.horizon)
    func table(_ value: (Int, Int, Int) -> Double) -> JSON {
        .object(g.methods.enumerated().map { k, m in (m, JSON.array(g.groups.indices.map { gi in .numbers(steps.map { value(k, gi, $0) }) })) })
    }
    return .object([
        "weights": .string("cos(latitude), normalised to mean 1 over each field's points"),
        "climatology": g.hasACC ? .string(g.climatologySource) : .null,
        "fields": .array(g.groups.map { .object(["name": .string($0.name), "points": .int($0.columns.count)]) }),
        "steps": .array(steps.map { .int($0) }),
        "forecasts": .array(steps.map { .int(g.forecasts(step: $0)) }),
        "rmse": table { g.rmse(method: $0, group: $1, step: $2) },
        "acc": table { g.acc(method: $0, group: $1, step: $2) },
    ])
}
