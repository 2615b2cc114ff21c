import ArgumentParser
import Eddy

/// The data options every command that reads trajectories shares.
struct DataOptions: ParsableArguments {
    @Option(help: "A CSV file with a header, an .npy array (T, n) or (E, T, n), NetCDF data (a .nc file of gridded fields, or several joined along time: a directory of .nc files, a quoted glob 'era5_*.nc' or a comma list), or a directory of CSV/.npy files (one trajectory each).")
    var data: String

    @Option(help: "The column naming the trajectory (episode) each CSV row belongs to, e.g. a station. Rows of one episode must be contiguous. Default: a column named 'episode'.")
    var episodeColumn: String?

    @Option(help: "State variables by name, comma-separated (.npy columns are c0, c1, …). Default: every column but the episode, inputs and time columns.")
    var columns: String?

    @Option(help: "Input (control or exogenous) columns by name, comma-separated.")
    var inputs: String?

    @Option(help: "A time column (ISO 8601 like 2013-01-01T06:00:00Z, or numbers): time jumps split trajectories, calendar inputs come from it. Default: a column named t or time.")
    var timeColumn: String?

    @Option(help: "Variables that are angles in degrees (0…360), each used as NAME_sin and NAME_cos.")
    var angles: String?

    @Option(help: "Calendar inputs from the time column, as sine/cosine pairs: hour (of day), doy (day of year), week (day of week).")
    var calendar: String?

    @Option(help: "Fill gaps (missing rows or values) of at most this many steps by linear interpolation; longer gaps split the trajectory.")
    var fillGaps: Int?

    @Option(help: "The time column's date format, strftime-style, for dates that are not ISO 8601 or its slash and space forms: %Y %y %m %d %H %M %S %b %z, e.g. '%d.%m.%Y %H:%M'. Stored in the model; --from and --until may use it too.")
    var timeFormat: String?

    @Option(help: "Keep rows at or after this time (as in the time column, e.g. 2013-10-01).")
    var from: String?

    @Option(help: "Keep rows before this time.")
    var until: String?

    @Option(help: "Join the rows of each value of this column (e.g. a station) on time into one trajectory with variables NAME@VALUE.")
    var pivot: String?

    @Option(help: "NetCDF (.nc) only: variables to read, comma-separated. Default: every variable with a time dimension. The state is the flattened field, named VAR[DIM=VALUE:…].")
    var ncVariables: String?

    @Option(help: "NetCDF only: indices along the level dimension (level, lev, plev, pressure_level), comma-separated. Default: every level.")
    var ncLevels: String?

    @Option(help: "NetCDF only: keep grid points inside latMin,latMax,lonMin,lonMax (degrees; longitudes modulo 360).")
    var ncBox: String?

    @Option(help: "NetCDF only: the time dimension (or 1-D time variable). Default: a dimension named time or valid_time, a variable with CF axis T or standard_name time, or the unlimited dimension.")
    var ncTime: String?

    @Flag(help: "NetCDF only: step by calendar month (monthly means with CF dates 28–31 days apart): times become months since January 1970, plain numbers.")
    var ncMonths = false

    /// The spec for training data.
    func spec(dt: Double? = nil) throws -> DataSpec {
        var s = DataSpec(path: data, columns: columns.map(splitList), inputs: inputs.map(splitList) ?? [], episodeColumn: episodeColumn)
        try shape(&s)
        s.dt = dt
        return s
    }

    /// The spec for new data read by a model: the model's columns and shaping unless given here.
    func spec(for model: Model) throws -> DataSpec {
        var s = DataSpec.reading(data, for: model, columns: columns.map(splitList), inputs: inputs.map(splitList), episodeColumn: episodeColumn)
        try shape(&s)
        return s
    }

