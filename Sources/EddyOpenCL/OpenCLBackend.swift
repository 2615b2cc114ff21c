import COpenCL
import Eddy
#if canImport(Glibc)
import Glibc
#endif

/// What the device computes in (METHOD.md, "Precision").
public enum Precision: String, CaseIterable, Sendable {
    /// Double lift and double SYRK/GEMM into double sums (the default).
    case double
    /// Float lift and float products per chunk, each chunk's products added into double sums on the device
    /// (on the host for a device without FP64).
    case mixed
}

/// The OpenCL twin of `CPUBackend` (ENGINEERING.md, "CLBlast"): the lift kernels write each chunk's dictionary
/// rows `[1, z, φ(z), u]` on the device, CLBlast adds `Φᵀ Φ` (SYRK, upper triangle) and `Φᵀ Y` (GEMM) into
/// accumulators that stay on the device; only `G` and `R` are read back, once, at the end of the pass.
///
/// Pairs: a chunk may hold several runs. Rather than one SYRK per run (shapes that vary with the data, many
/// small calls), the lift writes the rows twice over: `sources`, each row multiplied by its mask (1 where
/// `linked`, else 0), and, for the Koopman form, `full` (unmasked, the targets). Then one fixed-shape SYRK of
/// `sources` and one GEMM `sourcesᵀ · full[+1 row]` (a buffer offset, no copy) count exactly the linked
/// pairs `t → t+1`, as `CPUBackend`'s loop over runs does: zero rows add exact zeros. The recurrent form's
/// targets are the first `n` values of the next window, read from the uploaded windows at an offset.
///
/// Shapes are fixed for the whole pass: `rows` (a multiple of 128 and of Xgemm's KWG·KREG) source rows per slice
/// plus one row that is only a target, and features padded with zero columns to a multiple of 64 and of Xgemm's
/// tiles MWG and NWG (the parameters CLBlast applies, read back when the device is opened). A chunk longer than `rows` is
/// cut into slices; a shorter one is padded with zero rows. Two upload slots alternate: the next slice's
/// windows go up on the transfer queue while the current slice's products run on the compute queue; the host
/// waits for the previous slice before returning (one synchronisation per slice).
///
/// Checks: the first pass of each shape starts with one check slice — random windows through the pass's own
/// kernels, at the pass's ld and rows, so through the same CLBlast kernels (direct or indirect) — compared with
/// OpenBLAS on the host (`checkRows` rows). A cached tuned parameter set that fails there (or when applied) is
/// replaced by CLBlast's defaults, its cache entry removed, and the pass retried once on a fresh context.
public final class OpenCLBackend: Backend {
    public let name = "opencl"
    public let device: OpenCLDevice
    public let precision: Precision
    /// Source rows per slice on the device (a multiple of 128).
    public let rows: Int
    /// Tuning parameters applied from the cache, if any (one line); nil once they failed and were dropped.
    public private(set) var tuning: String?
    /// Why the cached tuned parameters were dropped for CLBlast's defaults, if they were.
    public private(set) var tuningDropped: String?
    /// Source rows of the check slice at the start of each new pass shape (`eddy bench --check`: a whole chunk).
    public var checkRows = 256
    /// The check slice's max relative difference from OpenBLAS in G and R, for each shape checked (`eddy bench`).
    public private(set) var checks: [String: Double] = [:]
    /// Mixed precision: slices whose float products are summed in float before they are added into the double sums.
    let sumEvery: Int

    private var kit: Kit
    var context: CLContext { kit.context }
    private let liftSource: String
    private let hostSums: Bool
    private var pass: Pass?
    private var warnings: [String] = []
    /// When set (by `eddy bench`), every phase is synchronised and timed.
    var phases: PhaseTimes?
    /// Bytes per slice moved between host and device and allocated inside CLBlast, from the last pass (`eddy bench`).
    public private(set) var traffic = Traffic()
    /// When set, `endPass` keeps the pass's sums on the device for `solveOnDevice` (`eddy bench`).
    public var keepSums = false
    private var finished: (pass: Pass, sums: GramSums)?
    /// The padded feature count of the last pass started.
    public private(set) var lastLd: Int?

    /// Opens the device and builds the lift kernels; throws (never crashes) when the device, the driver or the
    /// kernel compiler fails.
    public convenience init(device: OpenCLDevice, precision: Precision = .double, rows: Int = 4096) throws {
        try self.init(device: device, precision: precision, rows: rows, liftSource: KernelSources.lift)
    }

