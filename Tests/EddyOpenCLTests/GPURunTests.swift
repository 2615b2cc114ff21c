import EddyTestSupport
import Foundation
import Testing

/// `Scripts/gpu_run.sh --smoke`: the device script end to end on PoCL with small shapes — every step recorded, a step
/// that fails and one that times out on purpose, and the later steps still run; a spent budget skips what is left and
/// the summary is still written.
@Suite("The bounded device script on PoCL", .serialized)
struct GPURunTests {
    func summary(_ dir: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/summary.json"))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    @Test(.enabled(if: PoCL.available, PoCL.skipNote))
    func smokeRunRecordsEveryStep() throws {
        let dir = try scratch("gpu-run")
        let run = try runProcess("/usr/bin/timeout", ["600", "bash", packageRoot + "/Scripts/gpu_run.sh", "--smoke", "--inject-failures", "--out", dir],
                                 environment: ["EDDY": eddyBinary])
        #expect(run.status == 0, "\(run.stderr)")
        let s = try summary(dir)
        let steps = s["steps"] as! [[String: Any]]
        let status = Dictionary(uniqueKeysWithValues: steps.map { ($0["name"] as! String, $0["status"] as! String) })
        #expect(status["fail-on-purpose"] == "failed")
        #expect(status["timeout-on-purpose"] == "timeout")
        for name in ["environment", "devices", "compiler", "eddy-untuned-double", "eddy-untuned-mixed", "tune-double", "tune-mixed",
                     "eddy-tuned-double", "eddy-tuned-mixed", "eddy-chunk-2048"] {
            #expect(status[name] == "ok", "\(name): \(status[name] ?? "missing"); \(run.stderr)")
        }
        // Each bench step's output is eddy bench's JSON with both forms; the tuning cache came back under the output.
        let bench = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/eddy-tuned-double.out"))) as! [String: Any]
        #expect((bench["results"] as? [Any])?.count == 2)
        #expect((bench["failures"] as? [Any])?.isEmpty == true)
        // The compiler probe ran; on PoCL it says the PTX probes were skipped.
        let compiler = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/compiler.out"))) as! [String: Any]
        if compiler["nvidia"] as? Bool == false { #expect((compiler["skipped"] as? String)?.hasPrefix("not NVIDIA") == true) }
        // The untuned steps checked a whole chunk at the pass's shape against OpenBLAS.
        let untuned = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/eddy-untuned-double.out"))) as! [String: Any]
        for r in untuned["results"] as! [[String: Any]] {
            let check = r["check"] as? [String: Any]
            #expect(check?["rows"] as? Int == 4096 && (check?["max_relative_difference"] as? Double).map { $0 <= 1e-10 } == true, "\(r)")
            #expect(r["traffic_per_slice"] is [String: Any] && r["clblast_xgemm"] is [String: Any])
        }
        // The table has a row per form and precision, filled from this run's steps (PyTorch's cells stay empty here).
        let table = s["table"] as! [[String: Any]]
        #expect(table.count == 4)
        #expect(table.allSatisfy { ($0["eddy_untuned_total_s"] as? Double).map { $0 > 0 } == true && ($0["eddy_tuned_total_s"] as? Double).map { $0 > 0 } == true })
        #expect(FileManager.default.fileExists(atPath: dir + "/table.md"))
        // Each tuning step reports its precision (whether a set beat CLBlast's defaults varies; a winner goes to cache/).
        for p in ["double", "mixed"] {
            let tune = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/tune-\(p).out"))) as! [String: Any]
            #expect((tune["results"] as? [[String: Any]])?.first?["precision"] as? String == p)
        }
    }

    @Test func spentBudgetSkipsTheRestAndStillSummarises() throws {
        let dir = try scratch("gpu-run-budget")
        let run = try runProcess("/usr/bin/timeout", ["120", "bash", packageRoot + "/Scripts/gpu_run.sh", "--smoke", "--inject-failures",
                                                      "--budget", "9", "--out", dir], environment: ["EDDY": eddyBinary])
        #expect(run.status == 0, "\(run.stderr)")
        let steps = try summary(dir)["steps"] as! [[String: Any]]
        #expect(steps.first?["name"] as? String == "environment")
        #expect(steps.contains { $0["status"] as? String == "skipped" && ($0["name"] as? String ?? "").hasPrefix("eddy-") })
        #expect(steps.last?["name"] as? String == "eddy-chunk-2048")
    }
}
