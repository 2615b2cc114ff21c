import CBLAS
import COpenCL
import Eddy
#if canImport(Glibc)
import Glibc
#endif

/// CLBlast parameters for one kernel family and precision, e.g. `Xgemm single GEMMK=0 KREG=1 …`.
public struct KernelParameters: Sendable, Equatable {
    public var kernel: String
    public var single: Bool
    public var values: [(String, Int)]

    public init(kernel: String, single: Bool, values: [(String, Int)]) {
        self.kernel = kernel
        self.single = single
        self.values = values
    }

    /// The cache file's line.
    public var line: String { "\(kernel) \(single ? "single" : "double") " + values.map { "\($0.0)=\($0.1)" }.joined(separator: " ") }

    /// Parses a cache line; nil for anything else.
    public init?(line: String) {
        let words = line.split(separator: " ").map(String.init)
        guard words.count >= 3, ["single", "double"].contains(words[1]) else { return nil }
        var values: [(String, Int)] = []
        for w in words.dropFirst(2) {
            let kv = w.split(separator: "=")
            guard kv.count == 2, let v = Int(kv[1]) else { return nil }
            values.append((String(kv[0]), v))
        }
        self.init(kernel: words[0], single: words[1] == "single", values: values)
    }

    public static func == (a: KernelParameters, b: KernelParameters) -> Bool { a.line == b.line }
}

/// Tuned CLBlast parameters, cached per device and driver under `$XDG_CACHE_HOME/eddy` (or `~/.cache/eddy`) and
/// applied with `CLBlastOverrideParameters` whenever the device is opened (CLBlast 1.5.3 has no database
/// entry for H100/H200 and would run generic defaults there).
public enum TuningCache {
    public static var directory: String {
        if let x = getenv("XDG_CACHE_HOME"), x.pointee != 0 { return String(cString: x) + "/eddy" }
        if let h = getenv("HOME"), h.pointee != 0 { return String(cString: h) + "/.cache/eddy" }
        return "/tmp/eddy-cache"
    }

    /// `clblast-<device>-<driver>.txt`, the names reduced to letters, digits, `.` and `-`.
    public static func path(for device: OpenCLDevice, in directory: String = TuningCache.directory) -> String {
        let key = "\(device.name)-\(device.driver)".map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" ? $0 : "_" }
        return "\(directory)/clblast-\(String(key)).txt"
    }

    public static func load(for device: OpenCLDevice, in directory: String = TuningCache.directory) -> [KernelParameters] {
        guard let text = DeviceSurvey.smallFile(path(for: device, in: directory)) else { return [] }
        return text.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap { KernelParameters(line: String($0)) }
    }

    /// Replaces the entries for the same kernel and precision and writes the file atomically.
    public static func save(_ entries: [KernelParameters], for device: OpenCLDevice, in directory: String = TuningCache.directory) throws {
        var all = load(for: device, in: directory)
        all.removeAll { e in entries.contains { $0.kernel == e.kernel && $0.single == e.single } }
        all += entries
        try makeDirectories(directory)
        var text = "# eddy tune: CLBlast parameters for \(device.name) (\(device.platform), driver \(device.driver))\n"
        text += "# one line per kernel and precision: KERNEL single|double NAME=VALUE …\n"
        for e in all { text += e.line + "\n" }
        try AtomicFile.write(text, to: path(for: device, in: directory))
    }

    public static func clear(for device: OpenCLDevice, in directory: String = TuningCache.directory) -> Bool {
        unlink(path(for: device, in: directory)) == 0
    }

    /// Applies the cached parameters for the device; returns a note for `details`, or nil without a cache.
    static func apply(to device: OpenCLDevice) throws -> String? {
        let entries = load(for: device)
        guard !entries.isEmpty else { return nil }
        for e in entries {
            do {
                try CLBlast.override(device: device, kernel: e.kernel, precision: e.single ? .single : .double, parameters: e.values)
            } catch let error as EddyError {
                throw EddyError("\(error.message) for the line '\(e.line)' of \(path(for: device)) (eddy tune --clear removes it)")
            }
        }
        return "tuned CLBlast parameters (\(entries.map { "\($0.kernel) \($0.single ? "single" : "double")" }.joined(separator: ", "))) from \(path(for: device))"
    }

    private static func makeDirectories(_ path: String) throws {
        var prefix = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            prefix += "/" + part
            if !FileSystem.isDirectory(prefix) && mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw EddyError("\(prefix): cannot create the tuning cache folder (\(String(cString: strerror(errno))))")
            }
        }
    }
}

