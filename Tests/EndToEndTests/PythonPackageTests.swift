import Eddy
import EddyTestSupport
import Foundation
import Testing

/// The Python package (`python/`, import package `eddy`) forecasts what `eddy forecast` forecasts, to 1e-10, on every
/// kind of model: calendar inputs and angles (the weather demo's model), Koopman with inputs (from the data and from
/// `--future-inputs`), a `--pca` gridded field, delays > 1 (also as format 1–3 files), and the divergence flags.
/// The package is installed into a virtual environment the tests make (`.venv-test/`, with the system's NumPy).
@Suite("the Python package against eddy forecast", .serialized)
struct PythonPackageTests {
    struct SetupError: Error, Sendable, CustomStringConvertible { var description: String }

    /// `.venv-test/bin/python` with `./python` freshly installed, made once per test process.
    static let python: Result<String, SetupError> = {
        let venv = packageRoot + "/.venv-test"
        let py = venv + "/bin/python"
        do {
            if !FileManager.default.isExecutableFile(atPath: py) {
                let made = try runProcess("/usr/bin/env", ["python3", "-m", "venv", "--system-site-packages", venv])
                guard made.status == 0 else { return .failure(SetupError(description: "python3 -m venv failed (install python3-venv): \(made.stderr)")) }
            }
            // The package builds with its own backend (python/_build), so this needs no download; NumPy comes from the system.
            let pip = try runProcess(py, ["-m", "pip", "install", "--quiet", packageRoot + "/python"],
                                     environment: ["PIP_DISABLE_PIP_VERSION_CHECK": "1"], in: packageRoot)
            guard pip.status == 0 else { return .failure(SetupError(description: "pip install ./python failed: \(pip.stderr)")) }
            let numpy = try runProcess(py, ["-c", "import numpy, eddy"], in: "/")
            guard numpy.status == 0 else { return .failure(SetupError(description: "the environment cannot import numpy and eddy: \(numpy.stderr)")) }
            return .success(py)
        } catch {
            return .failure(SetupError(description: "\(error)"))
        }
    }()

    /// The data as `eddy forecast` reads them for this model (its recorded shaping), with a time window.
    func spec(for model: Model, data: String, from: String? = nil, until: String? = nil) -> DataSpec {
        var s = DataSpec.reading(data, for: model)
        s.from = from.flatMap(TimeParser.seconds)
        s.until = until.flatMap(TimeParser.seconds)
        return s
    }

