import ArgumentParser
import Eddy
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

struct ForecastOptions: ParsableArguments {
    @Option(help: "The model file written by eddy train.") var model: String
    @OptionGroup var data: DataOptions
    @Option(parsing: .unconditional, help: "Steps to forecast.") var horizon: Int
    @Option(help: "Origins: 'last' (the last k rows of each trajectory), 'every:S' (every S rows where the horizon has truth) or a list of row indices '100,200'.")
    var origins: String?

    func origin(default d: OriginChoice) throws -> OriginChoice {
        guard let o = origins else { return d }
        if o == "last" { return .last }
        if o.hasPrefix("every:"), let s = Int(o.dropFirst(6)), s > 0 { return .every(stride: s) }
        let list = splitList(o).compactMap(Int.init)
        guard !list.isEmpty, list.count == splitList(o).count, list.allSatisfy({ $0 >= 0 }) else {
            throw EddyError("--origins: expected 'last', 'every:S' or row indices like '100,200', got '\(o)'")
        }
        return .rows(list)
    }

    /// The files this command reads, for `OutputGuard`.
    var inputPaths: [(option: String, path: String?)] {
        // NetCDF data may be several files (a directory, glob or list): each is an input.
        let files = NetCDFReader.names(data.data) && !FileSystem.exists(data.data) ? (try? NetCDFReader.files(data.data)) ?? [] : []
        return [("--model", model), ("--data", data.data)] + files.map { ("--data", $0) }
    }

    /// Option ranges that need no file: checked before anything is read.
    func checkOptions() throws {
        if horizon < 1 { throw EddyError("--horizon must be at least 1, got \(horizon)") }
    }

    /// Loads the model and the trajectories with the model's own columns. `heldPerStep` is how many values one
    /// origin holds per horizon step per variable beyond the forecast and its truth (baselines); a horizon whose
    /// buffers for a single origin would pass `SizeGuard.maxValues` is refused before the data are read.
    func load(heldPerStep: Int = 0) throws -> (Model, [Segment], DataSpec) {
        let (model, segments, spec, _) = try loadWithAttributes(heldPerStep: heldPerStep)
        return (model, segments, spec)
    }

    /// `load`, and the NetCDF attributes of the data (units, names of the fields and coordinates) for a forecast file.
    func loadWithAttributes(heldPerStep: Int = 0) throws -> (Model, [Segment], DataSpec, NetCDFAttributes?) {
        try checkOptions()
        let model = try readModel(self.model)
        try checkHorizon(model: model, origins: 1, heldPerStep: heldPerStep)
        if NetCDFReader.names(data.data) {
            for file in try NetCDFReader.files(data.data) {
                try InputGuard.requireRegularFile(file, option: "--data", reason: "netCDF files are read by random access")
            }
        }
        let spec = try data.spec(for: model)
        for note in data.overrides(of: model) { printError("eddy: note: \(note)") }
        // A failure to read the data with settings the model brought (not typed here) says so.
        let stored = data.storedSettings(of: model)
        let origin = stored.isEmpty ? "" : " (settings stored in the model \(self.model) and applied here: \(stored.joined(separator: "; ")); give an option to replace one)"
        let loaded: (reader: RowReader, segments: [Segment])
        do { loaded = try DataSource.loadSegments(spec) } catch let e as EddyError { throw EddyError(e.message + origin) }
        let (reader, segments) = loaded
        for w in reader.warnings { printError("eddy: warning: \(w)") }
        if reader.variableNames != model.metadata.variables || reader.inputNames != model.metadata.inputs {
            throw EddyError("\(spec.path): the data give variables \(reader.variableNames) and inputs \(reader.inputNames); the model \(self.model) needs \(model.metadata.variables) and \(model.metadata.inputs)" + origin)
        }
        if segments.isEmpty { throw EddyError("\(spec.path): no valid rows") }
        return (model, segments, spec, (reader as? NetCDFReader)?.attributes)
    }

