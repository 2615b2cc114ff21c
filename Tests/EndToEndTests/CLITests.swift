import Eddy
import EddyTestSupport
import Foundation
import Testing

func write(_ text: String, _ path: String) throws { try text.write(toFile: path, atomically: true, encoding: .utf8) }

func listing(_ dir: String) throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: dir).sorted() }

@Suite("eddy on the command line", .serialized)
struct CLITests {
    /// Generate → train → forecast → evaluate → spectrum, with the forecast CSV's promised columns.
    @Test func pipelineOnVanDerPol() throws {
        let dir = try scratch()
        #expect(try eddy(["generate", "vanderpol", "--trajectories", "20", "--steps", "100", "--out", dir + "/train.csv"]).status == 0)
        #expect(try eddy(["generate", "vanderpol", "--trajectories", "3", "--steps", "60", "--seed", "2", "--out", dir + "/test.csv"]).status == 0)
        let train = try eddy(["train", "--data", dir + "/train.csv", "--episode-column", "episode", "--width", "80", "--form", "koopman",
                              "--ridge", "1e-8", "--out", dir + "/m.safetensors", "--json"])
        #expect(train.status == 0, "\(train.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(train.stdout.utf8)) as! [String: Any]
        #expect(report["pairs"] as? Int == 20 * 99)
        let f = try eddy(["forecast", "--model", dir + "/m.safetensors", "--data", dir + "/test.csv", "--episode-column", "episode",
                          "--horizon", "5", "--out", dir + "/f.csv", "--plot", dir + "/f.svg"])
        #expect(f.status == 0, "\(f.stderr)")
        let lines = try String(contentsOfFile: dir + "/f.csv", encoding: .utf8).split(separator: "\n")
        #expect(lines.first == "episode,step,x,y,flag")
        #expect(lines.count == 1 + 3 * 5)
        #expect(lines[1].hasPrefix("0,1,") && lines[5].hasPrefix("0,5,") && lines[6].hasPrefix("1,1,"))
        let svg = try String(contentsOfFile: dir + "/f.svg", encoding: .utf8)
        #expect(svg.contains("<svg") && svg.contains("truth") && svg.contains("forecast"))
        let npy = try eddy(["forecast", "--model", dir + "/m.safetensors", "--data", dir + "/test.csv", "--horizon", "5", "--out", dir + "/f.npy"])
        #expect(npy.status == 0, "\(npy.stderr)")
        let e = try eddy(["evaluate", "--model", dir + "/m.safetensors", "--data", dir + "/test.csv", "--horizon", "50", "--json", "--climate"])
        #expect(e.status == 0, "\(e.stderr)")
        let ev = try JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as! [String: Any]
        #expect((ev["steps"] as? [Any])?.count == 50)
        #expect(ev["origins"] as? Int == 3)
        #expect(ev["climate"] != nil)
        let s = try eddy(["spectrum", "--model", dir + "/m.safetensors", "--json"])
        #expect(s.status == 0)
        let spec = try JSONSerialization.jsonObject(with: Data(s.stdout.utf8)) as! [String: Any]
        #expect((spec["eigenvalues"] as? [Any])?.count == 1 + 2 + 80)
        #expect(try eddy(["devices"]).stdout.contains("cpu"))
    }

