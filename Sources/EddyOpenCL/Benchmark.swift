import CBLAS
import CLAPACKE
import Eddy

/// `eddy bench`: the phases of one training pass — lift, Gram, right-hand sides, solve — timed on synthetic
/// data of a given shape, on the CPU or an OpenCL device, in the shapes of `../shared/gpu/torch_edmd.py`
/// (`--rows`, `--inputs` = the lifted window's size, `--width`) so the two can run side by side.
public enum Benchmark {
    public struct Shape: Sendable {
        public var rows: Int
        /// Size of the lifted window z (n·k); torch_edmd.py's `--inputs`.
        public var inputs: Int
        public var width: Int
        /// Control inputs u appended to the dictionary (0 in torch_edmd.py).
        public var controls: Int
        public var chunkRows: Int
        public var activation: Activation

        public init(rows: Int, inputs: Int, width: Int, controls: Int = 0, chunkRows: Int = 16384, activation: Activation = .tanh) {
            self.rows = rows
            self.inputs = inputs
            self.width = width
            self.controls = controls
            self.chunkRows = chunkRows
            self.activation = activation
        }
    }

    public struct Result: Sendable {
        public var backend: String
        public var device: String
        public var form: Form
        public var precision: String
        public var rows: Int
        public var features: Int
        /// Phases, each synchronised: lift, gram, rhs, sum (mixed: float chunk sums into double), upload.
        public var phases: [String: Double]
        /// One pass as training runs it (uploads overlapped, one synchronisation per chunk).
        public var accumulate: Double
        public var solve: Double
        /// The relative ridge α the Cholesky solve needed (1e-8 unless the Gram was not positive definite there).
        public var solveRidge = 1e-8
        /// Of `solve`, the seconds spent on Cholesky attempts that failed (a Gram not positive definite at a smaller α).
        public var solveFailed = 0.0
        /// The Cholesky solve at the ridge it used, split: factor (dpotrf), triangular solves (dpotrs), condition (dpocon).
        public var solveSplit: [String: Double] = [:]
        /// OpenCL with FP64: the same Cholesky solve on the device (`DeviceSolve`): seconds per step, and Θ's max relative
        /// difference from the host solve's.
        public var deviceSolve: [String: Double] = [:]
        public var deviceSolveDifference: Double?
        public var deviceSolveError: String?
        /// Repetitions timed; every time is the fastest of them (as torch_edmd.py's best of 3).
        public var repetitions = 1
        /// OpenCL: bytes per slice (uploads, read-backs, CLBlast's temporaries), from the backend's accounting.
        public var traffic: Traffic?
        /// OpenCL: the Xgemm parameters CLBlast applied (its database or the tuned cache) and where they came from.
        public var parameters: [(String, Int)] = []
        public var tuning: String?
        /// OpenCL: CLBlast's XGEMM_MIN_INDIRECT_SIZE and which GEMM kernel the pass's cross product took.
        public var indirectThreshold: Int?
        public var gemmPath: String?
        /// OpenCL: the check slice at the pass's shape against OpenBLAS: its rows and max relative difference in G, R.
        public var checkRows: Int?
        public var checkDifference: Double?

        /// Gram phase in TFLOP/s, counting N·D² (ENGINEERING.md's convention).
        public var gramTFLOPs: Double { Double(rows) * Double(features) * Double(features) / (phases["gram"] ?? .nan) / 1e12 }