    /// `liftSource` replaces the embedded lift kernels (tests build a broken one to check the failure path);
    /// `hostSums` makes mixed precision add chunk products on the host, as on a device without FP64.
    init(device: OpenCLDevice, precision: Precision, rows: Int, liftSource: String, hostSums: Bool = false, sumEvery: Int = 4) throws {
        if precision == .double && !device.fp64 {
            throw EddyError("OpenCL: \(device.name) has no double precision (FP64); use --precision mixed or --backend cpu")
        }
        self.device = device
        self.precision = precision
        self.liftSource = liftSource
        self.hostSums = hostSums
        self.sumEvery = max(1, sumEvery)
        let real: CLBlast.Precision = precision == .double ? .double : .single
        do {
            tuning = try TuningCache.apply(to: device)
        } catch let e as EddyError {
            // A cached set CLBlast refuses (a missing or unknown parameter): the defaults, and the entry goes.
            tuning = nil
            tuningDropped = BackendSelection.firstLine(e.message)
            warnings.append(TuningCache.dropAfterFailure(device: device, single: precision == .mixed, because: e.message))
        }
        let k = (try? CLBlast.parameters(device: device, kernel: "Xgemm", precision: real)).map { Dictionary($0, uniquingKeysWith: { a, _ in a }) } ?? [:]
        let rowTile = lcm(128, (k["KWG"] ?? 1) * (k["KREG"] ?? 1))
        self.rows = max(rowTile, (rows + rowTile - 1) / rowTile * rowTile)
        kit = try Kit(device: device, precision: precision, liftSource: liftSource, hostSums: hostSums)
    }

    public var details: String {
        let p = precision == .double ? "double precision" : "mixed precision (float products, double sums\(kit.addIntoDouble == nil ? " on the host" : ""))"
        return "\(device.name) on \(device.platform) (driver \(device.driver)), CLBlast, \(p), \(rows) rows per slice"
            + (tuning.map { ", \($0)" } ?? "")
    }

    var real: CLBlast.Precision { precision == .double ? .double : .single }

    public func takeWarnings() -> [String] {
        defer { warnings = [] }
        return warnings
    }

    /// The Xgemm parameters CLBlast applies now on this device and precision (`eddy bench` reports them).
    public var appliedParameters: [(String, Int)] {
        (try? CLBlast.parameters(device: device, kernel: "Xgemm", precision: real)) ?? []
    }

    /// CLBlast's `XGEMM_MIN_INDIRECT_SIZE` here: GEMMs with m·n·k at or above its cube run the indirect kernel.
    public var indirectThreshold: Int? {
        (try? CLBlast.parameters(device: device, kernel: "GemmRoutine", precision: real))?.first { $0.0 == "XGEMM_MIN_INDIRECT_SIZE" }?.1
    }

    /// Drops the tuned parameters after they failed: CLBlast's defaults are restored, the cache entry removed, and the
    /// context and kernels recreated (after a late kernel fault the old context is dead). Returns false without tuning.
    func dropTuning(because reason: String) throws -> Bool {
        guard tuning != nil else { return false }
        tuning = nil
        tuningDropped = BackendSelection.firstLine(reason)
        warnings.append(TuningCache.dropAfterFailure(device: device, single: precision == .mixed, because: reason))
        pass = nil
        kit = try Kit(device: device, precision: precision, liftSource: liftSource, hostSums: hostSums)
        return true
    }

    public func unsupported(_ statistic: PassStatistic) -> String? {
        guard statistic == .qr, precision == .mixed else { return nil }
        return "--precision mixed lifts in float, and the QR factor is only worth its cost on rows in double precision"
    }

    public func beginPass(layer: HiddenLayer, layout: DictionaryLayout, statistic: PassStatistic) throws {
        if let reason = unsupported(statistic) { throw EddyError("OpenCL: no \(statistic.rawValue) pass: \(reason)") }
        guard layer.inputSize == layout.windowSize, layer.width == layout.width else {
            throw EddyError("OpenCL backend: the hidden layer (\(layer.inputSize) → \(layer.width)) does not fit the layout (p = \(layout.windowSize), M = \(layout.width))")
        }
        do {
            try startPass(layer: layer, layout: layout, statistic: statistic)
        } catch let e as EddyError where tuning != nil && !e.message.contains("lower --chunk-rows or --width") {
            // The tuned parameters failed (a kernel that does not build, a fault, a wrong check): CLBlast's defaults.
            _ = try dropTuning(because: e.message)
            try startPass(layer: layer, layout: layout, statistic: statistic)
        }
    }

    private func startPass(layer: HiddenLayer, layout: DictionaryLayout, statistic: PassStatistic) throws {
        pass = nil
        let xgemm = Dictionary(appliedParameters, uniquingKeysWith: { a, _ in a })
        let pass = try Pass(context: context, layer: layer, layout: layout, rows: rows, real: real,
                            mixed: precision == .mixed, hostAccumulation: precision == .mixed && kit.addIntoDouble == nil,
                            factor: statistic == .qr, tile: lcm(64, lcm(xgemm["MWG"] ?? 64, xgemm["NWG"] ?? 64)), sumEvery: sumEvery)
        self.pass = pass
        // A dry slice (every mask 0, so it adds exact zeros) compiles CLBlast's kernels for these shapes and
        // touches every buffer now: a build failure or an out-of-memory shows at the start of the pass, where
        // `auto` can still fall back to the CPU.
        do {
            try enqueueSlice(pass, WindowChunk(windows: [], inputs: [], linked: []), from: 0)
            try context.finish()
            pass.computeDone = [nil, nil]
            traffic = try Traffic(pass, context: context, xgemm: xgemm)
            lastLd = pass.ld
            let key = pass.shapeKey
            if statistic == .gram && checks[key] == nil {
                checks[key] = try checkSlice(pass, layer: layer)
            }
        } catch {
            self.pass = nil
            throw error
        }
    }

