import ArgumentParser
import Eddy
import EddyOpenCL

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time lift, Gram, right-hand sides and solve of one training pass on synthetic data.",
        discussion: """
        Random windows of --window values (the lifted window z, torch_edmd.py's --inputs), random tanh features of --width neurons, --rows rows in chunks of --chunk-rows. Each phase is timed synchronised (lift, gram, rhs, and for mixed precision sum: adding the float chunk products into double); accumulate is the same pass as training runs it (uploads overlapped); solve is the Cholesky solve including attempts that failed at a smaller ridge; total = accumulate + solve. With --reps N every time is the fastest of N runs. On OpenCL each result also has the bytes per slice moved and allocated (traffic_per_slice: uploads, read-backs, CLBlast's own temporaries, and the Koopman GEMM's temporary before the lift wrote its targets one row up), the Xgemm parameters CLBlast applied and where from, which GEMM kernel the pass took (direct or indirect), and the check of one slice at the pass's shape against OpenBLAS (--check: a whole chunk). A configuration that fails is reported (JSON: "failures") and the others still run; the exit status is then 1. Gram TFLOP/s count N·D² with D = 1 + window + width + input count. (--inputs and --controls are the old names of --window and --input-count.)
        Example (an H100, beside ../shared/gpu/torch_edmd.py): eddy bench --backend opencl --rows 1048576 --window 32 --width 4096 --json
        """
    )

    @OptionGroup var target: DeviceOptions
    @Option(name: [.customLong("precisions"), .customLong("precision")], help: "Precisions to time on OpenCL, comma-separated: double, mixed (the CPU runs double only).") var precision = "double,mixed"
    @Option(name: [.customLong("forms"), .customLong("form")], help: "Forms to time, comma-separated: koopman, recurrent.") var form = "koopman,recurrent"
    @Option(help: "Rows (pairs) in the pass, rounded up to whole chunks.") var rows = 65536
    @Option(parsing: .unconditional, help: "Size of the lifted window z (n·k).") var window = 32
    @Option(parsing: .unconditional, help: "Neurons M.") var width = 1024
    @Option(parsing: .unconditional, help: "Inputs u appended to the dictionary (train's --inputs columns), as a count.") var inputCount = 0
    // The old names: --inputs is train's input columns everywhere else.
    @Option(name: .customLong("inputs"), help: ArgumentHelp("Old name of --window.", visibility: .hidden)) var oldInputs: Int?
    @Option(name: .customLong("controls"), help: ArgumentHelp("Old name of --input-count.", visibility: .hidden)) var oldControls: Int?
    var inputs: Int { oldInputs ?? window }
    var controls: Int { oldControls ?? inputCount }
    @Option(help: "Rows per chunk (a multiple of 128 on OpenCL).") var chunkRows = 16384
    @Option(help: "Repetitions of each configuration; every time reported is the fastest (torch_edmd.py reports its best of 3).") var reps = 1
    @Flag(help: "OpenCL: check a whole chunk (--chunk-rows rows, through the pass's own kernels at its shape) against OpenBLAS on the host, not the first 256 rows; the JSON's check says how far G and R were.") var check = false
    @Flag(help: "Print JSON: {\"device\", \"results\": [one object per form and precision], \"failures\": [the configurations that failed, with why]}.") var json = false

    func run() throws {
        try reportingErrors {
            if oldInputs != nil { printError("eddy: note: bench's --inputs is now --window (the lifted window's size; --inputs names input columns elsewhere)") }
            if oldControls != nil { printError("eddy: note: bench's --controls is now --input-count") }
            let forms: [Form] = try splitList(form).map { try parseChoice($0, "--form") }
            let precisions: [Precision] = try splitList(precision).map { try parseChoice($0, "--precision") }
            if rows < 2 || inputs < 1 || width < 0 || controls < 0 || chunkRows < 2 || reps < 1 {
                throw EddyError("bench: --rows ≥ 2, --window ≥ 1, --width ≥ 0, --input-count ≥ 0, --chunk-rows ≥ 2 and --reps ≥ 1 are needed; got --rows \(rows), --window \(inputs), --width \(width), --input-count \(controls), --chunk-rows \(chunkRows), --reps \(reps)")
            }
            let (backend, reason) = try selectBackend(target.backend, device: target.device, precision: precisions.first?.rawValue ?? "double", chunkRows: chunkRows)
            if !json { printError("backend \(reason)") }
            let device = BackendSelection.device(of: backend)
            let shape = Benchmark.Shape(rows: rows, inputs: inputs, width: width, controls: controls, chunkRows: chunkRows)
            // A configuration that fails (a device out of memory, a kernel fault) is reported and the others still run.
            var results: [Benchmark.Result] = []
            var failures: [(form: Form, precision: Precision, message: String)] = []
            for f in forms {
                for p in device == nil ? [Precision.double] : precisions where p == .mixed || device?.fp64 != false {
                    do {
                        results.append(try Benchmark.run(shape, form: f, precision: p, device: device, repetitions: reps, checkRows: check ? chunkRows : nil))
                    } catch let e as EddyError {
                        failures.append((f, p, e.message))
                        if !json { printError("eddy: warning: bench \(f.rawValue) \(p.rawValue) failed: \(e.message)") }
                    }
                }
            }
            if json {
                print(JSON.object([
                    "device": .string(device?.name ?? "CPU (OpenBLAS)"), "driver": device.map { .string($0.driver) } ?? .null,
                    "backend": .string(reason), "window": .int(inputs), "width": .int(width), "input_count": .int(controls),
                    "chunk_rows": .int(chunkRows), "repetitions": .int(reps), "results": .array(results.map(\.json)),
                    "failures": .array(failures.map { .object([("form", .string($0.form.rawValue)), ("precision", .string($0.precision.rawValue)),
                                                               ("error", .string($0.message))]) }),
                ]).text)
                // Every result is out; a failed configuration still makes the exit status say so.
                if !failures.isEmpty { throw ExitCode.failure }
                return
            }
            print("\(device?.description ?? "CPU (OpenBLAS)"); rows \(results.first?.rows ?? rows), window \(inputs), width \(width), input count \(controls), chunks of \(chunkRows)")
            print("form       precision  lift s    gram s    rhs s     sum s     accumulate s  solve s   Gram TFLOP/s")
            for r in results {
                let cells = [r.phases["lift"], r.phases["gram"], r.phases["rhs"], r.phases["sum"]].map { $0.map { Format.fixed($0, 4) } ?? "-" }
                print(pad(r.form.rawValue, 11) + pad(r.precision, 11) + cells.map { pad($0, 10) }.joined()
                      + pad(Format.fixed(r.accumulate, 4), 14) + pad(Format.fixed(r.solve, 4), 10) + Format.fixed(r.gramTFLOPs, 3))
            }
            for r in results where r.solveRidge != 1e-8 {
                print("\(r.form.rawValue) \(r.precision): G + λI was not positive definite at α = 1e-8; the solve used α = \(Format.general(r.solveRidge)) (failed attempts: \(Format.fixed(r.solveFailed, 4)) s of the solve's)")
            }
            for r in results {
                guard let t = r.traffic else { continue }
                print("\(r.form.rawValue) \(r.precision): \(r.gemmPath ?? "?") GEMM; per slice: upload \(t.uploadBytes >> 10) KiB, read back \(t.downloadBytes >> 10) KiB, CLBlast temporaries \(t.clblastTempBytes >> 10) KiB (SYRK \(t.syrkTempBytes >> 10) KiB, GEMM \(t.gemmTempBytes >> 10) KiB; before the shifted lift: \(t.previousGemmTempBytes >> 10) KiB)"
                      + (r.checkDifference.map { "; check on \(r.checkRows ?? 0) rows: \(Format.scientific($0)) from OpenBLAS" } ?? ""))
            }
            for f in failures { print("\(f.form.rawValue) \(f.precision.rawValue): failed: \(f.message)") }
            if !failures.isEmpty { throw ExitCode.failure }
        }
    }
}
