#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Scores of gridded fields as WeatherBench 2 reports them (Rasp et al. 2024), per field and level and per lead:
///
/// - latitude-weighted RMSE: `sqrt(mean over forecasts of Σᵢ wᵢ (fᵢ − tᵢ)² / N)`, with `wᵢ = cos φᵢ` normalised to mean
///   1 over the field's N points (the MSE of each forecast is averaged over forecasts, then rooted);
/// - the anomaly correlation coefficient: per forecast `Σ w f′t′ / sqrt(Σ w f′² · Σ w t′²)` with anomalies
///   `f′ = f − c`, `t′ = t − c` from a climatology `c` at the valid time (Eddy's: the training mean by hour of day),
///   averaged over forecasts. Undefined (NaN) for the climatology itself, whose anomaly is zero.
///
/// A group is the grid points of one field at one level: the columns `VAR[…:lat=φ:lon=λ]` that share `VAR` and every
/// label except the latitude and longitude (`t[level=850]`). Columns without a latitude are not gridded and get none.
public struct GriddedScores: Sendable {
    public struct Group: Sendable, Equatable {
        /// `VAR` or `VAR[level=850]`.
        public var name: String
        public var columns: [Int]
        /// `cos φ` per column, normalised to mean 1 over the group.
        public var weights: [Double]
    }

    public var groups: [Group]
    public var methods: [String]
    public var horizon: Int
    /// Where the ACC's climatology came from, for reports.
    public var climatologySource = "the training climatology by hour of day"
    /// [method][group][step]: sums over forecasts of the weighted MSE and of the ACC, and the forecasts counted.
    var mse: [[[Double]]]
    var acc: [[[Double]]]
    var accCount: [[[Int]]]
    var counts: [Int]

    /// The grid-point groups of these variable names (empty when none has a latitude).
    public static func groups(of names: [String]) -> [Group] {
        var order: [String] = []
        var members: [String: [(Int, Double)]] = [:]
        for (c, name) in names.enumerated() {
            guard let lat = EOFBasis.latitude(of: name), let parsed = GridLayout.labels(of: name) else { continue }
            let rest = parsed.labels.filter { !["lat", "latitude", "lon", "longitude"].contains($0.key.lowercased()) }
            let key = String(parsed.variable) + (rest.isEmpty ? "" : "[" + rest.map { "\($0.key)=\($0.value)" }.joined(separator: ":") + "]")
            if members[key] == nil { order.append(key) }
            members[key, default: []].append((c, max(0, cos(lat * Double.pi / 180))))
        }
        return order.compactMap { key in
            let m = members[key]!
            let mean = m.map(\.1).reduce(0, +) / Double(m.count)
            guard mean > 0 else { return nil }
            return Group(name: key, columns: m.map(\.0), weights: m.map { $0.1 / mean })
        }
    }

    public init(groups: [Group], methods: [String], horizon: Int) {
        self.groups = groups
        self.methods = methods
        self.horizon = horizon
        let zeros = [[Double]](repeating: [Double](repeating: 0, count: horizon), count: groups.count)
        mse = .init(repeating: zeros, count: methods.count)
        acc = mse
        accCount = .init(repeating: .init(repeating: .init(repeating: 0, count: horizon), count: groups.count), count: methods.count)
        counts = .init(repeating: 0, count: horizon)
    }

    /// Adds the cases with each method's forecasts (`cases.count × H × n`, data units, `methods` order; the first is
    /// the model). `climatology(case, step)` gives the climatology at that forecast's valid time (n values), or nil for
    /// no ACC. As `ComparisonSums`, a step counts only where every baseline (the methods after the first) is finite,
    /// so all methods are scored on the same forecasts; a non-finite model forecast makes its MSE infinite.
    public mutating func add(cases: [ForecastCase], forecasts: [[Double]], n: Int, climatology: (Int, Int) -> [Double]?) {
        precondition(forecasts.count == methods.count, "one forecast array per method")
        for (c, fc) in cases.enumerated() {
            for h in 0..<horizon where fc.truth.count >= (h + 1) * n {
                let base = (c * horizon + h) * n
                let usable = forecasts.dropFirst().allSatisfy { f in groups.allSatisfy { g in g.columns.allSatisfy { f[base + $0].isFinite } } }
                guard usable else { continue }
                counts[h] += 1
                let clim = climatology(c, h)
                for (k, f) in forecasts.enumerated() {
                    for (gi, g) in groups.enumerated() {
                        var se = 0.0, ft = 0.0, ff = 0.0, tt = 0.0
                        for (j, col) in g.columns.enumerated() {
                            let w = g.weights[j], truth = fc.truth[h * n + col], value = f[base + col]
                            let e = value - truth
                            se += e.isFinite ? w * e * e : .infinity
                            if let clim {
                                let fa = value - clim[col], ta = truth - clim[col]
                                ft += w * fa * ta
                                ff += w * fa * fa
                                tt += w * ta * ta
                            }
                        }
                        mse[k][gi][h] += se / Double(g.columns.count)
                        if clim != nil {
                            acc[k][gi][h] += ft / (ff * tt).squareRoot()
                            accCount[k][gi][h] += 1
                        }
                    }
                }
            }
        }
    }