    /// One slice of random windows through the pass's kernels, compared with OpenBLAS (CPUBackend) on the same rows;
    /// the sums are zeroed again after. Throws when they differ by more than the precision allows.
    private func checkSlice(_ pass: Pass, layer: HiddenLayer) throws -> Double {
        let layout = pass.layout
        let n = max(2, min(checkRows, rows))
        var rng = SeededGenerator(seed: 31)
        let chunk = WindowChunk(windows: (0..<((n + 1) * layout.windowSize)).map { _ in rng.normal() },
                                inputs: (0..<((n + 1) * layout.inputs)).map { _ in rng.normal() },
                                linked: (0...n).map { $0 < n && $0 % 61 != 60 })
        let cpu = CPUBackend()
        try cpu.beginPass(layer: layer, layout: layout)
        try cpu.accumulate(chunk)
        let reference = try cpu.endGramPass()
        try enqueueSlice(pass, chunk, from: 0)
        pass.pairs = chunk.pairCount
        let sums = try readSums(pass)
        try pass.reset(context)
        let diff = max(BackendSelection.relativeDifference(sums.gram, reference.gram),
                       BackendSelection.relativeDifference(sums.rightHandSide, reference.rightHandSide))
        let tolerance = precision == .double ? 1e-10 : 1e-4
        let m = pass.ld, k = rows
        let path = BackendSelection.gemmPath(m: m, n: pass.rhsCols, k: k, threshold: indirectThreshold)
        guard diff <= tolerance, sums.pairs == reference.pairs else {
            throw EddyError("OpenCL: the check at the pass's shape (ld \(m), \(k) rows per slice, \(path) GEMM) failed: G and R differ from OpenBLAS by \(Format.scientific(diff)) relative (allowed \(Format.scientific(tolerance)))")
        }
        return diff
    }

    public func accumulate(_ chunk: WindowChunk) throws {
        guard let pass else { throw EddyError("OpenCL backend: accumulate() before beginPass()") }
        var start = 0
        while start < chunk.count {
            // Slices of `rows` sources; the row after a slice is lifted with it as a target only.
            if chunk.linked[start..<min(start + rows, chunk.count)].contains(true) {
                try enqueueSlice(pass, chunk, from: start)
            }
            start += rows
        }
        pass.pairs += chunk.pairCount
    }

    public func endPass() throws -> PassState {
        guard let pass else { throw EddyError("OpenCL backend: endPass() before beginPass()") }
        defer { self.pass = nil }
        if var state = pass.factor, var builder = pass.blocks {
            try context.finish()
            pass.computeDone = [nil, nil]
            try builder.flush(into: &state)
            return .factor(state)
        }
        let sums = try readSums(pass)
        finished = keepSums ? (pass, sums) : nil
        return .gram(sums)
    }

    /// Solves the last Gram pass (`keepSums`) on the device by Cholesky at relative ridge `alpha` (`DeviceSolve`); the
    /// sums stay on the device, only Θ (features × targets, row-major) comes back.
    public func solveOnDevice(ridge alpha: Double, block: Int = 256) throws -> (theta: [Double], seconds: [String: Double]) {
        guard let (pass, sums) = finished else { throw EddyError("OpenCL backend: solveOnDevice() needs a finished pass with keepSums set") }
        guard !pass.hostAccumulation else { throw EddyError("OpenCL: this device adds its sums on the host (no FP64); the solve runs there") }
        let f = pass.layout.featureCount
        var trace = 0.0
        for i in 0..<f { trace += sums.gram[i * f + i] }
        let r = try DeviceSolve.solve(context: context, gram: pass.gram, rhs: pass.rhs, ld: pass.ld, features: f, targets: pass.layout.targetCount,
                                      lambda: Solver.relativeRidge(alpha, trace: trace, size: f), block: block)
        return (r.theta, r.seconds)
    }

