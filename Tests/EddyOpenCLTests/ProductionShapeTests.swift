import EddyTestSupport
import Foundation
import Testing
@testable import Eddy
@testable import EddyOpenCL

/// ISSUE 16: the pass's GEMM at a shape above CLBlast's indirect threshold (the `Xgemm` kernel the benchmark shape
/// runs, not `XgemmDirect`), against the CPU in double; the per-slice copies CLBlast makes, before and after the
/// lift wrote the targets one row up; a tuned parameter set that fails gives way to CLBlast's defaults.
@Suite("OpenCL at production shapes", .serialized, .enabled(if: PoCL.available, PoCL.skipNote))
struct ProductionShapeTests {
    /// Koopman and recurrent passes with ld 576 and 2304 rows per slice: 576² · 2304 ≥ XGEMM_MIN_INDIRECT_SIZE³ on
    /// PoCL (896 in double), over chunks cut into several slices; G and R within 1e-10 of OpenBLAS.
    @Test func indirectGemmMatchesTheCPU() throws {
        let device = PoCL.device!
        var rng = SeededGenerator(seed: 44)
        let rows = 5000, p = 6, m = 1, width = 560   // 1 + 6 + 560 + 1 = 568 features → ld 576
        let windows = (0..<(rows * p)).map { _ in rng.normal() }, inputs = (0..<(rows * m)).map { _ in rng.normal() }
        let chunks = [0..<2600, 2600..<rows].map { r in
            WindowChunk(windows: Array(windows[(r.lowerBound * p)..<(r.upperBound * p)]), inputs: Array(inputs[(r.lowerBound * m)..<(r.upperBound * m)]),
                        linked: r.map { $0 % 997 != 996 && $0 != r.upperBound - 1 })
        }
        let layer = Sampler.random(inputSize: p, width: width, activation: .tanh, scale: 0.3, seed: 5)
        for form in [Form.koopman, .recurrent] {
            let layout = DictionaryLayout(variables: p, delays: 1, width: width, inputs: m, form: form)
            let backend = try OpenCLBackend(device: device, precision: .double, rows: 2304)
            let threshold = try #require(backend.indirectThreshold)
            #expect(backend.rows == 2304)
            let gpu = try sums(backend, chunks, layer: layer, layout: layout)
            let ld = try #require(backend.lastLd)
            #expect(ld == 576)
            if form == .koopman {
                #expect(ld * ld * backend.rows >= threshold * threshold * threshold, "the Koopman GEMM must take the indirect kernel")
                #expect(backend.traffic.indirect)
                #expect(backend.traffic.gemmTempBytes == 0 && backend.traffic.passTempBytes == 0, "\(backend.traffic)")
            }
            let cpu = try sums(CPUBackend(), chunks, layer: layer, layout: layout)
            #expect(gpu.pairs == cpu.pairs)
            let g = relative(gpu.gram, cpu.gram), r = relative(gpu.rightHandSide, cpu.rightHandSide)
            print("indirect \(form.rawValue): ld \(ld), \(backend.rows) rows per slice, threshold \(threshold): G \(Format.scientific(g)), R \(Format.scientific(r)); check slice \(backend.checks)")
            #expect(g <= 1e-10 && r <= 1e-10, "\(form): G \(g), R \(r)")
            #expect(backend.checks.values.allSatisfy { $0 <= 1e-10 } && !backend.checks.isEmpty)
        }
    }

    /// CLBlast's own temporary-size computation at the benchmark shape (ld 4160, 16384 rows per slice): the GEMM as the
    /// pass makes it now needs no temporary; the previous call (row-major Aᵀ·B with B one row in) copied B and C.
    @Test func noPerSliceCopyOfTheTargets() throws {
        let context = try CLContext(device: PoCL.device!)
        for real in [CLBlast.Precision.double, .single] {
            let ld = 4160, k = 16384
            let now = try CLBlast.gemmTempBytes(real, m: ld, n: ld, k: k, lda: ld, bOffset: 0, ldb: ld, ldc: ld, queue: context.compute)
            let before = try CLBlast.gemmTempBytes(real, m: ld, n: ld, k: k, lda: ld, bOffset: ld, ldb: ld, ldc: ld,
                                                   rowMajorTransposedA: true, queue: context.compute)
            print("Koopman GEMM temporary per slice at ld \(ld), \(k) rows, \(real.label): before \(before >> 20) MiB, now \(now) bytes")
            #expect(now == 0)
            #expect(before >= k * ld * real.bytes)   // at least the copy of B
        }
    }

