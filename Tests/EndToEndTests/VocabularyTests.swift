import Eddy
import EddyTestSupport
import Foundation
import Testing

/// The keys of a JSON object's top level, in the order they are written (JSONSerialization forgets the order).
func topLevelKeys(_ text: String) -> [String] {
    var keys: [String] = []
    var depth = 0, inString = false, escaped = false
    var current = "", expectKey = false
    for c in text {
        if inString {
            if escaped { escaped = false; current.append(c); continue }
            if c == "\\" { escaped = true; continue }
            if c == "\"" {
                inString = false
                if depth == 1 && expectKey { keys.append(current); expectKey = false }
                continue
            }
            current.append(c)
            continue
        }
        switch c {
        case "\"": inString = true; current = ""
        case "{", "[": depth += 1; if depth == 1 && c == "{" { expectKey = true }
        case "}", "]": depth -= 1
        case ",": if depth == 1 { expectKey = true }
        default: break
        }
    }
    return keys
}

/// Every number written under a "seconds" object or a `_s` key: at most six decimals (no arithmetic noise digits).
func noisyTimes(_ value: Any, under key: String = "") -> [String] {
    if let d = value as? [String: Any] {
        return d.flatMap { noisyTimes($0.value, under: key == "seconds" ? "seconds" : $0.key) }
    }
    if let a = value as? [Any] { return a.flatMap { noisyTimes($0, under: key) } }
    guard let x = value as? Double, key == "seconds" || key.hasSuffix("_s") || key == "total" else { return [] }
    return abs(x * 1e6 - (x * 1e6).rounded()) > 1e-6 * max(1, abs(x * 1e6)) ? ["\(key): \(x)"] : []
}