    /// Waits for the pass, adds pending float products into the double sums, and reads G and R back.
    private func readSums(_ pass: Pass) throws -> GramSums {
        try context.finish()
        pass.computeDone = [nil, nil]
        var clock = Stopwatch()
        try flushMixed(pass)
        try context.finish()
        if phases != nil && pass.gramPart != nil { phases!["sum", default: 0] += clock.lap() }
        defer { if phases != nil { phases!["readback", default: 0] += clock.lap() } }
        let layout = pass.layout
        let f = layout.featureCount, t = layout.targetCount
        var sums = GramSums(layout: layout)
        sums.pairs = pass.pairs
        var gram: [Double], rhs: [Double]
        if pass.hostAccumulation {
            gram = pass.hostGram
            rhs = pass.hostRhs
        } else {
            gram = [Double](repeating: 0, count: pass.ld * pass.ld)
            rhs = [Double](repeating: 0, count: pass.ld * pass.rhsCols)
            try gram.withUnsafeMutableBytes { try pass.gram.download(on: context.compute, into: $0.baseAddress!, bytes: $0.count) }
            try rhs.withUnsafeMutableBytes { try pass.rhs.download(on: context.compute, into: $0.baseAddress!, bytes: $0.count) }
        }
        // R is kept transposed on the device (column j of R is row j of the buffer, `ld` long).
        for i in 0..<f {
            for j in i..<f { sums.gram[i * f + j] = gram[i * pass.ld + j] }
            for j in 0..<t { sums.rightHandSide[i * t + j] = rhs[j * pass.ld + i] }
        }
        sums.mirrorUpperTriangle()
        return sums
    }

    /// Mixed precision: adds the float products summed since the last flush into the double sums.
    private func flushMixed(_ pass: Pass) throws {
        guard pass.pending > 0, let gramPart = pass.gramPart, let rhsPart = pass.rhsPart else { return }
        pass.pending = 0
        if let add = kit.addIntoDouble {
            let c = context.compute
            try add.set([.int(pass.ld * pass.ld), .buffer(gramPart), .buffer(pass.gram)])
            _ = try add.enqueue(on: c, global: [pass.ld * pass.ld], local: [256])
            try add.set([.int(pass.ld * pass.rhsCols), .buffer(rhsPart), .buffer(pass.rhs)])
            _ = try add.enqueue(on: c, global: [pass.ld * pass.rhsCols], local: [256])
        } else {
            try pass.addOnHost(context)
        }
    }

    /// Uploads rows `start …` of `chunk` into the next slot and enqueues lift, SYRK and GEMM on them.
    private func enqueueSlice(_ pass: Pass, _ chunk: WindowChunk, from start: Int) throws {
        let slot = pass.slices % 2
        pass.slices += 1
        // The slot's previous slice (two back) must be done reading its windows before they are overwritten.
        try pass.computeDone[slot]?.wait()
        pass.computeDone[slot] = nil
        var clock = Stopwatch()

        let layout = pass.layout
        let p = layout.windowSize, m = layout.inputs
        let lifted = min(chunk.count - start, rows + 1)   // rows lifted: sources plus the target row after them
        let staging = pass.staging[slot]
        staging.fill(chunk, from: start, lifted: lifted, sources: min(lifted, rows))
        let q = context.transfer
        _ = try pass.windows[slot].upload(on: q, from: staging.windows, bytes: staging.windowBytes)
        if m > 0 { _ = try pass.inputs[slot].upload(on: q, from: staging.inputs, bytes: staging.inputBytes) }
        let uploaded = try pass.masks[slot].upload(on: q, from: staging.mask, bytes: staging.maskBytes)
        try check(clFlush(q), "clFlush(transfer)")
        try lap(&clock, "upload", context.transfer)

        // Lift: the hidden block (tiled) and the frame around it, into `sources` (masked) and `full`.
        let c = context.compute
        let full = pass.full ?? pass.sources
        let writeFull = pass.full == nil ? 0 : 1
        var after: CLEvent? = uploaded
        // Gram passes write the targets one row up (GEMM at offset 0); QR passes read the unshifted rows back.
        let shift = pass.factor == nil ? 1 : 0
        if layout.width > 0 {
            try kit.hidden.set([.int(pass.lifted), .int(p), .int(layout.width), .int(pass.activation), .int(pass.ld),
                                .buffer(pass.windows[slot]), .buffer(pass.weights), .buffer(pass.biases), .buffer(pass.masks[slot]),
                                .buffer(pass.sources), .buffer(full), .int(writeFull), .int(shift)])
            _ = try kit.hidden.enqueue(on: c, global: [(layout.width + 63) / 64 * 16, (pass.lifted + 63) / 64 * 16], local: [16, 16], after: after)
            after = nil   // the compute queue is in order
        }
        try kit.frame.set([.int(pass.lifted), .int(p), .int(layout.width), .int(m), .int(pass.ld),
                           .buffer(pass.windows[slot]), .buffer(pass.inputs[slot]), .buffer(pass.masks[slot]),
                           .buffer(pass.sources), .buffer(full), .int(writeFull), .int(shift)])
        _ = try kit.frame.enqueue(on: c, global: [pass.ld - layout.width, pass.lifted], local: nil, after: after)
        try lap(&clock, "lift", c)

        // QR pass: the lifted rows come back to the host, which folds the slice's pairs into the factor (LAPACK).
        if pass.factor != nil {
            try foldIntoFactor(pass, chunk, from: start, lifted: lifted)
            try lap(&clock, "factor", c)
            return
        }

        // G += Φᵀ Φ over the masked rows (mixed: float products summed over `sumEvery` slices, then added into double).
        let gramTarget = pass.gramPart ?? pass.gram
        let beta = pass.gramPart == nil || pass.pending > 0 ? 1.0 : 0.0
        var done = try CLBlast.syrk(real, n: pass.ld, k: rows, a: pass.sources, lda: pass.ld, beta: beta, c: gramTarget, ldc: pass.ld, queue: c)
        try lap(&clock, "gram", c)

        // Rᵀ += (Φᵀ Y)ᵀ: Koopman Y = the next dictionary rows (`full`, already one row up); recurrent Y = x_{t+1}, the
        // first n values of the next window (offset one window).
        let rhsTarget = pass.rhsPart ?? pass.rhs
        switch layout.form {
        case .koopman:
            done = try CLBlast.crossProduct(real, m: pass.ld, n: pass.ld, k: rows, a: pass.sources, lda: pass.ld,
                                            b: pass.full!, bOffset: 0, ldb: pass.ld, beta: beta, c: rhsTarget, ldc: pass.ld,
                                            temp: pass.gemmTemp, queue: c)
        case .recurrent:
            done = try CLBlast.crossProduct(real, m: pass.ld, n: layout.variables, k: rows, a: pass.sources, lda: pass.ld,
                                            b: pass.windows[slot], bOffset: p, ldb: p, beta: beta, c: rhsTarget, ldc: pass.ld,
                                            temp: pass.gemmTemp, queue: c)
        }
        try lap(&clock, "rhs", c)

        // Mixed: every `sumEvery` slices, the float products go into the double sums.
        if pass.gramPart != nil {
            pass.pending += 1
            if pass.pending >= sumEvery {
                try flushMixed(pass)
                try lap(&clock, "sum", c)
            }
        }
        try check(clFlush(c), "clFlush(compute)")
        pass.computeDone[slot] = done
        // One synchronisation per slice: wait for the previous slice, leaving this one running.
        try pass.computeDone[1 - slot]?.wait()
        pass.computeDone[1 - slot] = nil
    }