    /// A cached tuned set that fails on the device (a work-group of 8192 work-items, above PoCL's 4096) is dropped:
    /// CLBlast's defaults run, the entry leaves the cache, `auto` (PoCL named) still trains on the device; with
    /// EDDY_TUNING=off the cache is not applied at all.
    @Test func failingTunedSetFallsBackToDefaults() throws {
        let cache = try scratch()
        let env = ["XDG_CACHE_HOME": cache]
        let dir = try scratch()
        #expect(try eddy(["generate", "vanderpol", "--trajectories", "4", "--steps", "100", "--out", dir + "/d.csv"]).status == 0)
        let bad = "Xgemm double GEMMK=0 KREG=1 KWG=128 KWI=2 MDIMA=64 MDIMC=64 MWG=64 NDIMB=128 NDIMC=128 NWG=128 SA=1 SB=1 STRM=0 STRN=0 VWM=1 VWN=1"
        let other = "Xgemm single GEMMK=0 KREG=1 KWG=32 KWI=2 MDIMA=16 MDIMC=16 MWG=64 NDIMB=8 NDIMC=8 NWG=64 SA=1 SB=1 STRM=0 STRN=0 VWM=4 VWN=4"
        #expect(try eddy(["tune", "--device", "pthread", "--set", bad], environment: env).status == 0)
        #expect(try eddy(["tune", "--device", "pthread", "--set", other], environment: env).status == 0)
        // Ignored: the cache stays as it is and the backend line names no tuning.
        let ignored = try eddy(["train", "--data", dir + "/d.csv", "--width", "30", "--device", "pthread", "--out", dir + "/i.st"],
                               environment: env.merging(["EDDY_TUNING": "off"]) { $1 })
        #expect(ignored.status == 0, "\(ignored.stderr)")
        #expect(ignored.stderr.contains("backend opencl") && !ignored.stderr.contains("tuned CLBlast"), "\(ignored.stderr)")
        let show = try eddy(["tune", "--device", "pthread", "--show", "--json"], environment: env)
        #expect(show.stdout.contains(bad))
        // Applied: the self-test fails with it, CLBlast's defaults take over, the device is still used.
        let t = try eddy(["train", "--data", dir + "/d.csv", "--width", "30", "--device", "pthread", "--out", dir + "/m.st"], environment: env)
        #expect(t.status == 0, "\(t.stderr)")
        #expect(t.stderr.contains("backend opencl"), "\(t.stderr)")
        #expect(t.stderr.contains("tuned CLBlast parameters") && t.stderr.contains("CLBlast's defaults"), "\(t.stderr)")
        let after = try eddy(["tune", "--device", "pthread", "--show", "--json"], environment: env)
        #expect(!after.stdout.contains(bad), "\(after.stdout)")
        #expect(after.stdout.contains(other), "the single-precision entry stays: \(after.stdout)")
    }
}

/// The tuner's candidates (no device needed): each fits the pass's padding and Xgemm's rules; double has its own grid.
@Suite("Tuning candidates")
struct TuningCandidateTests {
    @Test func candidatesFitThePaddingAndDoubleHasItsOwn() {
        for (ld, rows) in [(4160, 16384), (576, 2304), (320, 4096)] {
            let single = Tuner.candidates(single: true, localMemory: 48 << 10, maxWorkGroup: 1024, count: 12, ld: ld, rows: rows)
            let double = Tuner.candidates(single: false, localMemory: 48 << 10, maxWorkGroup: 1024, count: 12, ld: ld, rows: rows)
            #expect(!single.isEmpty && !double.isEmpty)
            for c in single + double {
                let v = Dictionary(c.values, uniquingKeysWith: { a, _ in a })
                #expect(ld % v["MWG"]! == 0 && ld % v["NWG"]! == 0 && rows % (v["KWG"]! * v["KREG"]!) == 0, "\(c.line) at ld \(ld)")
                #expect(v["MDIMC"]! * v["NDIMC"]! <= 1024)
                #expect((v["KWG"]! * (v["MWG"]! + v["NWG"]!)) * (c.single ? 4 : 8) <= 48 << 10)
            }
            #expect(double.allSatisfy { !$0.single && ($0.values.first { $0.0 == "VWM" }!.1) <= 2 })
        }
    }
}