@Suite("one vocabulary, stable reports", .serialized)
struct VocabularyTests {
    func json(_ r: Run) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] ?? [:]
    }

    /// Each command's report: its top-level keys in a fixed order (the same on every run), snake_case, and times
    /// without noise digits.
    @Test func reportKeyOrderIsPinned() throws {
        let dir = try scratch()
        let generate = try eddy(["generate", "vanderpol", "--trajectories", "4", "--steps", "120", "--out", dir + "/d.csv", "--json"])
        #expect(generate.status == 0, "\(generate.stderr)")
        #expect(topLevelKeys(generate.stdout) == ["path", "system", "trajectories", "steps", "dt", "variables", "inputs"])
        let trainKeys = ["model", "backend", "rows", "segments", "pairs", "features", "form", "solver", "ridge", "lambda", "condition",
                         "rcond", "dropped", "residual", "fingerprint", "dt", "seconds", "warnings", "filled_rows", "filled_gaps",
                         "longest_filled_gap"]
        // Several runs: a report built from a dictionary comes out in a new hash order in each process.
        for _ in 0..<3 {
            let train = try eddy(["train", "--data", dir + "/d.csv", "--width", "20", "--form", "koopman", "--out", dir + "/m.safetensors", "--json"])
            #expect(train.status == 0, "\(train.stderr)")
            #expect(topLevelKeys(train.stdout) == trainKeys)
            let noise = noisyTimes(try json(train))
            #expect(noise.isEmpty, "\(noise)")
        }
        for _ in 0..<2 {
            let sweep = try eddy(["sweep", "--data", dir + "/d.csv", "--validation-fraction", "0.3", "--widths", "10,20", "--horizon", "10", "--json"])
            #expect(sweep.status == 0, "\(sweep.stderr)")
            #expect(topLevelKeys(sweep.stdout) == ["passes", "validation_origins", "origin_stride", "seconds", "warnings", "candidates"])
            #expect(noisyTimes(try json(sweep)).isEmpty)
        }
        let forecast = try eddy(["forecast", "--model", dir + "/m.safetensors", "--data", dir + "/d.csv", "--horizon", "5", "--out", dir + "/f.csv", "--json"])
        #expect(forecast.status == 0, "\(forecast.stderr)")
        #expect(topLevelKeys(forecast.stdout) == ["out", "plot", "forecasts", "horizon", "dt", "variables", "diverged"])
        #expect(try json(forecast)["forecasts"] as? Int == 4)
        let evaluate = try eddy(["evaluate", "--model", dir + "/m.safetensors", "--data", dir + "/d.csv", "--horizon", "10", "--json"])
        #expect(evaluate.status == 0, "\(evaluate.stderr)")
        #expect(topLevelKeys(evaluate.stdout) == ["variables", "horizon", "dt", "origins", "mse", "mse_standardised", "mse_per_variable",
                                                  "non_finite_forecasts", "valid_prediction_time", "steps", "comparison", "diverged"])
        let spectrum = try eddy(["spectrum", "--model", dir + "/m.safetensors", "--json"])
        #expect(topLevelKeys(spectrum.stdout) == ["dt", "eigenvalues"])
        let bench = try eddy(["bench", "--backend", "cpu", "--rows", "600", "--window", "4", "--width", "10", "--chunk-rows", "256", "--json"])
        #expect(bench.status == 0, "\(bench.stderr)")
        #expect(topLevelKeys(bench.stdout) == ["device", "driver", "backend", "window", "width", "input_count", "chunk_rows", "repetitions", "results", "failures"])
        let noise = noisyTimes(try json(bench))
        #expect(noise.isEmpty, "\(noise)")
        let devices = try eddy(["devices", "--json"])
        #expect(topLevelKeys(devices.stdout).first == "backends")
        // Control: a model with the system's input.
        #expect(try eddy(["generate", "forced-vanderpol", "--trajectories", "20", "--steps", "40", "--out", dir + "/c.csv"]).status == 0)
        #expect(try eddy(["train", "--data", dir + "/c.csv", "--inputs", "u", "--width", "20", "--form", "koopman", "--out", dir + "/c.safetensors"]).status == 0)
        let control = try eddy(["control", "--model", dir + "/c.safetensors", "--system", "forced-vanderpol", "--reference", "setpoint:1,0",
                                "--steps", "20", "--controller", "none,eddy-lqr", "--json"])
        #expect(control.status == 0, "\(control.stderr)")
        #expect(topLevelKeys(control.stdout) == ["system", "model", "form", "width", "delays", "dt", "steps", "substeps", "reference", "initial",
                                                 "umin", "umax", "q", "r", "lifted_weight", "mpc_horizon", "lifted_modes", "controllers"])
        #expect(noisyTimes(try json(control)).isEmpty)
        for r in [generate.stdout, forecast.stdout, evaluate.stdout, spectrum.stdout, bench.stdout, control.stdout] {
            for k in topLevelKeys(r) { #expect(k.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "_" }, "report key '\(k)' is not snake_case") }
        }
        #expect(topLevelKeys(#"{"a":{"b":1,"c":[{"d":2}]},"e\"x":"{,}","f":[1,2]}"#) == ["a", "e\"x", "f"])
    }

    /// Lists are the plural of the singular: a sweep takes --seed 7 and --seeds 0,1, --width 20 and --widths 10,20.
    @Test func sweepTakesTrainsNamesAndTheirPlurals() throws {
        let dir = try scratch()
        #expect(try eddy(["generate", "vanderpol", "--trajectories", "4", "--steps", "120", "--out", dir + "/d.csv"]).status == 0)
        let base = ["sweep", "--data", dir + "/d.csv", "--validation-fraction", "0.3", "--horizon", "10", "--json"]
        let one = try eddy(base + ["--width", "20", "--seed", "7", "--form", "koopman", "--ridge", "1e-8", "--solver", "cholesky"])
        #expect(one.status == 0, "\(one.stderr)")
        let c1 = try json(one)["candidates"] as? [[String: Any]] ?? []
        #expect(c1.count == 1 && c1.first?["seed"] as? Int == 7 && c1.first?["width"] as? Int == 20 && c1.first?["form"] as? String == "koopman")
        let many = try eddy(base + ["--widths", "10,20", "--seeds", "0,3"])
        #expect(many.status == 0, "\(many.stderr)")
        let c2 = try json(many)["candidates"] as? [[String: Any]] ?? []
        #expect(Set(c2.compactMap { $0["seed"] as? Int }) == [0, 3] && c2.count == 4)
        // --seeds used to be a count: a single number says what it means now.
        let note = try eddy(Array(base.dropLast()) + ["--widths", "10", "--seeds", "3"])
        #expect(note.status == 0 && note.stderr.contains("no longer a count"), "\(note.stderr)")
        let dup = try eddy(base + ["--widths", "10", "--seeds", "1,1"])
        #expect(dup.status == 1 && dup.stderr.contains("--seeds"))
    }

    /// The sweep record in the chosen model lists its score steps only when they are not every step of the horizon.
    @Test func sweepRecordIsCompact() throws {
        let dir = try scratch()
        #expect(try eddy(["generate", "vanderpol", "--trajectories", "4", "--steps", "120", "--out", dir + "/d.csv"]).status == 0)
        let base = ["sweep", "--data", dir + "/d.csv", "--validation-fraction", "0.3", "--widths", "10", "--horizon", "20"]
        #expect(try eddy(base + ["--out", dir + "/a.st"]).status == 0)
        #expect(try eddy(base + ["--score-steps", "5,20", "--out", dir + "/b.st"]).status == 0)
        let a = try ModelFile.read(dir + "/a.st").metadata.sweep, b = try ModelFile.read(dir + "/b.st").metadata.sweep
        #expect(a?.horizon == 20 && a?.scoreSteps == nil)
        #expect(b?.scoreSteps == [5, 20])
    }

    /// A negative number is read as the option's value and refused with the range, not "Missing value".
    @Test(arguments: [(["train", "--width", "-5"], "--width must be positive"), (["forecast", "--horizon", "-2"], "--horizon must be at least 1"),
                      (["generate", "vanderpol", "--steps", "-1"], "--steps must be at least 1")])
    func negativeNumbersSayWhatIsWrong(arguments: [String], message: String) throws {
        let dir = try scratch()
        #expect(try eddy(["generate", "vanderpol", "--trajectories", "2", "--steps", "50", "--out", dir + "/d.csv"]).status == 0)
        #expect(try eddy(["train", "--data", dir + "/d.csv", "--width", "10", "--out", dir + "/m.safetensors"]).status == 0)
        var args = arguments
        switch arguments[0] {
        case "train": args += ["--data", dir + "/d.csv", "--out", dir + "/n.safetensors"]
        case "forecast": args += ["--model", dir + "/m.safetensors", "--data", dir + "/d.csv", "--out", dir + "/f.csv"]
        default: args += ["--out", dir + "/g.csv"]
        }
        let r = try eddy(args)
        #expect(r.status == 1, "\(r.status) \(r.stderr)")
        #expect(r.stderr.contains(message) && !r.stderr.contains("Missing value"), "\(r.stderr)")
    }

    /// Old spellings keep working, each with a note naming the new one.
    @Test func oldNamesWorkWithANote() throws {
        let dir = try scratch()
        #expect(try eddy(["generate", "vanderpol", "--trajectories", "3", "--steps", "80", "--out", dir + "/d.csv"]).status == 0)
        #expect(try eddy(["train", "--data", dir + "/d.csv", "--width", "10", "--out", dir + "/m.safetensors"]).status == 0)
        let new = try eddy(["evaluate", "--model", dir + "/m.safetensors", "--data", dir + "/d.csv", "--horizon", "10", "--baselines", "--score-steps", "1,5", "--json"])
        let old = try eddy(["evaluate", "--model", dir + "/m.safetensors", "--data", dir + "/d.csv", "--horizon", "10", "--baselines", "--report-steps", "1,5", "--json"])
        #expect(new.status == 0 && old.status == 0, "\(new.stderr) \(old.stderr)")
        #expect(old.stderr.contains("--report-steps is now --score-steps") && !new.stderr.contains("now"))
        #expect((try json(new)["comparison"] as? [String: Any])?["steps"] as? [Int] == [1, 5])
        #expect(new.stdout == old.stdout)
        let bench = try eddy(["bench", "--backend", "cpu", "--rows", "600", "--inputs", "4", "--controls", "1", "--width", "10", "--chunk-rows", "256", "--json"])
        #expect(bench.status == 0 && bench.stderr.contains("--inputs is now --window") && bench.stderr.contains("--controls is now --input-count"))
        let b = try json(bench)
        #expect(b["window"] as? Int == 4 && b["input_count"] as? Int == 1)
    }

    /// `--out -` is standard output for CSV; a name with another extension is refused before any work.
    @Test func outputPaths() throws {
        let dir = try scratch()
        #expect(try eddy(["generate", "vanderpol", "--trajectories", "2", "--steps", "60", "--out", dir + "/d.csv"]).status == 0)
        #expect(try eddy(["train", "--data", dir + "/d.csv", "--width", "10", "--out", dir + "/m.safetensors"]).status == 0)
        let forecast = ["forecast", "--model", dir + "/m.safetensors", "--data", dir + "/d.csv", "--horizon", "3"]
        let toStdout = try eddy(forecast + ["--out", "-"], in: dir)
        #expect(toStdout.status == 0, "\(toStdout.stderr)")
        let lines = toStdout.stdout.split(separator: "\n")
        #expect(lines.first == "episode,step,x,y,flag" && lines.count == 1 + 2 * 3, "\(toStdout.stdout)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/-"))
        for (args, mention) in [(forecast + ["--out", dir + "/f.txt"], "--out \(dir)/f.txt: unknown extension"),
                                (forecast + ["--out", dir + "/f.csv", "--plot", dir + "/f.png"], "--plot"),
                                (forecast + ["--out", "-", "--json"], "both write to standard output"),
                                (["train", "--data", dir + "/d.csv", "--width", "10", "--out", dir + "/m.csv"], "expected a name ending in .safetensors")] {
            let r = try eddy(args)
            #expect(r.status == 1 && r.stderr.contains(mention), "\(args): \(r.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir + "/f.txt") && !FileManager.default.fileExists(atPath: dir + "/m.csv"))
        let sweep = try eddy(["sweep", "--data", dir + "/d.csv", "--validation-fraction", "0.3", "--widths", "10", "--horizon", "5", "--csv", "-"])
        #expect(sweep.status == 0 && sweep.stdout.hasPrefix("rank,form,width,"), "\(sweep.stdout.prefix(200))")
    }

    /// A model trained without times has dt = 1: evaluate says so when it reports Lyapunov times, and --dt gives
    /// the real step; a dt stored in the model is not overridden.
    @Test func evaluateDt() throws {
        let dir = try scratch()
        #expect(try eddy(["generate", "vanderpol", "--trajectories", "3", "--steps", "80", "--out", dir + "/d.csv"]).status == 0)
        // The same data without the t column.
        let rows = try String(contentsOfFile: dir + "/d.csv", encoding: .utf8).split(separator: "\n").map { line in
            line.split(separator: ",", omittingEmptySubsequences: false).enumerated().filter { $0.offset != 1 }.map(\.element).joined(separator: ",")
        }
        try write(rows.joined(separator: "\n") + "\n", dir + "/untimed.csv")
        #expect(try eddy(["train", "--data", dir + "/untimed.csv", "--width", "10", "--out", dir + "/u.safetensors"]).status == 0)
        let args = ["evaluate", "--model", dir + "/u.safetensors", "--data", dir + "/untimed.csv", "--horizon", "10", "--lyapunov", "0.9", "--json"]
        let assumed = try eddy(args)
        #expect(assumed.status == 0 && assumed.stderr.contains("eddy: warning:") && assumed.stderr.contains("dt = 1"), "\(assumed.stderr)")
        let given = try eddy(args + ["--dt", "0.05"])
        #expect(given.status == 0 && !given.stderr.contains("warning"), "\(given.stderr)")
        let a = try json(assumed)["valid_prediction_time"] as? [String: Any], g = try json(given)["valid_prediction_time"] as? [String: Any]
        let steps = try #require(a?["median_steps"] as? Double)
        #expect(a?["median_time"] as? Double == steps && abs((g?["median_time"] as? Double ?? 0) - 0.05 * steps) < 1e-12)
        #expect(abs((g?["median_lyapunov_times"] as? Double ?? 0) - 0.9 * 0.05 * steps) < 1e-12)
        #expect(try json(given)["dt"] as? Double == 0.05)
        // The timed data's dt (0.05, read off t) is stored in the model: another --dt clashes.
        #expect(try eddy(["train", "--data", dir + "/d.csv", "--width", "10", "--out", dir + "/t.safetensors"]).status == 0)
        let clash = try eddy(["evaluate", "--model", dir + "/t.safetensors", "--data", dir + "/d.csv", "--horizon", "10", "--dt", "1"])
        #expect(clash.status == 1 && clash.stderr.contains("stored in the model"), "\(clash.stderr)")
    }

    /// Messages: origins past the data's end name the data's length; a setting stored in the model says so; a
    /// replaced stored setting is said; plurals.
    @Test func messages() throws {
        let dir = try scratch()
        #expect(try eddy(["generate", "vanderpol", "--trajectories", "1", "--steps", "200", "--out", dir + "/d.csv"]).status == 0)
        #expect(try eddy(["train", "--data", dir + "/d.csv", "--width", "10", "--fill-gaps", "3", "--out", dir + "/m.safetensors"]).status == 0)
        let r = try eddy(["forecast", "--model", dir + "/m.safetensors", "--data", dir + "/d.csv", "--horizon", "5", "--origins", "500", "--out", dir + "/f.csv"])
        #expect(r.status == 1 && r.stderr.contains("200 rows") && r.stderr.contains("--origins 500") && !r.stderr.contains("shorter than"), "\(r.stderr)")
        let over = try eddy(["forecast", "--model", dir + "/m.safetensors", "--data", dir + "/d.csv", "--horizon", "5", "--fill-gaps", "0", "--out", dir + "/f.csv"])
        #expect(over.status == 0 && over.stderr.contains("--fill-gaps 0 replaces the model's stored --fill-gaps 3"), "\(over.stderr)")
        #expect(over.stdout.contains("1 forecast × 5 steps"), "\(over.stdout)")
        try write("episode,t,y\n0,0,1\n0,0.05,2\n", dir + "/other.csv")
        let stored = try eddy(["forecast", "--model", dir + "/m.safetensors", "--data", dir + "/other.csv", "--horizon", "1", "--out", dir + "/g.csv"])
        #expect(stored.status == 1 && stored.stderr.contains("settings stored in the model") && stored.stderr.contains("--fill-gaps 3"), "\(stored.stderr)")
        let g = try eddy(["generate", "vanderpol", "--trajectories", "1", "--steps", "5", "--out", dir + "/one.csv"])
        #expect(g.stdout.contains("1 trajectory × 5 steps"), "\(g.stdout)")
    }

    /// Times as station exports write them: slashes, a space for the T, with or without seconds and a zone; the
    /// same instants as ISO 8601.
    @Test func slashAndSpaceDates() throws {
        let iso = try #require(TimeParser.seconds("2013-01-01T06:00:00Z"))
        for text in ["2013/01/01 06:00", "2013/01/01 06:00:00", "2013/01/01T06:00:00Z", "2013-01-01 06:00", "2013/01/01 07:00+01:00"] {
            #expect(TimeParser.seconds(text) == iso, "\(text)")
        }
        #expect(TimeParser.seconds("2013/01-01") == nil && TimeParser.seconds("2013-01/01") == nil)
        // A CSV with slash dates trains, --from and --until take them, and the cut is where they say.
        let dir = try scratch()
        var csv = "time,x\n"
        for h in 0..<120 { csv += "2010/01/\(h / 24 + 1 < 10 ? "0" : "")\(h / 24 + 1) \(h % 24 < 10 ? "0" : "")\(h % 24):00,\(sin(Double(h) / 5))\n" }
        try write(csv, dir + "/s.csv")
        let t = try eddy(["train", "--data", dir + "/s.csv", "--time-column", "time", "--from", "2010/01/02 00:00", "--until", "2010/01/04 00:00",
                          "--width", "5", "--out", dir + "/m.st", "--json"])
        #expect(t.status == 0, "\(t.stderr)")
        let report = try json(t)
        #expect(report["rows"] as? Int == 48 && report["dt"] as? Double == 3600, "\(report)")
        let bad = try eddy(["train", "--data", dir + "/s.csv", "--from", "01.02.2010", "--width", "5", "--out", dir + "/n.st"])
        #expect(bad.status == 1 && bad.stderr.contains("2013/10/01 06:00"), "\(bad.stderr)")
    }

    /// --time-format for the rest: dates like 13.01.2010 06:00 train, the model stores the format, and forecast reads
    /// new data with it (writing ISO times); --from takes the same format.
    @Test func timeFormat() throws {
        #expect(TimeParser.seconds("01.01.2013 06:00", format: "%d.%m.%Y %H:%M") == TimeParser.seconds("2013-01-01T06:00:00Z"))
        #expect(TimeParser.seconds("1 Jan 13 07:00:30.5 +0100", format: "%d %b %y %H:%M:%S %z") == TimeParser.seconds("2013-01-01T06:00:30.5Z"))
        #expect(TimeParser.seconds("2013-13-01", format: "%Y-%m-%d") == nil && TimeParser.seconds("01.01.2013x", format: "%d.%m.%Y") == nil)
        let dir = try scratch()
        var csv = "when,x\n"
        for h in 0..<96 { csv += "\(h / 24 + 10).01.2010 \(h % 24 < 10 ? "0" : "")\(h % 24):00,\(sin(Double(h) / 5))\n" }
        try write(csv, dir + "/d.csv")
        let t = try eddy(["train", "--data", dir + "/d.csv", "--time-column", "when", "--time-format", "%d.%m.%Y %H:%M", "--from", "11.01.2010 00:00",
                          "--width", "5", "--out", dir + "/m.st", "--json"])
        #expect(t.status == 0, "\(t.stderr)")
        #expect(try json(t)["rows"] as? Int == 72 && json(t)["dt"] as? Double == 3600)
        #expect(try ModelFile.read(dir + "/m.st").metadata.shaping?.timeFormat == "%d.%m.%Y %H:%M")
        let f = try eddy(["forecast", "--model", dir + "/m.st", "--data", dir + "/d.csv", "--horizon", "2", "--out", "-"])
        #expect(f.status == 0, "\(f.stderr)")
        #expect(f.stdout.contains("2010-01-14T00:00:00Z"), "\(f.stdout)")
        let bad = try eddy(["train", "--data", dir + "/d.csv", "--time-column", "when", "--width", "5", "--out", dir + "/n.st"])
        #expect(bad.status == 1 && bad.stderr.contains("--time-format"), "\(bad.stderr)")
    }

    /// The baseline table's headers are never cut ("skill vs persistence", not "skill/persi").
    @Test func comparisonHeadersAreWhole() throws {
        let dir = try scratch()
        try trainWeatherModel(ridge: "1e-2", to: dir + "/w.st")
        let e = try eddy(["evaluate", "--model", dir + "/w.st", "--data", weatherData, "--from", "2013-11-01", "--until", "2013-11-15",
                          "--horizon", "24", "--baselines", "--score-steps", "24"])
        #expect(e.status == 0, "\(e.stderr)")
        #expect(e.stdout.contains("skill vs persistence") && !e.stdout.contains("skill/"), "\(e.stdout)")
        #expect(e.stdout.contains("dt = 1 h") && e.stdout.contains(" h") && !e.stdout.contains("time units"), "\(e.stdout)")
    }

    /// Progress on a terminal (run under script(1), which gives eddy a pseudo-terminal): every update rewrites the
    /// whole line (carriage return … erase to the end), and the passes are numbered with their total.
    @Test func progressLinesOverwriteCleanly() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/script") else { Issue.record("script(1) is missing (util-linux)"); return }
        let dir = try scratch()
        #expect(try eddy(["generate", "lorenz63", "--steps", "60000", "--out", dir + "/l.csv"]).status == 0)
        let r = try runProcess("/usr/bin/script", ["-qc", "\(eddyBinary) train --data l.csv --width 150 --out m.st", "/dev/null"], in: dir)
        #expect(r.status == 0, "\(r.stdout)")
        let updates = r.stdout.split(separator: "\r").filter { $0.contains("pass ") }
        #expect(!updates.isEmpty, "no progress shown: \(r.stdout.prefix(500))")
        for u in updates { #expect(u.hasSuffix("\u{1B}[K"), "an update that does not erase the rest of the line: \(u.debugDescription)") }
        #expect(updates.contains { $0.contains("pass 2 of 2: accumulating:") && $0.contains(" of 59999 (") }, "\(updates.suffix(3))")
        // With --pca the exact EOF pass comes first: three passes in all.
        let p = try runProcess("/usr/bin/script", ["-qc", "\(eddyBinary) train --data l.csv --pca 2 --width 150 --out p.st", "/dev/null"], in: dir)
        #expect(p.status == 0, "\(p.stdout)")
        let pcaUpdates = p.stdout.split(separator: "\r").filter { $0.contains("pass ") }
        #expect(pcaUpdates.contains { $0.contains("pass 1 of 3: principal components") }, "\(pcaUpdates.prefix(3))")
        #expect(pcaUpdates.contains { $0.contains("pass 3 of 3: accumulating:") }, "\(pcaUpdates.suffix(3))")
    }

    /// README's vocabulary table is the source of the shared options: every command it lists names the option in its
    /// --help, and every option two or more commands' --help show is in the table.
    @Test func readmeVocabularyTableMatchesHelp() throws {
        let readme = try String(contentsOfFile: packageRoot + "/README.md", encoding: .utf8)
        guard let start = readme.range(of: "<!-- vocabulary -->\n"), let end = readme.range(of: "<!-- /vocabulary -->", range: start.upperBound..<readme.endIndex) else {
            Issue.record("README.md has no marked vocabulary table")
            return
        }
        let rows = readme[start.upperBound..<end.lowerBound].split(separator: "\n").filter { $0.hasPrefix("| `--") }
        #expect(rows.count >= 20)
        let commands = ["generate", "train", "sweep", "forecast", "evaluate", "spectrum", "control", "devices", "bench", "tune"]
        var help: [String: String] = [:]
        for c in commands { help[c] = try eddy([c, "--help"]).stdout }
        func optionsIn(_ text: String) -> Set<String> {
            Set(text.split(whereSeparator: { " ,[]=<>():/'\"".contains($0) || $0 == "\n" }).map(String.init).filter { $0.hasPrefix("--") && $0.count > 2 && !$0.contains("…") }
                .map { $0.hasPrefix("--no-") ? "--" + $0.dropFirst(5) : $0 })
        }
        var tabled: Set<String> = []
        for row in rows {
            let cells = row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            #expect(cells.count == 4, "\(row)")
            guard cells.count == 4 else { continue }
            let names = cells[0].split(separator: "`").filter { $0.hasPrefix("--") }.map(String.init)
            tabled.formUnion(names)
            let listed = cells[3].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            for c in listed {
                let h = try #require(help[c], "README vocabulary row \(cells[0]) names an unknown command '\(c)'")
                #expect(names.contains { optionsIn(h).contains($0) }, "eddy \(c) --help shows none of \(names) (README vocabulary)")
            }
        }
        var count: [String: [String]] = [:]
        for (c, h) in help { for o in optionsIn(h) { count[o, default: []].append(c) } }
        for (o, cs) in count where cs.count >= 2 && !["--help", "--version"].contains(o) {
            #expect(tabled.contains(o), "\(o) is shared by \(cs.sorted()) but not in README's vocabulary table")
        }
    }
}

