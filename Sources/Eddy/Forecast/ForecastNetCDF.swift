import CNetCDF

/// Forecasts of gridded fields back on their grid, as netCDF: dimensions `forecast` (one per origin), `step`
/// (1…H) and each variable's own grid dimensions (read back from the column names `VAR[DIM=VALUE:…]`, with their
/// coordinate variables); `VAR(forecast, step, …)` in the data's units, `origin_row(forecast)`, `flag(forecast, step)`
/// (1 from the step a forecast diverged) and, when the data have times, `time(forecast, step)`, the time each
/// forecast step is valid (CF: seconds since 1970-01-01 when the data's times are dates). A name that is taken
/// already (a variable called `step`, a grid dimension called `time`) gets a suffix (`step_2`), and `/`, which netCDF
/// names cannot hold, becomes `_`.
public final class ForecastNetCDF {
    private let file: NetCDFWriter
    private let model: Model
    private let horizon: Int
    private let layout: GridLayout
    private let stepVar: Int32, originVar: Int32, flagVar: Int32
    private let timeVar: Int32?
    private var variableIDs: [Int32] = []

    /// Writes all forecasts at once.
    public static func write(path: String, model: Model, cases: [ForecastCase], forecasts: [Double], horizon h: Int,
                             firstDiverged: [Int: Int]) throws {
        let file = try ForecastNetCDF(path: path, model: model, count: cases.count, horizon: h, timed: cases.allSatisfy { $0.time != nil })
        try file.write(cases: cases, forecasts: forecasts, firstDiverged: firstDiverged, at: 0)
        try file.commit()
    }

    /// Defines the file for `count` forecasts of `h` steps (with valid times when `timed`); `write` fills it batch by batch.
    public init(path: String, model: Model, count: Int, horizon h: Int, timed: Bool) throws {
        self.model = model
        horizon = h
        let names = model.metadata.variables
        // Columns that do not form a grid are written as plain series (forecast, step).
        layout = GridLayout.parse(names)
            ?? GridLayout(variables: names.enumerated().map { .init(name: $0.element, dimensions: [], columns: [$0.offset]) })
        var used: Set<String> = ["forecast", "step", "origin_row", "flag", "time"]
        func unique(_ name: String) -> String {
            let base = String(name.map { $0 == "/" ? "_" : $0 })
            var candidate = base.isEmpty ? "_" : base, k = 2
            while used.contains(candidate) {
                candidate = "\(base)_\(k)"
                k += 1
            }
            used.insert(candidate)
            return candidate
        }
        file = try NetCDFWriter(path: path)
        let forecastDim = try file.dimension("forecast", count)
        let stepDim = try file.dimension("step", h)
        try file.attribute(NC_GLOBAL, "Conventions", "CF-1.8")
        try file.attribute(NC_GLOBAL, "title", "eddy forecasts")
        try file.attribute(NC_GLOBAL, "source", "eddy \(Eddy.version): \(model.metadata.form.rawValue) model, width \(model.metadata.width), delays \(model.metadata.delays)"
                           + (model.metadata.reduction.map { ", \($0.components) principal components" } ?? ""))
        stepVar = try file.variable("step", [stepDim], integer: true, attributes: [("long_name", "forecast step (1 = one dt after the origin)")])
        originVar = try file.variable("origin_row", [forecastDim], integer: true, attributes: [("long_name", "row of the origin within its trajectory segment")])
        flagVar = try file.variable("flag", [forecastDim, stepDim], integer: true,
                                    attributes: [("long_name", "1 where the forecast turned non-finite or left the training range by more than its width")])
        let dates = model.metadata.shaping?.timesAreDates == true
        timeVar = timed ? try file.variable("time", [forecastDim, stepDim], attributes: dates
            ? [("units", "seconds since 1970-01-01 00:00:00"), ("calendar", "proleptic_gregorian"), ("long_name", "valid time")]
            : [("long_name", "valid time (units of the data's time column)")]) : nil
        // Grid dimensions, shared between variables with the same name and coordinates.
        var dims: [(GridLayout.Dimension, Int32)] = []
        var coordinates: [(Int32, [Double])] = []
        for v in layout.variables {
            var ids: [Int32] = [forecastDim, stepDim]
            for d in v.dimensions {
                if let existing = dims.first(where: { $0.0 == d }) {
                    ids.append(existing.1)
                    continue
                }
                let name = unique(d.name)
                let id = try file.dimension(name, d.labels.count)
                dims.append((d, id))
                ids.append(id)
                let values = d.values ?? d.labels.indices.map(Double.init)
                coordinates.append((try file.variable(name, [id], attributes: d.values == nil ? [("long_name", "index along \(d.name)")] : []), values))
            }
            variableIDs.append(try file.variable(unique(v.name), ids, attributes: [("long_name", "forecast of \(v.name)")]))
        }
        try file.endDefinitions()
        try file.put(stepVar, start: [0], count: [h], ints: (1...h).map(Int32.init))
        for (id, values) in coordinates { try file.put(id, start: [0], count: [values.count], values) }
    }

    /// Writes the forecasts of `cases` (`cases.count × H × n`) as forecasts `offset…`; `firstDiverged` maps a case
    /// of this batch to the first step it diverged.
    public func write(cases: [ForecastCase], forecasts: [Double], firstDiverged: [Int: Int], at offset: Int) throws {
        let h = horizon, n = model.outputCount, b = cases.count
        guard b > 0 else { return }
        try file.put(originVar, start: [offset], count: [b], ints: cases.map { Int32(clamping: $0.origin) })
        var flags = [Int32](repeating: 0, count: b * h)
        for (c, first) in firstDiverged { for s in (first - 1)..<h { flags[c * h + s] = 1 } }
        try file.put(flagVar, start: [offset, 0], count: [b, h], ints: flags)
        if let timeVar {
            let times = cases.flatMap { fc in (1...h).map { (fc.time ?? .nan) + Double($0) * model.metadata.dt } }
            try file.put(timeVar, start: [offset, 0], count: [b, h], times)
        }
        for (v, id) in zip(layout.variables, variableIDs) {
            let shape = v.dimensions.map(\.labels.count)
            var values = [Double](repeating: .nan, count: b * h * v.columns.count)
            for r in 0..<(b * h) {
                for (k, column) in v.columns.enumerated() {
                    let x = forecasts[r * n + column]
                    values[r * v.columns.count + k] = x.isFinite ? x : .nan
                }
            }
            try file.put(id, start: [offset, 0] + [Int](repeating: 0, count: shape.count), count: [b, h] + shape, values)
        }
    }

    /// Closes the file and moves it into place.
    public func commit() throws { try file.commit() }
}
