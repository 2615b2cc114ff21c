import EddyTestSupport
import Foundation
import Testing
@testable import Eddy
@testable import EddyOpenCL

/// No OpenCL, a kernel that does not build, an unknown device, a device too small: `auto` falls back to the CPU,
/// an explicit `opencl` stops with one clear line, exit status 1 and no output file. Never a crash.
@Suite("OpenCL failure paths", .serialized)
struct FailureTests {
    /// A small training set and an empty folder to stand in for the ICD registry.
    func setUp() throws -> (dir: String, data: String, emptyICD: String) {
        let dir = try scratch()
        #expect(try eddy(["generate", "vanderpol", "--trajectories", "3", "--steps", "60", "--out", dir + "/d.csv"]).status == 0)
        try FileManager.default.createDirectory(atPath: dir + "/no-icd", withIntermediateDirectories: true)
        return (dir, dir + "/d.csv", dir + "/no-icd")
    }

    @Test func noPlatform() throws {
        let (dir, data, emptyICD) = try setUp()
        let env = ["OCL_ICD_VENDORS": emptyICD]
        let explicit = try eddy(["train", "--data", data, "--width", "20", "--backend", "opencl", "--out", dir + "/m.st"], environment: env)
        #expect(explicit.status == 1)
        #expect(explicit.stderr.contains("eddy: error: --backend opencl: no OpenCL device"), "\(explicit.stderr)")
        #expect(explicit.stderr.contains("OCL_ICD_VENDORS=\(emptyICD)"), "\(explicit.stderr)")
        #expect(!explicit.stderr.contains("Fatal error"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/m.st"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["d.csv", "no-icd"])

        let auto = try eddy(["train", "--data", data, "--width", "20", "--out", dir + "/a.st"], environment: env)
        #expect(auto.status == 0, "\(auto.stderr)")
        #expect(auto.stderr.contains("backend cpu: no OpenCL GPU (no OpenCL driver is registered in OCL_ICD_VENDORS="), "\(auto.stderr)")
        #expect(FileManager.default.fileExists(atPath: dir + "/a.st"))

        let devices = try eddy(["devices", "--json"], environment: env)
        #expect(devices.status == 0, "\(devices.stderr)")
        let j = try JSONSerialization.jsonObject(with: Data(devices.stdout.utf8)) as! [String: Any]
        #expect((j["devices"] as! [Any]).isEmpty)
        #expect((j["advice"] as! [String]).contains { $0.contains("OCL_ICD_VENDORS=\(emptyICD) holds no .icd file") })
        let text = try eddy(["devices"], environment: env)
        #expect(text.stdout.contains("OpenCL devices: none") && text.stdout.contains("likely reason"))

        let bench = try eddy(["bench", "--backend", "opencl", "--rows", "300", "--window", "2", "--width", "8"], environment: env)
        #expect(bench.status == 1 && bench.stderr.contains("no OpenCL device"))
    }

    @Test(.enabled(if: PoCL.available, PoCL.skipNote))
    func unknownDevice() throws {
        let (dir, data, _) = try setUp()
        let r = try eddy(["train", "--data", data, "--width", "20", "--backend", "opencl", "--device", "no-such-gpu", "--out", dir + "/m.st"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("--device no-such-gpu: no such OpenCL device (devices: 0: "), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/m.st"))
        let auto = try eddy(["train", "--data", data, "--width", "20", "--device", "no-such-gpu", "--out", dir + "/a.st"])
        #expect(auto.status == 0 && auto.stderr.contains("backend cpu: no OpenCL device matches --device no-such-gpu"), "\(auto.stderr)")
        let badPrecision = try eddy(["train", "--data", data, "--width", "20", "--precision", "half", "--out", dir + "/b.st"])
        #expect(badPrecision.status == 1 && badPrecision.stderr.contains("--precision: unknown value 'half'; expected one of double, mixed"))
    }

    static let brokenLift = """
    __kernel void lift_hidden(__global double* out) { out[0] = undeclared_name; }
    __kernel void lift_frame(__global double* out) { out[0] = 1 }
    """

    @Test(.enabled(if: PoCL.available, PoCL.skipNote))
    func kernelThatDoesNotBuild() throws {
        let device = PoCL.device!
        #expect {
            _ = try OpenCLBackend(device: device, precision: .double, rows: 128, liftSource: Self.brokenLift)
        } throws: { error in
            let m = (error as? EddyError)?.message ?? ""
            return m.contains("building kernels lift.cl for \(device.name) failed: CL_BUILD_PROGRAM_FAILURE") && m.contains("undeclared_name")
        }
        // auto, with PoCL named: falls back to the CPU and says why.
        let (backend, reason) = try BackendSelection.make(.auto, device: "pthread", precision: .double, rows: 128, liftSource: Self.brokenLift)
        #expect(backend is CPUBackend)
        #expect(reason.hasPrefix("cpu: the OpenCL device failed (\(device.name): OpenCL: building kernels lift.cl"), "\(reason)")
        // Explicit: a clear error.
        #expect {
            _ = try BackendSelection.make(.opencl, device: "pthread", precision: .double, rows: 128, liftSource: Self.brokenLift)
        } throws: { error in
            ((error as? EddyError)?.message ?? "").hasPrefix("--backend opencl on \(device.name): OpenCL: building kernels lift.cl")
        }
    }

    /// A pass that cannot fit the device is refused when it starts, with sizes; `auto` trains on the CPU instead.
    @Test(.enabled(if: PoCL.available, PoCL.skipNote))
    func deviceOutOfMemory() throws {
        let device = PoCL.device!
        let tooBig = try OpenCLBackend(device: device, precision: .double, rows: 1 << 26)
        let layout = DictionaryLayout(variables: 2, delays: 1, width: 200, inputs: 0, form: .koopman)
        let layer = Sampler.random(inputSize: 2, width: 200, activation: .tanh, scale: 1, seed: 1)
        #expect {
            try tooBig.beginPass(layer: layer, layout: layout)
        } throws: { error in
            ((error as? EddyError)?.message ?? "").contains("MiB") && ((error as? EddyError)?.message ?? "").contains("lower --chunk-rows or --width")
        }
        let (dir, data, _) = try setUp()
        var config = TrainingConfig(data: DataSpec(path: data))
        config.width = 200
        let fallback = FallbackBackend(try OpenCLBackend(device: device, precision: .double, rows: 1 << 26))
        let (model, report) = try Trainer(config: config, backend: fallback).train()
        #expect(report.backend == "cpu")
        #expect(model.theta.allSatisfy { $0.isFinite })
        // The library does not print: the fallback reaches the report's warnings, which the command prints once.
        #expect(report.warnings.contains { $0.contains("ran on the CPU") && $0.contains("MiB") }, "\(report.warnings)")
        _ = dir
    }
}

/// Under MPI, the processes on one machine start from different GPUs: the i-th local rank tries the i-th GPU first and
/// the others after it, wrapping around (more ranks than GPUs share them).
@Test func localRanksStartFromDifferentDevices() {
    #expect(BackendSelection.rotated([0, 1, 2], by: 0) == [0, 1, 2])
    #expect(BackendSelection.rotated([0, 1, 2], by: 1) == [1, 2, 0])
    #expect(BackendSelection.rotated([0, 1, 2], by: 5) == [2, 0, 1])
    #expect(BackendSelection.rotated([Int](), by: 3) == [])
}
