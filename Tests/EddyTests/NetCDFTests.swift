import CNetCDF
import EddyTestSupport
import Foundation
import Testing
@testable import Eddy

/// A small CF-convention file, written through the netCDF C API: `t(time, level, lat, lon)` (K, `_FillValue`
/// -999) and `u(time, lat, lon)` (m/s, `missing_value` 1e20), an advected, diffusing Gaussian bump on a 4 × 5
/// lat/lon grid with two pressure levels, hourly from 2000-01-01.
struct GriddedFile {
    static let levels: [Double] = [500, 850]
    static let lats: [Double] = [30, 35, 40, 45]
    static let lons: [Double] = [0, 10, 20, 30, 40]
    static let origin = 946_684_800.0   // 2000-01-01T00:00:00Z

    /// The bump at time step `n`: moving east 0.8° and north 0.2° per step, its variance growing by diffusion.
    static func t(_ n: Int, _ l: Int, _ i: Int, _ j: Int) -> Double {
        let s2 = 60.0 + 4.0 * Double(n)
        let dx = lons[j] - (5 + 0.8 * Double(n)), dy = lats[i] - (32 + 0.2 * Double(n))
        return 250 + 20 * Double(l) + 10 * exp(-(dx * dx + dy * dy) / (2 * s2)) * sqrt(60 / s2)
    }

    static func u(_ n: Int, _ i: Int, _ j: Int) -> Double { 5 + cos(0.3 * Double(n) + 0.1 * lons[j]) * sin(0.05 * lats[i]) }

    /// Writes `steps` time steps; `missing` lists (step, variable) pairs written as missing: for `t`, one point set
    /// to `_FillValue`; for `u`, one point set to NaN; for `u!`, one point set to `missing_value`.
    static func write(_ path: String, steps: Int = 50, missing: [(Int, String)] = [], netcdf4: Bool = false) throws {
        try NetCDFLibrary.locked { try writeUnlocked(path, steps: steps, missing: missing, netcdf4: netcdf4) }
    }

    static func writeUnlocked(_ path: String, steps: Int, missing: [(Int, String)], netcdf4: Bool) throws {
        func ok(_ s: Int32) throws { if s != NC_NOERR { throw EddyError("netCDF: \(String(cString: nc_strerror(s)))") } }
        var nc: Int32 = 0
        try ok(nc_create(path, netcdf4 ? NC_CLOBBER | NC_NETCDF4 : NC_CLOBBER, &nc))
        var time: Int32 = 0, level: Int32 = 0, lat: Int32 = 0, lon: Int32 = 0
        try ok(nc_def_dim(nc, "time", Int(NC_UNLIMITED), &time))
        try ok(nc_def_dim(nc, "level", levels.count, &level))
        try ok(nc_def_dim(nc, "lat", lats.count, &lat))
        try ok(nc_def_dim(nc, "lon", lons.count, &lon))
        func variable(_ name: String, _ dims: [Int32], units: String) throws -> Int32 {
            var id: Int32 = 0
            try ok(nc_def_var(nc, name, NC_DOUBLE, Int32(dims.count), dims, &id))
            try ok(nc_put_att_text(nc, id, "units", units.utf8.count, units))
            return id
        }
        let timeVar = try variable("time", [time], units: "hours since 2000-01-01 00:00:00")
        let levelVar = try variable("level", [level], units: "hPa")
        let latVar = try variable("lat", [lat], units: "degrees_north")
        let lonVar = try variable("lon", [lon], units: "degrees_east")
        let tVar = try variable("t", [time, level, lat, lon], units: "K")
        var fill = -999.0
        try ok(nc_put_att_double(nc, tVar, "_FillValue", NC_DOUBLE, 1, &fill))
        let uVar = try variable("u", [time, lat, lon], units: "m s-1")
        var missingValue = 1e20
        try ok(nc_put_att_double(nc, uVar, "missing_value", NC_DOUBLE, 1, &missingValue))
        try ok(nc_enddef(nc))
        try ok(nc_put_var_double(nc, levelVar, levels))
        try ok(nc_put_var_double(nc, latVar, lats))
        try ok(nc_put_var_double(nc, lonVar, lons))
        for n in 0..<steps {
            var hour = Double(n)
            try ok(nc_put_vara_double(nc, timeVar, [n], [1], &hour))
            var tValues: [Double] = []
            for l in levels.indices { for i in lats.indices { for j in lons.indices { tValues.append(t(n, l, i, j)) } } }
            var uValues: [Double] = []
            for i in lats.indices { for j in lons.indices { uValues.append(u(n, i, j)) } }
            for (step, name) in missing where step == n {
                switch name {
                case "t": tValues[7] = fill
                case "u": uValues[3] = .nan
                default: uValues[11] = missingValue
                }
            }
            try ok(nc_put_vara_double(nc, tVar, [n, 0, 0, 0], [1, levels.count, lats.count, lons.count], tValues))
            try ok(nc_put_vara_double(nc, uVar, [n, 0, 0], [1, lats.count, lons.count], uValues))
        }
        try ok(nc_close(nc))
    }

