import CBLAS
import COpenCL
import Eddy
import Synchronization
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

    /// Removes the entries of one precision (the rest of the file stays); the file goes when nothing is left.
    public static func remove(single: Bool, for device: OpenCLDevice, in directory: String = TuningCache.directory) throws {
        let rest = load(for: device, in: directory).filter { $0.single != single }
        if rest.isEmpty { _ = clear(for: device, in: directory); return }
        _ = clear(for: device, in: directory)
        try save(rest, for: device, in: directory)
    }

    /// `EDDY_TUNING=off` (or `0`, `no`): the cache is neither read nor applied (CLBlast's defaults run).
    public static var ignored: Bool {
        guard let v = getenv("EDDY_TUNING") else { return false }
        return ["off", "0", "no", "false"].contains(String(cString: v).lowercased())
    }

    /// CLBlast's own parameters per device, kernel and precision, read before the first override replaced them
    /// (an override lasts for the process: CLBlast has no call to undo one, so the defaults are put back by value).
    private static let defaults = Mutex<[String: [(String, Int)]]>([:])

    private static func key(_ device: OpenCLDevice, _ kernel: String, _ single: Bool) -> String {
        "\(device.index) \(device.platform) \(device.name) \(kernel) \(single)"
    }

    /// Puts CLBlast's own parameters back for the cached entries of one precision, drops its compiled kernels, and
    /// removes those entries from the cache file; returns the warning to show.
    static func dropAfterFailure(device: OpenCLDevice, single: Bool, because reason: String) -> String {
        let entries = load(for: device).filter { $0.single == single }
        var restored: [String] = []
        for e in entries {
            if let values = defaults.withLock({ $0[key(device, e.kernel, e.single)] }),
               (try? CLBlast.override(device: device, kernel: e.kernel, precision: e.single ? .single : .double, parameters: values)) != nil {
                restored.append(e.kernel)
            }
        }
        CLBlast.clearCache()
        let removed = (try? remove(single: single, for: device)) != nil
        let what = entries.map { "\($0.kernel) \($0.single ? "single" : "double")" }.joined(separator: ", ")
        return "the tuned CLBlast parameters (\(what)) from \(path(for: device)) failed: \(BackendSelection.firstLine(reason)); CLBlast's defaults are used instead"
            + (removed ? " and the entry was removed from the cache" : " (the cache file could not be changed: eddy tune --clear)")
    }

    /// Applies the cached parameters for the device; returns a note for `details`, or nil without a cache.
    static func apply(to device: OpenCLDevice) throws -> String? {
        if ignored { return nil }
        let entries = load(for: device)
        guard !entries.isEmpty else { return nil }
        for e in entries {
            let k = key(device, e.kernel, e.single)
            if defaults.withLock({ $0[k] }) == nil,
               let values = try? CLBlast.parameters(device: device, kernel: e.kernel, precision: e.single ? .single : .double) {
                defaults.withLock { $0[k] = values }
            }
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
/// sizes) at the pass's own shape: a SYRK `G (ld×ld) = Φᵀ Φ` and the Koopman cross product `Rᵀ = (Φᵀ Ψ)ᵀ` as the pass
/// calls it (`CLBlast.crossProduct`, m = n = ld, k = rows per slice, B at offset 0), each candidate checked against
/// OpenBLAS (both products) and timed; the best is kept if it beats CLBlast's defaults by 3 %. Candidates fit the
/// pass's padding (ld a multiple of MWG and NWG, rows of KWG·KREG), so a tuned set never changes the shape; double
/// and single have their own grids. After a late kernel fault (−36/−5 at a wait: the context is dead) the next
/// candidate gets a fresh context. CLBlast's own tuners (`clblast_tuner_xgemm`, Debian's clblast-utils) search far
/// more; their best parameters can be stored with `eddy tune --set`.
public enum Tuner {
    public struct Trial: Sendable {
        public var parameters: KernelParameters?   // nil: CLBlast's defaults
        public var seconds: Double                 // SYRK + GEMM, best of the repeats
        public var error: String?                  // build failure or wrong result
    }

    public struct Result: Sendable {
        public var device: OpenCLDevice
        public var single: Bool
        /// The shape timed: ld (padded features) and rows per slice.
        public var size: Int
        public var rows: Int
        public var trials: [Trial]
        /// The parameters to keep (nil when the defaults were best).
        public var best: KernelParameters?
        /// GFLOP/s of SYRK + GEMM (ld²·k + 2·ld²·k flops) with the defaults and with the best.
        public var defaultRate: Double
        public var bestRate: Double
        /// Candidates not tried because the time budget was spent.
        public var skipped = 0
        /// Fresh contexts opened after a late kernel fault.
        public var freshContexts = 0
    }

    /// The Xgemm parameter names, in CLBlast's order.
    static let names = ["GEMMK", "KREG", "KWG", "KWI", "MDIMA", "MDIMC", "MWG", "NDIMB", "NDIMC", "NWG", "SA", "SB", "STRM", "STRN", "VWM", "VWN"]

    /// Candidates: for single, the best found on an H100 (ENGINEERING.md) first; then a seeded sample of a grid that
    /// meets Xgemm's divisibility rules, the device's local memory and work-group limits, and the pass's padding (`ld`
    /// a multiple of MWG and NWG, `rows` of KWG). Double has its own grid: smaller register tiles and vector widths
    /// (a double accumulator takes two registers).
    static func candidates(single: Bool, localMemory: Int, maxWorkGroup: Int, count: Int, ld: Int = 4096, rows: Int = 16384) -> [KernelParameters] {
        func make(_ v: [String: Int]) -> KernelParameters {
            KernelParameters(kernel: "Xgemm", single: single, values: names.map { ($0, v[$0]!) })
        }
        let h100 = ["GEMMK": 0, "KREG": 1, "KWG": 32, "KWI": 2, "MDIMA": 16, "MDIMC": 16, "MWG": 64, "NDIMB": 8, "NDIMC": 8,
                    "NWG": 64, "SA": 1, "SB": 1, "STRM": 0, "STRN": 0, "VWM": 4, "VWN": 4]
        let tiles = single ? [32, 64, 128] : [32, 64]
        let dims: [(Int, Int)] = single ? [(8, 8), (16, 16), (16, 8), (8, 16)] : [(8, 8), (16, 16), (16, 8), (8, 16), (32, 8)]
        let widths = single ? [2, 4] : [1, 2]
        var grid: [[String: Int]] = []
        for mwg in tiles { for nwg in tiles { for kwg in [16, 32] {
            for (mdim, ndim) in dims { for vwm in widths { for vwn in widths {
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
                && ld % mwg == 0 && ld % nwg == 0 && rows % (kwg * v["KREG"]!) == 0
        }
        var rng = SeededGenerator(seed: 2024)
        var sample = grid.filter(valid)
        sample.shuffle(using: &rng)
        return ((single ? [h100] : []).filter(valid) + sample).prefix(max(0, count)).map(make)
    }

    /// Device buffers of one tuning shape: Φ (sources), Ψ (targets), G and Rᵀ.
    private struct Buffers {
        let context: CLContext
        let a: CLBuffer, b: CLBuffer, g: CLBuffer, r: CLBuffer

        init(device: OpenCLDevice, ld: Int, rows: Int, precision: CLBlast.Precision, sources: [UInt8], targets: [UInt8]) throws {
            context = try CLContext(device: device)
            a = try CLBuffer(context, bytes: rows * ld * precision.bytes, what: "A")
            b = try CLBuffer(context, bytes: rows * ld * precision.bytes, what: "B")
            g = try CLBuffer(context, bytes: ld * ld * precision.bytes, what: "G")
            r = try CLBuffer(context, bytes: ld * ld * precision.bytes, what: "R")
            try sources.withUnsafeBytes { try a.upload(on: context.compute, from: $0.baseAddress!, bytes: $0.count).wait() }
            try targets.withUnsafeBytes { try b.upload(on: context.compute, from: $0.baseAddress!, bytes: $0.count).wait() }
        }
    }

    /// Times CLBlast's defaults and `trials` candidates on the device at `size` padded features (the pass's ld, a
    /// multiple of 64) and `rows` per slice (a multiple of 128); `progress` gets one line per trial. With a `budget`
    /// (seconds), no candidate is started once it is spent (the defaults always run); the result counts the skipped.
    public static func run(device: OpenCLDevice, single: Bool, size: Int = 2048, rows: Int = 4096, trials: Int = 12, repeats: Int = 3,
                           budget: Double? = nil, progress: (String) -> Void = { _ in }) throws -> Result {
        var started = Stopwatch()
        var elapsed = 0.0
        if !single && !device.fp64 { throw EddyError("\(device.name) has no double precision to tune") }
        let ld = max(64, (size + 63) / 64 * 64), k = max(128, (rows + 127) / 128 * 128)
        let precision: CLBlast.Precision = single ? .single : .double
        var rng = SeededGenerator(seed: 5)
        let sources = (0..<(k * ld)).map { _ in Double.random(in: -1...1, using: &rng) }
        let targets = (0..<(k * ld)).map { _ in Double.random(in: -1...1, using: &rng) }
        func raw(_ v: [Double]) -> [UInt8] { single ? v.map { Float($0) }.withUnsafeBytes { Array($0) } : v.withUnsafeBytes { Array($0) } }
        var buffers = try Buffers(device: device, ld: ld, rows: k, precision: precision, sources: raw(sources), targets: raw(targets))
        // References: OpenBLAS on the same (rounded) values; G upper triangle, and R = Φᵀ Ψ (the device keeps Rᵀ).
        let a = single ? sources.map { Double(Float($0)) } : sources, b = single ? targets.map { Double(Float($0)) } : targets
        var gram = [Double](repeating: 0, count: ld * ld), cross = [Double](repeating: 0, count: ld * ld)
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, blasint(ld), blasint(k), 1, a, blasint(ld), 0, &gram, blasint(ld))
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, blasint(ld), blasint(ld), blasint(k), 1, a, blasint(ld), b, blasint(ld),
                    0, &cross, blasint(ld))

        let localMemory: cl_ulong = OpenCLDevices.deviceValue(device.handle.id, CL_DEVICE_LOCAL_MEM_SIZE)
        let maxGroup: Int = OpenCLDevices.deviceValue(device.handle.id, CL_DEVICE_MAX_WORK_GROUP_SIZE)
        let list: [KernelParameters?] = [nil] + candidates(single: single, localMemory: Int(localMemory), maxWorkGroup: maxGroup, count: trials, ld: ld, rows: k)
        let flops = 3 * Double(ld) * Double(ld) * Double(k)   // SYRK ld²k + GEMM 2ld²k
        var results: [Trial] = []
        var skipped = 0, fresh = 0
        for parameters in list {
            elapsed += started.lap()
            if let budget, !results.isEmpty, elapsed > budget { skipped += 1; continue }
            var trial = Trial(parameters: parameters, seconds: .infinity, error: nil)
            do {
                if let parameters {
                    try CLBlast.override(device: device, kernel: "Xgemm", precision: precision, parameters: parameters.values)
                    CLBlast.clearCache()
                }
                let q = buffers.context.compute
                func products() throws {
                    _ = try CLBlast.syrk(precision, n: ld, k: k, a: buffers.a, lda: ld, beta: 0, c: buffers.g, ldc: ld, queue: q)
                    _ = try CLBlast.crossProduct(precision, m: ld, n: ld, k: k, a: buffers.a, lda: ld, b: buffers.b, bOffset: 0, ldb: ld,
                                                 beta: 0, c: buffers.r, ldc: ld, temp: nil, queue: q)
                }
                // The first run compiles the kernels and is checked against OpenBLAS; the repeats are timed.
                try products()
                try buffers.context.finish()
                let tolerance = single ? 1e-4 : 1e-10
                let dg = try difference(buffers.g, gram, n: ld, single: single, upper: true, transposed: false, context: buffers.context)
                if dg > tolerance { throw EddyError("wrong SYRK result (relative difference \(Format.scientific(dg)))") }
                let dr = try difference(buffers.r, cross, n: ld, single: single, upper: false, transposed: true, context: buffers.context)
                if dr > tolerance { throw EddyError("wrong GEMM result (relative difference \(Format.scientific(dr)))") }
                for _ in 0..<max(1, repeats) {
                    var clock = Stopwatch()
                    try products()
                    try buffers.context.finish()
                    trial.seconds = min(trial.seconds, clock.lap())
                }
            } catch let e as EddyError {
                trial.error = BackendSelection.firstLine(e.message)
                if isLateFault(e.message) {
                    // The context died with the faulting kernel: the next candidate needs a fresh one.
                    buffers = try Buffers(device: device, ld: ld, rows: k, precision: precision, sources: raw(sources), targets: raw(targets))
                    fresh += 1
                    progress("a kernel faulted: fresh context")
                }
            }
            results.append(trial)
            progress((parameters?.line ?? "CLBlast defaults") + ": " + (trial.error ?? "\(Format.fixed(flops / trial.seconds / 1e9, 1)) GFLOP/s"))
        }
        CLBlast.clearCache()
        let defaults = results[0].seconds
        let winner = results.dropFirst().filter { $0.error == nil }.min { $0.seconds < $1.seconds }
        let keep = winner.flatMap { $0.seconds < 0.97 * defaults ? $0 : nil }
        if skipped > 0 { progress("time budget spent: \(skipped) parameter set(s) not tried") }
        return Result(device: device, single: single, size: ld, rows: k, trials: results, best: keep?.parameters,
                      defaultRate: flops / defaults / 1e9, bestRate: flops / (keep?.seconds ?? defaults) / 1e9, skipped: skipped, freshContexts: fresh)
    }

    /// max |got − reference| / max |reference| over the upper triangle (`upper`) or all of an n×n result; `transposed`:
    /// the device holds the transpose (the cross product's Rᵀ).
    private static func difference(_ c: CLBuffer, _ reference: [Double], n: Int, single: Bool, upper: Bool, transposed: Bool,
                                   context: CLContext) throws -> Double {
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
            for j in (upper ? i : 0)..<n {
                let x = transposed ? got[j * n + i] : got[i * n + j]
                d = max(d, abs(x - reference[i * n + j]))
                s = max(s, abs(reference[i * n + j]))
            }
        }
        return d / max(s, .leastNormalMagnitude)
    }
}
