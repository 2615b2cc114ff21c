import Eddy

/// Backend choice is data, decided once and logged in one line (STYLE.md): `cpu`, `opencl` (a named or the best
/// OpenCL device, PoCL included, or a clear error) or `auto` (an OpenCL GPU that passes a self-test, else the
/// CPU). `auto` never fails: a missing driver, a kernel that does not build, a wrong self-test or a device out
/// of memory at the start of the pass all end on the CPU, with the reason.
public enum BackendSelection {
    /// `share`: this process's place among those on the same machine (an MPI job's local rank), so that processes
    /// sharing a machine start from different GPUs (`auto`, and `opencl` without `--device`).
    public static func make(_ choice: BackendChoice, device query: String? = nil, precision: Precision = .double,
                            rows: Int = 4096, share: Int = 0) throws -> (backend: Backend, reason: String) {
        try make(choice, device: query, precision: precision, rows: rows, liftSource: KernelSources.lift, share: share)
    }

    /// `liftSource` replaces the embedded lift kernels (tests: the failure path of a kernel that does not build).
    static func make(_ choice: BackendChoice, device query: String?, precision: Precision, rows: Int,
                     liftSource: String, share: Int = 0) throws -> (backend: Backend, reason: String) {
        let cpuNote = precision == .mixed ? " (the CPU backend computes in double; --precision mixed applies to OpenCL)" : ""
        switch choice {
        case .cpu:
            return (CPUBackend(), "cpu: chosen with --backend cpu" + cpuNote + (query == nil ? "" : " (--device applies to OpenCL)"))

        case .opencl:
            let devices: [OpenCLDevice]
            do { devices = try OpenCLDevices.all() } catch let e as EddyError {
                throw EddyError("--backend opencl: \(e.message)")
            }
            if devices.isEmpty {
                throw EddyError("--backend opencl: no OpenCL device: \(DeviceSurvey.take(devices: []).summary) (eddy devices explains)")
            }
            let device = try pick(devices, query, share: share)
            do {
                let backend = try OpenCLBackend(device: device, precision: precision, rows: rows, liftSource: liftSource)
                let diff = try selfTestWithDefaultsAfterTuning(backend)
                return (backend, "opencl: \(device.name) (\(device.platform)), \(precision.rawValue) precision: chosen with --backend opencl; self-test passed (max relative difference \(Format.scientific(diff)) from OpenBLAS)" + tuned(backend))
            } catch let e as EddyError {
                throw EddyError("--backend opencl on \(device.name): \(e.message)")
            }

        case .auto:
            let devices: [OpenCLDevice]
            do { devices = try OpenCLDevices.all() } catch let e as EddyError {
                return (CPUBackend(), "cpu: OpenCL is not usable (\(e.message))" + cpuNote)
            }
            let candidates: [OpenCLDevice]
            if let query {
                // A device named on the command line is a request, PoCL included.
                candidates = devices.filter { $0.matches(query) }
                if candidates.isEmpty { return (CPUBackend(), "cpu: no OpenCL device matches --device \(query)" + cpuNote) }
            } else {
                candidates = rotated(ranked(devices).filter { $0.kind == .gpu && (precision == .mixed || $0.fp64) }, by: share)
                if candidates.isEmpty {
                    let why = devices.contains { $0.kind == .gpu } ? "no OpenCL GPU with double precision (try --precision mixed)"
                        : "no OpenCL GPU (\(DeviceSurvey.take(devices: devices).summary))"
                    return (CPUBackend(), "cpu: \(why)" + cpuNote)
                }
            }
            var failures: [String] = []
            for device in candidates {
                do {
                    let backend = try OpenCLBackend(device: device, precision: precision, rows: rows, liftSource: liftSource)
                    let diff = try selfTestWithDefaultsAfterTuning(backend)
                    return (FallbackBackend(backend),
                            "opencl: \(device.name) (\(device.platform)), \(precision.rawValue) precision: self-test passed (max relative difference \(Format.scientific(diff)) from OpenBLAS)" + tuned(backend))
                } catch let e as EddyError {
                    failures.append("\(device.name): \(firstLine(e.message))")
                }
            }
            return (CPUBackend(), "cpu: the OpenCL device failed (\(failures.joined(separator: "; ")))" + cpuNote)
        }
    }

    /// The device `auto` would try first (before its self-test), or nil.
    public static func autoCandidate(_ devices: [OpenCLDevice], precision: Precision = .double) -> OpenCLDevice? {
        ranked(devices).first { $0.kind == .gpu && (precision == .mixed || $0.fp64) }
    }

    /// The OpenCL device behind a backend `make` returned; nil for the CPU.
    public static func device(of backend: Backend) -> OpenCLDevice? {
        ((backend as? FallbackBackend)?.opencl ?? backend as? OpenCLBackend)?.device
    }

    /// GPUs first, then accelerators, then CPUs; more memory first. Never by index alone.
    static func ranked(_ devices: [OpenCLDevice]) -> [OpenCLDevice] {
        let order: [OpenCLDevice.Kind: Int] = [.gpu: 0, .accelerator: 1, .cpu: 2, .other: 3]
        return devices.sorted { (order[$0.kind]!, -$0.memoryBytes, $0.index) < (order[$1.kind]!, -$1.memoryBytes, $1.index) }
    }

    /// `list` starting at element `share` (modulo its length): the i-th process on a machine tries the i-th GPU first.
    static func rotated<T>(_ list: [T], by share: Int) -> [T] {
        guard !list.isEmpty else { return list }
        let k = share % list.count
        return Array(list[k...] + list[..<k])
    }