/// A modest search over CLBlast's `Xgemm` parameters (the kernel behind both its GEMM and its SYRK for large
/// sizes): each candidate is checked against OpenBLAS and timed on a SYRK plus a GEMM of the given size; the best
/// is kept if it beats CLBlast's defaults by 3 %. CLBlast's own tuners (`clblast_tuner_xgemm`, Debian's
/// clblast-utils) search far more; their best parameters can be stored with `eddy tune --set`.
public enum Tuner {
    public struct Trial: Sendable {
        public var parameters: KernelParameters?   // nil: CLBlast's defaults
        public var seconds: Double                 // SYRK + GEMM, best of the repeats
        public var error: String?                  // build failure or wrong result
    }

    public struct Result: Sendable {
        public var device: OpenCLDevice
        public var single: Bool
        public var size: Int
        public var trials: [Trial]
        /// The parameters to keep (nil when the defaults were best).
        public var best: KernelParameters?
        /// GFLOP/s of SYRK + GEMM (n³ + 2n³ flops) with the defaults and with the best.
        public var defaultRate: Double
        public var bestRate: Double
        /// Candidates not tried because the time budget was spent.
        public var skipped = 0
    }

    /// The Xgemm parameter names, in CLBlast's order.
    static let names = ["GEMMK", "KREG", "KWG", "KWI", "MDIMA", "MDIMC", "MWG", "NDIMB", "NDIMC", "NWG", "SA", "SB", "STRM", "STRN", "VWM", "VWN"]

    /// Candidates: the best found on an H100 (ENGINEERING.md), then a seeded sample of a small grid that meets
    /// Xgemm's divisibility rules and the device's local memory and work-group limits.
    static func candidates(single: Bool, localMemory: Int, maxWorkGroup: Int, count: Int) -> [KernelParameters] {
        func make(_ v: [String: Int]) -> KernelParameters {
            KernelParameters(kernel: "Xgemm", single: single, values: names.map { ($0, v[$0]!) })
        }
        let h100 = ["GEMMK": 0, "KREG": 1, "KWG": 32, "KWI": 2, "MDIMA": 16, "MDIMC": 16, "MWG": 64, "NDIMB": 8, "NDIMC": 8,
                    "NWG": 64, "SA": 1, "SB": 1, "STRM": 0, "STRN": 0, "VWM": 4, "VWN": 4]
        var grid: [[String: Int]] = []
        for mwg in [64, 128] { for nwg in [64, 128] { for kwg in [16, 32] {
            for (mdim, ndim) in [(8, 8), (16, 16), (16, 8), (8, 16)] { for vwm in [2, 4] { for vwn in [2, 4] {
                grid.append(["GEMMK": 0, "KREG": 1, "KWG": kwg, "KWI": 2, "MDIMA": mdim, "MDIMC": mdim, "MWG": mwg,
                             "NDIMB": ndim, "NDIMC": ndim, "NWG": nwg, "SA": 1, "SB": 1, "STRM": 0, "STRN": 0, "VWM": vwm, "VWN": vwn])
            } } }
        } } }
        let bytes = single ? 4 : 8
        func valid(_ v: [String: Int]) -> Bool {
            let (kwg, kwi, mwg, nwg) = (v["KWG"]!, v["KWI"]!, v["MWG"]!, v["NWG"]!)
            let (mdimc, ndimc, mdima, ndimb, vwm, vwn) = (v["MDIMC"]!, v["NDIMC"]!, v["MDIMA"]!, v["NDIMB"]!, v["VWM"]!, v["VWN"]!)
            return kwg % kwi == 0 && mwg % (mdimc * vwm) == 0 && nwg % (ndimc * vwn) == 0 && mwg % (mdima * vwm) == 0
                && nwg % (ndimb * vwn) == 0 && kwg % ((mdimc * ndimc) / mdima) == 0 && kwg % ((mdimc * ndimc) / ndimb) == 0
                && mdimc * ndimc <= maxWorkGroup && (kwg * mwg * v["SA"]! + kwg * nwg * v["SB"]!) * bytes <= localMemory
        }
        var rng = SeededGenerator(seed: 2024)
        var sample = grid.filter(valid)
        sample.shuffle(using: &rng)
        return ([h100].filter(valid) + sample).prefix(max(0, count)).map(make)
    }

    /// Times CLBlast's defaults and `trials` candidates on the device; `progress` gets one line per trial. With a
    /// `budget` (seconds), no candidate is started once it is spent (the defaults always run); the result counts the
    /// candidates skipped.
    public static func run(device: OpenCLDevice, single: Bool, size: Int = 2048, trials: Int = 12, repeats: Int = 3, budget: Double? = nil,
                           progress: (String) -> Void = { _ in }) throws -> Result {
        var started = Stopwatch()
        var elapsed = 0.0
        if !single && !device.fp64 { throw EddyError("\(device.name) has no double precision to tune") }
        let n = max(64, (size + 63) / 64 * 64)
        let context = try CLContext(device: device)
        let precision: CLBlast.Precision = single ? .single : .double
        var rng = SeededGenerator(seed: 5)
        let values = (0..<(n * n)).map { _ in rng.normal() }
        let a = try CLBuffer(context, bytes: n * n * precision.bytes, what: "A")
        let c = try CLBuffer(context, bytes: n * n * precision.bytes, what: "C")
        let bytes = single ? values.map { Float($0) }.withUnsafeBytes { Array($0) } : values.withUnsafeBytes { Array($0) }
        try bytes.withUnsafeBytes { try a.upload(on: context.compute, from: $0.baseAddress!, bytes: $0.count).wait() }
        // Reference: OpenBLAS dsyrk on the same (rounded) values.
        let rounded = single ? values.map { Double(Float($0)) } : values
        var reference = [Double](repeating: 0, count: n * n)
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, blasint(n), blasint(n), 1, rounded, blasint(n), 0, &reference, blasint(n))

