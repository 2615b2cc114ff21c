import EddyTestSupport
import Foundation
import Testing

/// ISSUE 2, bad input: each case gives a clear message naming the file (and line/column where there is one),
/// a non-zero exit, and leaves no output file (nor a temporary one) behind.
@Suite("Bad input: clear errors, nothing written", .serialized)
struct BadInputTests {
    let good = "a,b\n1,2\n2,3\n3,5\n4,4\n5,1\n6,0\n"

    func expectFailure(_ arguments: [String], in dir: String, mentions: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let before = try listing(dir)
        let r = try eddy(arguments)
        #expect(r.status != 0, "exit status", sourceLocation: sourceLocation)
        for m in mentions { #expect(r.stderr.contains(m), "stderr should mention '\(m)': \(r.stderr)", sourceLocation: sourceLocation) }
        #expect(!r.stderr.contains("Fatal error"), sourceLocation: sourceLocation)
        #expect(try listing(dir) == before, "no file written", sourceLocation: sourceLocation)
    }

    func train(_ data: String, _ dir: String, _ extra: [String] = []) -> [String] {
        ["train", "--data", data, "--width", "5", "--out", dir + "/m.safetensors"] + extra
    }

    @Test(arguments: [
        ("empty", "", ["empty file"]),
        ("header", "a,b\n", ["header only"]),
        ("ragged", "a,b\n1,2\n3\n4,5\n", [":3:", "expected 2 fields"]),
        ("text", "a,b\n1,2\n3,abc\n", [":3:2:", "'abc'", "column 'b'"]),
        ("inf", "a,b\n1,2\n3,Inf\n", [":3:2:", "infinite"]),
        ("short", "a,b\n1,2\n", ["no trajectory has 2 consecutive valid rows"]),
        ("allnan", "a,b\n1,NA\n2,NA\n3,NA\n", ["column 'b' has no valid value"]),
        ("huge", "a,b\n1e300,2\n-1e300,3\n1e300,5\n-1e300,4\n1e300,1\n", ["column 'a'", "overflows double precision", "rescale"]),
    ])
    func badCSV(name: String, text: String, mentions: [String]) throws {
        let dir = try scratch()
        let data = dir + "/\(name).csv"
        try write(text, data)
        try expectFailure(train(data, dir), in: dir, mentions: [data] + mentions)
    }

    @Test func missingFileUnknownColumnBadWidthAndTooFewRows() throws {
        let dir = try scratch()
        try expectFailure(train(dir + "/nope.csv", dir), in: dir, mentions: [dir + "/nope.csv", "no such file"])
        let data = dir + "/d.csv"
        try write(good, data)
        try expectFailure(train(data, dir, ["--columns", "a,zz"]), in: dir, mentions: [data, "no variable column named 'zz'", "a, b"])
        try expectFailure(["train", "--data", data, "--width=-3", "--out", dir + "/m.safetensors"], in: dir, mentions: ["--width", "-3"])
        try expectFailure(train(data, dir, ["--delays", "6"]), in: dir, mentions: [data, "no trajectory has 7 consecutive valid rows"])
        try expectFailure(train(data, dir, ["--solver", "svd"]), in: dir, mentions: ["--solver", "cholesky, eigh, lstsq, qr"])
    }

    /// ISSUE 11: the qr solver's options are checked before any work, and a rank-deficient problem is cut, not crashed.
    @Test func qrOptions() throws {
        let dir = try scratch()
        let data = dir + "/d.csv"
        try write(good, data)
        try expectFailure(train(data, dir, ["--solver", "qr", "--rcond=-1"]), in: dir, mentions: ["--rcond", "[0, 1)", "-1"])
        try expectFailure(train(data, dir, ["--solver", "qr", "--rcond", "nan"]), in: dir, mentions: ["--rcond", "nan"])
        try expectFailure(train(data, dir, ["--solver", "cholesky", "--rcond", "1e-10"]), in: dir, mentions: ["--rcond does not apply to --solver cholesky"])
        try expectFailure(train(data, dir, ["--solver", "qr", "--precision", "mixed"]), in: dir, mentions: ["--precision mixed does not apply to --solver qr"])
        try expectFailure(["sweep", "--data", data, "--validation-fraction", "0.3", "--widths", "2", "--horizon", "1", "--solver", "auto", "--rconds", "1e-10"],
                          in: dir, mentions: ["--rconds applies to --solver qr only"])
        // A constant column and a duplicated one: Φ is rank-deficient; qr drops the null directions and trains.
        try write("a,b,c,d\n" + (0..<40).map { t in "\(sin(Double(t) * 0.3)),\(cos(Double(t) * 0.3)),2,\(sin(Double(t) * 0.3))" }.joined(separator: "\n") + "\n", data)
        let r = try eddy(train(data, dir, ["--solver", "qr", "--json"]))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("\"dropped\":") && !r.stdout.contains("\"dropped\":0,"), "\(r.stdout)")
        #expect(r.stderr.contains("constant"))
    }