        public var json: JSON {
            var pairs: [(String, JSON)] = [
                ("tool", .string("eddy")), ("backend", .string(backend)), ("device", .string(device)), ("form", .string(form.rawValue)),
                ("precision", .string(precision)), ("rows", .int(rows)), ("features", .int(features)),
            ]
            for (k, v) in phases.sorted(by: { $0.key < $1.key }) { pairs.append(("\(k)_s", .seconds(v))) }
            for (k, v) in solveSplit.sorted(by: { $0.key < $1.key }) { pairs.append(("solve_\(k)_s", .seconds(v))) }
            for (k, v) in deviceSolve.sorted(by: { $0.key < $1.key }) { pairs.append(("device_solve_\(k)_s", .seconds(v))) }
            if !deviceSolve.isEmpty { pairs.append(("device_solve_s", .seconds(deviceSolve.values.reduce(0, +)))) }
            if let deviceSolveDifference { pairs.append(("device_solve_difference", .number(deviceSolveDifference))) }
            if let deviceSolveError { pairs.append(("device_solve_error", .string(deviceSolveError))) }
            pairs += [("accumulate_s", .seconds(accumulate)), ("solve_s", .seconds(solve)), ("solve_failed_s", .seconds(solveFailed)),
                      ("total_s", .seconds(accumulate + solve)), ("solve_ridge", .number(solveRidge)), ("repetitions", .int(repetitions)),
                      ("gram_tflops", .number(gramTFLOPs))]
            if let lift = phases["lift"], let bytes = liftBytes { pairs.append(("lift_gbs", .number(Double(bytes) / lift / 1e9))) }
            if let traffic { pairs.append(("traffic_per_slice", traffic.json)) }
            if !parameters.isEmpty {
                pairs.append(("clblast_xgemm", .object(parameters.map { ($0.0, .int($0.1)) })))
                pairs.append(("clblast_source", .string(tuning ?? "CLBlast's database (untuned)")))
            }
            if let indirectThreshold { pairs.append(("xgemm_min_indirect_size", .int(indirectThreshold))) }
            if let gemmPath { pairs.append(("gemm_path", .string(gemmPath))) }
            if let checkRows, let checkDifference {
                pairs.append(("check", .object([("rows", .int(checkRows)), ("max_relative_difference", .number(checkDifference)),
                                                 ("tolerance", .number(precision == "double" ? 1e-10 : 1e-4))])))
            }
            return .object(pairs)
        }

        /// Bytes the lift writes (dictionary rows, twice for the Koopman form on the device).
        var liftBytes: Int?
    }

    /// Runs one form and precision `repetitions` times and keeps the fastest time of each phase (and of the pass and
    /// the solve); `device` nil means the CPU backend (double only).
    /// `checkRows` (OpenCL): the check slice's rows in the first repetition (`eddy bench --check`: a whole chunk).
    public static func run(_ shape: Shape, form: Form, precision: Precision, device: OpenCLDevice?, repetitions: Int,
                           checkRows: Int? = nil) throws -> Result {
        var best = try run(shape, form: form, precision: precision, device: device, checkRows: checkRows)
        for _ in 1..<max(1, repetitions) {
            let r = try run(shape, form: form, precision: precision, device: device)
            for (k, v) in r.phases { best.phases[k] = min(best.phases[k] ?? v, v) }
            best.accumulate = min(best.accumulate, r.accumulate)
            if r.solve < best.solve { (best.solve, best.solveFailed, best.solveRidge, best.solveSplit) = (r.solve, r.solveFailed, r.solveRidge, r.solveSplit) }
            for (k, v) in r.deviceSolve { best.deviceSolve[k] = min(best.deviceSolve[k] ?? v, v) }
        }
        best.repetitions = max(1, repetitions)
        return best
    }