    /// The README's NumPy snippet loads the model file and makes a one-step forecast equal to Eddy's to 1e-10.
    @Test(arguments: [("recurrent", "tanh", 0), ("recurrent", "relu", 0), ("koopman", "tanh", 0), ("koopman", "relu", 0),
                      ("recurrent", "tanh", 2), ("koopman", "relu", 2)])
    func readmeNumpySnippetMatchesEddy(form: String, activation: String, pca: Int) throws {
        let readme = try String(contentsOfFile: packageRoot + "/README.md", encoding: .utf8)
        guard let start = readme.range(of: "<!-- numpy-snippet -->\n```python\n"),
              let end = readme.range(of: "```", range: start.upperBound..<readme.endIndex) else {
            Issue.record("README.md has no marked NumPy snippet")
            return
        }
        let snippet = String(readme[start.upperBound..<end.lowerBound])
        #expect(snippet.split(separator: "\n").count <= 15)
        let dir = try scratch()
        #expect(try eddy(["generate", "lorenz63", "--trajectories", "2", "--steps", "400", "--out", dir + "/train.csv"]).status == 0)
        let t = try eddy(["train", "--data", dir + "/train.csv", "--episode-column", "episode", "--width", "60", "--delays", "3",
                          "--form", form, "--activation", activation, "--out", dir + "/model.safetensors"] + (pca > 0 ? ["--pca", "\(pca)"] : [])
                         // The snippet's formula, not the solver, is under test: cholesky's ridge keeps the weights small, so the
                         // two implementations' last-bit differences stay at 1e-10 (qr at its ε cut-off amplifies them to ~1e-7).
                         + ["--solver", "cholesky"])
        #expect(t.status == 0, "\(t.stderr)")
        // The last 3 rows of trajectory 1, oldest first, as the snippet expects.
        let rows = try String(contentsOfFile: dir + "/train.csv", encoding: .utf8).split(separator: "\n").suffix(3)
        try write(rows.map { $0.split(separator: ",")[2...].joined(separator: ",") }.joined(separator: "\n") + "\n", dir + "/last_rows.csv")
        try write(snippet, dir + "/snippet.py")
        let py = try runProcess("/usr/bin/env", ["python3", "snippet.py"], in: dir)
        #expect(py.status == 0, "\(py.stderr)")
        let numpy = py.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Double($0) }
        let f = try eddy(["forecast", "--model", dir + "/model.safetensors", "--data", dir + "/train.csv", "--episode-column", "episode",
                          "--horizon", "1", "--out", dir + "/f.csv"])
        #expect(f.status == 0, "\(f.stderr)")
        let last = try String(contentsOfFile: dir + "/f.csv", encoding: .utf8).split(separator: "\n").last!
        let swift = last.split(separator: ",")[2...].compactMap { Double($0) }
        #expect(numpy.count == 3 && swift.count == 3)
        for (a, b) in zip(numpy, swift) { #expect(abs(a - b) <= 1e-10 * max(1, abs(b)), "NumPy \(a) vs Eddy \(b)") }
    }

    /// The three solvers give the same forecasts on a well-conditioned problem, through the CLI (1e-8 relative).
    @Test func solversAgreeThroughTheCLI() throws {
        let dir = try scratch()
        #expect(try eddy(["generate", "vanderpol", "--trajectories", "10", "--steps", "100", "--out", dir + "/d.csv"]).status == 0)
        var results: [[Double]] = []
        for solver in ["cholesky", "eigh", "lstsq"] {
            #expect(try eddy(["train", "--data", dir + "/d.csv", "--width", "40", "--ridge", "1e-6", "--solver", solver, "--out", dir + "/\(solver).st"]).status == 0)
            #expect(try eddy(["forecast", "--model", dir + "/\(solver).st", "--data", dir + "/d.csv", "--horizon", "20", "--out", dir + "/\(solver).csv"]).status == 0)
            let text = try String(contentsOfFile: dir + "/\(solver).csv", encoding: .utf8)
            results.append(text.split(separator: "\n").dropFirst().flatMap { $0.split(separator: ",").dropFirst(2).compactMap { Double($0) } })
        }
        let scale = results[0].map(abs).max()!
        for r in results.dropFirst() {
            #expect(r.count == results[0].count)
            #expect(zip(r, results[0]).map { abs($0 - $1) }.max()! <= 1e-8 * scale)
        }
    }

    /// ISSUE 5: free runs on noisy real data with too small a ridge diverge; the forecast says so instead of
    /// writing them as if they were fine (a flag column and a warning; evaluate lists them too).
    @Test func divergingForecastsAreFlagged() throws {
        let dir = try scratch()
        let data = weatherData
        try trainWeatherModel(ridge: "1e-6", to: dir + "/w.st")
        let f = try eddy(["forecast", "--model", dir + "/w.st", "--data", data, "--from", "2013-11-01", "--horizon", "168",
                          "--origins", "every:168", "--out", dir + "/f.csv"])
        #expect(f.status == 0, "\(f.stderr)")
        #expect(f.stderr.contains("left the training range"))
        let text = try String(contentsOfFile: dir + "/f.csv", encoding: .utf8)
        #expect(text.hasPrefix("origin,origin_row,step,time,temp,dewp,humid,wind_speed,wind_dir_sin,wind_dir_cos,pressure,visib,flag\n"))
        // Each row says when it is valid: a date, one hour after the previous step.
        let rows = text.split(separator: "\n").dropFirst().prefix(2).map { $0.split(separator: ",").map(String.init) }
        #expect(rows[0][0] == "EWR" && rows[0][2] == "1" && rows[0][3].hasPrefix("2013-11-") && rows[0][3].hasSuffix(":00:00Z"))
        #expect(TimeParser.seconds(rows[1][3])! - TimeParser.seconds(rows[0][3])! == 3600)
        #expect(text.contains(",diverged\n"))
        let e = try eddy(["evaluate", "--model", dir + "/w.st", "--data", data, "--from", "2013-11-01", "--horizon", "168", "--json"])
        let ev = try JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as! [String: Any]
        #expect(((ev["diverged"] as? [Any])?.count ?? 0) > 0)
    }