    static func name(_ v: Double) -> String { v == v.rounded() ? "\(Int(v))" : "\(v)" }
}

@Suite struct NetCDFTests {
    func file(_ steps: Int = 50, missing: [(Int, String)] = [], netcdf4: Bool = false) throws -> String {
        let path = try scratch("eddy-nc") + "/field.nc"
        try GriddedFile.write(path, steps: steps, missing: missing, netcdf4: netcdf4)
        return path
    }

    func read(_ spec: DataSpec) throws -> (RowReader, [RowBlock]) {
        let reader = try DataSource.open(spec)
        var blocks: [RowBlock] = []
        while let b = try reader.next() { blocks.append(b) }
        return (reader, blocks)
    }

    /// Every value comes back exactly as written, in the documented order: variable by variable, then the other
    /// dimensions in C order (level, lat, lon), with names `VAR[level=L:lat=LAT:lon=LON]`; times in seconds.
    @Test(arguments: [false, true]) func readsWrittenValuesInOrder(netcdf4: Bool) throws {
        let path = try file(netcdf4: netcdf4)
        var spec = DataSpec(path: path)
        spec.blockRows = 16
        let (reader, blocks) = try read(spec)
        #expect(reader is NetCDFReader)
        typealias G = GriddedFile
        var names: [String] = [], expected: [[Double]] = Array(repeating: [], count: 50)
        for l in G.levels.indices { for i in G.lats.indices { for j in G.lons.indices {
            names.append("t[level=\(G.name(G.levels[l])):lat=\(G.name(G.lats[i])):lon=\(G.name(G.lons[j]))]")
            for n in 0..<50 { expected[n].append(G.t(n, l, i, j)) }
        } } }
        for i in G.lats.indices { for j in G.lons.indices {
            names.append("u[lat=\(G.name(G.lats[i])):lon=\(G.name(G.lons[j]))]")
            for n in 0..<50 { expected[n].append(G.u(n, i, j)) }
        } }
        #expect(reader.variableNames == names)
        #expect(reader.variableNames.first == "t[level=500:lat=30:lon=0]")
        #expect(reader.inputNames.isEmpty)
        #expect(blocks.map(\.rowCount) == [16, 16, 16, 2])
        #expect(blocks.map(\.startsSegment) == [true, false, false, false])
        #expect(blocks.allSatisfy { $0.episode == "0" })
        #expect(blocks.flatMap(\.values) == expected.flatMap { $0 })
        #expect(blocks.flatMap(\.times) == (0..<50).map { G.origin + 3600 * Double($0) })
        #expect(reader.inferredDt == 3600)
        #expect(reader.validCounts == [Int](repeating: 50, count: 60))
    }