/// Every fenced block in the README is marked: `<!-- example -->` blocks are run here, literally, one after the
/// other in one clean folder with this build's `eddy` first on PATH (the files each reads are made by a command
/// shown before it); `<!-- not-run: why -->` blocks say why not; the NumPy snippet has its own test.
@Suite("README examples", .serialized)
struct ReadmeExampleTests {
    static func blocks() throws -> [(marker: String, language: String, body: String)] {
        let lines = try String(contentsOfFile: packageRoot + "/README.md", encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        var out: [(String, String, String)] = []
        var i = 0
        while i < lines.count {
            if lines[i].hasPrefix("```") {
                let language = String(lines[i].dropFirst(3))
                let marker = i > 0 ? String(lines[i - 1]) : ""
                var j = i + 1
                while j < lines.count && !lines[j].hasPrefix("```") { j += 1 }
                out.append((marker, language, lines[(i + 1)..<j].joined(separator: "\n")))
                i = j + 1
            } else {
                i += 1
            }
        }
        return out
    }

    @Test func everyBlockIsMarked() throws {
        let all = try Self.blocks()
        #expect(all.count >= 7)
        for b in all {
            let ok = b.marker == "<!-- example -->" || b.marker == "<!-- numpy-snippet -->" || (b.marker.hasPrefix("<!-- not-run: ") && b.marker.count > 20)
            #expect(ok, "README block without a marker: \(b.body.prefix(80))")
        }
        #expect(all.filter { $0.marker == "<!-- example -->" }.allSatisfy { $0.language == "sh" })
        let readme = try String(contentsOfFile: packageRoot + "/README.md", encoding: .utf8)
        #expect(!readme.contains("METHOD.md"), "README cites METHOD.md, which is not in the repository")
    }

    @Test func examplesRunAsWritten() throws {
        let examples = try Self.blocks().filter { $0.marker == "<!-- example -->" }
        #expect(!examples.isEmpty)
        let dir = try scratch("readme")
        let path = URL(fileURLWithPath: eddyBinary).deletingLastPathComponent().path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        for (i, e) in examples.enumerated() {
            try write("set -euo pipefail\n" + e.body + "\n", dir + "/example\(i).sh")
            let r = try runProcess("/bin/bash", ["example\(i).sh"], environment: ["PATH": path], in: dir)
            #expect(r.status == 0, "README example \(i + 1) failed (\(r.status)):\n\(e.body)\n\(r.stderr.suffix(2000))")
        }
    }
}
