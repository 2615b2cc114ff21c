import CNetCDF

/// Forecasts as a CF-1.8 netCDF file: dimensions `forecast` (one per origin), `step` (1…H) and, for gridded fields,
/// each variable's own grid dimensions (read back from the column names `VAR[DIM=VALUE:…]`, with their coordinate
/// variables). Variables:
/// - `VAR(forecast, step, …)` in the data's units, with the `units`, `long_name` and `standard_name` the data file
///   gave it (`attributes`), and `coordinates` naming the auxiliary coordinates below; columns that form no grid
///   (stations, CSV data) are plain series `VAR(forecast, step)`.
/// - the grid's coordinate variables with the data's attributes (`units`, `standard_name`, `axis`, `positive`).
/// - `episode(forecast)`: the trajectory (station) each forecast comes from, so forecasts can be split back by it;
///   `origin_row(forecast)`: the origin's row within its trajectory segment; `flag(forecast, step)`: 1 from the step
///   a forecast diverged.
/// - `step(step)` and `forecast_period(step)`, the lead `step × dt` (CF standard name `forecast_period`, in hours
///   or seconds when the data's times are dates).
/// - when the data have times: `reference_time(forecast)`, the origin's time (`forecast_reference_time`), and
///   `time(forecast, step)`, the valid time of each step (`time`); both as seconds since 1970-01-01 when the data's
///   times are dates, else in the data's own time units.
/// A name that is taken already (a variable called `step`, a grid dimension called `time`) gets a suffix (`step_2`),
/// and `/`, which netCDF names cannot hold, becomes `_`.
public final class ForecastNetCDF {
    private let file: NetCDFWriter
    private let model: Model
    private let horizon: Int
    private let layout: GridLayout
    private let stepVar: Int32, originVar: Int32, flagVar: Int32, episodeVar: Int32, leadVar: Int32
    private let timeVar: Int32?, referenceVar: Int32?
    private var variableIDs: [Int32] = []

    /// Writes all forecasts at once.
    public static func write(path: String, model: Model, cases: [ForecastCase], forecasts: [Double], horizon h: Int,
                             firstDiverged: [Int: Int], attributes: NetCDFAttributes? = nil) throws {
        let file = try ForecastNetCDF(path: path, model: model, count: cases.count, horizon: h, timed: cases.allSatisfy { $0.time != nil },
                                      attributes: attributes)
        try file.write(cases: cases, forecasts: forecasts, firstDiverged: firstDiverged, at: 0)
        try file.commit()
    }