    /// Refuses a horizon whose buffers (forecast, truth, inputs and `heldPerStep` more per variable, for `origins`
    /// origins held at once) would overflow or pass `SizeGuard.maxValues`.
    func checkHorizon(model: Model, origins: Int, heldPerStep: Int = 0, advice: String? = nil) throws {
        let n = model.outputCount, m = model.metadata.inputs.count
        let perStep = SizeGuard.sum(ofProducts: [[2 + heldPerStep, n], [m]])
        let values = perStep.flatMap { SizeGuard.product([origins, horizon, $0]) }
        try SizeGuard.check(values: values, what: "--horizon \(horizon): \(origins == 1 ? "one forecast" : "\(origins) forecasts") of \(plural(horizon, "step")) of \(plural(n, "variable"))",
                            advice: advice ?? "use fewer --horizon steps")
    }
}

struct Forecast: ParsableCommand {
    /// Where an .npy forecast's cases go: `f.npy` → `f.cases.csv` (forecast index, episode, origin row and, with
    /// times, the reference time); nil for other outputs.
    static func casesPath(_ out: String) -> String? {
        guard out.lowercased().hasSuffix(".npy") else { return nil }
        return String(out.dropLast(4)) + ".cases.csv"
    }

    static let configuration = CommandConfiguration(
        abstract: "Forecast H steps ahead with a trained model, from the end of each trajectory or from given origins.",
        discussion: """
        The CSV output has one row per trajectory (and origin) and step: the episode column, 'origin_row' (the origin's row in its trajectory segment) when origins were given, 'step' (1…H), 'time' with --time-column, one column per variable, in the data's units, and 'flag' (always there: 'diverged' from the step where a forecast left the training range by more than its width or turned non-finite, else empty). --out - writes the CSV to standard output. An .npy output holds (B, H, n), with its cases beside it in OUT.cases.csv (forecast index, episode, origin_row, reference_time). A .nc output is CF-1.8: gridded fields back on their grid, VAR(forecast, step, DIMS…), with the coordinates read from the variable names VAR[DIM=VALUE:…] and the units and names the data file gave them; episode(forecast), reference_time(forecast), time(forecast, step) (valid time), forecast_period(step) (the lead), origin_row and flag. Models with inputs take future inputs from the data, or from --future-inputs past its end.
        Example: eddy forecast --model m.safetensors --data test.csv --episode-column episode --horizon 50 --out f.csv --plot f.svg
        """
    )

    @OptionGroup var options: ForecastOptions
    @Option(help: "CSV with the model's input columns (and the episode column): inputs for the steps past the end of the data.") var futureInputs: String?
    @Option(help: "Output: .csv, .npy or .nc (netCDF, fields on their grid), or - for CSV on standard output.") var out: String
    @Option(help: "Also draw truth, forecast and baselines per variable (or maps, for gridded fields) of one forecast as an SVG.") var plot: String?
    @Option(parsing: .unconditional, help: "The forecast --plot draws: its number (1-based) among the forecasts written, in their order.") var plotIndex = 1
    @Option(help: "Gridded fields: the level --plot maps, by its value as in the variable names (e.g. 500 for VAR[level=500:…]) or its index (default: the first).") var plotLevel: String?
    @Option(help: "Units of the variables for the plot's axes, as NAME=UNIT pairs, comma-separated (e.g. temp=°F,humid=%,wind_speed=mph,pressure=mbar); default: those stored in the model, else 'data units'.") var units: String?
    @Flag(help: "Print a JSON report on stdout (not with --out -).") var json = false