    /// Levels and a lat/lon box select the same values as indexing the written field.
    @Test func levelAndBoxSelection() throws {
        var spec = DataSpec(path: try file())
        spec.ncVariables = ["u", "t"]
        spec.ncLevels = [1]
        spec.ncBox = (latMin: 34, latMax: 41, lonMin: 5, lonMax: 25)
        let (reader, blocks) = try read(spec)
        typealias G = GriddedFile
        #expect(reader.variableNames == ["u[lat=35:lon=10]", "u[lat=35:lon=20]", "u[lat=40:lon=10]", "u[lat=40:lon=20]",
                                         "t[level=850:lat=35:lon=10]", "t[level=850:lat=35:lon=20]",
                                         "t[level=850:lat=40:lon=10]", "t[level=850:lat=40:lon=20]"])
        let expected = (0..<50).flatMap { n in
            [G.u(n, 1, 1), G.u(n, 1, 2), G.u(n, 2, 1), G.u(n, 2, 2), G.t(n, 1, 1, 1), G.t(n, 1, 1, 2), G.t(n, 1, 2, 1), G.t(n, 1, 2, 2)]
        }
        #expect(blocks.flatMap(\.values) == expected)
        // Levels picked out of order come in the order given; a box across the date line (350 … 15) wraps.
        spec.ncVariables = ["t"]
        spec.ncLevels = [1, 0]
        spec.ncBox = (latMin: 44, latMax: 46, lonMin: 350, lonMax: 15)
        let (wrapped, b2) = try read(spec)
        #expect(wrapped.variableNames == ["t[level=850:lat=45:lon=0]", "t[level=850:lat=45:lon=10]",
                                          "t[level=500:lat=45:lon=0]", "t[level=500:lat=45:lon=10]"])
        #expect(Array(b2[0].values.prefix(4)) == [G.t(0, 1, 3, 0), G.t(0, 1, 3, 1), G.t(0, 0, 3, 0), G.t(0, 0, 3, 1)])
        // --columns picks among the flattened names.
        spec.columns = ["t[level=500:lat=45:lon=10]"]
        let (one, b3) = try read(spec)
        #expect(one.variableNames == ["t[level=500:lat=45:lon=10]"])
        #expect(b3.flatMap(\.values) == (0..<50).map { G.t($0, 0, 3, 1) })
    }

    /// `_FillValue`, `missing_value` and NaN mark missing values: the time step is dropped and the trajectory splits;
    /// with gap filling the single missing steps are interpolated.
    @Test func fillValuesSplitTheTrajectory() throws {
        let path = try file(missing: [(20, "t"), (35, "u"), (42, "u!")])
        let (reader, segments) = try DataSource.loadSegments(DataSpec(path: path))
        #expect(segments.map(\.rowCount) == [20, 14, 6, 7])
        #expect(segments[1].times.first == GriddedFile.origin + 21 * 3600)
        #expect(reader.validCounts[7] == 49)     // t[level=500:lat=35:lon=20] at step 20
        #expect(reader.validCounts[40 + 3] == 49) // u[lat=30:lon=30] at step 35
        #expect(reader.validCounts[40 + 11] == 49)
        var spec = DataSpec(path: path)
        spec.fillGaps = 1
        let (filled, one) = try DataSource.loadSegments(spec)
        #expect(one.map(\.rowCount) == [50])
        let nc = try #require(filled as? NetCDFReader)
        #expect(nc.filledRows == 3 && nc.filledGaps == 3)
        // The filled value of t at step 20 lies between its neighbours (linear interpolation).
        let mid = one[0].row(20)[one[0].row(20).startIndex + 7]
        #expect(abs(mid - (GriddedFile.t(19, 0, 1, 2) + GriddedFile.t(21, 0, 1, 2)) / 2) < 1e-12)
    }

    /// Calendar inputs from the CF times are inputs of their own, after the selected elements (hour of day, as sine/cosine).
    @Test func calendarInputsFromCFTimes() throws {
        var spec = DataSpec(path: try file(30))
        spec.ncVariables = ["u"]
        spec.calendar = [.hour]
        let (reader, blocks) = try read(spec)
        #expect(reader.inputNames == ["hour_sin", "hour_cos"] && reader.variableNames.count == 20)
        #expect(reader.validCounts == [Int](repeating: 30, count: 22))
        let rows = blocks.flatMap(\.values)
        #expect(rows.count == 30 * 22)
        for step in [0, 7, 29] {
            let angle = 2 * Double.pi * Double(step % 24) / 24
            #expect(abs(rows[step * 22 + 20] - sin(angle)) < 1e-12 && abs(rows[step * 22 + 21] - cos(angle)) < 1e-12)
            #expect(rows[step * 22] == GriddedFile.u(step, 0, 0))
        }
    }

    /// A dimension without a coordinate variable is labelled by index, `#i`, which is never taken for a coordinate.
    @Test func indexLabels() throws {
        let path = try scratch("eddy-nc-index") + "/index.nc"
        let status = NetCDFLibrary.locked { () -> Int32 in
            var nc: Int32 = 0, time: Int32 = 0, lat: Int32 = 0, tv: Int32 = 0, v: Int32 = 0
            var s = nc_create(path, NC_CLOBBER, &nc)
            s |= nc_def_dim(nc, "time", 4, &time)
            s |= nc_def_dim(nc, "lat", 3, &lat)
            s |= nc_def_var(nc, "time", NC_DOUBLE, 1, [time], &tv)
            s |= nc_def_var(nc, "h", NC_DOUBLE, 2, [time, lat], &v)
            s |= nc_enddef(nc)
            s |= nc_put_var_double(nc, tv, [0, 1, 2, 3])
            s |= nc_put_var_double(nc, v, (0..<12).map(Double.init))
            return s | nc_close(nc)
        }
        #expect(status == NC_NOERR)
        let reader = try DataSource.open(DataSpec(path: path))
        #expect(reader.variableNames == ["h[lat=#0]", "h[lat=#1]", "h[lat=#2]"])
        #expect(reader.variableNames.allSatisfy { EOFBasis.latitude(of: $0) == nil })
        #expect(GridLayout.parse(reader.variableNames)?.variables[0].dimensions[0].values == nil)
    }

    /// `Trainer` trains on a NetCDF field (a tiny width) and its variables are the flattened names.
    @Test func trainsOnAGriddedField() throws {
        var spec = DataSpec(path: try file())
        spec.ncVariables = ["t"]
        spec.ncLevels = [0]
        var config = TrainingConfig(data: spec)
        config.width = 16
        config.delays = 2
        config.ridge = 1e-6
        let (model, _) = try Trainer(config: config, backend: CPUBackend()).train()
        #expect(model.metadata.variables.count == 20)
        #expect(model.metadata.variables.first == "t[level=500:lat=30:lon=0]")
        let (_, segments) = try DataSource.loadSegments(spec)
        let cases = try Forecaster.cases(model: model, segments: segments, origins: .rows([30]), horizon: 1, path: spec.path)
        let f = Forecaster.run(model: model, cases: cases, horizon: 1)
        let truth = Array(segments[0].row(31))
        #expect(relative(Array(f.prefix(20)), truth) < 0.01)
    }

    /// Bad input: clear errors that name the file and say what is there.
    @Test func badInput() throws {
        let path = try file(5)
        func message(_ spec: DataSpec) -> String {
            do { _ = try read(spec); return "" } catch { return "\(error)" }
        }
        var spec = DataSpec(path: path)
        spec.ncVariables = ["z"]
        var m = message(spec)
        #expect(m.contains(path) && m.contains("no variable named 'z'") && m.contains("time, level, lat, lon, t, u"), "\(m)")

        spec = DataSpec(path: path)
        spec.ncBox = (latMin: -20, latMax: -10, lonMin: 0, lonMax: 40)
        m = message(spec)
        #expect(m.contains(path) && m.contains("contains no grid point") && m.contains("lat 30…45") && m.contains("lon 0…40"), "\(m)")

        spec = DataSpec(path: path)
        spec.ncBox = (latMin: 30, latMax: 40, lonMin: 100, lonMax: 200)
        m = message(spec)
        #expect(m.contains("contains no grid point") && m.contains("lon 0…40"), "\(m)")

        spec = DataSpec(path: path)
        spec.ncLevels = [2]
        m = message(spec)
        #expect(m.contains(path) && m.contains("level index 2 is out of range") && m.contains("2 levels"), "\(m)")

        let dir = try scratch("eddy-nc-bad")
        let text = dir + "/text.nc"
        try writeText("time,x\n0,1\n", text)
        m = message(DataSpec(path: text))
        #expect(m.contains(text) && m.contains("not a NetCDF file"), "\(m)")

        // A file without a time dimension (and no unlimited one).
        let flat = dir + "/flat.nc"
        let created = NetCDFLibrary.locked {
            var nc: Int32 = 0, lat: Int32 = 0, v: Int32 = 0
            let status = nc_create(flat, NC_CLOBBER, &nc)
            _ = nc_def_dim(nc, "lat", 3, &lat)
            _ = nc_def_var(nc, "h", NC_DOUBLE, 1, [lat], &v)
            _ = nc_enddef(nc)
            _ = nc_put_var_double(nc, v, [1, 2, 3])
            _ = nc_close(nc)
            return status
        }
        #expect(created == NC_NOERR)
        m = message(DataSpec(path: flat))
        #expect(m.contains(flat) && m.contains("no time dimension") && m.contains("lat"), "\(m)")
    }
}