        let localMemory: cl_ulong = OpenCLDevices.deviceValue(device.handle.id, CL_DEVICE_LOCAL_MEM_SIZE)
        let maxGroup: Int = OpenCLDevices.deviceValue(device.handle.id, CL_DEVICE_MAX_WORK_GROUP_SIZE)
        let list: [KernelParameters?] = [nil] + candidates(single: single, localMemory: Int(localMemory), maxWorkGroup: maxGroup, count: trials)
        let flops = 3 * pow(Double(n), 3)   // SYRK n³ + GEMM 2n³
        var results: [Trial] = []
        var skipped = 0
        for parameters in list {
            elapsed += started.lap()
            if let budget, !results.isEmpty, elapsed > budget { skipped += 1; continue }
            var trial = Trial(parameters: parameters, seconds: .infinity, error: nil)
            do {
                if let parameters {
                    try CLBlast.override(device: device, kernel: "Xgemm", precision: precision, parameters: parameters.values)
                    CLBlast.clearCache()
                }
                // The first run compiles the kernels and is checked against OpenBLAS; the repeats are timed.
                _ = try CLBlast.syrk(precision, n: n, k: n, a: a, lda: n, beta: 0, c: c, ldc: n, queue: context.compute)
                try context.finish()
                let diff = try upperDifference(c, reference, n: n, single: single, context: context)
                if diff > (single ? 1e-4 : 1e-10) { throw EddyError("wrong SYRK result (relative difference \(Format.scientific(diff)))") }
                _ = try CLBlast.gemmTransposedA(precision, m: n, n: n, k: n, a: a, lda: n, b: a, bOffset: 0, ldb: n, beta: 0, c: c, ldc: n, queue: context.compute)
                try context.finish()
                for _ in 0..<max(1, repeats) {
                    var clock = Stopwatch()
                    _ = try CLBlast.syrk(precision, n: n, k: n, a: a, lda: n, beta: 0, c: c, ldc: n, queue: context.compute)
                    _ = try CLBlast.gemmTransposedA(precision, m: n, n: n, k: n, a: a, lda: n, b: a, bOffset: 0, ldb: n, beta: 0, c: c, ldc: n, queue: context.compute)
                    try context.finish()
                    trial.seconds = min(trial.seconds, clock.lap())
                }
            } catch let e as EddyError {
                trial.error = BackendSelection.firstLine(e.message)
            }
            results.append(trial)
            progress((parameters?.line ?? "CLBlast defaults") + ": " + (trial.error ?? "\(Format.fixed(flops / trial.seconds / 1e9, 1)) GFLOP/s"))
        }
        CLBlast.clearCache()
        let defaults = results[0].seconds
        let winner = results.dropFirst().filter { $0.error == nil }.min { $0.seconds < $1.seconds }
        let keep = winner.flatMap { $0.seconds < 0.97 * defaults ? $0 : nil }
        if skipped > 0 { progress("time budget spent: \(skipped) parameter set(s) not tried") }
        return Result(device: device, single: single, size: n, trials: results, best: keep?.parameters,
                      defaultRate: flops / defaults / 1e9, bestRate: flops / (keep?.seconds ?? defaults) / 1e9, skipped: skipped)
    }

    private static func upperDifference(_ c: CLBuffer, _ reference: [Double], n: Int, single: Bool, context: CLContext) throws -> Double {
        var got = [Double](repeating: 0, count: n * n)
        if single {
            var f = [Float](repeating: 0, count: n * n)
            try f.withUnsafeMutableBytes { try c.download(on: context.compute, into: $0.baseAddress!, bytes: $0.count) }
            got = f.map(Double.init)
        } else {
            try got.withUnsafeMutableBytes { try c.download(on: context.compute, into: $0.baseAddress!, bytes: $0.count) }
        }
        var d = 0.0, s = 0.0
        for i in 0..<n {
            for j in i..<n {
                d = max(d, abs(got[i * n + j] - reference[i * n + j]))
                s = max(s, abs(reference[i * n + j]))
            }
        }
        return d / max(s, .leastNormalMagnitude)
    }
}
