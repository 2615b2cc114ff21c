import Eddy
import EddyTestSupport
import Foundation
import Testing

/// Weather data as it comes (issue #14): a ten-file archive trains to the same state as one file, files that do not
/// belong are refused by name, ERA5-shaped files train, forecast and evaluate without options, non-CF files get
/// their documented behaviour, and forecast files open in xarray with decoded times, lead and units.
@Suite("weather archives: multi-file NetCDF, ERA5 shapes, CF outputs", .serialized)
struct WeatherArchiveTests {
    /// Splits `source` (a `generate tracer` file) into `parts` files of consecutive times, named so that name order
    /// is the reverse of time order; returns their paths in time order.
    func split(_ source: String, parts: Int, into dir: String, transform: (Int) -> (latShift: Double, units: String) = { _ in (0, "1") }) throws -> [String] {
        let reader = try NetCDFReader(spec: DataSpec(path: source))
        let layout = try #require(GridLayout.parse(reader.variableNames))
        let lat = try #require(layout.variables[0].dimensions[0].values), lon = try #require(layout.variables[0].dimensions[1].values)
        var rows: [[Double]] = [], times: [Double] = []
        while let b = try reader.next() {
            for r in 0..<b.rowCount { rows.append(Array(b.values[(r * reader.width)..<((r + 1) * reader.width)])); times.append(b.times[r]) }
        }
        let per = (rows.count + parts - 1) / parts
        var paths: [String] = []
        for p in 0..<parts {
            let range = (p * per)..<min(rows.count, (p + 1) * per)
            let path = dir + "/tracer_\(parts - 1 - p).nc"
            let (shift, units) = transform(p)
            let file = try NetCDFWriter(path: path)
            let td = try file.dimension("time", nil), yd = try file.dimension("lat", lat.count), xd = try file.dimension("lon", lon.count)
            let tv = try file.variable("time", [td], attributes: [("units", "hours since 2000-01-01 00:00:00"), ("calendar", "proleptic_gregorian")])
            let yv = try file.variable("lat", [yd], attributes: [("units", "degrees_north")])
            let xv = try file.variable("lon", [xd], attributes: [("units", "degrees_east")])
            let qv = try file.variable("q", [td, yd, xd], attributes: [("units", units), ("long_name", "tracer")])
            try file.endDefinitions()
            try file.put(yv, start: [0], count: [lat.count], lat.map { $0 + shift })
            try file.put(xv, start: [0], count: [lon.count], lon)
            try file.put(tv, start: [0], count: [range.count], range.map { (times[$0] - 946_684_800) / 3600 })
            try file.put(qv, start: [0, 0, 0], count: [range.count, lat.count, lon.count], range.flatMap { rows[$0] })
            try file.commit()
            paths.append(path)
        }
        return paths
    }