    /// Reads the slice's lifted rows back (unmasked for Koopman targets) and adds its pairs to the host factor.
    private func foldIntoFactor(_ pass: Pass, _ chunk: WindowChunk, from start: Int, lifted: Int) throws {
        let sources = min(lifted, rows)
        guard sources > 0, var state = pass.factor, var builder = pass.blocks else { return }
        let rowsBuffer = pass.full ?? pass.sources
        let bytes = lifted * pass.ld * 8
        try pass.hostRows.withUnsafeMutableBytes { try rowsBuffer.download(on: context.compute, into: $0.baseAddress!, bytes: bytes) }
        let linked = (0..<lifted).map { $0 < sources && chunk.linked[start + $0] }
        try pass.hostRows.withUnsafeBufferPointer { rowsPointer in
            try chunk.windows.withUnsafeBufferPointer { w in
                try builder.add(features: rowsPointer.baseAddress!, ld: pass.ld, count: lifted, linked: linked,
                                windows: w.baseAddress! + start * pass.layout.windowSize, into: &state)
            }
        }
        pass.factor = state
        pass.blocks = builder
    }

    /// With `phases` set, waits for `queue` and adds the time since the last lap to `phase`.
    private func lap(_ clock: inout Stopwatch, _ phase: String, _ queue: cl_command_queue) throws {
        guard phases != nil else { return }
        try check(clFinish(queue), "clFinish")
        phases![phase, default: 0] += clock.lap()
    }
}

/// Seconds per phase, summed over slices (`eddy bench`).
typealias PhaseTimes = [String: Double]

/// The context and the lift kernels built on it (recreated after a late kernel fault has killed the context).
private final class Kit {
    let context: CLContext
    let hidden: CLKernel
    let frame: CLKernel
    let addIntoDouble: CLKernel?

    init(device: OpenCLDevice, precision: Precision, liftSource: String, hostSums: Bool) throws {
        context = try CLContext(device: device)
        let options = "-cl-std=CL1.2" + (precision == .double ? " -DEDDY_DOUBLE" : "")
        let lift = try CLProgram(context, source: liftSource, options: options, name: "lift.cl")
        hidden = try CLKernel(lift, "lift_hidden")
        frame = try CLKernel(lift, "lift_frame")
        if precision == .mixed && device.fp64 && !hostSums {
            addIntoDouble = try CLKernel(CLProgram(context, source: KernelSources.accumulate, options: "-cl-std=CL1.2", name: "accumulate.cl"),
                                         "add_float_into_double")
        } else {
            addIntoDouble = nil
        }
    }
}

func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
func lcm(_ a: Int, _ b: Int) -> Int { a <= 0 || b <= 0 ? max(a, b, 1) : a / gcd(a, b) * b }