    static func pick(_ devices: [OpenCLDevice], _ query: String?, share: Int = 0) throws -> OpenCLDevice {
        guard let query else {
            let r = ranked(devices), gpus = r.filter { $0.kind == .gpu }
            return gpus.isEmpty ? r[0] : rotated(gpus, by: share)[0]
        }
        if let d = devices.first(where: { $0.matches(query) }) { return d }
        let list = devices.map { "\($0.index): \($0.name)" }.joined(separator: ", ")
        throw EddyError("--device \(query): no such OpenCL device (devices: \(list))")
    }

    /// Lifts and accumulates a small synthetic pass (several runs, inputs, the Koopman form) on the device and
    /// on the CPU (OpenBLAS) and compares `G` and `R`; returns the larger relative difference or throws.
    /// SYRK has given wrong results on some devices (ENGINEERING.md): no device is trusted untested.
    static func selfTest(_ backend: OpenCLBackend) throws -> Double {
        let layout = DictionaryLayout(variables: 2, delays: 2, width: 100, inputs: 1, form: .koopman)
        let layer = Sampler.random(inputSize: 4, width: 100, activation: .tanh, scale: 0.5, seed: 7)
        var rng = SeededGenerator(seed: 17)
        let chunk = WindowChunk(windows: (0..<(300 * 4)).map { _ in rng.normal() }, inputs: (0..<300).map { _ in rng.normal() },
                                linked: (0..<300).map { $0 % 37 != 36 && $0 != 299 })
        let cpu = CPUBackend()
        try cpu.beginPass(layer: layer, layout: layout)
        try cpu.accumulate(chunk)
        let reference = try cpu.endGramPass()
        try backend.beginPass(layer: layer, layout: layout)
        try backend.accumulate(chunk)
        let sums = try backend.endGramPass()
        let diff = max(relativeDifference(sums.gram, reference.gram), relativeDifference(sums.rightHandSide, reference.rightHandSide))
        let tolerance = backend.precision == .double ? 1e-10 : 1e-4
        guard diff <= tolerance, sums.pairs == reference.pairs else {
            throw EddyError("self-test failed: G and R differ from OpenBLAS by \(Format.scientific(diff)) relative (allowed \(Format.scientific(tolerance)))")
        }
        return diff
    }

    /// The self-test; when it fails with tuned parameters applied, once more with CLBlast's defaults (the tuned entry is
    /// removed from the cache and a warning kept for the backend's caller).
    static func selfTestWithDefaultsAfterTuning(_ backend: OpenCLBackend) throws -> Double {
        do {
            return try selfTest(backend)
        } catch let e as EddyError where backend.tuning != nil {
            _ = try backend.dropTuning(because: e.message)
            return try selfTest(backend)
        }
    }

    /// max |a − b| / max |b|.
    static func relativeDifference(_ a: [Double], _ b: [Double]) -> Double {
        var d = 0.0, s = 0.0
        for (x, y) in zip(a, b) {
            d = max(d, abs(x - y))
            s = max(s, abs(y))
        }
        return a.count == b.count ? d / max(s, .leastNormalMagnitude) : .infinity
    }

    /// Which CLBlast GEMM kernel a call of this size takes: `indirect` (Xgemm, with pad/transpose copies where the
    /// operands need them) at m·n·k ≥ XGEMM_MIN_INDIRECT_SIZE³, else `direct` (XgemmDirect).
    static func gemmPath(m: Int, n: Int, k: Int, threshold: Int?) -> String {
        guard let t = threshold else { return "unknown-path" }
        return m * n * k >= t * t * t ? "indirect" : "direct"
    }

    static func tuned(_ backend: OpenCLBackend) -> String {
        if let why = backend.tuningDropped { return "; the cached tuned CLBlast parameters failed (\(why)): CLBlast's defaults, entry removed from the cache" }
        return backend.tuning.map { "; \($0)" } ?? ""
    }

    static func firstLine(_ s: String) -> String { String(s.split(separator: "\n").first ?? "") }
}

/// `auto`'s OpenCL backend: if the device fails when a pass starts (allocation, CLBlast's kernel build), the
/// pass runs on the CPU instead, with a warning. A failure in the middle of a pass cannot be replayed and
/// is reported.
final class FallbackBackend: Backend {
    private var active: Backend
    private let primary: OpenCLBackend
    private var warnings: [String] = []

    init(_ primary: OpenCLBackend) {
        active = primary
        self.primary = primary
    }

    func takeWarnings() -> [String] {
        defer { warnings = [] }
        return primary.takeWarnings() + warnings
    }

    var opencl: OpenCLBackend? { active as? OpenCLBackend }

    var name: String { active.name }
    var details: String { active.details }

    func unsupported(_ statistic: PassStatistic) -> String? { active.unsupported(statistic) }

    func beginPass(layer: HiddenLayer, layout: DictionaryLayout, statistic: PassStatistic) throws {
        do {
            try active.beginPass(layer: layer, layout: layout, statistic: statistic)
        } catch let e as EddyError where active is OpenCLBackend {
            warnings.append("\(BackendSelection.firstLine(e.message)); this pass and the rest ran on the CPU")
            active = CPUBackend()
            try active.beginPass(layer: layer, layout: layout, statistic: statistic)
        }
    }

    func accumulate(_ chunk: WindowChunk) throws {
        do { try active.accumulate(chunk) } catch let e as EddyError where active is OpenCLBackend {
            throw EddyError("\(e.message) (in the middle of the pass; rerun with --backend cpu)")
        }
    }

    func endPass() throws -> PassState { try active.endPass() }
}
