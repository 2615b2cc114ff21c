import EddyTestSupport
import Foundation
import Testing
@testable import Eddy
@testable import EddyOpenCL

/// Whole models trained through `eddy train` on the CPU and on PoCL give the same forecasts; the devices,
/// bench and tune commands work on PoCL.
@Suite("eddy with --backend opencl on PoCL", .serialized, .enabled(if: PoCL.available, PoCL.skipNote))
struct CommandLineTests {
    /// Trains with each backend and precision, forecasts 30 steps from every 40th row, and compares with the CPU.
    /// Double: within 1e-8 of the largest value (measured ~1e-11). Mixed needs a larger ridge (float Gram
    /// errors of ~1e-7 relative make G + λI indefinite at α = 1e-8): at α = 1e-4 within 5e-3 (measured ≤ 7e-4).
    @Test(arguments: [("vanderpol", "koopman", "tanh"), ("lorenz63", "recurrent", "relu"), ("lorenz63", "koopman", "tanh")])
    func modelsAgreeWithTheCPU(system: String, form: String, activation: String) throws {
        let dir = try scratch()
        #expect(try eddy(["generate", system, "--trajectories", "12", "--steps", "300", "--out", dir + "/train.csv"]).status == 0)
        func forecast(_ backend: String, _ precision: String, ridge: String) throws -> [Double] {
            let model = "\(dir)/\(backend)-\(precision)-\(ridge).st", out = "\(dir)/\(backend)-\(precision)-\(ridge).csv"
            let t = try eddy(["train", "--data", dir + "/train.csv", "--width", "120", "--delays", "2", "--form", form, "--activation", activation,
                              "--ridge", ridge, "--chunk-rows", "500", "--backend", backend, "--device", "pthread", "--precision", precision, "--out", model],
                          in: dir)   // kernels are in the binary: any working directory will do
            #expect(t.status == 0, "\(t.stderr)")
            #expect(t.stderr.contains("backend \(backend)"), "\(t.stderr)")
            let f = try eddy(["forecast", "--model", model, "--data", dir + "/train.csv", "--horizon", "30", "--origins", "every:40", "--out", out])
            #expect(f.status == 0, "\(f.stderr)")
            return try forecastValues(out)
        }
        let cpu = try forecast("cpu", "double", ridge: "1e-8"), gpu = try forecast("opencl", "double", ridge: "1e-8")
        let scale = cpu.map(abs).max()!
        #expect(cpu.count == gpu.count && cpu.count > 0)
        let double = maxAbsDiff(gpu, cpu) / scale
        #expect(double <= 1e-8)
        let cpuRidge = try forecast("cpu", "double", ridge: "1e-4"), mixed = try forecast("opencl", "mixed", ridge: "1e-4")
        let mixedDiff = maxAbsDiff(mixed, cpuRidge) / scale
        #expect(mixedDiff <= 5e-3)
        print("forecasts \(system) \(form) \(activation): double \(Format.scientific(double)) (α 1e-8), mixed \(Format.scientific(mixedDiff)) (α 1e-4) relative to the largest value")
    }

    /// The gridded workflow on both backends: a generated netCDF field, 6 EOFs, forecasts within 1e-8 of the CPU's
    /// (the backends only ever see components), written back on the grid.
    @Test func gridModelsOnComponentsAgreeWithTheCPU() throws {
        let dir = try scratch()
        let g = try eddy(["generate", "tracer", "--steps", "700", "--lat", "8", "--lon", "16", "--out", dir + "/field.nc"])
        #expect(g.status == 0, "\(g.stderr)")
        func forecast(_ backend: String) throws -> [Double] {
            let model = "\(dir)/\(backend).st"
            let t = try eddy(["train", "--data", dir + "/field.nc", "--pca", "6", "--width", "80", "--delays", "2", "--calendar", "hour",
                              "--ridge", "1e-6", "--chunk-rows", "300", "--backend", backend, "--device", "pthread", "--out", model])
            #expect(t.status == 0, "\(t.stderr)")
            let f = try eddy(["forecast", "--model", model, "--data", dir + "/field.nc", "--horizon", "12", "--origins", "every:100",
                              "--out", "\(dir)/\(backend).csv"])
            #expect(f.status == 0, "\(f.stderr)")
            let nc = try eddy(["forecast", "--model", model, "--data", dir + "/field.nc", "--horizon", "12", "--origins", "every:100",
                               "--out", "\(dir)/\(backend).nc"])
            #expect(nc.status == 0 && FileManager.default.fileExists(atPath: "\(dir)/\(backend).nc"), "\(nc.stderr)")
            return try forecastValues("\(dir)/\(backend).csv")
        }
        let cpu = try forecast("cpu"), gpu = try forecast("opencl")
        #expect(cpu.count == gpu.count && cpu.count > 0)
        #expect(maxAbsDiff(gpu, cpu) <= 1e-8 * cpu.map(abs).max()!)
    }