/// Forecasts of a gridded field written back on the grid (`eddy forecast --out f.nc`).
@Suite struct ForecastNetCDFTests {
    /// Reads a whole variable of a netCDF file as doubles, with its dimension names.
    func read(_ path: String, _ name: String) throws -> (dims: [String], values: [Double]) {
        try NetCDFLibrary.locked {
            var nc: Int32 = 0, v: Int32 = 0, ndims: Int32 = 0
            guard nc_open(path, NC_NOWRITE, &nc) == NC_NOERR else { throw EddyError("cannot open \(path)") }
            defer { nc_close(nc) }
            guard nc_inq_varid(nc, name, &v) == NC_NOERR else { throw EddyError("no variable \(name)") }
            nc_inq_varndims(nc, v, &ndims)
            var ids = [Int32](repeating: 0, count: Int(ndims))
            nc_inq_vardimid(nc, v, &ids)
            var names: [String] = [], total = 1
            for id in ids {
                var chars = [CChar](repeating: 0, count: Int(NC_MAX_NAME) + 1)
                var length = 0
                nc_inq_dim(nc, id, &chars, &length)
                names.append(String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
                total *= length
            }
            var values = [Double](repeating: 0, count: total)
            guard nc_get_var_double(nc, v, &values) == NC_NOERR else { throw EddyError("cannot read \(name)") }
            return (names, values)
        }
    }

    @Test func forecastsGoBackOnTheGrid() throws {
        let dir = try scratch("eddy-nc-forecast")
        let path = dir + "/field.nc"
        try GriddedFile.write(path, steps: 70)
        var spec = DataSpec(path: path)
        spec.ncVariables = ["t", "u"]
        var config = TrainingConfig(data: spec)
        config.width = 30
        config.ridge = 1e-8
        config.pca = 6
        let (model, _) = try Trainer(config: config, backend: CPUBackend()).train()
        let (_, segments) = try DataSource.loadSegments(spec)
        let cases = try Forecaster.cases(model: model, segments: segments, origins: .rows([30, 45]), horizon: 4, path: path)
        let f = Forecaster.run(model: model, cases: cases, horizon: 4)
        let out = dir + "/f.nc"
        try ForecastNetCDF.write(path: out, model: model, cases: cases, forecasts: f, horizon: 4, firstDiverged: [1: 3])
        let n = model.outputCount   // 40 points of t, then 20 of u
        let t = try read(out, "t"), u = try read(out, "u")
        #expect(t.dims == ["forecast", "step", "level", "lat", "lon"] && u.dims == ["forecast", "step", "lat", "lon"])
        for r in 0..<8 {
            #expect(Array(t.values[(r * 40)..<((r + 1) * 40)]) == Array(f[(r * n)..<(r * n + 40)]))
            #expect(Array(u.values[(r * 20)..<((r + 1) * 20)]) == Array(f[(r * n + 40)..<(r * n + 60)]))
        }
        #expect(try read(out, "lat").values == GriddedFile.lats && read(out, "lon").values == GriddedFile.lons)
        #expect(try read(out, "level").values == GriddedFile.levels)
        #expect(try read(out, "flag").values == [0, 0, 0, 0, 0, 0, 1, 1])
        #expect(try read(out, "origin_row").values == [30, 45])
        let times = try read(out, "time").values
        #expect(times[0] == GriddedFile.origin + 31 * 3600 && times[7] == GriddedFile.origin + 49 * 3600)
        // Written in two batches (as `eddy forecast` does for many origins), the file holds the same values.
        let batched = try ForecastNetCDF(path: dir + "/b.nc", model: model, count: 2, horizon: 4, timed: true)
        try batched.write(cases: [cases[0]], forecasts: Array(f[0..<(4 * n)]), firstDiverged: [:], at: 0)
        try batched.write(cases: [cases[1]], forecasts: Array(f[(4 * n)...]), firstDiverged: [0: 3], at: 1)
        try batched.commit()
        for name in ["t", "u", "flag", "origin_row", "time"] { #expect(try read(dir + "/b.nc", name).values == read(out, name).values, "\(name)") }
        try FileManager.default.removeItem(atPath: dir + "/b.nc")
        // Maps for --plot: t at its first level, north up; truth, forecast and difference at steps 1 and 4.
        let drawn = try MapPlot.forecast(model: model, case: cases[0], forecast: Array(f[0..<(4 * n)]), horizon: 4)
        let map = try #require(drawn)
        #expect(map.rows.count == 2 && map.rows.allSatisfy { $0.count == 3 })
        let panel = map.rows[0][1]
        #expect(panel.rows == 4 && panel.columns == 5)
        #expect(panel.values[0] == f[15] && panel.values[19] == f[4])   // top left: lat 45, lon 0; bottom right: lat 30, lon 40
        #expect(map.rows[1][2].values[0] == f[3 * n + 15] - cases[0].truth[3 * n + 15])
        #expect(map.render().components(separatedBy: "<rect").count - 1 == 1 + 6 * (20 + 50 + 1))   // cells, colour bar, frame
        // A failed write leaves nothing behind.
        #expect(throws: EddyError.self) {
            try ForecastNetCDF.write(path: dir + "/missing/f.nc", model: model, cases: cases, forecasts: f, horizon: 4, firstDiverged: [:])
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["f.nc", "field.nc"])
    }

    /// Plain columns whose names netCDF output uses itself (`step`, `flag`) get a suffix; a writer that fails after
    /// creating its file leaves nothing behind.
    @Test func clashingNamesAndFailedWrites() throws {
        let dir = try scratch("eddy-nc-names")
        var text = "step,flag\n"
        for t in 0..<80 { text += "\(sin(0.2 * Double(t))),\(cos(0.2 * Double(t)))\n" }
        try writeText(text, dir + "/d.csv")
        var config = TrainingConfig(data: DataSpec(path: dir + "/d.csv"))
        config.width = 10
        let (model, _) = try Trainer(config: config, backend: CPUBackend()).train()
        let (_, segments) = try DataSource.loadSegments(DataSpec(path: dir + "/d.csv", columns: ["step", "flag"]))
        let cases = try Forecaster.cases(model: model, segments: segments, origins: .rows([10]), horizon: 3, path: "d.csv")
        let f = Forecaster.run(model: model, cases: cases, horizon: 3)
        try ForecastNetCDF.write(path: dir + "/f.nc", model: model, cases: cases, forecasts: f, horizon: 3, firstDiverged: [:])
        #expect(try read(dir + "/f.nc", "step_2").values == [f[0], f[2], f[4]])
        #expect(try read(dir + "/f.nc", "flag_2").values == [f[1], f[3], f[5]])
        #expect(try read(dir + "/f.nc", "step").values == [1, 2, 3])
        do {
            let writer = try NetCDFWriter(path: dir + "/broken.nc")
            _ = try writer.dimension("x", 3)
            #expect(throws: EddyError.self) { _ = try writer.variable("v", [42]) }   // no such dimension
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["d.csv", "f.nc"])
    }

    /// Names that are not a full grid in C order are not taken for one.
    @Test func gridLayoutParsing() {
        let grid = GridLayout.parse(["t[lat=1:lon=0]", "t[lat=1:lon=5]", "t[lat=2:lon=0]", "t[lat=2:lon=5]", "p"])
        #expect(grid?.variables.map(\.name) == ["t", "p"])
        #expect(grid?.variables[0].dimensions.map(\.labels) == [["1", "2"], ["0", "5"]])
        #expect(grid?.variables[1].columns == [4])
        #expect(GridLayout.parse(["t[lat=1:lon=0]", "t[lat=2:lon=0]", "t[lat=1:lon=5]", "t[lat=2:lon=5]"]) == nil)   // not C order
        #expect(GridLayout.parse(["t[lat=1:lon=0]", "t[lat=1:lon=5]", "t[lat=2:lon=0]"]) == nil)                    // not a full product
    }
}