/// What one slice moves, from the code's own accounting: uploads and read-backs it makes, and the temporaries CLBlast
/// allocates inside its calls (sized by CLBlast itself for GEMM, by its 1.5.3 rules for SYRK; each is filled by a
/// pad/copy kernel, so it is also device traffic). `previousGemmTempBytes` is what the Koopman GEMM's temporary was
/// before the lift wrote the targets one row up (row-major `Aᵀ B` with B at a one-row offset), at the same shape.
public struct Traffic: Sendable {
    public var uploadBytes = 0
    public var downloadBytes = 0
    public var syrkTempBytes = 0
    public var gemmTempBytes = 0
    /// Allocated once per pass and handed to CLBlast (`…WithTempBuffer`) instead of a temporary per call.
    public var passTempBytes = 0
    public var previousGemmTempBytes = 0
    /// Mixed precision: bytes the float-into-double additions read and write, per slice on average.
    public var sumBytes = 0
    public var indirect = false

    public init() {}

    fileprivate init(_ pass: Pass, context: CLContext, xgemm: [String: Int]) throws {
        let real: CLBlast.Precision = pass.single ? .single : .double
        let q = context.compute
        uploadBytes = pass.staging[0].windowBytes + (pass.layout.inputs > 0 ? pass.staging[0].inputBytes : 0) + pass.staging[0].maskBytes
        downloadBytes = pass.hostAccumulation ? pass.ld * (pass.ld + pass.rhsCols) * 4 / max(1, pass.sumEvery) : 0
        if pass.factor != nil { downloadBytes = pass.lifted * pass.ld * 8 }
        let k = pass.rows
        syrkTempBytes = pass.factor != nil ? 0 : CLBlast.syrkTempBytes(real, n: pass.ld, k: k, lda: pass.ld, xgemm: xgemm)
        let (b, bOffset, ldb) = pass.layout.form == .koopman ? (pass.ld, 0, pass.ld) : (pass.layout.variables, pass.layout.windowSize, pass.layout.windowSize)
        let temp = try CLBlast.gemmTempBytes(real, m: pass.ld, n: b, k: k, lda: pass.ld, bOffset: bOffset, ldb: ldb, ldc: pass.ld, queue: q)
        gemmTempBytes = pass.gemmTemp == nil ? temp : 0
        passTempBytes = pass.gemmTemp?.bytes ?? 0
        if pass.layout.form == .koopman {
            let oldCols = (pass.layout.dictionarySize + 63) / 64 * 64
            previousGemmTempBytes = try CLBlast.gemmTempBytes(real, m: pass.ld, n: oldCols, k: k, lda: pass.ld, bOffset: pass.ld, ldb: pass.ld,
                                                              ldc: oldCols, rowMajorTransposedA: true, queue: q)
        } else {
            previousGemmTempBytes = try CLBlast.gemmTempBytes(real, m: pass.ld, n: b, k: k, lda: pass.ld, bOffset: bOffset, ldb: ldb,
                                                              ldc: b, rowMajorTransposedA: true, queue: q)
        }
        // Each addition reads the float part and reads and writes the double total: 4 + 8 + 8 bytes per value.
        if pass.gramPart != nil && !pass.hostAccumulation { sumBytes = pass.ld * (pass.ld + pass.rhsCols) * 20 / max(1, pass.sumEvery) }
        indirect = (try CLBlast.gemmTempBytes(real, m: pass.ld, n: b, k: k, lda: pass.ld, bOffset: bOffset, ldb: ldb, ldc: b,
                                              rowMajorTransposedA: true, queue: q)) > 0
    }

    /// CLBlast's temporaries per slice (what a call allocates and fills itself).
    public var clblastTempBytes: Int { syrkTempBytes + gemmTempBytes }

    public var json: JSON {
        .object([("upload_bytes", .int(uploadBytes)), ("download_bytes", .int(downloadBytes)), ("syrk_temp_bytes", .int(syrkTempBytes)),
                 ("gemm_temp_bytes", .int(gemmTempBytes)), ("clblast_temp_bytes", .int(clblastTempBytes)),
                 ("pass_temp_bytes", .int(passTempBytes)), ("previous_gemm_temp_bytes", .int(previousGemmTempBytes)),
                 ("sum_bytes", .int(sumBytes)), ("indirect_gemm", .bool(indirect))])
    }
}