    /// The reading settings stored in a model that this command line did not replace, as options
    /// (`--angles wind_dir`): named in errors, so a clash says where the setting came from.
    func storedSettings(of model: Model) -> [String] {
        guard let m = model.metadata.shaping else { return [] }
        var out: [String] = []
        if columns == nil, let c = m.columns { out.append("--columns \(c.joined(separator: ","))") }
        if inputs == nil, !m.inputs.isEmpty { out.append("--inputs \(m.inputs.joined(separator: ","))") }
        if timeColumn == nil, let t = m.timeColumn { out.append("--time-column \(t)") }
        if angles == nil, !m.angles.isEmpty { out.append("--angles \(m.angles.joined(separator: ","))") }
        if calendar == nil, !m.calendar.isEmpty { out.append("--calendar \(m.calendar.map(\.rawValue).joined(separator: ","))") }
        if fillGaps == nil, m.fillGaps > 0 { out.append("--fill-gaps \(m.fillGaps)") }
        if pivot == nil, let p = m.pivot { out.append("--pivot \(p)") }
        return out
    }

    /// Notes for options that replace a setting stored in the model (`--fill-gaps 0` over the stored 3).
    func overrides(of model: Model) -> [String] {
        guard let m = model.metadata.shaping else { return [] }
        var out: [String] = []
        if let g = fillGaps, g != m.fillGaps { out.append("--fill-gaps \(g) replaces the model's stored --fill-gaps \(m.fillGaps)") }
        if let a = angles, splitList(a) != m.angles { out.append("--angles \(a) replaces the model's stored --angles \(m.angles.isEmpty ? "(none)" : m.angles.joined(separator: ","))") }
        if let t = timeColumn, t != m.timeColumn { out.append("--time-column \(t) replaces the model's stored --time-column \(m.timeColumn ?? "(none)")") }
        if let p = pivot, p != m.pivot { out.append("--pivot \(p) replaces the model's stored --pivot \(m.pivot ?? "(none)")") }
        return out
    }

    private func shape(_ s: inout DataSpec) throws {
        if let t = timeColumn { s.timeColumn = t }
        if let a = angles { s.angles = splitList(a) }
        if let c = calendar { s.calendar = try splitList(c).map { try parseChoice($0, "--calendar") } }
        if let g = fillGaps {
            if g < 0 { throw EddyError("--fill-gaps must be ≥ 0, got \(g)") }
            s.fillGaps = g
        }
        if let p = pivot { s.pivot = p }
        if let f = timeFormat {
            if !f.contains("%") { throw EddyError("--time-format '\(f)': expected a format with fields such as %Y, %m, %d, %H, %M") }
            s.timeFormat = f
        }
        s.from = try from.map { try parseTime($0, "--from", format: s.timeFormat) }
        s.until = try until.map { try parseTime($0, "--until", format: s.timeFormat) }
        if let v = ncVariables { s.ncVariables = splitList(v) }
        if let t = ncTime {
            if t.isEmpty { throw EddyError("--nc-time: name a time dimension or variable") }
            s.ncTime = t
        }
        if ncMonths { s.ncMonths = true }
        if let l = ncLevels {
            s.ncLevels = try splitList(l).map {
                guard let i = Int($0), i >= 0 else { throw EddyError("--nc-levels: '\($0)' is not a level index (an integer ≥ 0)") }
                return i
            }
        }
        if let b = ncBox {
            let v = splitList(b).map { Double($0) }
            guard v.count == 4, let latMin = v[0], let latMax = v[1], let lonMin = v[2], let lonMax = v[3] else {
                throw EddyError("--nc-box: expected four numbers latMin,latMax,lonMin,lonMax, got '\(b)'")
            }
            if latMin > latMax { throw EddyError("--nc-box: latMin \(latMin) is above latMax \(latMax)") }
            s.ncBox = (latMin, latMax, lonMin, lonMax)
        }
    }
}

func parseTime(_ text: String, _ option: String, format: String? = nil) throws -> Double {
    guard let v = format.flatMap({ TimeParser.seconds(text, format: $0) }) ?? TimeParser.seconds(text) else { throw EddyError("\(option): cannot read '\(text)' as a time (a date like 2013-10-01, 2013-10-01T06:00:00Z, 2013/10/01 06:00 or 2013-10-01 06:00:00+02:00, or a number)") }
    return v
}