    /// Defines the file for `count` forecasts of `h` steps (with valid times when `timed`); `write` fills it batch by
    /// batch. `attributes`: the data file's attributes of the fields and coordinates, copied onto them.
    public init(path: String, model: Model, count: Int, horizon h: Int, timed: Bool, attributes: NetCDFAttributes? = nil) throws {
        self.model = model
        horizon = h
        let names = model.metadata.variables
        // Columns that do not form a grid are written as plain series (forecast, step).
        layout = GridLayout.parse(names)
            ?? GridLayout(variables: names.enumerated().map { .init(name: $0.element, dimensions: [], columns: [$0.offset]) })
        var used: Set<String> = ["forecast", "step", "origin_row", "flag", "time", "reference_time", "forecast_period", "episode"]
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
        let dates = model.metadata.shaping?.timesAreDates == true
        let dt = model.metadata.dt
        file = try NetCDFWriter(path: path)
        let forecastDim = try file.dimension("forecast", count)
        let stepDim = try file.dimension("step", h)
        try file.attribute(NC_GLOBAL, "Conventions", "CF-1.8")
        try file.attribute(NC_GLOBAL, "title", "eddy forecasts")
        try file.attribute(NC_GLOBAL, "source", "eddy \(Eddy.version): \(model.metadata.form.rawValue) model, width \(model.metadata.width), delays \(model.metadata.delays)"
                           + (model.metadata.reduction.map { ", \($0.components) principal components" } ?? ""))
        stepVar = try file.variable("step", [stepDim], integer: true, attributes: [("long_name", "forecast step (1 = one dt after the origin)"), ("units", "1")])
        // The lead: in hours when dt is a whole number of hours, else seconds; without dates, in the data's time units.
        let hours = dates && dt >= 3600 && dt.truncatingRemainder(dividingBy: 3600) == 0
        leadVar = try file.variable("forecast_period", [stepDim], attributes: dates
            ? [("standard_name", "forecast_period"), ("long_name", "lead time (valid time minus reference time)"), ("units", hours ? "hours" : "seconds")]
            : [("long_name", "lead (valid time minus reference time, in the data's time units)"), ("units", "1")])
        originVar = try file.variable("origin_row", [forecastDim], integer: true,
                                      attributes: [("long_name", "row of the origin within its trajectory segment"), ("units", "1")])
        episodeVar = try file.stringVariable("episode", [forecastDim], attributes: [("long_name", "trajectory (episode, station) the forecast starts from"), ("cf_role", "trajectory_id")])
        flagVar = try file.variable("flag", [forecastDim, stepDim], integer: true,
                                    attributes: [("long_name", "1 where the forecast turned non-finite or left the training range by more than its width"), ("units", "1")])
        let timeUnits: [(String, String)] = dates ? [("units", "seconds since 1970-01-01 00:00:00"), ("calendar", "proleptic_gregorian")] : [("units", "1")]
        timeVar = timed ? try file.variable("time", [forecastDim, stepDim], attributes: [("standard_name", "time"),
            ("long_name", dates ? "valid time" : "valid time (in the data's time units)")] + timeUnits) : nil
        referenceVar = timed ? try file.variable("reference_time", [forecastDim], attributes: [("standard_name", "forecast_reference_time"),
            ("long_name", dates ? "forecast reference time (the origin's time)" : "forecast reference time (the origin's time, in the data's time units)")] + timeUnits) : nil
        let auxiliary = (timed ? "time reference_time " : "") + "forecast_period episode"
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
                var a: [(String, String)] = d.values == nil ? [("long_name", "index along \(d.name)"), ("units", "1")] : []
                if d.values != nil {
                    let source = attributes?.coordinates[d.name] ?? [:]
                    let lower = d.name.lowercased()
                    var defaults: [String: String] = [:]
                    if ["lat", "latitude"].contains(lower) { defaults = ["units": "degrees_north", "standard_name": "latitude", "axis": "Y"] }
                    if ["lon", "longitude"].contains(lower) { defaults = ["units": "degrees_east", "standard_name": "longitude", "axis": "X"] }
                    a = source.merging(defaults) { mine, _ in mine }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
                    if !a.contains(where: { $0.0 == "units" }) { a.append(("units", "1")) }
                }
                coordinates.append((try file.variable(name, [id], attributes: a), values))
            }
            let source = attributes?.variables[v.name] ?? [:]
            var a: [(String, String)] = [("long_name", source["long_name"].map { "forecast of \($0)" } ?? "forecast of \(v.name)")]
            if let u = source["units"] { a.append(("units", u)) }
            if let s = source["standard_name"] { a.append(("standard_name", s)) }
            a.append(("coordinates", auxiliary))
            variableIDs.append(try file.variable(unique(v.name), ids, attributes: a))
        }
        try file.endDefinitions()
        try file.put(stepVar, start: [0], count: [h], ints: (1...h).map(Int32.init))
        try file.put(leadVar, start: [0], count: [h], (1...h).map { Double($0) * dt / (hours ? 3600 : 1) })
        for (id, values) in coordinates { try file.put(id, start: [0], count: [values.count], values) }
    }

    /// Writes the forecasts of `cases` (`cases.count × H × n`) as forecasts `offset…`; `firstDiverged` maps a case
    /// of this batch to the first step it diverged.
    public func write(cases: [ForecastCase], forecasts: [Double], firstDiverged: [Int: Int], at offset: Int) throws {
        let h = horizon, n = model.outputCount, b = cases.count
        guard b > 0 else { return }
        try file.put(originVar, start: [offset], count: [b], ints: cases.map { Int32(clamping: $0.origin) })
        try file.put(episodeVar, start: [offset], count: [b], strings: cases.map(\.episode))
        var flags = [Int32](repeating: 0, count: b * h)
        for (c, first) in firstDiverged { for s in (first - 1)..<h { flags[c * h + s] = 1 } }
        try file.put(flagVar, start: [offset, 0], count: [b, h], ints: flags)
        if let timeVar, let referenceVar {
            let times = cases.flatMap { fc in (1...h).map { (fc.time ?? .nan) + Double($0) * model.metadata.dt } }
            try file.put(timeVar, start: [offset, 0], count: [b, h], times)
            try file.put(referenceVar, start: [offset], count: [b], cases.map { $0.time ?? .nan })
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
