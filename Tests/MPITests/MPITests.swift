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

    /// K = 2 and K = 3 (more ranks than cores) against one process, for qr and cholesky, with delays. Every rank reads
    /// only its shard: blocks of 500 raw rows put shard boundaries inside trajectories, so inside delay windows (600-row
    /// trajectories, 3 delays); blocks of 2000 rows give K = 3's rank 0 (the one that solves) an empty shard.
    @Test(arguments: ["qr", "cholesky"])
    func sameModelAsOneProcess(solver: String) throws {
        let dir = try scratch("mpi")
        let data = try Self.lorenz(dir)
        let common = ["train", "--data", data, "--width", "120", "--delays", "3", "--sampler", "swim", "--seed", "5", "--backend", "cpu",
                      "--solver", solver, "--swim-pool", "1000"]
        for shard in [500, 2000] {
            let one = try eddy(common + ["--shard-rows", "\(shard)", "--chunk-rows", "500", "--out", "\(dir)/one\(shard).safetensors",
                                         "--save-state", "\(dir)/one\(shard).npy"])
            #expect(one.status == 0, "\(one.stderr)")
            // The floor: the same run in one process with another chunk size (qr: another block size; its factor does not
            // depend on the chunks).
            let floorArgs = solver == "qr" ? ["--chunk-rows", "500", "--qr-block-rows", "300"] : ["--chunk-rows", "333"]
            let other = try eddy(common + floorArgs + ["--shard-rows", "\(shard)", "--out", dir + "/floor.safetensors", "--save-state", dir + "/floor.npy"])
            #expect(other.status == 0, "\(other.stderr)")
            let reference = try ModelFile.read("\(dir)/one\(shard).safetensors")
            let floorModel = try ModelFile.read(dir + "/floor.safetensors")
            // Another chunk size leaves the statistics and the pool alone.
            #expect(floorModel.normalisation == reference.normalisation && floorModel.layer == reference.layer)
            let floor = max(relative(floorModel.theta, reference.theta), 1e-13)
            let g1 = try savedGram("\(dir)/one\(shard).npy", qr: solver == "qr")
            for k in shard == 500 ? [2, 3] : [3] {
                let tag = "k\(k)-s\(shard)"
                let run = try mpirun(k, common + ["--shard-rows", "\(shard)", "--chunk-rows", "500", "--out", "\(dir)/\(tag).safetensors",
                                                  "--save-state", "\(dir)/\(tag).npy"])
                #expect(run.status == 0, "\(tag): \(run.stderr)")
                #expect(run.stdout.contains("2388 pairs from 2400 rows"), "\(run.stdout)")
                // One backend line per rank, all from rank 0's stderr.
                #expect(run.stderr.components(separatedBy: "backend (rank").count - 1 == k, "\(run.stderr)")
                let m = try ModelFile.read("\(dir)/\(tag).safetensors")
                // Statistics, pool and hidden layer: bitwise.
                #expect(m.normalisation == reference.normalisation, "\(tag)")
                #expect(m.layer.weights == reference.layer.weights && m.layer.biases == reference.layer.biases, "\(tag)")
                #expect(m.metadata.training.pairs == reference.metadata.training.pairs && m.metadata.training.rows == reference.metadata.training.rows)
                #expect(m.metadata.training.segments == reference.metadata.training.segments)
                #expect(m.metadata.training.fingerprint == reference.metadata.training.fingerprint, "\(tag)")
                #expect(m.metadata.trainingRange == reference.metadata.trainingRange)
                // The pass state: to 1e-12 relative.
                let g = try savedGram("\(dir)/\(tag).npy", qr: solver == "qr")
                #expect(g.count == g1.count)
                #expect(relative(g, g1) < 1e-12, "\(tag): state differs by \(relative(g, g1))")
                // The weights: within the floor two block or chunk sizes give in one process.
                let d = relative(m.theta, reference.theta)
                #expect(d <= 100 * floor, "\(tag): weights differ by \(d), floor \(floor)")
            }
        }
        // Nothing but the outputs in the folder: rank 1 and 2 wrote nothing, not even a temporary file.
        let names = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(!names.contains { $0.contains(".tmp-") }, "\(names)")
    }

    /// Shards of every kind of data against one process: a CSV with a time column, missing values and `--fill-gaps`
    /// (shard boundaries of 37 rows fall next to gaps and inside delay windows; the time step comes from the first
    /// rows of the data, not of a shard), a NetCDF grid (time steps seeked to), a 3-D `.npy` (trajectories one after
    /// another), and a directory of files (one file a shard; K = 3 over 2 files leaves a rank empty).
    @Test func shardsOfEveryFormatMatchOneProcess() throws {
        let dir = try scratch("mpi-formats")
        // CSV: hourly times, a gap of 2 missing rows every 50 (filled), a missing value every 83 (filled), a jump of 6
        // hours every 300 (a new segment).
        var text = "time,a,b\n"
        var t = 0
        for i in 0..<900 {
            t += i % 300 == 299 ? 6 : (i % 50 == 49 ? 3 : 1)
            let a = sin(Double(i) * 0.07) + 0.1 * cos(Double(i) * 0.31), b = cos(Double(i) * 0.05)
            text += "\(TimeParser.iso(Double(t) * 3600)),\(i % 83 == 82 ? "NA" : "\(a)"),\(b)\n"
        }
        try writeText(text, dir + "/hourly.csv")
        // .npy: 3 trajectories of 200 steps, 2 columns.
        var values: [Double] = []
        for e in 0..<3 { for s in 0..<200 { values += [sin(Double(s) * 0.1 + Double(e)), cos(Double(s) * 0.13 * Double(e + 1))] } }
        var npy = Data(NPY.header(shape: [3, 200, 2]))
        values.withUnsafeBytes { npy.append(contentsOf: $0) }
        try npy.write(to: URL(fileURLWithPath: dir + "/three.npy"))
        // A directory of two CSV files.
        try FileManager.default.createDirectory(atPath: dir + "/files", withIntermediateDirectories: true)
        for f in 0..<2 {
            var csv = "x,y\n"
            for s in 0..<150 { csv += "\(sin(Double(s) * 0.09 + Double(f))),\(cos(Double(s) * 0.04 * Double(f + 1)))\n" }
            try writeText(csv, "\(dir)/files/part\(f).csv")
        }
        // NetCDF: 150 hourly steps of a 4 × 8 tracer grid (32 variables), in blocks of 25 time steps.
        #expect(try eddy(["generate", "tracer", "--steps", "150", "--lat", "4", "--lon", "8", "--out", dir + "/grid.nc"]).status == 0)
        // A NetCDF archive of three files joined along time (hourly; a one-hour gap between the second and third file,
        // filled), in blocks of 17 time steps: shards cross the files.
        try FileManager.default.createDirectory(atPath: dir + "/archive", withIntermediateDirectories: true)
        for (f, start) in [0, 40, 81].enumerated() {
            let steps = 40
            var v: [Double] = []
            for n in 0..<steps { for i in 0..<2 { for j in 0..<3 { v.append(sin(Double(start + n) * 0.2 + Double(i)) + 0.1 * Double(j) * cos(Double(start + n) * 0.07)) } } }
            let b = ClassicNetCDFBuilder(records: steps, dimensions: [("time", 0), ("lat", 2), ("lon", 3)], variables: [
                .init("lat", [1], values: [10, 20], attributes: [("units", "degrees_north")]),
                .init("lon", [2], values: [0, 5, 10], attributes: [("units", "degrees_east")]),
                .init("time", [0], values: (0..<steps).map { Double(start + $0) }, attributes: [("units", "hours since 2000-01-01 00:00:00")]),
                .init("t", [0, 1, 2], values: v),
            ])
            try Data(b.bytes()).write(to: URL(fileURLWithPath: "\(dir)/archive/part\(f).nc"))
        }
        let cases: [(String, [String])] = [
            ("nc", ["--data", dir + "/grid.nc", "--shard-rows", "25", "--calendar", "hour"]),
            ("archive", ["--data", dir + "/archive", "--shard-rows", "17", "--fill-gaps", "1"]),
            ("csv", ["--data", dir + "/hourly.csv", "--time-column", "time", "--fill-gaps", "2", "--calendar", "hour", "--shard-rows", "37"]),
            ("npy", ["--data", dir + "/three.npy", "--shard-rows", "45"]),
            ("dir", ["--data", dir + "/files"]),
        ]
        for (name, args) in cases {
            let common = ["train"] + args + ["--width", "40", "--delays", "4", "--seed", "3", "--backend", "cpu", "--swim-pool", "200", "--json"]
            let one = try eddy(common + ["--out", "\(dir)/\(name)-1.safetensors", "--save-state", "\(dir)/\(name)-1.npy"])
            #expect(one.status == 0, "\(name): \(one.stderr)")
            let reference = try ModelFile.read("\(dir)/\(name)-1.safetensors")
            // The default solver (qr) saves a factor: compared as RᵀR (the factor's row signs are free).
            let g1 = try savedGram("\(dir)/\(name)-1.npy", qr: true)
            for k in [2, 3] {
                let run = try mpirun(k, common + ["--out", "\(dir)/\(name)-\(k).safetensors", "--save-state", "\(dir)/\(name)-\(k).npy"])
                #expect(run.status == 0, "\(name) K=\(k): \(run.stderr)")
                let m = try ModelFile.read("\(dir)/\(name)-\(k).safetensors")
                #expect(m.normalisation == reference.normalisation, "\(name) K=\(k)")
                #expect(m.layer == reference.layer, "\(name) K=\(k)")
                #expect(m.climatology == reference.climatology, "\(name) K=\(k)")
                #expect(m.metadata.training.pairs == reference.metadata.training.pairs, "\(name) K=\(k)")
                #expect(m.metadata.training.rows == reference.metadata.training.rows && m.metadata.training.segments == reference.metadata.training.segments)
                #expect(m.metadata.training.fingerprint == reference.metadata.training.fingerprint, "\(name) K=\(k)")
                #expect(m.metadata.dt == reference.metadata.dt)
                let g = try savedGram("\(dir)/\(name)-\(k).npy", qr: true)
                #expect(g.count == g1.count && relative(g, g1) < 1e-12, "\(name) K=\(k): \(relative(g, g1))")
                // The filled rows are counted once, by the shard that owns them.
                if name == "csv" {
                    let a = try JSONSerialization.jsonObject(with: Data(one.stdout.utf8)) as? [String: Any]
                    let b = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
                    let rows = a?["filled_rows"] as? Int ?? 0
                    #expect(rows > 0, "\(one.stdout)")
                    #expect(rows == b?["filled_rows"] as? Int && a?["filled_gaps"] as? Int == b?["filled_gaps"] as? Int, "\(run.stdout)")
                    #expect(a?["longest_filled_gap"] as? Int == b?["longest_filled_gap"] as? Int)
                }
            }
        }
    }

    /// `--pca` under mpirun: the EOF pass reads shards too (the exact one here: the randomized one is chosen above 8192
    /// columns only). Its covariance is summed over the
    /// processes along a tree, so the components agree to rounding, not bitwise; the statistics of the columns (range,
    /// fingerprint) and the pair counts are exact.
    @Test func pcaShardsMatchOneProcess() throws {
        let dir = try scratch("mpi-pca")
        let data = try Self.lorenz(dir)
        let common = ["train", "--data", data, "--pca", "2", "--width", "40", "--delays", "2", "--seed", "2",
                      "--backend", "cpu", "--shard-rows", "300"]
        let one = try eddy(common + ["--out", dir + "/one.safetensors"])
        #expect(one.status == 0, "\(one.stderr)")
        let reference = try ModelFile.read(dir + "/one.safetensors")
        for k in [2, 3] {
            let run = try mpirun(k, common + ["--out", "\(dir)/k\(k).safetensors"])
            #expect(run.status == 0, "K=\(k): \(run.stderr)")
            let m = try ModelFile.read("\(dir)/k\(k).safetensors")
            #expect(m.metadata.training.fingerprint == reference.metadata.training.fingerprint && m.metadata.training.pairs == reference.metadata.training.pairs)
            #expect(m.metadata.trainingRange == reference.metadata.trainingRange)
            #expect(maxAbsDiff(m.eof!.vectors.map(abs), reference.eof!.vectors.map(abs)) < 1e-10, "K=\(k)")
            #expect(relative(m.normalisation.variableStd, reference.normalisation.variableStd) < 1e-10, "K=\(k)")
        }
    }

    /// A sweep over two widths under mpirun -n 2 picks the candidate one process picks, with the same scores.
    /// The randomized EOF path (taken above `EOFAnalysis.maximumColumns` = 8192 variables: a 64 × 130 grid) reads
    /// shards too: its statistics are folded by blocks and its covariance products summed along the tree, so K = 2
    /// gives one process's components to rounding. Blocks of 50 time steps cut the 240 steps among the ranks.
    @Test func randomizedEOFShardsMatchOneProcess() throws {
        let dir = try scratch("mpi-pca-randomized")
        let data = dir + "/grid.nc"
        let g = try eddy(["generate", "tracer", "--steps", "240", "--lat", "64", "--lon", "130", "--out", data])
        #expect(g.status == 0, "\(g.stderr)")
        #expect(64 * 130 > EOFAnalysis.maximumColumns)
        let common = ["train", "--data", data, "--pca", "3", "--width", "20", "--delays", "1", "--backend", "cpu", "--shard-rows", "50"]
        let one = try eddy(common + ["--out", dir + "/one.safetensors"])
        #expect(one.status == 0, "\(one.stderr)")
        let two = try mpirun(2, common + ["--out", dir + "/two.safetensors"])
        #expect(two.status == 0, "\(two.stderr)")
        let a = try ModelFile.read(dir + "/one.safetensors"), b = try ModelFile.read(dir + "/two.safetensors")
        #expect(a.metadata.training.fingerprint == b.metadata.training.fingerprint && a.metadata.training.pairs == b.metadata.training.pairs)
        #expect(a.eof!.mean == b.eof!.mean, "the mean is folded by blocks: the same bits")
        let difference = maxAbsDiff(a.eof!.vectors.map(abs), b.eof!.vectors.map(abs))
        #expect(difference < 1e-8, "components differ by \(difference)")
        #expect(relative(a.normalisation.variableStd, b.normalisation.variableStd) < 1e-8)
    }

    /// A sweep with a validation fraction reads its data in shards too: the counting pass finds every trajectory's
    /// length from the shards, the held-out tails are gathered, and the refit reads the tails in shards. Blocks of 290
    /// raw rows put a shard boundary inside a held-out tail (K = 2: row 1160, row 560 of trajectory 1, whose tail is
    /// rows 450–599; K = 3: row 1740) and others inside delay windows of the head.
    @Test func sweepPicksTheSameCandidate() throws {
        let dir = try scratch("mpi-sweep")
        let data = try Self.lorenz(dir)
        let common = ["sweep", "--data", data, "--widths", "40,120", "--ridges", "1e-10,1e-6", "--solver", "cholesky", "--backend", "cpu",
                      "--horizon", "20", "--validation-fraction", "0.25", "--shard-rows", "290", "--json"]
        let one = try eddy(common + ["--out", dir + "/one.safetensors"])
        #expect(one.status == 0, "\(one.stderr)")
        let a = try JSONSerialization.jsonObject(with: Data(one.stdout.utf8)) as! [String: Any]
        func byCandidate(_ list: [[String: Any]]) -> [[String: Any]] {
            list.sorted { ($0["width"] as! Int, $0["ridge"] as! Double) < ($1["width"] as! Int, $1["ridge"] as! Double) }
        }
        let ca = byCandidate(a["candidates"] as! [[String: Any]])
        let ma = try ModelFile.read(dir + "/one.safetensors")
        // The floor: the same sweep in one process with another chunk size (G's sums in another order).
        let other = try eddy(common + ["--chunk-rows", "333", "--out", dir + "/chunks.safetensors"])
        #expect(other.status == 0, "\(other.stderr)")
        let scale = ma.theta.map { abs($0) }.max()!
        let floor = zip(ma.theta, try ModelFile.read(dir + "/chunks.safetensors").theta).map { abs($0 - $1) }.max()!
        let cc = byCandidate((try JSONSerialization.jsonObject(with: Data(other.stdout.utf8)) as! [String: Any])["candidates"] as! [[String: Any]])
        for k in [2, 3] {
            let run = try mpirun(k, common + ["--out", dir + "/k\(k).safetensors"])
            #expect(run.status == 0, "\(run.stderr)")
            let b = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as! [String: Any]
            #expect(a["validation_origins"] as? Int == b["validation_origins"] as? Int, "K = \(k): validation origins")
            let cb = byCandidate(b["candidates"] as! [[String: Any]])
            #expect(ca.count == 4 && cb.count == 4)
            // Scores move with G's last bits (the best, ~1e-7, is a fit to rounding): within 100× what another chunk size
            // moves them by in one process, or 1e-9 of themselves.
            for ((x, y), z) in zip(zip(ca, cb), cc) {
                #expect(x["width"] as? Int == y["width"] as? Int && x["ridge"] as? Double == y["ridge"] as? Double)
                let sx = x["score"] as? Double ?? .nan, sy = y["score"] as? Double ?? .nan, sz = z["score"] as? Double ?? .nan
                #expect(abs(sx - sy) <= 100 * abs(sx - sz) + 1e-9 * abs(sx), "K = \(k): score \(sx) vs \(sy) (another chunk size: \(sz))")
            }
            let mb = try ModelFile.read(dir + "/k\(k).safetensors")
            #expect(ma.metadata.width == mb.metadata.width && ma.metadata.ridge == mb.metadata.ridge)
            #expect(ma.layer == mb.layer && ma.normalisation == mb.normalisation, "K = \(k)")
            // The refit saw the same pairs of both parts.
            #expect(ma.metadata.training.rows == mb.metadata.training.rows && ma.metadata.training.pairs == mb.metadata.training.pairs
                    && ma.metadata.training.segments == mb.metadata.training.segments, "K = \(k)")
            let difference = zip(ma.theta, mb.theta).map { abs($0 - $1) }.max()!
            #expect(difference <= 100 * floor + 1e-12 * scale, "K = \(k): refitted weights differ by \(difference), floor \(floor)")
        }
    }

    /// A sweep with a validation file reads its training data in shards: the same candidates and scores as one process,
    /// the same hidden layer.
    @Test func shardedSweepPicksTheSameCandidate() throws {
        let dir = try scratch("mpi-sweep-file")
        let data = try Self.lorenz(dir)
        let validation = dir + "/val.csv"
        #expect(try eddy(["generate", "lorenz63", "--trajectories", "2", "--steps", "300", "--seed", "9", "--out", validation]).status == 0)
        let common = ["sweep", "--data", data, "--validation", validation, "--widths", "40,120", "--ridges", "1e-10,1e-6", "--solver", "cholesky",
                      "--backend", "cpu", "--horizon", "20", "--delays", "2", "--shard-rows", "700", "--json"]
        let one = try eddy(common + ["--out", dir + "/one.safetensors"])
        #expect(one.status == 0, "\(one.stderr)")
        let three = try mpirun(3, common + ["--out", dir + "/three.safetensors"])
        #expect(three.status == 0, "\(three.stderr)")
        let a = try JSONSerialization.jsonObject(with: Data(one.stdout.utf8)) as! [String: Any]
        let b = try JSONSerialization.jsonObject(with: Data(three.stdout.utf8)) as! [String: Any]
        let sa = (a["candidates"] as! [[String: Any]]).map { $0["score"] as? Double ?? .nan }.sorted()
        let sb = (b["candidates"] as! [[String: Any]]).map { $0["score"] as? Double ?? .nan }.sorted()
        #expect(sa.count == 4 && sb.count == 4)
        // The scores move with G's last bits: in one process, --chunk-rows 333 instead of 4096 moves them by up to
        // 9e-7 of themselves (the best, ~2e-8, is a fit to rounding); 1e-4 leaves room for that and catches a wrong pass.
        for (x, y) in zip(sa, sb) { #expect(abs(x - y) <= 1e-4 * abs(x), "score \(x) vs \(y)") }
        let ma = try ModelFile.read(dir + "/one.safetensors"), mb = try ModelFile.read(dir + "/three.safetensors")
        #expect(ma.metadata.width == mb.metadata.width && ma.metadata.ridge == mb.metadata.ridge)
        #expect(ma.layer == mb.layer && ma.normalisation == mb.normalisation)
    }

    /// A bad row in the data: every rank meets it; one clear line naming the file and line, exit non-zero, no model.
    @Test func badFileEndsTheJob() throws {
        let dir = try scratch("mpi-bad")
        let data = try Self.lorenz(dir)
        var lines = try String(contentsOfFile: data, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lines[2000] = "3,1.5,abc,2.0"
        try writeText(lines.joined(separator: "\n"), data)
        let clock = Date()
        // Blocks of 500 rows: line 2001 (raw row 1999) is in rank 1's shard only.
        // Both train and a sweep with a validation fraction (whose counting pass reads shards too).
        for command in [["train", "--width", "50"], ["sweep", "--widths", "50", "--validation-fraction", "0.25", "--horizon", "10"]] {
            let run = try mpirun(2, command + ["--data", data, "--backend", "cpu", "--shard-rows", "500", "--out", dir + "/m.safetensors"])
            #expect(run.status != 0)
            #expect(Date().timeIntervalSince(clock) < 60)
            #expect(run.stderr.contains("eddy-mpi: rank 1 of 2: error: \(data)"), "\(command[0]): \(run.stderr)")
            #expect(run.stderr.contains("l63.csv:2001:"), "\(run.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/m.safetensors"))
        }
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