    /// Runs one form and precision once; `device` nil means the CPU backend (double only).
    public static func run(_ shape: Shape, form: Form, precision: Precision, device: OpenCLDevice?, checkRows: Int? = nil) throws -> Result {
        let layout = DictionaryLayout(variables: shape.inputs, delays: 1, width: shape.width, inputs: shape.controls, form: form)
        let layer = Sampler.random(inputSize: shape.inputs, width: shape.width, activation: shape.activation, scale: 0.3, seed: 1)
        let chunk = syntheticChunk(rows: shape.chunkRows, inputs: shape.inputs, controls: shape.controls)
        let chunks = max(1, (shape.rows + shape.chunkRows - 1) / shape.chunkRows)
        let rows = chunks * shape.chunkRows
        var result = Result(backend: device == nil ? "cpu" : "opencl", device: device?.name ?? "CPU (OpenBLAS)", form: form,
                            precision: device == nil ? "double" : precision.rawValue, rows: rows, features: layout.featureCount,
                            phases: [:], accumulate: 0, solve: 0)
        let sums: GramSums
        var opencl: OpenCLBackend?
        if let device {
            // Once with every phase synchronised and timed, once as training runs it.
            let timed = try OpenCLBackend(device: device, precision: precision, rows: shape.chunkRows)
            if let checkRows { timed.checkRows = checkRows }
            timed.phases = [:]
            try timed.beginPass(layer: layer, layout: layout)
            timed.phases = [:]   // not the dry slice
            for _ in 0..<chunks { try timed.accumulate(chunk) }
            _ = try timed.endPass()
            result.phases = timed.phases ?? [:]
            result.traffic = timed.traffic
            result.parameters = timed.appliedParameters
            result.tuning = timed.tuning
            result.indirectThreshold = timed.indirectThreshold
            result.checkRows = min(timed.checkRows, timed.rows)
            result.checkDifference = timed.checks.values.max()
            let ld = timed.lastLd ?? (layout.featureCount + 63) / 64 * 64
            result.gemmPath = BackendSelection.gemmPath(m: ld, n: form == .koopman ? ld : layout.variables, k: timed.rows, threshold: result.indirectThreshold)
            result.liftBytes = rows * ld * (precision == .double ? 8 : 4) * (form == .koopman ? 2 : 1)
            let backend = try OpenCLBackend(device: device, precision: precision, rows: shape.chunkRows)
            backend.keepSums = device.fp64
            opencl = backend
            try backend.beginPass(layer: layer, layout: layout)
            var clock = Stopwatch()
            for _ in 0..<chunks { try backend.accumulate(chunk) }
            sums = try backend.endGramPass()
            result.accumulate = clock.lap()
        } else {
            result.phases = cpuPhases(chunk, layer: layer, layout: layout, chunks: chunks)
            result.liftBytes = rows * layout.featureCount * 8
            let backend = CPUBackend()
            try backend.beginPass(layer: layer, layout: layout)
            var clock = Stopwatch()
            for _ in 0..<chunks { try backend.accumulate(chunk) }
            sums = try backend.endGramPass()
            result.accumulate = clock.lap()
        }
        // Cholesky at torch_edmd.py's relative ridge 1e-8; a float Gram (mixed) may not be positive definite
        // there, which is part of what mixed precision costs: then 1e-6, and the result says so.
        // The solve's time counts the failed attempts too (they are part of what it cost); solveFailed says how much.
        var clock = Stopwatch()
        for ridge in [1e-8, 1e-6, 1e-4] {
            result.solveRidge = ridge
            let solved = (try? Solver.solve(sums, solver: .cholesky, ridge: ridge)) != nil
            let seconds = clock.lap()
            result.solve += seconds
            if solved { break }
            result.solveFailed += seconds
        }
        result.solveSplit = choleskySplit(sums, ridge: result.solveRidge)
        // The same solve on the device, where the sums already are; compared with the host's Θ.
        if let opencl, opencl.keepSums, let host = try? Solver.solve(sums, solver: .cholesky, ridge: result.solveRidge) {
            do {
                let d = try opencl.solveOnDevice(ridge: result.solveRidge)
                result.deviceSolve = d.seconds
                result.deviceSolveDifference = BackendSelection.relativeDifference(d.theta, host.theta)
            } catch let e as EddyError {
                result.deviceSolveError = BackendSelection.firstLine(e.message)   // reported; the host solve's numbers stand
            }
        }
        return result
    }