/// The Cholesky solve on the device (blocked: host dpotrf on diagonal blocks, CLBlast trsm and syrk) gives the host
/// solve's Θ, both forms, across several blocks and a padded last one.
@Suite("The solve on the device", .serialized, .enabled(if: PoCL.available, PoCL.skipNote))
struct DeviceSolveTests {
    @Test(arguments: [Form.koopman, .recurrent])
    func deviceCholeskyMatchesTheHost(form: Form) throws {
        var rng = SeededGenerator(seed: 12)
        let rows = 900, p = 5, width = 180   // 1 + 5 + 180 = 186 features → ld 192: blocks of 64, 64, 64
        let chunk = WindowChunk(windows: (0..<(rows * p)).map { _ in rng.normal() }, inputs: [],
                                linked: (0..<rows).map { $0 % 300 != 299 })
        let layer = Sampler.random(inputSize: p, width: width, activation: .tanh, scale: 0.4, seed: 9)
        let layout = DictionaryLayout(variables: p, delays: 1, width: width, inputs: 0, form: form)
        let backend = try OpenCLBackend(device: PoCL.device!, precision: .double, rows: 512)
        backend.keepSums = true
        let sums = try sums(backend, [chunk], layer: layer, layout: layout)
        for ridge in [1e-6, 1e-9] {
            let host = try Solver.solve(sums, solver: .cholesky, ridge: ridge)
            for block in [64, 100, 256] {
                let device = try backend.solveOnDevice(ridge: ridge, block: block)
                let d = relative(device.theta, host.theta)
                print("device solve \(form.rawValue) α \(ridge) block \(block): Θ within \(Format.scientific(d)) of the host (condition \(Format.scientific(host.condition)))")
                #expect(device.theta.count == host.theta.count)
                // Two backward-stable solves differ by about κ·ε: allow 10 κ ε, never more than 1e-6.
                #expect(d <= min(1e-6, 10 * host.condition * Double.ulpOfOne), "α \(ridge), block \(block): \(d)")
            }
        }
        // Without a finished pass kept, it says so.
        let fresh = try OpenCLBackend(device: PoCL.device!, precision: .double, rows: 128)
        #expect(throws: EddyError.self) { _ = try fresh.solveOnDevice(ridge: 1e-6) }
    }
}

/// NVIDIA's late fault report (−36/−5 at a wait or read) is explained and marked, so the tuner opens a fresh context;
/// the same statuses at an enqueue are reported as they are.
@Suite("Late kernel faults")
struct LateFaultTests {
    @Test func lateStatusesSayTheContextIsDead() {
        for status: Int32 in [-36, -5] {
            for call in ["clFinish(compute)", "clWaitForEvents", "clEnqueueReadBuffer"] {
                do { try check(status, call); Issue.record("no error for \(status)") } catch let e as EddyError {
                    #expect(isLateFault(e.message) && e.message.contains("earlier kernel faulted") && e.message.contains("--chunk-rows"), "\(e.message)")
                } catch { Issue.record("\(error)") }
            }
            do { try check(status, "clEnqueueNDRangeKernel(lift_hidden)") } catch let e as EddyError {
                #expect(!isLateFault(e.message), "\(e.message)")
            } catch { Issue.record("\(error)") }
        }
        do { try check(-38, "clFinish(compute)") } catch let e as EddyError { #expect(!isLateFault(e.message)) } catch { Issue.record("\(error)") }
    }
}
