import Eddy
import EddyTestSupport
import Foundation
import Testing

// `eddy-mpi` under `mpirun` (declared only with EDDY_MPI=1; Scripts/test.sh installs Open MPI and runs these after the
// MPI-free tests). Every mpirun runs under a timeout, so a rank left waiting fails the test instead of hanging it.

let eddyMPIBinary = testBinaryFolder + "/eddy-mpi"

/// Open MPI as root in a container, with more ranks than cores.
let mpiEnvironment = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_rmaps_base_oversubscribe": "1",
                      "OMPI_MCA_btl_vader_single_copy_mechanism": "none"]

func mpirun(_ ranks: Int, _ arguments: [String], timeout: Int = 120) throws -> Run {
    try runProcess("/usr/bin/timeout", ["-k", "5", "\(timeout)", "mpirun", "-n", "\(ranks)", eddyMPIBinary] + arguments, environment: mpiEnvironment)
}

func npyMatrix(_ path: String) throws -> (rows: Int, columns: Int, values: [Double]) {
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    let header = try NPY.Header.parse(bytes: bytes, path: path)
    #expect(header.shape.count == 2)
    let values = bytes[header.dataOffset...].withUnsafeBytes { raw in (0..<(raw.count / 8)).map { raw.loadUnaligned(fromByteOffset: 8 * $0, as: Double.self) } }
    return (header.shape[0], header.shape[1], values)
}

/// `RᵀR` of a row-major upper-triangular `n × n` factor.
func gramOfFactor(_ r: [Double], _ n: Int) -> [Double] {
    var g = [Double](repeating: 0, count: n * n)
    for i in 0..<n { for j in 0..<n { var s = 0.0; for k in 0...min(i, j) { s += r[k * n + i] * r[k * n + j] }; g[i * n + j] = s } }
    return g
}

/// The state a training run saved (`--save-state`), as the Gram of the rows: `[G | R]` as it is, `RᵀR` for a factor.
func savedGram(_ path: String, qr: Bool) throws -> [Double] {
    let m = try npyMatrix(path)
    return qr ? gramOfFactor(m.values, m.rows) : m.values
}

@Suite("eddy-mpi under mpirun", .serialized)
struct MPITests {
    /// A small Lorenz-63 set: 4 trajectories of 600 steps (2388 pairs with 3 delays).
    static func lorenz(_ dir: String) throws -> String {
        let path = dir + "/l63.csv"
        let g = try eddy(["generate", "lorenz63", "--trajectories", "4", "--steps", "600", "--out", path])
        #expect(g.status == 0, "\(g.stderr)")
        return path
    }

    /// K = 2 and K = 3 (more ranks than cores) against one process, for qr and cholesky, with delays (chunk boundaries fall
    /// inside delay windows) and a chunk size that leaves K = 3's last rank some chunks and, with large chunks, none.
    @Test(arguments: ["qr", "cholesky"])
    func sameModelAsOneProcess(solver: String) throws {
        let dir = try scratch("mpi")
        let data = try Self.lorenz(dir)
        let common = ["train", "--data", data, "--width", "120", "--delays", "3", "--sampler", "swim", "--seed", "5", "--backend", "cpu",
                      "--solver", solver]
        let one = try eddy(common + ["--chunk-rows", "500", "--out", dir + "/one.safetensors", "--save-state", dir + "/one.npy"])
        #expect(one.status == 0, "\(one.stderr)")
        // The floor: the same run in one process with another chunk size (qr: another block size; its factor does not
        // depend on the chunks).
        let floorArgs = solver == "qr" ? ["--chunk-rows", "500", "--qr-block-rows", "300"] : ["--chunk-rows", "333"]
        let other = try eddy(common + floorArgs + ["--out", dir + "/floor.safetensors", "--save-state", dir + "/floor.npy"])
        #expect(other.status == 0, "\(other.stderr)")
        let reference = try ModelFile.read(dir + "/one.safetensors")
        let floorModel = try ModelFile.read(dir + "/floor.safetensors")
        let floor = max(relative(floorModel.theta, reference.theta), 1e-13)
        let g1 = try savedGram(dir + "/one.npy", qr: solver == "qr")

        // (ranks, chunk rows): 4 chunks over 3 ranks, and 2 chunks over 3 ranks (rank 2's shard is empty).
        for (k, chunk) in [(2, 500), (3, 500), (3, 2000)] {
            let tag = "k\(k)-c\(chunk)"
            let run = try mpirun(k, common + ["--chunk-rows", "\(chunk)", "--out", "\(dir)/\(tag).safetensors", "--save-state", "\(dir)/\(tag).npy"])
            #expect(run.status == 0, "\(tag): \(run.stderr)")
            #expect(run.stdout.contains("2388 pairs from 2400 rows"), "\(run.stdout)")
            // One backend line per rank, all from rank 0's stderr.
            #expect(run.stderr.components(separatedBy: "backend (rank").count - 1 == k, "\(run.stderr)")
            let m = try ModelFile.read("\(dir)/\(tag).safetensors")
            // Statistics, pool and hidden layer: bitwise.
            #expect(m.normalisation == reference.normalisation)
            #expect(m.layer.weights == reference.layer.weights && m.layer.biases == reference.layer.biases)
            #expect(m.metadata.training.pairs == reference.metadata.training.pairs && m.metadata.training.rows == reference.metadata.training.rows)
            #expect(m.metadata.training.fingerprint == reference.metadata.training.fingerprint)
            // The pass state: to 1e-12 relative.
            let g = try savedGram("\(dir)/\(tag).npy", qr: solver == "qr")
            #expect(g.count == g1.count)
            #expect(relative(g, g1) < 1e-12, "\(tag): state differs by \(relative(g, g1))")
            // The weights: within the floor two block or chunk sizes give in one process.
            let d = relative(m.theta, reference.theta)
            #expect(d <= 100 * floor, "\(tag): weights differ by \(d), floor \(floor)")
        }
        // Nothing but the outputs in the folder: rank 1 and 2 wrote nothing, not even a temporary file.
        let names = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(!names.contains { $0.contains(".tmp-") }, "\(names)")
    }

