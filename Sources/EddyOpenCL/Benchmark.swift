import CBLAS
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
        /// Repetitions timed; every time is the fastest of them (as torch_edmd.py's best of 3).
        public var repetitions = 1

        /// Gram phase in TFLOP/s, counting N·D² (ENGINEERING.md's convention).
        public var gramTFLOPs: Double { Double(rows) * Double(features) * Double(features) / (phases["gram"] ?? .nan) / 1e12 }

        public var json: JSON {
            var pairs: [(String, JSON)] = [
                ("tool", .string("eddy")), ("backend", .string(backend)), ("device", .string(device)), ("form", .string(form.rawValue)),
                ("precision", .string(precision)), ("rows", .int(rows)), ("features", .int(features)),
            ]
            for (k, v) in phases.sorted(by: { $0.key < $1.key }) { pairs.append(("\(k)_s", .seconds(v))) }
            pairs += [("accumulate_s", .seconds(accumulate)), ("solve_s", .seconds(solve)), ("solve_failed_s", .seconds(solveFailed)),
                      ("total_s", .seconds(accumulate + solve)), ("solve_ridge", .number(solveRidge)), ("repetitions", .int(repetitions)),
                      ("gram_tflops", .number(gramTFLOPs))]
            if let lift = phases["lift"], let bytes = liftBytes { pairs.append(("lift_gbs", .number(Double(bytes) / lift / 1e9))) }
            return .object(pairs)
        }

        /// Bytes the lift writes (dictionary rows, twice for the Koopman form on the device).
        var liftBytes: Int?
    }

    /// Runs one form and precision `repetitions` times and keeps the fastest time of each phase (and of the pass and
    /// the solve); `device` nil means the CPU backend (double only).
    public static func run(_ shape: Shape, form: Form, precision: Precision, device: OpenCLDevice?, repetitions: Int) throws -> Result {
        var best = try run(shape, form: form, precision: precision, device: device)
        for _ in 1..<max(1, repetitions) {
            let r = try run(shape, form: form, precision: precision, device: device)
            for (k, v) in r.phases { best.phases[k] = min(best.phases[k] ?? v, v) }
            best.accumulate = min(best.accumulate, r.accumulate)
            if r.solve < best.solve { (best.solve, best.solveFailed, best.solveRidge) = (r.solve, r.solveFailed, r.solveRidge) }
        }
        best.repetitions = max(1, repetitions)
        return best
    }

    /// Runs one form and precision once; `device` nil means the CPU backend (double only).
    public static func run(_ shape: Shape, form: Form, precision: Precision, device: OpenCLDevice?) throws -> Result {
        let layout = DictionaryLayout(variables: shape.inputs, delays: 1, width: shape.width, inputs: shape.controls, form: form)
        let layer = Sampler.random(inputSize: shape.inputs, width: shape.width, activation: shape.activation, scale: 0.3, seed: 1)
        let chunk = syntheticChunk(rows: shape.chunkRows, inputs: shape.inputs, controls: shape.controls)
        let chunks = max(1, (shape.rows + shape.chunkRows - 1) / shape.chunkRows)
        let rows = chunks * shape.chunkRows
        var result = Result(backend: device == nil ? "cpu" : "opencl", device: device?.name ?? "CPU (OpenBLAS)", form: form,
                            precision: device == nil ? "double" : precision.rawValue, rows: rows, features: layout.featureCount,
                            phases: [:], accumulate: 0, solve: 0)
        let sums: GramSums
        if let device {
            // Once with every phase synchronised and timed, once as training runs it.
            let timed = try OpenCLBackend(device: device, precision: precision, rows: shape.chunkRows)
            timed.phases = [:]
            try timed.beginPass(layer: layer, layout: layout)
            timed.phases = [:]   // not the dry slice
            for _ in 0..<chunks { try timed.accumulate(chunk) }
            _ = try timed.endPass()
            result.phases = timed.phases ?? [:]
            let ld = (layout.featureCount + 63) / 64 * 64
            result.liftBytes = rows * ld * (precision == .double ? 8 : 4) * (form == .koopman ? 2 : 1)
            let backend = try OpenCLBackend(device: device, precision: precision, rows: shape.chunkRows)
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
        return result
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
