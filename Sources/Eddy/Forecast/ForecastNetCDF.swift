import CNetCDF

/// Forecasts of gridded fields back on their grid, as netCDF: dimensions `forecast` (one per origin), `step`
/// (1…H) and each variable's own grid dimensions (read back from the column names `VAR[DIM=VALUE:…]`, with their
/// coordinate variables); `VAR(forecast, step, …)` in the data's units, `origin_row(forecast)`, `flag(forecast, step)`
/// (1 from the step a forecast diverged) and, when the data have times, `time(forecast, step)`, the time each
/// forecast step is valid (CF: seconds since 1970-01-01 when the data's times are dates). A name that is taken
/// already (a variable called `step`, a grid dimension called `time`) gets a suffix (`step_2`), and `/`, which netCDF
/// names cannot hold, becomes `_`.
public enum ForecastNetCDF {
    public static func write(path: String, model: Model, cases: [ForecastCase], forecasts: [Double], horizon h: Int,
                             firstDiverged: [Int: Int]) throws {
        let names = model.metadata.variables
        let n = names.count
        // Columns that do not form a grid are written as plain series (forecast, step).
        let layout = GridLayout.parse(names)
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
        let file = try NetCDFWriter(path: path)
        let forecastDim = try file.dimension("forecast", cases.count)
        let stepDim = try file.dimension("step", h)
        try file.attribute(NC_GLOBAL, "Conventions", "CF-1.8")
        try file.attribute(NC_GLOBAL, "title", "eddy forecasts")
        try file.attribute(NC_GLOBAL, "source", "eddy \(Eddy.version): \(model.metadata.form.rawValue) model, width \(model.metadata.width), delays \(model.metadata.delays)"
                           + (model.metadata.reduction.map { ", \($0.components) principal components" } ?? ""))
        let stepVar = try file.variable("step", [stepDim], integer: true, attributes: [("long_name", "forecast step (1 = one dt after the origin)")])
        let originVar = try file.variable("origin_row", [forecastDim], integer: true, attributes: [("long_name", "row of the origin within its trajectory segment")])
        let flagVar = try file.variable("flag", [forecastDim, stepDim], integer: true,
                                        attributes: [("long_name", "1 where the forecast turned non-finite or left the training range by more than its width")])
        let timed = cases.allSatisfy { $0.time != nil }
        let dates = model.metadata.shaping?.timesAreDates == true
        let timeVar = timed ? try file.variable("time", [forecastDim, stepDim], attributes: dates
            ? [("units", "seconds since 1970-01-01 00:00:00"), ("calendar", "proleptic_gregorian"), ("long_name", "valid time")]
            : [("long_name", "valid time (units of the data's time column)")]) : nil
        // Grid dimensions, shared between variables with the same name and coordinates.
        var dims: [(GridLayout.Dimension, Int32)] = []
        var coordinates: [(Int32, [Double])] = []
        var variableIDs: [Int32] = []
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
        try file.put(originVar, start: [0], count: [cases.count], ints: cases.map { Int32(clamping: $0.origin) })
        var flags = [Int32](repeating: 0, count: cases.count * h)
        for (c, first) in firstDiverged { for s in (first - 1)..<h { flags[c * h + s] = 1 } }
        try file.put(flagVar, start: [0, 0], count: [cases.count, h], ints: flags)
        if let timeVar {
            let times = cases.flatMap { fc in (1...h).map { fc.time! + Double($0) * model.metadata.dt } }
            try file.put(timeVar, start: [0, 0], count: [cases.count, h], times)
        }
        for (id, values) in coordinates { try file.put(id, start: [0], count: [values.count], values) }
        for (v, id) in zip(layout.variables, variableIDs) {
            let shape = v.dimensions.map(\.labels.count)
            var values = [Double](repeating: .nan, count: cases.count * h * v.columns.count)
            for r in 0..<(cases.count * h) {
                for (k, column) in v.columns.enumerated() {
                    let x = forecasts[r * n + column]
                    values[r * v.columns.count + k] = x.isFinite ? x : .nan
                }
            }
            try file.put(id, start: [Int](repeating: 0, count: 2 + shape.count), count: [cases.count, h] + shape, values)
        }
        try file.commit()
    }
}