    @Test func devicesListsPoCLButAutoTakesTheCPU() throws {
        let r = try eddy(["devices", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let devices = j["devices"] as! [[String: Any]]
        #expect(devices.contains { ($0["pocl"] as? Bool) == true && ($0["fp64"] as? Bool) == true && ($0["type"] as? String) == "cpu" })
        // PoCL only on request: with no GPU here, auto takes the CPU and says why.
        if !devices.contains(where: { ($0["type"] as? String) == "gpu" }) {
            #expect((j["auto"] as? String)?.hasPrefix("cpu: no OpenCL GPU") == true)
            #expect(j["auto_candidate"] is NSNull)
            #expect(!(j["advice"] as! [Any]).isEmpty)
        }
        let text = try eddy(["devices"])
        #expect(text.stdout.contains("PoCL") && text.stdout.contains("auto → cpu"))
    }

    @Test func benchTimesEveryPhase() throws {
        let r = try eddy(["bench", "--backend", "opencl", "--device", "pthread", "--rows", "600", "--window", "4", "--width", "40", "--input-count", "1",
                          "--chunk-rows", "256", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let results = j["results"] as! [[String: Any]]
        #expect(results.count == 4)   // two forms × two precisions
        for x in results {
            for key in ["lift_s", "gram_s", "rhs_s", "accumulate_s", "solve_s", "total_s", "gram_tflops", "lift_gbs"] {
                #expect((x[key] as? Double).map { $0 > 0 && $0.isFinite } == true, "\(key) in \(x)")
            }
            #expect(x["rows"] as? Int == 768)   // three chunks of 256
            #expect(x["features"] as? Int == 1 + 4 + 40 + 1)
        }
        #expect(results.contains { $0["precision"] as? String == "mixed" && $0["sum_s"] != nil })
        let cpu = try eddy(["bench", "--backend", "cpu", "--rows", "600", "--window", "4", "--width", "40", "--chunk-rows", "256", "--json"])
        #expect(cpu.status == 0, "\(cpu.stderr)")
        let cj = try JSONSerialization.jsonObject(with: Data(cpu.stdout.utf8)) as! [String: Any]
        #expect((cj["results"] as! [Any]).count == 2)
    }

    /// A tuning run on PoCL writes the cache; `--set`, `--show` and a later run's backend line use it.
    @Test func tuneCachesParametersPerDevice() throws {
        let cache = try scratch()
        let env = ["XDG_CACHE_HOME": cache]
        let r = try eddy(["tune", "--device", "pthread", "--precision", "mixed", "--size", "128", "--trials", "1", "--json"], environment: env)
        #expect(r.status == 0, "\(r.stderr)")
        let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let results = j["results"] as! [[String: Any]]
        #expect(results.count == 1 && (results[0]["default_gflops"] as? Double ?? 0) > 0)
        let line = "Xgemm single GEMMK=0 KREG=1 KWG=32 KWI=2 MDIMA=16 MDIMC=16 MWG=64 NDIMB=8 NDIMC=8 NWG=64 SA=1 SB=1 STRM=0 STRN=0 VWM=4 VWN=4"
        #expect(try eddy(["tune", "--device", "pthread", "--set", line], environment: env).status == 0)
        let show = try eddy(["tune", "--device", "pthread", "--show", "--json"], environment: env)
        let sj = try JSONSerialization.jsonObject(with: Data(show.stdout.utf8)) as! [String: Any]
        #expect((sj["entries"] as? [String])?.contains(line) == true)
        #expect((sj["file"] as? String)?.hasPrefix(cache + "/eddy/clblast-") == true)
        // The cached single-precision parameters are applied in a mixed-precision run and named in its backend line.
        let dir = try scratch()
        #expect(try eddy(["generate", "vanderpol", "--trajectories", "4", "--steps", "100", "--out", dir + "/d.csv"]).status == 0)
        let t = try eddy(["train", "--data", dir + "/d.csv", "--width", "30", "--ridge", "1e-4", "--backend", "opencl", "--precision", "mixed",
                          "--out", dir + "/m.st"], environment: env)
        #expect(t.status == 0, "\(t.stderr)")
        #expect(t.stderr.contains("tuned CLBlast parameters (Xgemm single)"), "\(t.stderr)")
        #expect(try eddy(["tune", "--device", "pthread", "--clear"], environment: env).stdout.hasPrefix("removed"))
        #expect(try eddy(["tune", "--device", "pthread", "--set", "nonsense"], environment: env).status == 1)
    }
}
