import Eddy
import EddyTestSupport
import Foundation
import Testing

/// `eddy evaluate --acc-climatology FILE`: the ACC of gridded fields against a given climatology. The training
/// climatology written out as a file gives the default ACC exactly; another climatology changes it; a bad file is
/// refused by name and place.
@Suite("ACC against a climatology file", .serialized)
struct ClimatologyFileTests {
    func acc(_ run: Run) throws -> [Double] {
        let json = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as! [String: Any]
        let gridded = json["gridded"] as! [String: Any]
        let rows = (gridded["acc"] as! [String: Any])["eddy"] as! [[Any]]
        return rows.flatMap { $0.map { ($0 as? Double) ?? .nan } }
    }

    @Test func trainingClimatologyAsAFileGivesTheSameACC() throws {
        let dir = try scratch("acc-clim")
        #expect(try eddy(["generate", "tracer", "--steps", "720", "--lat", "6", "--lon", "8", "--out", dir + "/f.nc"]).status == 0)
        let t = try eddy(["train", "--data", dir + "/f.nc", "--until", "2000-01-20", "--pca", "6", "--calendar", "hour",
                          "--width", "30", "--ridge", "1e-4", "--out", dir + "/g.st"])
        #expect(t.status == 0, "\(t.stderr)")
        let model = try ModelFile.read(dir + "/g.st")
        let names = model.metadata.variables, n = names.count
        let clim = try #require(model.climatology)
        let period = clim.count / n
        #expect(period == 24)
        func table(_ value: (Int, Int) -> Double) -> String {
            (["phase"] + names).joined(separator: ",") + "\n"
                + (0..<period).map { k in ([String(k)] + (0..<n).map { "\(value(k, $0))" }).joined(separator: ",") }.joined(separator: "\n") + "\n"
        }
        try writeText(table { clim[$0 * n + $1] }, dir + "/training.csv")
        let window = ["evaluate", "--model", dir + "/g.st", "--data", dir + "/f.nc", "--from", "2000-01-22", "--horizon", "12",
                      "--origins", "every:6", "--json"]
        let plain = try eddy(window)
        #expect(plain.status == 0, "\(plain.stderr)")
        let given = try eddy(window + ["--acc-climatology", dir + "/training.csv"])
        #expect(given.status == 0, "\(given.stderr)")
        let a = try acc(plain), b = try acc(given)
        #expect(a.count == b.count && !a.isEmpty)
        #expect(zip(a, b).allSatisfy { abs($0 - $1) <= 1e-12 * max(1, abs($0)) }, "\(a.prefix(4)) vs \(b.prefix(4))")
        #expect(given.stdout.contains("training.csv (24 phases of the day)"))
        // One mean per variable (P = 1), shifted: a different climatology, a different ACC.
        try writeText((["phase"] + names).joined(separator: ",") + "\n0," + (0..<n).map { "\(clim[$0] + 1)" }.joined(separator: ",") + "\n",
                      dir + "/flat.csv")
        let flat = try eddy(window + ["--acc-climatology", dir + "/flat.csv"])
        #expect(flat.status == 0, "\(flat.stderr)")
        #expect(zip(a, try acc(flat)).contains { abs($0 - $1) > 1e-6 })

        // Refused, by name and place: a missing variable, a phase out of range, a count that does not divide the day.
        try writeText("phase," + names.dropLast().joined(separator: ",") + "\n0," + Array(repeating: "1", count: n - 1).joined(separator: ",") + "\n",
                      dir + "/short.csv")
        let short = try eddy(window + ["--acc-climatology", dir + "/short.csv"])
        #expect(short.status == 1 && short.stderr.contains("short.csv: no column for the model's variable"), "\(short.stderr)")
        var rows = try String(contentsOfFile: dir + "/training.csv", encoding: .utf8).split(separator: "\n").map(String.init)
        rows[3] = "99" + rows[3].drop { $0 != "," }
        try writeText(rows.joined(separator: "\n") + "\n", dir + "/phase.csv")
        let phase = try eddy(window + ["--acc-climatology", dir + "/phase.csv"])
        #expect(phase.status == 1 && phase.stderr.contains("phase.csv:4") && phase.stderr.contains("0 … 23"), "\(phase.stderr)")
        try writeText(rows.prefix(8).joined(separator: "\n") + "\n", dir + "/seven.csv")
        let seven = try eddy(window + ["--acc-climatology", dir + "/seven.csv"])
        #expect(seven.status == 1 && seven.stderr.contains("7 rows"), "\(seven.stderr)")
    }
}