    /// Latitude-weighted RMSE of a method, group and step (1-based); NaN where no forecast counted.
    public func rmse(method k: Int, group g: Int, step: Int) -> Double {
        let n = counts[step - 1]
        return n > 0 ? (mse[k][g][step - 1] / Double(n)).squareRoot() : .nan
    }

    /// Mean ACC of a method, group and step (1-based); NaN without a climatology or where undefined.
    public func acc(method k: Int, group g: Int, step: Int) -> Double {
        let n = accCount[k][g][step - 1]
        return n > 0 ? acc[k][g][step - 1] / Double(n) : .nan
    }

    /// Forecasts scored at each step (1-based).
    public func forecasts(step: Int) -> Int { counts[step - 1] }

    /// Whether any ACC was computed (a climatology was known).
    public var hasACC: Bool { accCount.contains { $0.contains { $0.contains { $0 > 0 } } } }
}

/// A climatology given as a file, for ACC (`eddy evaluate --acc-climatology FILE.csv`): a CSV with a `phase` column
/// and one column per model variable (by the model's names, in any order; other columns are ignored), one row per
/// phase `0 … P−1` of the day, each phase the mean for `[k · 86 400 / P, (k + 1) · 86 400 / P)` seconds after midnight
/// UTC (P = 24: hourly, as WeatherBench 2's climatologies by hour of day; P = 1: one value per variable).
public struct ClimatologyFile: Sendable {
    public let path: String
    public let period: Int
    /// `period × n`, in the model's variable order.
    public let values: [Double]
    public let variables: Int

    /// Largest file read (the table is period × variables numbers; 256 MiB is far above any daily climatology).
    static let maximumBytes = 256 << 20

    public init(path: String, variables names: [String]) throws {
        let file = try InputFile(path: path)
        guard file.size <= ClimatologyFile.maximumBytes else {
            throw EddyError("\(path): \(file.size >> 20) MiB is too large for a climatology table (at most \(ClimatologyFile.maximumBytes >> 20) MiB: one row per phase of the day)")
        }
        let (header, rows) = try CSVFormat.parse(file.readBytes(file.size), path: path)
        guard let phaseColumn = header.firstIndex(of: "phase") else {
            throw EddyError("\(path): no 'phase' column; expected a header 'phase,VARIABLE,…' with one row per phase of the day (0 … P−1)")
        }
        let columns = try names.map { name in
            guard let c = header.firstIndex(of: name) else {
                throw EddyError("\(path): no column for the model's variable '\(CSVFormat.short(name))' (\(names.count) variables needed; the file has \(header.count - 1) besides 'phase')")
            }
            return c
        }
        let p = rows.count
        guard p >= 1, p <= DataStatistics.maximumPhases, 86_400 % p == 0 else {
            throw EddyError("\(path): \(p) rows; expected one row per phase of the day, a number of phases that divides 86400 (24 for hours) and at most \(DataStatistics.maximumPhases)")
        }
        var table = [Double](repeating: .nan, count: p * names.count)
        var seen = [Bool](repeating: false, count: p)
        for (r, row) in rows.enumerated() {
            let line = r + 2
            guard let k = Int(row[phaseColumn]), (0..<p).contains(k) else {
                throw EddyError.at(path, line: line, "phase '\(CSVFormat.short(row[phaseColumn]))': expected a whole number 0 … \(p - 1)")
            }
            if seen[k] { throw EddyError.at(path, line: line, "phase \(k) appears twice") }
            seen[k] = true
            for (i, c) in columns.enumerated() {
                guard let v = Double(row[c]), v.isFinite else {
                    throw EddyError.at(path, line: line, "column '\(CSVFormat.short(header[c]))': '\(CSVFormat.short(row[c]))' is not a finite number")
                }
                table[k * names.count + i] = v
            }
        }
        self.path = path
        period = p
        values = table
        variables = names.count
    }

    /// The climatology at a time (seconds since 1970, UTC).
    public func at(_ seconds: Double) -> [Double] {
        let day = seconds - (seconds / 86_400).rounded(.down) * 86_400
        let k = min(period - 1, max(0, Int((day * Double(period) / 86_400).rounded(.down))))
        return Array(values[(k * variables)..<((k + 1) * variables)])
    }
}