/// The device buffers and host staging of one pass.
private final class Pass {
    let layout: DictionaryLayout
    let ld: Int          // features padded to a multiple of 64 and of Xgemm's MWG and NWG
    let rhsCols: Int     // rows of the Rᵀ buffer (each `ld` long): ld (Koopman), n (recurrent)
    let rows: Int        // source rows per slice
    let lifted: Int      // rows lifted per slice: sources + 1 target row
    let activation: Int
    let hostAccumulation: Bool
    let single: Bool
    let sumEvery: Int
    let weights: CLBuffer
    let biases: CLBuffer
    let windows: [CLBuffer]
    let inputs: [CLBuffer]
    let masks: [CLBuffer]
    let staging: [Staging]
    let sources: CLBuffer
    let full: CLBuffer?
    let gram: CLBuffer       // double, ld × ld (upper triangle meaningful)
    let rhs: CLBuffer        // double, Rᵀ: rhsCols × ld
    let gramPart: CLBuffer?  // mixed: float products of the slices since the last flush
    let rhsPart: CLBuffer?
    let gemmTemp: CLBuffer?  // CLBlast's GEMM temporary, once per pass (nil when it needs none)
    var hostGram: [Double] = []
    var hostRhs: [Double] = []
    /// QR passes: the factor on the host, its block builder, and one slice's lifted rows read back.
    var factor: QRFactor?
    var blocks: QRBlockBuilder?
    var hostRows: [Double] = []
    var computeDone: [CLEvent?] = [nil, nil]
    var slices = 0
    var pairs = 0
    /// Mixed: slices whose float products wait in gramPart/rhsPart.
    var pending = 0

    /// The shape the check slice covers (a new one is checked once per backend).
    var shapeKey: String { "\(layout.form.rawValue) ld \(ld) rows \(rows) rhs \(rhsCols)" }

    init(context: CLContext, layer: HiddenLayer, layout: DictionaryLayout, rows: Int, real: CLBlast.Precision,
         mixed: Bool, hostAccumulation: Bool, factor qr: Bool = false, tile: Int = 64, sumEvery: Int = 4) throws {
        self.layout = layout
        let p = layout.windowSize, m = layout.inputs
        let ld = (layout.featureCount + tile - 1) / tile * tile
        let rhsCols = layout.form == .koopman ? ld : layout.variables
        self.ld = ld
        self.rows = rows
        self.single = real == .single
        self.sumEvery = sumEvery
        if qr {
            factor = QRFactor(layout: layout)
            blocks = QRBlockBuilder(layout: layout)
            hostRows = [Double](repeating: 0, count: (rows + 1) * ld)
        }
        self.rhsCols = rhsCols
        let lifted = rows + 1
        self.lifted = lifted
        activation = layer.activation == .tanh ? 0 : 1
        self.hostAccumulation = hostAccumulation
        let r = real.bytes
        let device = context.device
        let gemmTempBytes = qr ? 0 : try CLBlast.gemmTempBytes(real, m: ld, n: rhsCols, k: rows, lda: ld,
                                                               bOffset: layout.form == .koopman ? 0 : p, ldb: layout.form == .koopman ? ld : p,
                                                               ldc: ld, queue: context.compute)
        // Refuse up front what cannot fit, with sizes, rather than meet an allocation failure mid-pass.
        let bytes = lifted * ld * r * (layout.form == .koopman ? 2 : 1) + ld * (ld + rhsCols) * (8 + (mixed ? 4 : 0))
            + 2 * lifted * (p + m + 1) * r + (p + 1) * layout.width * r + gemmTempBytes
        let largest = max(lifted * ld * r, ld * ld * 8, gemmTempBytes)
        if bytes > device.memoryBytes || largest > device.maxAllocationBytes {
            throw EddyError("OpenCL: a pass with \(ld) padded features and \(rows) rows per slice needs \(bytes >> 20) MiB (largest buffer \(largest >> 20) MiB); \(device.name) has \(device.memoryBytes >> 20) MiB (at most \(device.maxAllocationBytes >> 20) MiB per buffer): lower --chunk-rows or --width")
        }
        weights = try CLBuffer(context, bytes: p * layer.width * r, what: "hidden weights")
        biases = try CLBuffer(context, bytes: layer.width * r, what: "hidden biases")
        windows = try (0..<2).map { _ in try CLBuffer(context, bytes: lifted * p * r, what: "windows") }
        inputs = try (0..<2).map { _ in try CLBuffer(context, bytes: lifted * m * r, what: "inputs") }
        masks = try (0..<2).map { _ in try CLBuffer(context, bytes: lifted * r, what: "pair masks") }
        staging = (0..<2).map { _ in Staging(rows: lifted, window: p, inputs: m, real: real) }
        sources = try CLBuffer(context, bytes: lifted * ld * r, what: "dictionary rows")
        full = layout.form == .koopman ? try CLBuffer(context, bytes: lifted * ld * r, what: "target rows") : nil
        gram = try CLBuffer(context, bytes: ld * ld * 8, what: "G")
        rhs = try CLBuffer(context, bytes: ld * rhsCols * 8, what: "R")
        gramPart = mixed ? try CLBuffer(context, bytes: ld * ld * 4, what: "chunk G") : nil
        rhsPart = mixed ? try CLBuffer(context, bytes: ld * rhsCols * 4, what: "chunk R") : nil
        gemmTemp = gemmTempBytes > 0 ? try CLBuffer(context, bytes: gemmTempBytes, what: "GEMM temporary") : nil
        if hostAccumulation {
            hostGram = [Double](repeating: 0, count: ld * ld)
            hostRhs = [Double](repeating: 0, count: ld * rhsCols)
        }
        try reset(context)

        // The hidden layer, once per pass, in the lift's precision.
        let w = Staging.reals(layer.weights, real), b = Staging.reals(layer.biases, real)
        try w.withUnsafeBytes { if $0.count > 0 { try weights.upload(on: context.compute, from: $0.baseAddress!, bytes: $0.count).wait() } }
        try b.withUnsafeBytes { if $0.count > 0 { try biases.upload(on: context.compute, from: $0.baseAddress!, bytes: $0.count).wait() } }
    }