    @Test func brokenModelFiles() throws {
        let dir = try scratch()
        let data = dir + "/d.csv"
        try write(good, data)
        #expect(try eddy(train(data, dir)).status == 0)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: dir + "/m.safetensors"))
        let forecast = { (model: String) in ["forecast", "--model", model, "--data", data, "--horizon", "3", "--out", dir + "/f.csv"] }
        // Truncated: half the file.
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: dir + "/half.safetensors"))
        try expectFailure(forecast(dir + "/half.safetensors"), in: dir, mentions: [dir + "/half.safetensors", "truncated"])
        // Corrupted header: bytes overwritten inside the JSON.
        var corrupt = bytes
        for i in 20..<60 { corrupt[i] = 0x7B }
        try corrupt.write(to: URL(fileURLWithPath: dir + "/bad.safetensors"))
        try expectFailure(forecast(dir + "/bad.safetensors"), in: dir, mentions: [dir + "/bad.safetensors", "corrupted"])
        // Not a model at all.
        try write("hello, world", dir + "/text.safetensors")
        try expectFailure(forecast(dir + "/text.safetensors"), in: dir, mentions: [dir + "/text.safetensors", "not an Eddy model file"])
        // Another format version (same length, so the file stays well-formed).
        let needle = Array("\\\"formatVersion\\\":".utf8)
        let all = [UInt8](bytes)
        guard let at = (0...(all.count - needle.count)).first(where: { Array(all[$0..<($0 + needle.count)]) == needle }) else {
            Issue.record("no formatVersion in the metadata")
            return
        }
        var other = bytes
        other[at + needle.count] = UInt8(ascii: "7")
        try other.write(to: URL(fileURLWithPath: dir + "/v7.safetensors"))
        try expectFailure(forecast(dir + "/v7.safetensors"), in: dir, mentions: [dir + "/v7.safetensors", "format version 7", "reads versions 1…"])
    }

    @Test func forecastNeedsFutureInputsForInputModels() throws {
        let dir = try scratch()
        #expect(try eddy(["generate", "forced-vanderpol", "--trajectories", "3", "--steps", "80", "--out", dir + "/d.csv"]).status == 0)
        #expect(try eddy(["train", "--data", dir + "/d.csv", "--inputs", "u", "--width", "20", "--out", dir + "/m.st"]).status == 0)
        try expectFailure(["forecast", "--model", dir + "/m.st", "--data", dir + "/d.csv", "--horizon", "4", "--out", dir + "/f.csv"],
                          in: dir, mentions: ["--future-inputs"])
        var future = "episode,u\n"
        for e in 0..<3 { for _ in 0..<4 { future += "\(e),0.1\n" } }
        try write(future, dir + "/future.csv")
        let ok = try eddy(["forecast", "--model", dir + "/m.st", "--data", dir + "/d.csv", "--horizon", "4", "--future-inputs", dir + "/future.csv", "--out", dir + "/f.csv"])
        #expect(ok.status == 0, "\(ok.stderr)")
        // Origins inside the data take the inputs from the data.
        let inside = try eddy(["forecast", "--model", dir + "/m.st", "--data", dir + "/d.csv", "--horizon", "4", "--origins", "10,20", "--out", dir + "/g.csv"])
        #expect(inside.status == 0, "\(inside.stderr)")
        #expect(try String(contentsOfFile: dir + "/g.csv", encoding: .utf8).hasPrefix("episode,origin_row,step,x,y,flag\n"))
    }

    /// ISSUE 4, bad input to `eddy sweep`: each a clear error, and no model, CSV or plot written.
    @Test func badSweeps() throws {
        let dir = try scratch()
        #expect(try eddy(["generate", "vanderpol", "--trajectories", "4", "--steps", "60", "--out", dir + "/train.csv"]).status == 0)
        #expect(try eddy(["generate", "vanderpol", "--trajectories", "2", "--steps", "60", "--seed", "1", "--out", dir + "/val.csv"]).status == 0)
        try write("episode,t,x,z\n0,0,1,2\n0,1,2,3\n0,2,3,4\n", dir + "/other.csv")
        try write("episode,t,x,y\n", dir + "/empty.csv")
        let outputs = ["--out", dir + "/best.st", "--csv", dir + "/s.csv", "--plot", dir + "/s.svg"]
        func sweep(_ extra: [String], validation: String = "val.csv") -> [String] {
            ["sweep", "--data", dir + "/train.csv", "--validation", dir + "/" + validation, "--horizon", "5"] + extra + outputs
        }
        try expectFailure(sweep(["--widths", "20,10", "--ridges", "1e-8"]), in: dir, mentions: ["--widths", "strictly increasing", "10 follows 20"])
        try expectFailure(sweep(["--widths", "10,10", "--ridges", "1e-8"]), in: dir, mentions: ["--widths", "without duplicates"])
        try expectFailure(sweep(["--widths", "10", "--ridges", "1e-6,1e-8"]), in: dir, mentions: ["--ridges", "strictly increasing"])
        try expectFailure(sweep(["--widths", "10,40", "--ridges", "1e-8", "--sample-width", "20"]), in: dir, mentions: ["40", "above the sampled maximum"])
        try expectFailure(sweep(["--widths", "10", "--ridges", "1e-8"], validation: "empty.csv"), in: dir, mentions: ["empty.csv", "header only"])
        try expectFailure(sweep(["--widths", "10", "--ridges", "1e-8"], validation: "other.csv"), in: dir, mentions: ["other.csv", "validation columns", "differ from the training data"])
        let ok = try eddy(sweep(["--widths", "10,20", "--ridges", "1e-8,1e-6", "--forms", "recurrent,koopman"]))
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(try listing(dir).contains("best.st") && listing(dir).contains("s.svg"))
    }

    /// ISSUE 5, bad real-data input: an angle outside [0, 360], a pivot with duplicate times, every trajectory
    /// shorter than the delays, a time column that cannot be read.
    @Test func badWeatherData() throws {
        let dir = try scratch()
        var rows = "station,time,temp,dir\n"
        for h in 0..<10 { rows += "A,2013-01-01T\(h < 10 ? "0" : "")\(h):00:00Z,\(h),\(h * 30)\n" }
        try write(rows, dir + "/ok.csv")
        try write(rows + "A,2013-01-01T10:00:00Z,1,400\n", dir + "/angle.csv")
        try write(rows + "A,2013-01-01T09:00:00Z,1,10\n", dir + "/dup.csv")
        try write(rows.replacingOccurrences(of: "T05:00:00Z", with: "noon"), dir + "/time.csv")
        func train(_ file: String, _ extra: [String]) -> [String] {
            ["train", "--data", dir + "/" + file, "--time-column", "time", "--columns", "temp,dir", "--width", "4", "--out", dir + "/m.st"] + extra
        }
        try expectFailure(train("angle.csv", ["--angles", "dir", "--episode-column", "station"]), in: dir, mentions: ["angle.csv:12:4", "angle 400", "[0, 360]"])
        try expectFailure(train("dup.csv", ["--pivot", "station"]), in: dir, mentions: ["dup.csv:12", "two rows for 'A'", "also line 11"])
        try expectFailure(train("ok.csv", ["--episode-column", "station", "--delays", "12"]), in: dir, mentions: ["ok.csv", "no trajectory has 13 consecutive valid rows"])
        try expectFailure(train("time.csv", ["--episode-column", "station"]), in: dir, mentions: ["time.csv:7:2", "'2013-01-01noon'", "time column 'time'"])
        try expectFailure(train("ok.csv", ["--calendar", "hour", "--time-column", "temp"]), in: dir, mentions: ["time column 'temp' cannot also be a variable"])
        let ok = try eddy(train("ok.csv", ["--angles", "dir", "--episode-column", "station", "--calendar", "hour"]))
        #expect(ok.status == 0, "\(ok.stderr)")
    }

    /// ISSUE 6, bad input to `eddy control`: a model without inputs, a reference of the wrong dimension, an
    /// infeasible bound; and a working run that writes its outputs.
    @Test func badControl() throws {
        let dir = try scratch()
        #expect(try eddy(["generate", "pendulum", "--trajectories", "60", "--steps", "40", "--out", dir + "/p.csv"]).status == 0)
        #expect(try eddy(["generate", "vanderpol", "--trajectories", "5", "--steps", "40", "--out", dir + "/v.csv"]).status == 0)
        #expect(try eddy(["train", "--data", dir + "/p.csv", "--inputs", "u", "--width", "40", "--form", "koopman", "--ridge", "1e-8", "--out", dir + "/p.st"]).status == 0)
        #expect(try eddy(["train", "--data", dir + "/v.csv", "--width", "10", "--form", "koopman", "--out", dir + "/v.st"]).status == 0)
        let outputs = ["--out", dir + "/c.csv", "--plot", dir + "/c.svg"]
        func control(_ model: String, _ extra: [String]) -> [String] {
            ["control", "--model", dir + "/" + model, "--system", "pendulum", "--steps", "50"] + extra + outputs
        }
        try expectFailure(control("v.st", ["--reference", "setpoint:3.14159,0"]), in: dir, mentions: ["v.st", "input"])
        try expectFailure(control("p.st", ["--reference", "setpoint:3.14159"]), in: dir, mentions: ["reference", "2"])
        try expectFailure(control("p.st", ["--reference", "setpoint:3.14159,0", "--umin", "2", "--umax", "1"]), in: dir, mentions: ["--umin", "--umax"])
        let ok = try eddy(control("p.st", ["--reference", "setpoint:3.14159,0", "--initial", "2.8,0", "--umin=-2", "--umax", "2", "--json"]))
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(try listing(dir).contains("c.svg") && listing(dir).contains("c.csv"))
    }
}