    func run() throws {
        try reportingErrors {
            // Everything that can be checked before the work: option ranges, then the outputs (not an input, not
            // each other, not a special file, in a writable directory).
            try options.checkOptions()
            let sidecar = Forecast.casesPath(out)
            try OutputPath.checkStdout([("--out", out)], json: json)
            try OutputGuard.check(outputs: OutputPath.files([("--out", out), ("--out (its cases)", sidecar), ("--plot", plot)]),
                                  inputs: options.inputPaths + [("--future-inputs", futureInputs)])
            try OutputPath.check(out, option: "--out", [".csv", ".npy", ".nc"], stdout: true)
            try OutputPath.check(plot, option: "--plot", [".svg"])
            let unitMap = try parseUnits(units)
            if plotIndex < 1 { throw EddyError("--plot-index must be at least 1 (the first forecast), got \(plotIndex)") }
            let (model, segments, spec, attributes) = try options.loadWithAttributes()
            if plot != nil { try MapPlot.checkLevel(plotLevel, model: model) } else if plotLevel != nil { throw EddyError("--plot-level applies to --plot; give --plot FILE.svg") }
            try checkUnits(unitMap, variables: model.metadata.variables)
            // Units given here, over those stored in the model (train --units).
            let plotUnits = (model.metadata.units ?? [:]).merging(unitMap) { $1 }
            var future: [String: [Double]] = [:]
            if let f = futureInputs {
                guard !model.metadata.inputs.isEmpty else { throw EddyError("--future-inputs: the model has no inputs") }
                guard !model.externalInputs.isEmpty else { throw EddyError("--future-inputs: the model computes all its inputs (calendar) itself") }
                let (_, segs) = try DataSource.loadSegments(DataSpec(path: f, columns: model.externalInputs, inputs: [], episodeColumn: spec.episodeColumn))
                for s in segs { future[s.episode, default: []] += s.values }
            }
            let h = options.horizon, n = model.outputCount
            let picks = try Forecaster.origins(model: model, segments: segments, choice: options.origin(default: .last), horizon: h,
                                               path: spec.path)
            if plot != nil && plotIndex > picks.count {
                throw EddyError("--plot-index \(plotIndex): there \(picks.count == 1 ? "is" : "are") only \(plural(picks.count, "forecast"))")
            }
            let lower = out.lowercased()
            // .nc and .npy are written batch by batch of origins (at most 2²² forecast values each), so a wide state's
            // forecasts are never all held; a CSV is built whole.
            let batch = lower.hasSuffix(".nc") || lower.hasSuffix(".npy") ? originsPerBatch(horizon: h, variables: n) : picks.count
            try options.checkHorizon(model: model, origins: min(batch, picks.count),
                                     advice: "use fewer --horizon steps or --origins, or write .npy or .nc (written in batches of origins)")
            let timed = picks.allSatisfy { segments[$0.segment].times.count == segments[$0.segment].rowCount }
            let netcdf = lower.hasSuffix(".nc") ? try ForecastNetCDF(path: out, model: model, count: picks.count, horizon: h, timed: timed,
                                                                     attributes: attributes) : nil
            let npy = lower.hasSuffix(".npy") ? try AtomicFile(path: out) : nil
            try npy?.write(NPY.header(shape: [picks.count, h, n]))
            // An .npy holds numbers only: which trajectory (station), origin and time each forecast is goes beside it.
            let cases = try sidecar.map { try AtomicFile(path: $0) }
            let dates = model.metadata.shaping?.timesAreDates == true
            try cases?.write(Array("forecast,\(spec.episodeColumn ?? "episode"),origin_row\(timed ? ",reference_time" : "")\n".utf8))
            var diverged: [(episode: String, origin: Int, step: Int)] = []
            var first: (ForecastCase, [Double])?
            for start in stride(from: 0, to: picks.count, by: batch) {
                let batchCases = try Forecaster.cases(model: model, segments: segments, picks: picks[start..<min(picks.count, start + batch)],
                                                  horizon: h, futureInputs: future, path: spec.path)
                let values = Forecaster.run(model: model, cases: batchCases, horizon: h)
                // The forecast to plot, when it is in this batch.
                let local = plotIndex - 1 - start
                if first == nil, local >= 0, local < batchCases.count { first = (batchCases[local], Array(values[(local * h * n)..<((local + 1) * h * n)])) }
                // Forecasts that turned non-finite or left the training range by more than its width: flagged from that step on.
                let bad = Evaluator.diverged(model: model, forecasts: values, cases: batchCases.count, horizon: h)
                diverged += bad.map { (batchCases[$0.case].episode, batchCases[$0.case].origin, $0.step) }
                let firstBad = Dictionary(uniqueKeysWithValues: bad.map { ($0.case, $0.step) })
                if let netcdf {
                    try netcdf.write(cases: batchCases, forecasts: values, firstDiverged: firstBad, at: start)
                } else if let npy {
                    try npy.write(doubles: values)
                    var text = ""
                    for (c, fc) in batchCases.enumerated() {
                        let t = timed ? "," + (fc.time.map { dates ? TimeParser.iso($0) : "\($0)" } ?? "") : ""
                        text += "\(start + c),\(csvField(fc.episode)),\(fc.origin)\(t)\n"
                    }
                    try cases?.write(Array(text.utf8))
                } else {
                    try OutputPath.write(forecastCSV(model: model, cases: batchCases, values: values, horizon: h, firstBad: firstBad,
                                                     episodeColumn: spec.episodeColumn, withOrigin: options.origins != nil && options.origins != "last"),
                                         to: out)
                }
            }
            try netcdf?.commit()
            try npy?.commit()
            try cases?.commit()
            if let plot, let (fc, forecast) = first {
                try AtomicFile.write(forecastPlot(model: model, fc: fc, forecast: forecast, horizon: h, units: plotUnits, level: plotLevel), to: plot)
            }
            if !diverged.isEmpty {
                printError("eddy: warning: \(diverged.count) of \(plural(picks.count, "forecast")) turned non-finite or left the training range by more than its width (marked 'diverged' in the flag column from that step on); raise --ridge")
            }
            let names = model.metadata.variables
            if json {
                print(JSON.object([
                    "out": .string(out), "plot": plot.map { .string($0) } ?? .null, "forecasts": .int(picks.count), "horizon": .int(h),
                    "dt": .number(model.metadata.dt), "variables": .array(names.map { .string($0) }),
                    "diverged": .array(diverged.map { .object([("episode", .string($0.episode)), ("origin", .int($0.origin)), ("step", .int($0.step))]) }),
                ]).text)
                return
            }
            let listed = names.count <= 12 ? names.joined(separator: ",") : "\(names.count) variables (\(names[0]) … \(names[names.count - 1]))"
            let line = "wrote \(out == "-" ? "the forecast CSV to standard output" : out): \(plural(picks.count, "forecast")) × \(plural(h, "step")) of \(listed)\(plot.map { ", plot \($0)" } ?? "")"
            // With --out - the CSV is stdout; the summary goes to stderr.
            if out == "-" { printError("eddy: note: " + line) } else { print(line) }
        }
    }
}