    /// Zero sums (the pass's start, and after the check slice).
    func reset(_ context: CLContext) throws {
        for b in [gram, rhs] + [gramPart, rhsPart].compactMap({ $0 }) { try b.zero(on: context.compute) }
        try context.finish()
        if hostAccumulation {
            for i in hostGram.indices { hostGram[i] = 0 }
            for i in hostRhs.indices { hostRhs[i] = 0 }
        }
        pairs = 0
        pending = 0
    }

    /// Mixed precision without FP64 on the device: add the float products on the host.
    func addOnHost(_ context: CLContext) throws {
        var g = [Float](repeating: 0, count: ld * ld), r = [Float](repeating: 0, count: ld * rhsCols)
        try g.withUnsafeMutableBytes { try gramPart!.download(on: context.compute, into: $0.baseAddress!, bytes: $0.count) }
        try r.withUnsafeMutableBytes { try rhsPart!.download(on: context.compute, into: $0.baseAddress!, bytes: $0.count) }
        for i in g.indices { hostGram[i] += Double(g[i]) }
        for i in r.indices { hostRhs[i] += Double(r[i]) }
    }
}

/// Host memory a non-blocking upload reads from: one slice's windows, inputs and masks in the lift's precision,
/// zero past the slice's rows.
private final class Staging {
    let windows: UnsafeMutableRawPointer
    let inputs: UnsafeMutableRawPointer
    let mask: UnsafeMutableRawPointer
    let windowBytes: Int, inputBytes: Int, maskBytes: Int
    let rows: Int, p: Int, m: Int
    let single: Bool

    init(rows: Int, window p: Int, inputs m: Int, real: CLBlast.Precision) {
        self.rows = rows
        self.p = p
        self.m = m
        single = real == .single
        windowBytes = rows * p * real.bytes
        inputBytes = rows * m * real.bytes
        maskBytes = rows * real.bytes
        windows = .allocate(byteCount: max(windowBytes, 8), alignment: 64)
        inputs = .allocate(byteCount: max(inputBytes, 8), alignment: 64)
        mask = .allocate(byteCount: max(maskBytes, 8), alignment: 64)
        for (b, n) in [(windows, windowBytes), (inputs, inputBytes), (mask, maskBytes)] { memset(b, 0, max(n, 8)) }
    }

    deinit {
        windows.deallocate()
        inputs.deallocate()
        mask.deallocate()
    }

    /// Rows `start ..< start + lifted` of the chunk; masks 1 for the linked rows among the first `sources`.
    func fill(_ chunk: WindowChunk, from start: Int, lifted: Int, sources: Int) {
        chunk.windows.withUnsafeBufferPointer { w in
            store(w.baseAddress.map { $0 + start * p }, count: lifted * p, into: windows, capacity: rows * p)
        }
        if m > 0 {
            chunk.inputs.withUnsafeBufferPointer { u in
                store(u.baseAddress.map { $0 + start * m }, count: lifted * m, into: inputs, capacity: rows * m)
            }
        }
        var flags = [Double](repeating: 0, count: rows)
        for i in 0..<sources where chunk.linked[start + i] { flags[i] = 1 }
        flags.withUnsafeBufferPointer { store($0.baseAddress, count: rows, into: mask, capacity: rows) }
    }

    /// Writes `count` doubles (converted to float when single) and zeros after them up to `capacity`.
    private func store(_ source: UnsafePointer<Double>?, count: Int, into raw: UnsafeMutableRawPointer, capacity: Int) {
        if single {
            let d = raw.assumingMemoryBound(to: Float.self)
            for i in 0..<count { d[i] = Float(source![i]) }
            (d + count).update(repeating: 0, count: capacity - count)
        } else {
            let d = raw.assumingMemoryBound(to: Double.self)
            if count > 0 { d.update(from: source!, count: count) }
            (d + count).update(repeating: 0, count: capacity - count)
        }
    }

    /// Values in the lift's precision, as bytes to upload.
    static func reals(_ values: [Double], _ real: CLBlast.Precision) -> [UInt8] {
        real == .single ? values.map { Float($0) }.withUnsafeBytes { Array($0) } : values.withUnsafeBytes { Array($0) }
    }
}