    func writeNPY(_ values: [Double], shape: [Int], to path: String) throws {
        var bytes = NPY.header(shape: shape)
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 } }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// Writes what the Python side needs for the origins `choice` of `data` (as Eddy reads them: gaps filled,
    /// angles as sine/cosine), runs `eddy forecast` on them into `eddy.npy`, then `check_forecast.py`; returns its report.
    func compare(model path: String, data: String, from: String? = nil, until: String? = nil, origins: String, horizon: Int,
                 futureInputs: (file: String, rows: [String: [Double]])? = nil, extra: [String: Any] = [:], in dir: String) throws -> [String: Any] {
        let py = try Self.python.get()
        let model = try ModelFile.read(path)
        let (_, segments) = try DataSource.loadSegments(spec(for: model, data: data, from: from, until: until))
        let choice: OriginChoice = origins == "last" ? .last : .every(stride: Int(origins.dropFirst(6))!)
        let picks = try Forecaster.origins(model: model, segments: segments, choice: choice, horizon: horizon, path: data)
        let n = model.outputCount, e = model.externalInputs.count, k = model.layout.delays
        var history: [Double] = [], future: [Double] = [], times: [Double] = []
        for (si, t) in picks {
            let s = segments[si]
            for r in (t - k + 1)...t { history += s.row(r).prefix(n + e) }
            if e > 0 {
                for h in 1..<horizon {
                    if t + h < s.rowCount {
                        let row = s.row(t + h)
                        future += row[(row.startIndex + n)..<(row.startIndex + n + e)]
                    } else {
                        let rows = futureInputs!.rows[s.episode]!
                        let j = t + h - s.rowCount
                        future += rows[(j * e)..<((j + 1) * e)]
                    }
                }
            }
            if !model.calendar.isEmpty { times.append(s.times[t]) }
        }
        let b = picks.count
        try writeNPY(history, shape: [b, k, n + e], to: dir + "/history.npy")
        if e > 0 { try writeNPY(future, shape: [b, horizon - 1, e], to: dir + "/future.npy") }
        if !times.isEmpty { try writeNPY(times, shape: [b], to: dir + "/times.npy") }
        var args = ["forecast", "--model", path, "--data", data, "--horizon", "\(horizon)", "--origins", origins, "--out", dir + "/eddy.npy"]
        if let from { args += ["--from", from] }
        if let until { args += ["--until", until] }
        if let f = futureInputs { args += ["--future-inputs", f.file] }
        let f = try eddy(args)
        #expect(f.status == 0, "\(f.stderr)")
        var config: [String: Any] = ["model": path, "steps": horizon]
        config.merge(extra) { $1 }
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: dir + "/config.json"))
        let run = try runProcess(py, [packageRoot + "/python/tests/check_forecast.py", dir], in: dir)
        #expect(run.status == 0, "\(run.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any] ?? [:]
        print("python vs eddy forecast: \(run.stdout)")
        return report
    }

    func expectAgreement(_ r: [String: Any], forecasts: Int? = nil) {
        let rel = r["max_rel"] as? Double ?? .infinity
        #expect(rel <= 1e-10, "max |python − eddy| / max(1, |eddy|) = \(rel)")
        #expect(r["same_non_finite"] as? Bool == true)
        #expect((r["single_vs_batch"] as? Double ?? .infinity) <= 1e-10 * max(1, r["max_value"] as? Double ?? 1))
        if let forecasts { #expect(r["forecasts"] as? Int == forecasts) }
    }

    /// The weather demo's model (real data with gaps: 24 hourly delays, hour-of-day and day-of-year inputs computed
    /// from the timestamps, wind direction as sine/cosine), and its forecasts with angles back in degrees.
    @Test func weatherModelWithCalendarAndAngles() throws {
        let dir = try scratch()
        let data = weatherData
        try trainWeatherModel(ridge: "1e-2", to: dir + "/w.st")
        let r = try compare(model: dir + "/w.st", data: data, from: "2013-11-01", until: "2013-12-01", origins: "every:23", horizon: 48,
                            extra: ["degrees": true], in: dir)
        expectAgreement(r)
        #expect((r["forecasts"] as? Int ?? 0) > 50)
        #expect(r["raw_variables"] as? [String] == ["temp", "dewp", "humid", "wind_speed", "wind_dir", "pressure", "visib"])
        #expect((r["degrees_forecasts"] as? Int ?? 0) > 10)
        #expect((r["degrees_max_abs"] as? Double ?? .infinity) <= 1e-8)
    }

    /// Divergence flags: a too-small ridge on the weather data makes free runs leave the training range; the package
    /// flags the same forecasts from the same steps as `eddy forecast`'s flag column.
    @Test func divergenceFlagsMatch() throws {
        let dir = try scratch()
        let data = weatherData
        try trainWeatherModel(ridge: "1e-6", to: dir + "/w.st")
        let f = try eddy(["forecast", "--model", dir + "/w.st", "--data", data, "--from", "2013-11-01", "--horizon", "168",
                          "--origins", "every:168", "--out", dir + "/f.csv"])
        #expect(f.status == 0, "\(f.stderr)")
        // The first step flagged 'diverged' per forecast (rows: forecast by forecast, steps 1…H).
        let rows = try String(contentsOfFile: dir + "/f.csv", encoding: .utf8).split(separator: "\n").dropFirst()
        var flags: [Int] = []
        for (i, row) in rows.enumerated() {
            if i % 168 == 0 { flags.append(0) }
            if row.hasSuffix(",diverged"), flags[flags.count - 1] == 0 { flags[flags.count - 1] = i % 168 + 1 }
        }
        let r = try compare(model: dir + "/w.st", data: data, from: "2013-11-01", origins: "every:168", horizon: 168,
                            extra: ["flags": flags], in: dir)
        #expect(r["flags_python"] as? [Int] == flags)
        #expect((r["diverged_forecasts"] as? Int ?? 0) > 0)
    }

    /// A Koopman model with an input: inputs from the data at every origin, and past the end from --future-inputs.
    @Test func koopmanModelWithInputs() throws {
        let dir = try scratch()
        #expect(try eddy(["generate", "forced-vanderpol", "--trajectories", "6", "--steps", "200", "--out", dir + "/d.csv"]).status == 0)
        let t = try eddy(["train", "--data", dir + "/d.csv", "--inputs", "u", "--form", "koopman", "--delays", "2", "--width", "60",
                          "--solver", "cholesky", "--ridge", "1e-8", "--out", dir + "/k.st"])
        #expect(t.status == 0, "\(t.stderr)")
        let header = try String(contentsOfFile: dir + "/d.csv", encoding: .utf8).split(separator: "\n")[0]
        #expect(header.contains("u"))
        // Many origins (the readout-propagating path of the Koopman form) …
        expectAgreement(try compare(model: dir + "/k.st", data: dir + "/d.csv", origins: "every:17", horizon: 30, in: dir))
        // … and the last window of each trajectory, with inputs for the 29 steps after it from a file.
        var text = "episode,u\n"
        var rows: [String: [Double]] = [:]
        for ep in 0..<6 {
            for h in 0..<29 {
                let u = sin(0.3 * Double(h + ep))
                text += "\(ep),\(u)\n"
                rows["\(ep)", default: []].append(u)
            }
        }
        try writeText(text, dir + "/future.csv")
        let last = try compare(model: dir + "/k.st", data: dir + "/d.csv", origins: "last", horizon: 30,
                               futureInputs: (dir + "/future.csv", rows), in: dir)
        expectAgreement(last, forecasts: 6)
    }

    /// A gridded field (`eddy generate tracer`, netCDF) reduced to EOFs (`--pca`, area-weighted) with hour-of-day
    /// inputs and 2 delays: forecasts back on all grid points, and on their grid.
    @Test func pcaGriddedModel() throws {
        let dir = try scratch()
        #expect(try eddy(["generate", "tracer", "--steps", "720", "--lat", "8", "--lon", "16", "--out", dir + "/f.nc"]).status == 0)
        let t = try eddy(["train", "--data", dir + "/f.nc", "--until", "2000-01-21", "--pca", "10", "--calendar", "hour", "--delays", "2",
                          "--width", "60", "--ridge", "1e-4", "--out", dir + "/g.st"])
        #expect(t.status == 0, "\(t.stderr)")
        let r = try compare(model: dir + "/g.st", data: dir + "/f.nc", from: "2000-01-21", origins: "every:13", horizon: 24,
                            extra: ["grid": true], in: dir)
        expectAgreement(r)
        let grid = r["grid"] as? [String: Any]
        let q = grid?["q"] as? [Any]
        #expect((q?.first as? [Int])?.suffix(2) == [8, 16], "\(String(describing: grid))")
    }

    /// Delays > 1, recurrent, ReLU, random features; the same file rewritten as format versions 1–3 loads (with the
    /// note that it has no checksum) and forecasts the same, and a flipped bit in format 4 is refused.
    @Test func delayModelAndOldFormatVersions() throws {
        let dir = try scratch()
        #expect(try eddy(["generate", "lorenz63", "--trajectories", "3", "--steps", "600", "--out", dir + "/l.csv"]).status == 0)
        let t = try eddy(["train", "--data", dir + "/l.csv", "--delays", "4", "--width", "80", "--activation", "relu", "--sampler", "random",
                          "--solver", "cholesky", "--ridge", "1e-8", "--out", dir + "/d.st"])
        #expect(t.status == 0, "\(t.stderr)")
        let r = try compare(model: dir + "/d.st", data: dir + "/l.csv", origins: "every:41", horizon: 50, extra: ["versions": true], in: dir)
        expectAgreement(r)
        #expect(r["old_versions_agree"] as? [Bool] == [true, true, true])
        #expect(r["flipped_bit_refused"] as? Bool == true)
    }

    /// `eddy evaluate`'s gridded scores — latitude-weighted RMSE and ACC per lead for the model and every baseline
    /// (the trailing climatology with `--trailing-days 3`, reaching before `--from`) — against a direct NumPy
    /// computation from the same forecasts, truth and data (`check_scores.py`).
    @Test func griddedScoresMatchNumPy() throws {
        let dir = try scratch()
        let py = try Self.python.get()
        #expect(try eddy(["generate", "tracer", "--steps", "960", "--lat", "6", "--lon", "8", "--out", dir + "/f.nc"]).status == 0)
        let t = try eddy(["train", "--data", dir + "/f.nc", "--until", "2000-01-25", "--pca", "8", "--calendar", "hour", "--delays", "2",
                          "--width", "40", "--ridge", "1e-4", "--out", dir + "/g.st"])
        #expect(t.status == 0, "\(t.stderr)")
        let window = ["--data", dir + "/f.nc", "--from", "2000-02-01", "--horizon", "30", "--origins", "every:5"]
        let e = try eddy(["evaluate", "--model", dir + "/g.st"] + window + ["--baselines", "--trailing-days", "3", "--json"])
        #expect(e.status == 0, "\(e.stderr)")
        try e.stdout.write(toFile: dir + "/evaluate.json", atomically: true, encoding: .utf8)
        #expect(try eddy(["forecast", "--model", dir + "/g.st"] + window + ["--out", dir + "/eddy.npy"]).status == 0)
        let model = try ModelFile.read(dir + "/g.st")
        let n = model.outputCount
        let (_, segments) = try DataSource.loadSegments(spec(for: model, data: dir + "/f.nc", from: "2000-02-01"))
        let picks = try Forecaster.origins(model: model, segments: segments, choice: .every(stride: 5), horizon: 30, path: "f.nc")
        var truth: [Double] = [], times: [Double] = [], rows: [Double] = []
        for (si, r) in picks {
            for h in 1...30 { truth += segments[si].row(r + h).prefix(n) }
            times.append(segments[si].times[r])
            rows.append(Double(r))
        }
        let (_, all) = try DataSource.loadSegments(spec(for: model, data: dir + "/f.nc"))
        try writeNPY(truth, shape: [picks.count, 30, n], to: dir + "/truth.npy")
        try writeNPY(times, shape: [picks.count], to: dir + "/origin_times.npy")
        try writeNPY(rows, shape: [picks.count], to: dir + "/origin_rows.npy")
        try writeNPY(all.flatMap { s in (0..<s.rowCount).flatMap { Array(s.row($0).prefix(n)) } }, shape: [all.map(\.rowCount).reduce(0, +), n],
                     to: dir + "/all.npy")
        try writeNPY(all.flatMap(\.times), shape: [all.map(\.rowCount).reduce(0, +)], to: dir + "/all_times.npy")
        let config: [String: Any] = ["model": dir + "/g.st", "steps": 30, "trailing_days": 3, "evaluate": dir + "/evaluate.json"]
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: dir + "/config.json"))
        let run = try runProcess(py, [packageRoot + "/python/tests/check_scores.py", dir], in: dir)
        #expect(run.status == 0, "\(run.stderr)")
        print("gridded scores, NumPy vs eddy evaluate: \(run.stdout.prefix(300))")
        let r = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any] ?? [:]
        #expect((r["max_rel_rmse"] as? Double ?? .infinity) <= 1e-10)
        #expect((r["max_rel_acc"] as? Double ?? .infinity) <= 1e-10)
        // The JSON names the field and says how it was weighted; the ACC of the climatology itself is undefined.
        let json = try JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as? [String: Any]
        let gridded = json?["gridded"] as? [String: Any]
        #expect((gridded?["fields"] as? [[String: Any]])?.first?["points"] as? Int == 48)
        let climatologyACC = ((gridded?["acc"] as? [String: Any])?["climatology"] as? [[Any]])?.first
        #expect(climatologyACC?.allSatisfy { $0 is NSNull } == true)
    }

    /// The package's own unit tests (no eddy binary needed).
    @Test func pythonUnitTests() throws {
        let py = try Self.python.get()
        let run = try runProcess(py, ["-m", "unittest", "discover", "-s", packageRoot + "/python/tests", "-t", packageRoot + "/python/tests"], in: "/")
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.contains("OK"), "\(run.stderr)")
    }
}