    func ok(_ r: Run, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == 0, "\(what): \(r.stderr)", sourceLocation: sourceLocation)
        #expect(!r.stderr.contains("Fatal error"), "\(what): \(r.stderr)", sourceLocation: sourceLocation)
    }

    @Test func tenFileArchiveTrainsToTheSameStateAsOneFile() throws {
        let dir = try scratch("eddy-archive")
        let one = dir + "/one.nc"
        ok(try eddy(["generate", "tracer", "--steps", "400", "--lat", "6", "--lon", "8", "--out", one]), "generate")
        try FileManager.default.createDirectory(atPath: dir + "/archive", withIntermediateDirectories: true)
        let paths = try split(one, parts: 10, into: dir + "/archive")
        let common = ["--delays", "2", "--width", "24", "--seed", "3"]
        ok(try eddy(["train", "--data", one, "--out", dir + "/m1.safetensors", "--save-state", dir + "/s1.npy"] + common), "one file")
        ok(try eddy(["train", "--data", dir + "/archive", "--out", dir + "/m2.safetensors", "--save-state", dir + "/s2.npy"] + common), "directory")
        let s1 = try Data(contentsOf: URL(fileURLWithPath: dir + "/s1.npy")), s2 = try Data(contentsOf: URL(fileURLWithPath: dir + "/s2.npy"))
        #expect(s1.count > 1000 && s1 == s2, "the pass state differs between one file and the archive")
        // A glob and a list of the same files give the same state too.
        ok(try eddy(["train", "--data", dir + "/archive/tracer_*.nc", "--out", dir + "/m3.safetensors", "--save-state", dir + "/s3.npy"] + common), "glob")
        ok(try eddy(["train", "--data", paths.reversed().joined(separator: ","), "--out", dir + "/m4.safetensors", "--save-state", dir + "/s4.npy"] + common), "list")
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/s3.npy")) == s1 && Data(contentsOf: URL(fileURLWithPath: dir + "/s4.npy")) == s1)
        // Forecast, evaluate, sweep and --pca read the archive.
        ok(try eddy(["forecast", "--model", dir + "/m2.safetensors", "--data", dir + "/archive", "--horizon", "3", "--origins", "every:60", "--out", dir + "/f.nc"]), "forecast")
        let f1 = try eddy(["forecast", "--model", dir + "/m1.safetensors", "--data", one, "--horizon", "3", "--origins", "every:60", "--out", dir + "/f1.csv"])
        let f2 = try eddy(["forecast", "--model", dir + "/m2.safetensors", "--data", dir + "/archive", "--horizon", "3", "--origins", "every:60", "--out", dir + "/f2.csv"])
        ok(f1, "forecast one")
        ok(f2, "forecast archive")
        #expect(try String(contentsOfFile: dir + "/f1.csv", encoding: .utf8) == String(contentsOfFile: dir + "/f2.csv", encoding: .utf8))
        ok(try eddy(["evaluate", "--model", dir + "/m2.safetensors", "--data", dir + "/archive", "--horizon", "3"]), "evaluate")
        ok(try eddy(["sweep", "--data", dir + "/archive", "--widths", "8,16", "--horizon", "3", "--validation-fraction", "0.2", "--out", dir + "/ms.safetensors"]), "sweep")
        ok(try eddy(["train", "--data", dir + "/archive", "--pca", "4", "--width", "16", "--out", dir + "/mp.safetensors"]), "pca")
        ok(try eddy(["forecast", "--model", dir + "/mp.safetensors", "--data", dir + "/archive", "--horizon", "2", "--out", dir + "/fp.nc"]), "pca forecast")

        // A file with a shifted grid, and one with other units, refused by name.
        for (tag, transform) in [("shifted", { (p: Int) in (p == 6 ? 0.5 : 0, "1") }), ("units", { (p: Int) in (0.0, p == 6 ? "K" : "1") })] {
            let bad = dir + "/" + tag
            try FileManager.default.createDirectory(atPath: bad, withIntermediateDirectories: true)
            let files = try split(one, parts: 10, into: bad, transform: transform)
            let r = try eddy(["train", "--data", bad, "--out", bad + "/m.safetensors"] + common)
            #expect(r.status == 1 && r.stderr.contains(files[6] + ": ") && !FileManager.default.fileExists(atPath: bad + "/m.safetensors"), "\(r.stderr)")
            #expect(r.stderr.contains(tag == "shifted" ? "its grid differs" : "variable 'q' has units 'K', but '1'"), "\(r.stderr)")
        }
    }

    @Test func era5ShapedFilesTrainForecastAndEvaluate() throws {
        let dir = try scratch("eddy-era5")
        try writeERA5(dir + "/era5.nc", steps: 240, fillAt: 100)
        ok(try eddy(["train", "--data", dir + "/era5.nc", "--delays", "2", "--width", "32", "--out", dir + "/m.safetensors"]), "train")
        ok(try eddy(["forecast", "--model", dir + "/m.safetensors", "--data", dir + "/era5.nc", "--horizon", "6", "--origins", "every:40", "--out", dir + "/f.nc"]), "forecast")
        let e = try eddy(["evaluate", "--model", dir + "/m.safetensors", "--data", dir + "/era5.nc", "--horizon", "6", "--json"])
        ok(e, "evaluate")
        #expect(e.stdout.contains("\"rmse\"") || e.stdout.contains("rmse"), "\(e.stdout.prefix(400))")
    }

    @Test func irregularMonthlyTimesAreReportedNotFoundOnePair() throws {
        let dir = try scratch("eddy-monthly")
        var v: [Double] = []
        let times: [Double] = [0, 1, 13, 25, 37, 49]
        for n in times.indices { for i in 0..<2 { for j in 0..<3 { v.append(sin(Double(n) + Double(i * 3 + j))) } } }
        let b = ClassicNetCDFBuilder(records: times.count, dimensions: [("time", 0), ("lat", 2), ("lon", 3)], variables: [
            .init("lat", [1], values: [10, 20], attributes: [("units", "degrees_north")]),
            .init("lon", [2], values: [0, 5, 10], attributes: [("units", "degrees_east")]),
            .init("time", [0], values: times, attributes: [("units", "Month")]),
            .init("sst", [0, 1, 2], values: v),
        ])
        try Data(b.bytes()).write(to: URL(fileURLWithPath: dir + "/m.nc"))
        let r = try eddy(["train", "--data", dir + "/m.nc", "--width", "8", "--out", dir + "/m.safetensors"])
        #expect(r.status == 1 && r.stderr.contains("are irregular: 4 of 5 steps differ from the step 1"), "\(r.stderr)")
        #expect(r.stderr.contains("the first jump is from 1 to 13") && r.stderr.contains("units 'Month'"), "\(r.stderr)")
    }

    /// `--nc-time` is recorded in the model: forecast and evaluate read a file with an unconventional time axis
    /// without repeating it.
    @Test func theModelRecordsTheTimeAxis() throws {
        let dir = try scratch("eddy-nctime")
        let steps = 80
        var v: [Double] = []
        for n in 0..<steps { for i in 0..<2 { for j in 0..<3 { v.append(sin(0.2 * Double(n) + Double(i * 3 + j))) } } }
        let b = ClassicNetCDFBuilder(records: 0, dimensions: [("sample", steps), ("lat", 2), ("lon", 3)], variables: [
            .init("lat", [1], values: [10, 20], attributes: [("units", "degrees_north")]),
            .init("lon", [2], values: [0, 5, 10], attributes: [("units", "degrees_east")]),
            .init("v", [0, 1, 2], values: v),
        ])
        try Data(b.bytes()).write(to: URL(fileURLWithPath: dir + "/s.nc"))
        let refused = try eddy(["train", "--data", dir + "/s.nc", "--width", "8", "--out", dir + "/m.safetensors"])
        #expect(refused.status == 1 && refused.stderr.contains("--nc-time"), "\(refused.stderr)")
        ok(try eddy(["train", "--data", dir + "/s.nc", "--nc-time", "sample", "--width", "8", "--out", dir + "/m.safetensors"]), "train")
        ok(try eddy(["forecast", "--model", dir + "/m.safetensors", "--data", dir + "/s.nc", "--horizon", "3", "--out", dir + "/f.csv"]), "forecast")
        ok(try eddy(["evaluate", "--model", dir + "/m.safetensors", "--data", dir + "/s.nc", "--horizon", "3"]), "evaluate")

        // --nc-months too: monthly means on the 1st of each month (days since 2000-01-01), trained by month.
        var t: [Double] = [], x: [Double] = []
        for k in 0..<60 {
            t.append((TimeParser.seconds(String(format: "%04d-%02d-01", 2000 + k / 12, k % 12 + 1))! - 946_684_800) / 86_400)
            for i in 0..<6 { x.append(sin(2 * .pi * Double(k) / 12 + Double(i))) }
        }
        let monthly = ClassicNetCDFBuilder(records: 60, dimensions: [("time", 0), ("lat", 2), ("lon", 3)], variables: [
            .init("lat", [1], values: [10, 20], attributes: [("units", "degrees_north")]),
            .init("lon", [2], values: [0, 5, 10], attributes: [("units", "degrees_east")]),
            .init("time", [0], values: t, attributes: [("units", "days since 2000-01-01")]),
            .init("sst", [0, 1, 2], values: x),
        ])
        try Data(monthly.bytes()).write(to: URL(fileURLWithPath: dir + "/monthly.nc"))
        let hint = try eddy(["train", "--data", dir + "/monthly.nc", "--width", "8", "--out", dir + "/mm.safetensors"])
        #expect(hint.stderr.contains("for monthly data pass --nc-months"), "\(hint.stderr)")
        ok(try eddy(["train", "--data", dir + "/monthly.nc", "--nc-months", "--width", "8", "--out", dir + "/mm.safetensors"]), "train by month")
        let f = try eddy(["forecast", "--model", dir + "/mm.safetensors", "--data", dir + "/monthly.nc", "--horizon", "2", "--out", dir + "/mm.csv"])
        ok(f, "forecast by month")
        #expect(f.stderr.isEmpty, "\(f.stderr)")
    }

    /// The 91 × 181 monthly climatology (16,471 points, 12 steps): a clear error before any allocation without
    /// --pca (here under a 2 GiB budget), a model with it; never a fatal error.
    @Test func wideMonthlyClimatologyGetsAClearErrorOrAPCAModel() throws {
        let dir = try scratch("eddy-wide")
        let ny = 91, nx = 181, steps = 12
        var v: [Double] = []
        v.reserveCapacity(steps * ny * nx)
        for n in 0..<steps { for i in 0..<ny { for j in 0..<nx { v.append(20 * cos(Double(i - 45) / 30) + 3 * sin(2 * .pi * Double(n) / 12 + Double(j) / 20)) } } }
        let b = ClassicNetCDFBuilder(records: steps, dimensions: [("time", 0), ("lat", ny), ("lon", nx)], variables: [
            .init("lat", [1], values: (0..<ny).map { -90 + 2 * Double($0) }, attributes: [("units", "degrees_north")]),
            .init("lon", [2], values: (0..<nx).map { 2 * Double($0) }, attributes: [("units", "degrees_east")]),
            .init("time", [0], values: (1...steps).map(Double.init), attributes: [("units", "Month")]),
            .init("sst", [0, 1, 2], type: 5, values: v, attributes: [("units", "degC")]),
        ])
        try Data(b.bytes()).write(to: URL(fileURLWithPath: dir + "/sst.nc"))
        let r = try eddy(["train", "--data", dir + "/sst.nc", "--width", "16", "--out", dir + "/m.safetensors"], environment: ["EDDY_MEMORY_LIMIT": "2G"])
        #expect(r.status == 1 && r.stderr.contains("--pca") && r.stderr.contains("16488 features × 16471 targets") && !r.stderr.contains("Fatal"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/m.safetensors"))
        ok(try eddy(["train", "--data", dir + "/sst.nc", "--width", "16", "--pca", "3", "--out", dir + "/p.safetensors"], environment: ["EDDY_MEMORY_LIMIT": "2G"]), "pca")
    }

    /// Forecast files open in xarray (a virtual environment the test makes, with Debian's python3-xarray and
    /// python3-netcdf4): valid time, reference time and lead decoded, units on every variable; station forecasts in
    /// every output format split back by station and agree.
    @Test func forecastFilesOpenInXarrayAndSplitByStation() throws {
        let dir = try scratch("eddy-xarray")
        let py = try XarrayEnvironment.python.get()
        try writeERA5(dir + "/era5.nc", steps: 120)
        ok(try eddy(["train", "--data", dir + "/era5.nc", "--delays", "2", "--width", "16", "--out", dir + "/m.safetensors"]), "train")
        ok(try eddy(["forecast", "--model", dir + "/m.safetensors", "--data", dir + "/era5.nc", "--horizon", "4", "--origins", "every:30", "--out", dir + "/grid.nc"]), "forecast")
        // Stations: the weather demo's three airports.
        ok(try eddy(["train", "--data", weatherData, "--episode-column", "origin", "--time-column", "time_hour", "--columns", "temp,dewp",
                     "--fill-gaps", "3", "--until", "2013-02-01", "--delays", "2", "--width", "16", "--out", dir + "/s.safetensors"]), "train stations")
        for ext in ["csv", "npy", "nc"] {
            ok(try eddy(["forecast", "--model", dir + "/s.safetensors", "--data", weatherData, "--from", "2013-02-01", "--until", "2013-02-08",
                         "--horizon", "5", "--origins", "every:48", "--out", dir + "/st." + ext]), "forecast stations .\(ext)")
        }
        let script = """
        import sys, csv, json
        import numpy as np, xarray as xr
        d = sys.argv[1]
        out = {}
        g = xr.open_dataset(d + "/grid.nc")
        out["time"] = str(g["time"].dtype)
        out["reference_time"] = str(g["reference_time"].dtype)
        out["lead"] = str(g["forecast_period"].dtype)
        out["lead_hours"] = [float(x / np.timedelta64(1, "h")) for x in g["forecast_period"].values]
        out["lag"] = float((g["time"].values[0, 0] - g["reference_time"].values[0]) / np.timedelta64(1, "h"))
        out["no_units"] = sorted(n for n in list(g.variables) if "units" not in g[n].attrs and "units" not in g[n].encoding and g[n].dtype.kind not in "OUS")
        out["t_attrs"] = {k: str(v) for k, v in g["t"].attrs.items()}
        out["lat_units"] = g["latitude"].attrs.get("units")
        out["lat"] = [float(x) for x in g["latitude"].values]
        out["level_units"] = g["pressure_level"].attrs.get("units")
        out["coords"] = sorted(g["t"].coords)
        # Stations in every format, split back by station.
        rows = list(csv.DictReader(open(d + "/st.csv")))
        def by_station_csv(var):
            s = {}
            for r in rows:
                s.setdefault(r["origin"], []).append(float(r[var]))
            return s
        f = np.load(d + "/st.npy")
        cases = list(csv.DictReader(open(d + "/st.cases.csv")))
        n = xr.open_dataset(d + "/st.nc")
        out["nc_episodes"] = sorted(set(str(e) for e in n["episode"].values))
        agree = True
        for k, var in enumerate(["temp", "dewp"]):
            c = by_station_csv(var)
            for station in c:
                a = np.array(c[station])
                b = np.concatenate([f[int(x["forecast"]), :, k] for x in cases if x["origin"] == station])
                m = n[var].values[[i for i, e in enumerate(n["episode"].values) if str(e) == station]].reshape(-1)
                agree = agree and a.shape == b.shape == m.shape and np.allclose(a, b, rtol=1e-12, atol=1e-9) and np.allclose(a, m, rtol=1e-12, atol=1e-9)
        out["stations"] = sorted(by_station_csv("temp"))
        out["npy_stations"] = sorted(set(x["origin"] for x in cases))
        out["agree"] = bool(agree)
        out["station_time"] = str(n["time"].dtype)
        print(json.dumps(out))
        """
        try script.write(toFile: dir + "/check.py", atomically: true, encoding: .utf8)
        let run = try runProcess(py, [dir + "/check.py", dir], in: dir)
        #expect(run.status == 0, "\(run.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], "\(run.stdout) \(run.stderr)")
        #expect(report["time"] as? String == "datetime64[ns]" && report["reference_time"] as? String == "datetime64[ns]", "\(report)")
        #expect(report["lead"] as? String == "timedelta64[ns]" && report["lead_hours"] as? [Double] == [1, 2, 3, 4], "\(report)")
        #expect(report["lag"] as? Double == 1, "\(report)")
        #expect(report["no_units"] as? [String] == [], "\(report)")
        let t = report["t_attrs"] as? [String: String] ?? [:]
        #expect(t["units"] == "K" && t["standard_name"] == "air_temperature" && t["long_name"] == "forecast of Temperature", "\(t)")
        #expect(report["lat_units"] as? String == "degrees_north" && report["lat"] as? [Double] == [50, 45, 40] && report["level_units"] as? String == "hPa", "\(report)")
        #expect(Set(report["coords"] as? [String] ?? []).isSuperset(of: ["time", "reference_time", "forecast_period", "episode", "latitude", "longitude", "pressure_level"]), "\(report)")
        let stations = ["EWR", "JFK", "LGA"]
        #expect(report["stations"] as? [String] == stations && report["npy_stations"] as? [String] == stations && report["nc_episodes"] as? [String] == stations, "\(report)")
        #expect(report["agree"] as? Bool == true && report["station_time"] as? String == "datetime64[ns]", "\(report)")
    }
}

/// `.venv-xarray/bin/python`: a virtual environment over Debian's Python with python3-xarray and python3-netcdf4
/// (`Scripts/setup.sh` installs them; no download), made once per test process.
enum XarrayEnvironment {
    struct SetupError: Error, Sendable, CustomStringConvertible { var description: String }

    static let python: Result<String, SetupError> = {
        let venv = packageRoot + "/.venv-xarray"
        let py = venv + "/bin/python"
        do {
            if !FileManager.default.isExecutableFile(atPath: py) {
                let made = try runProcess("/usr/bin/python3", ["-m", "venv", "--system-site-packages", venv])
                guard made.status == 0 else { return .failure(SetupError(description: "/usr/bin/python3 -m venv failed (install python3-venv): \(made.stderr)")) }
            }
            let check = try runProcess(py, ["-c", "import xarray, netCDF4, numpy"], in: "/")
            guard check.status == 0 else {
                return .failure(SetupError(description: "the environment cannot import xarray and netCDF4 (Scripts/setup.sh installs python3-xarray and python3-netcdf4): \(check.stderr)"))
            }
            return .success(py)
        } catch {
            return .failure(SetupError(description: "\(error)"))
        }
    }()
}