/// Origins forecast together when a command works batch by batch: at most 2²² forecast values (32 MiB), or
/// `EDDY_FORECAST_BATCH_VALUES` (tests set it small to exercise several batches).
func originsPerBatch(horizon: Int, variables: Int) -> Int {
    let values = getenv("EDDY_FORECAST_BATCH_VALUES").flatMap { Int(String(cString: $0)) } ?? (1 << 22)
    return max(1, values / max(1, horizon * variables))
}

/// The forecast CSV: one row per forecast and step (see `Forecast`'s discussion).
func forecastCSV(model: Model, cases: [ForecastCase], values: [Double], horizon h: Int, firstBad: [Int: Int], episodeColumn: String?,
                 withOrigin: Bool) -> String {
    let n = model.outputCount
    // The flag column is always there, so the layout does not depend on whether some forecast diverged.
    // With a named time column (--time-column), each row also says when it is valid (a date when the data's times are dates).
    let timed = model.metadata.shaping?.timeColumn != nil && cases.allSatisfy { $0.time != nil }
    let dates = model.metadata.shaping?.timesAreDates == true
    var text = ([episodeColumn ?? "episode"] + (withOrigin ? ["origin_row"] : []) + ["step"] + (timed ? ["time"] : [])
                + model.metadata.variables + ["flag"]).joined(separator: ",") + "\n"
    for (c, fc) in cases.enumerated() {
        for s in 0..<h {
            var row = [csvField(fc.episode)] + (withOrigin ? ["\(fc.origin)"] : []) + ["\(s + 1)"]
            if timed, let t0 = fc.time {
                let t = t0 + Double(s + 1) * model.metadata.dt
                row.append(dates ? TimeParser.iso(t) : "\(t)")
            }
            for i in 0..<n { let v = values[(c * h + s) * n + i]; row.append(v.isFinite ? "\(v)" : "nan") }
            row.append(firstBad[c].map { s + 1 >= $0 ? "diverged" : "" } ?? "")
            text += row.joined(separator: ",") + "\n"
        }
    }
    return text
}