    /// A sweep over two widths under mpirun -n 2 picks the candidate one process picks, with the same scores.
    @Test func sweepPicksTheSameCandidate() throws {
        let dir = try scratch("mpi-sweep")
        let data = try Self.lorenz(dir)
        let common = ["sweep", "--data", data, "--widths", "40,120", "--ridges", "1e-10,1e-6", "--solver", "cholesky", "--backend", "cpu",
                      "--horizon", "20", "--validation-fraction", "0.25", "--json"]
        let one = try eddy(common + ["--out", dir + "/one.safetensors"])
        #expect(one.status == 0, "\(one.stderr)")
        let two = try mpirun(2, common + ["--out", dir + "/two.safetensors"])
        #expect(two.status == 0, "\(two.stderr)")
        let a = try JSONSerialization.jsonObject(with: Data(one.stdout.utf8)) as! [String: Any]
        let b = try JSONSerialization.jsonObject(with: Data(two.stdout.utf8)) as! [String: Any]
        func byCandidate(_ list: [[String: Any]]) -> [[String: Any]] {
            list.sorted { ($0["width"] as! Int, $0["ridge"] as! Double) < ($1["width"] as! Int, $1["ridge"] as! Double) }
        }
        let ca = byCandidate(a["candidates"] as! [[String: Any]]), cb = byCandidate(b["candidates"] as! [[String: Any]])
        #expect(ca.count == 4 && cb.count == 4)
        for (x, y) in zip(ca, cb) {
            #expect(x["width"] as? Int == y["width"] as? Int && x["ridge"] as? Double == y["ridge"] as? Double)
            let sx = x["score"] as? Double ?? .nan, sy = y["score"] as? Double ?? .nan
            #expect(abs(sx - sy) <= 1e-6 * max(abs(sx), 1e-12), "score \(sx) vs \(sy)")
        }
        let ma = try ModelFile.read(dir + "/one.safetensors"), mb = try ModelFile.read(dir + "/two.safetensors")
        #expect(ma.metadata.width == mb.metadata.width && ma.metadata.ridge == mb.metadata.ridge)
        #expect(ma.layer.weights == mb.layer.weights)
    }

    /// A bad row in the data: every rank meets it; one clear line naming the file and line, exit non-zero, no model.
    @Test func badFileEndsTheJob() throws {
        let dir = try scratch("mpi-bad")
        let data = try Self.lorenz(dir)
        var lines = try String(contentsOfFile: data, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lines[1000] = "0,1.5,abc,2.0"
        try writeText(lines.joined(separator: "\n"), data)
        let clock = Date()
        let run = try mpirun(2, ["train", "--data", data, "--width", "50", "--backend", "cpu", "--out", dir + "/m.safetensors"])
        #expect(run.status != 0)
        #expect(Date().timeIntervalSince(clock) < 60)
        #expect(run.stderr.contains("eddy-mpi: rank 0 of 2: error: \(data)"), "\(run.stderr)")
        #expect(run.stderr.contains("l63.csv:1001:"), "\(run.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/m.safetensors"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).allSatisfy { !$0.contains(".tmp-") })
    }

    /// One rank killed in the middle of the pass: the job ends promptly, non-zero, and writes no model.
    @Test func killedRankEndsTheJob() throws {
        let dir = try scratch("mpi-kill")
        let data = dir + "/big.csv"
        #expect(try eddy(["generate", "lorenz63", "--trajectories", "20", "--steps", "20000", "--out", data]).status == 0)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        p.arguments = ["-k", "5", "120", "mpirun", "-n", "2", eddyMPIBinary, "train", "--data", data, "--width", "600", "--backend", "cpu",
                       "--out", dir + "/m.safetensors"]
        p.environment = ProcessInfo.processInfo.environment.merging(mpiEnvironment) { $1 }
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        // Wait for both ranks, then for the pass to be under way, and kill one rank.
        var victim: Int32?
        for _ in 0..<200 {
            let ranks = try runProcess("/usr/bin/pgrep", ["-f", "eddy-mpi train --data \(data)"]).stdout.split(separator: "\n").compactMap { Int32($0) }
            if ranks.count >= 2 { victim = ranks.max(); break }
            usleep(50_000)
        }
        #expect(victim != nil)
        usleep(1_500_000)
        let killedAt = Date()
        if let victim { kill(victim, SIGKILL) }
        p.waitUntilExit()
        #expect(p.terminationStatus != 0)
        #expect(p.terminationStatus != 124, "mpirun hung after a rank was killed")
        #expect(Date().timeIntervalSince(killedAt) < 30)
        #expect(!FileManager.default.fileExists(atPath: dir + "/m.safetensors"))
    }

    /// Without mpirun (one process) eddy-mpi is eddy train.
    @Test func singletonIsOneProcess() throws {
        let dir = try scratch("mpi-one")
        let data = try Self.lorenz(dir)
        let run = try runProcess("/usr/bin/timeout", ["60", eddyMPIBinary, "train", "--data", data, "--width", "30", "--backend", "cpu",
                                                      "--out", dir + "/m.safetensors"],
                                 environment: mpiEnvironment.merging(["OMPI_MCA_ess_singleton_isolated": "1"]) { $1 })
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.contains("backend cpu"), "\(run.stderr)")
        #expect(FileManager.default.fileExists(atPath: dir + "/m.safetensors"))
    }
}