    /// The three LAPACK steps of `Solver.solve`'s Cholesky path, timed one by one at `ridge` (the solve itself is timed
    /// whole above): factor, triangular solves for every right-hand side, condition estimate.
    static func choleskySplit(_ sums: GramSums, ridge alpha: Double) -> [String: Double] {
        let f = sums.layout.featureCount, r = sums.layout.targetCount
        var trace = 0.0
        for i in 0..<f { trace += sums.gram[i * f + i] }
        let lambda = Solver.relativeRidge(alpha, trace: trace, size: f)
        var a = sums.gram
        for i in 0..<f { a[i * f + i] += lambda }
        var anorm = 0.0
        for i in 0..<f { var s = 0.0; for j in 0..<f { s += abs(a[i * f + j]) }; anorm = max(anorm, s) }
        let upper = CChar(UInt8(ascii: "U"))
        var clock = Stopwatch()
        let info = a.withUnsafeMutableBufferPointer { LAPACKE_dpotrf(LAPACK_ROW_MAJOR, upper, Int32(f), $0.baseAddress, Int32(f)) }
        var split = ["factor": clock.lap()]
        guard info == 0 else { return split }
        var theta = sums.rightHandSide
        _ = a.withUnsafeBufferPointer { fp in
            theta.withUnsafeMutableBufferPointer {
                LAPACKE_dpotrs(LAPACK_ROW_MAJOR, upper, Int32(f), Int32(r), fp.baseAddress, Int32(f), $0.baseAddress, Int32(r))
            }
        }
        split["triangular"] = clock.lap()
        var rcond = 0.0
        _ = a.withUnsafeBufferPointer { LAPACKE_dpocon(LAPACK_ROW_MAJOR, upper, Int32(f), $0.baseAddress, Int32(f), anorm, &rcond) }
        split["condition"] = clock.lap()
        return split
    }

    /// Standard normal windows, every row a pair source but the last.
    static func syntheticChunk(rows: Int, inputs p: Int, controls m: Int) -> WindowChunk {
        var rng = SeededGenerator(seed: 0)
        return WindowChunk(windows: (0..<(rows * p)).map { _ in rng.normal() }, inputs: (0..<(rows * m)).map { _ in rng.normal() },
                           linked: (0..<rows).map { $0 < rows - 1 })
    }

    /// The CPU backend's three steps, one after another: `Lift.rows`, OpenBLAS `dsyrk`, OpenBLAS `dgemm`.
    static func cpuPhases(_ chunk: WindowChunk, layer: HiddenLayer, layout: DictionaryLayout, chunks: Int) -> [String: Double] {
        let f = layout.featureCount, d = layout.dictionarySize, p = layout.windowSize, k = chunk.count - 1
        var phi = [Double](repeating: 0, count: chunk.count * f)
        var g = [Double](repeating: 0, count: f * f)
        var r = [Double](repeating: 0, count: f * layout.targetCount)
        var times: [String: Double] = ["lift": 0, "gram": 0, "rhs": 0]
        for _ in 0..<chunks {
            var clock = Stopwatch()
            phi.withUnsafeMutableBufferPointer { out in
                chunk.windows.withUnsafeBufferPointer { w in
                    chunk.inputs.withUnsafeBufferPointer { u in
                        Lift.rows(windows: w.baseAddress!, inputs: u.baseAddress, count: chunk.count, layer: layer, layout: layout, into: out.baseAddress!)
                    }
                }
            }
            times["lift"]! += clock.lap()
            cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, blasint(f), blasint(k), 1, phi, blasint(f), 1, &g, blasint(f))
            times["gram"]! += clock.lap()
            switch layout.form {
            case .koopman:
                phi.withUnsafeBufferPointer { a in
                    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, blasint(f), blasint(d), blasint(k), 1, a.baseAddress!, blasint(f),
                                a.baseAddress! + f, blasint(f), 1, &r, blasint(d))
                }
            case .recurrent:
                chunk.windows.withUnsafeBufferPointer { w in
                    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, blasint(f), blasint(layout.variables), blasint(k), 1, phi, blasint(f),
                                w.baseAddress! + p, blasint(p), 1, &r, blasint(layout.variables))
                }
            }
            times["rhs"]! += clock.lap()
        }
        return times
    }
}