func csvField(_ s: String) -> String {
    s.contains(",") || s.contains("\"") ? "\"" + s.replacingAll("\"", "\"\"") + "\"" : s
}

extension String {
    func replacingAll(_ a: Character, _ b: String) -> String {
        var out = ""
        for c in self { if c == a { out += b } else { out.append(c) } }
        return out
    }
}

/// Truth (history and what followed) and forecast, one panel per variable (at most 16), time in the model's units
/// (hours after the origin when its times are dates), with the baselines the model has (persistence always; the
/// training climatology by hour of day when it has one) beside the forecast; a forecast that diverged is marked at
/// the step it did, and the y axis is kept to the finite part before it. Maps of truth, forecast and error for
/// gridded fields.
func forecastPlot(model: Model, fc: ForecastCase, forecast: [Double], horizon: Int, units: [String: String] = [:], level: String? = nil) throws -> String {
    // A gridded field's unit is given by its variable name (q=K).
    let fieldUnit = GridLayout.parse(model.metadata.variables)?.variables.first(where: { $0.dimensions.count >= 2 }).flatMap { units[$0.name] }
    if let map = try MapPlot.forecast(model: model, case: fc, forecast: forecast, horizon: horizon, level: level, unit: fieldUnit) { return map.render() }
    let n = model.outputCount, k = model.layout.delays, shown = min(n, 16)
    // Clock times in seconds read better in hours.
    let dates = model.metadata.shaping?.timesAreDates == true
    let hours = (model.metadata.shaping?.timeColumn != nil || dates) && model.metadata.dt >= 3600
    let dt = hours ? model.metadata.dt / 3600 : model.metadata.dt
    let xLabel = hours ? "hours after origin" : (ModelTime.dtIsStored(model) ? "time after origin" : "steps after origin (dt = 1 assumed)")
    let divergedAt = Evaluator.diverged(model: model, forecasts: forecast, cases: 1, horizon: horizon).first?.step
    // The training climatology by phase of the day, where the model has one and the origin has a time.
    var climatology: [Double]? = nil
    if let p = model.metadata.climatologyPeriod, let clim = model.climatology, let t0 = fc.time, clim.count >= p * n {
        climatology = (0..<horizon).flatMap { h -> [Double] in
            let phase = DataStatistics.phase(t0 + Double(h + 1) * model.metadata.dt, dt: model.metadata.dt, period: p)
            return Array(clim[(phase * n)..<((phase + 1) * n)])
        }
    }
    var panels: [LinePlot.Panel] = []
    for i in 0..<shown {
        let hist = stride(from: i, to: fc.history.count, by: n).map { fc.history[$0] }
        let truth = stride(from: i, to: fc.truth.count, by: n).map { fc.truth[$0] }
        let tHist = (0..<hist.count).map { Double($0 - (k - 1)) * dt }
        let tTruth = (0..<truth.count).map { Double($0 + 1) * dt }
        let tAhead = (0..<horizon).map { Double($0 + 1) * dt }
        var series = [LinePlot.Series(name: "truth", x: tHist + tTruth, y: hist + truth, color: "#000000")]
        let f = stride(from: i, to: forecast.count, by: n).map { forecast[$0] }
        series.append(LinePlot.Series(name: "forecast (\(model.metadata.form.rawValue))", x: [0] + tAhead, y: [hist.last ?? .nan] + f, color: "#D55E00"))
        series.append(LinePlot.Series(name: "persistence", x: [0] + tAhead, y: [Double](repeating: hist.last ?? .nan, count: horizon + 1),
                                      dashed: true, color: "#999999"))
        if let climatology {
            series.append(LinePlot.Series(name: "climatology (hour of day)", x: tAhead, y: stride(from: i, to: climatology.count, by: n).map { climatology[$0] },
                                          dashed: true, color: "#0072B2"))
        }
        let name = model.metadata.variables[i]
        // A pivoted variable NAME@STATION takes NAME's unit.
        let unit = units[name] ?? name.split(separator: "@").first.flatMap { units[String($0)] }
        var panel = LinePlot.Panel(title: name, xLabel: xLabel, yLabel: unit.map { "\(name) (\($0))" } ?? "\(name) (data units)", series: series)
        panel.yPadding = 0.04
        if let s = divergedAt {
            // The axis keeps to what is finite and in range before the divergence: the good part stays readable.
            let before = hist + truth + Array(f.prefix(max(0, s - 1)))
            let finite = before.filter { $0.isFinite }
            if let lo = finite.min(), let hi = finite.max() {
                let pad = max(hi - lo, abs(hi) * 1e-6, 1e-12) * 0.1
                panel.yRange = (lo - pad)...(hi + pad)
            }
            panel.marks = [LinePlot.Mark(x: Double(s) * dt, label: "diverged at step \(s)")]
        }
        panels.append(panel)
    }
    let more = shown < n ? " (the first \(shown) of \(n) variables)" : ""
    let origin = dates && fc.time != nil ? "origin \(TimeParser.iso(fc.time!))" : fc.time.map { "origin t = \(Format.general($0))" } ?? "origin row \(fc.origin)"
    var plot = LinePlot(title: "Forecast from trajectory \(fc.episode), \(origin)\(more)", panels: panels)
    plot.width = 760
    return plot.render()
}