    /// `--pca`: train and sweep on the leading components of a wide state (a travelling wave on a 16-point line); the
    /// forecast and the evaluation speak of the original columns; the JSON reports say what was kept.
    @Test func principalComponentsThroughTheCLI() throws {
        let dir = try scratch()
        var text = "t," + (0..<16).map { "h[x=\($0)]" }.joined(separator: ",") + "\n"
        for n in 0..<600 {
            let t = Double(n) * 0.05
            text += "\(t)," + (0..<16).map { i -> String in
                let x = Double(i) / 16 * 2 * Double.pi
                return "\(sin(x - 1.3 * t) + 0.5 * sin(2 * x + 0.7 * t))"
            }.joined(separator: ",") + "\n"
        }
        try write(text, dir + "/wave.csv")
        let t = try eddy(["train", "--data", dir + "/wave.csv", "--until", "20", "--width", "60", "--delays", "2", "--pca", "4",
                          "--solver", "cholesky", "--out", dir + "/m.st", "--json"])
        #expect(t.status == 0, "\(t.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(t.stdout.utf8)) as! [String: Any]
        let pca = report["pca"] as? [String: Any]
        #expect(pca?["components"] as? Int == 4 && pca?["variables"] as? Int == 16)
        #expect((pca?["explained"] as? Double ?? 0) > 0.999)
        let f = try eddy(["forecast", "--model", dir + "/m.st", "--data", dir + "/wave.csv", "--from", "25", "--horizon", "5", "--out", dir + "/f.csv"])
        #expect(f.status == 0, "\(f.stderr)")
        let header = try String(contentsOfFile: dir + "/f.csv", encoding: .utf8).split(separator: "\n")[0]
        #expect(header.contains("h[x=0]") && header.contains("h[x=15]") && !header.contains("pc1"), "\(header)")
        let e = try eddy(["evaluate", "--model", dir + "/m.st", "--data", dir + "/wave.csv", "--from", "20", "--horizon", "20", "--json"])
        #expect(e.status == 0, "\(e.stderr)")
        let ev = try JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as! [String: Any]
        #expect((ev["mse_per_variable"] as? [Double])?.count == 16, "\(ev.keys)")
        #expect((ev["mse"] as? Double ?? 1) < 1e-4, "\(ev["mse"] ?? "none")")
        let s = try eddy(["sweep", "--data", dir + "/wave.csv", "--until", "20", "--validation", dir + "/wave.csv", "--validation-from", "20",
                          "--widths", "20,60", "--ridges", "1e-10,1e-6", "--horizon", "10", "--delays", "2", "--pca", "4", "--json", "--solver", "auto",
                          "--validation-every", "1", "--out", dir + "/best.st"])
        #expect(s.status == 0, "\(s.stderr)")
        let sweep = try JSONSerialization.jsonObject(with: Data(s.stdout.utf8)) as! [String: Any]
        #expect((sweep["pca"] as? [String: Any])?["components"] as? Int == 4)
        // --validation-every 1: an origin at every validation row that has the horizon after it.
        #expect(sweep["origin_stride"] as? Int == 1, "\(sweep["origin_stride"] ?? "none")")
        // Many origins of a wide state: .npy is written batch by batch and holds the CSV's values.
        let csv = try eddy(["forecast", "--model", dir + "/m.st", "--data", dir + "/wave.csv", "--origins", "every:1", "--horizon", "5", "--out", dir + "/all.csv"])
        let npy = try eddy(["forecast", "--model", dir + "/m.st", "--data", dir + "/wave.csv", "--origins", "every:1", "--horizon", "5", "--out", dir + "/all.npy"],
                           environment: ["EDDY_FORECAST_BATCH_VALUES": "4000"])   // 50 origins a batch: 12 batches
        #expect(csv.status == 0 && npy.status == 0, "\(csv.stderr) \(npy.stderr)")
        let (_, segments) = try DataSource.loadSegments(DataSpec(path: dir + "/all.npy"))
        let fromCSV = try String(contentsOfFile: dir + "/all.csv", encoding: .utf8).split(separator: "\n").dropFirst()
            .flatMap { $0.split(separator: ",", omittingEmptySubsequences: false).dropFirst(3).compactMap { Double($0) } }
        // (BLAS may round a product of 50 rows differently from one of 594 in the last bit.)
        #expect(segments.count == 594 && fromCSV.count == 594 * 5 * 16 && relative(segments.flatMap(\.values), fromCSV) < 1e-12)
        // evaluate sums its scores over batches: the same scores either way.
        func evaluate(_ environment: [String: String]) throws -> [String: Any] {
            let r = try eddy(["evaluate", "--model", dir + "/m.st", "--data", dir + "/wave.csv", "--from", "20", "--horizon", "10",
                              "--origins", "every:1", "--baselines", "--report-steps", "1,10", "--json"], environment: environment)
            #expect(r.status == 0, "\(r.stderr)")
            return (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]) ?? [:]
        }
        let a = try evaluate([:]), b = try evaluate(["EDDY_FORECAST_BATCH_VALUES": "500"])   // 3 origins a batch
        #expect(a["origins"] as? Int == b["origins"] as? Int && (a["origins"] as? Int ?? 0) > 100)
        func close(_ x: Any?, _ y: Any?) -> Bool {   // MSE ~1e-11: batches only change the forecasts' rounding
            switch (x, y) {
            case let (p as Double, q as Double): return abs(p - q) <= 1e-8 * max(abs(p), abs(q)) || p == q
            case let (p as [Any], q as [Any]): return p.count == q.count && zip(p, q).allSatisfy { close($0, $1) }
            case let (p as [String: Any], q as [String: Any]): return Set(p.keys) == Set(q.keys) && p.keys.allSatisfy { close(p[$0], q[$0]) }
            case let (p as String, q as String): return p == q
            case (is NSNull, is NSNull): return true
            default: return x == nil && y == nil
            }
        }
        for key in ["mse", "mse_per_variable", "steps", "valid_prediction_time", "comparison", "diverged"] {
            #expect(a[key] != nil && close(a[key], b[key]), "\(key)")
        }
        try FileManager.default.removeItem(atPath: dir + "/all.csv")
        try FileManager.default.removeItem(atPath: dir + "/all.npy")
        // A grid with latitudes: area weights by default, and off on request; the report says which.
        #expect(try eddy(["generate", "tracer", "--steps", "200", "--lat", "6", "--lon", "8", "--out", dir + "/field.nc"]).status == 0)
        for (flag, scaling) in [([String](), "field, area (sqrt cos lat)"), (["--no-area-weights"], "field")] {
            let r = try eddy(["train", "--data", dir + "/field.nc", "--width", "20", "--pca", "5", "--out", dir + "/g.st", "--json"] + flag)
            #expect(r.status == 0, "\(r.stderr)")
            let j = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]) ?? [:]
            #expect((j["pca"] as? [String: Any])?["scaling"] as? String == scaling)
            let text = try eddy(["train", "--data", dir + "/field.nc", "--width", "20", "--pca", "5", "--out", dir + "/g.st"] + flag)
            #expect(text.stdout.contains(flag.isEmpty ? "area-weighted variance" : "field-scaled variance"), "\(text.stdout)")
        }
        try FileManager.default.removeItem(atPath: dir + "/field.nc")
        try FileManager.default.removeItem(atPath: dir + "/g.st")
        // Asking for more components than columns: a clear error, nothing written.
        let before = try listing(dir)
        let bad = try eddy(["train", "--data", dir + "/wave.csv", "--width", "10", "--pca", "17", "--out", dir + "/bad.st"])
        #expect(bad.status != 0 && bad.stderr.contains("--pca 17") && bad.stderr.contains("(16)"), "\(bad.stderr)")
        #expect(try listing(dir) == before)
    }
}