/// Refuses a `--units` name that is no variable of the model (nor a gridded field's name, nor the NAME of NAME@VALUE).
func checkUnits(_ units: [String: String], variables: [String]) throws {
    let fields = Set(GridLayout.parse(variables)?.variables.map(\.name) ?? [])
    let pivoted = Set(variables.compactMap { $0.contains("@") ? $0.split(separator: "@").first.map(String.init) : nil })
    if let bad = units.keys.sorted().first(where: { !variables.contains($0) && !fields.contains($0) && !pivoted.contains($0) }) {
        throw EddyError("--units: '\(bad)' is not a variable of the model (its variables: \(variables.prefix(12).joined(separator: ","))\(variables.count > 12 ? ",…" : ""))")
    }
}

/// `--units temp=°F,humid=%`: variable name → unit.
func parseUnits(_ text: String?) throws -> [String: String] {
    guard let text else { return [:] }
    var out: [String: String] = [:]
    for part in splitList(text) {
        let kv = part.split(separator: "=", maxSplits: 1).map(String.init)
        guard kv.count == 2, !kv[0].isEmpty, !kv[1].isEmpty else { throw EddyError("--units: expected NAME=UNIT pairs like temp=°F,humid=%, got '\(part)'") }
        out[kv[0]] = kv[1]
    }
    return out
}
