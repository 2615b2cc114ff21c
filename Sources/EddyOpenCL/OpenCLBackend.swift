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
/// Shapes are fixed for the whole pass: `rows` (a multiple of 128) source rows per slice plus one row that is
/// only a target, and features padded with zero columns to a multiple of 64. A chunk longer than `rows` is
/// cut into slices; a shorter one is padded with zero rows. Two upload slots alternate: the next slice's
/// windows go up on the transfer queue while the current slice's products run on the compute queue; the host
/// waits for the previous slice before returning (one synchronisation per slice).
public final class OpenCLBackend: Backend {
    public let name = "opencl"
    public let device: OpenCLDevice
    public let precision: Precision
    /// Source rows per slice on the device (a multiple of 128).
    public let rows: Int
    /// Tuning parameters applied from the cache, if any (one line).
    public let tuning: String?

    let context: CLContext
    private let hidden: CLKernel
    private let frame: CLKernel
    private let addIntoDouble: CLKernel?
    private var pass: Pass?
    /// When set (by `eddy bench`), every phase is synchronised and timed.
    var phases: PhaseTimes?

    /// Opens the device and builds the lift kernels; throws (never crashes) when the device, the driver or the
    /// kernel compiler fails.
    public convenience init(device: OpenCLDevice, precision: Precision = .double, rows: Int = 4096) throws {
        try self.init(device: device, precision: precision, rows: rows, liftSource: KernelSources.lift)
    }

    /// `liftSource` replaces the embedded lift kernels (tests build a broken one to check the failure path);
    /// `hostSums` makes mixed precision add chunk products on the host, as on a device without FP64.
    init(device: OpenCLDevice, precision: Precision, rows: Int, liftSource: String, hostSums: Bool = false) throws {
        if precision == .double && !device.fp64 {
            throw EddyError("OpenCL: \(device.name) has no double precision (FP64); use --precision mixed or --backend cpu")
        }
        self.device = device
        self.precision = precision
        self.rows = max(128, (rows + 127) / 128 * 128)
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
        tuning = try TuningCache.apply(to: device)
    }

    public var details: String {
        let p = precision == .double ? "double precision" : "mixed precision (float products, double sums\(addIntoDouble == nil ? " on the host" : ""))"
        return "\(device.name) on \(device.platform) (driver \(device.driver)), CLBlast, \(p), \(rows) rows per slice"
            + (tuning.map { ", \($0)" } ?? "")
    }

    var real: CLBlast.Precision { precision == .double ? .double : .single }

    public func unsupported(_ statistic: PassStatistic) -> String? {
        guard statistic == .qr, precision == .mixed else { return nil }
        return "--precision mixed lifts in float, and the QR factor is only worth its cost on rows in double precision"
    }

    public func beginPass(layer: HiddenLayer, layout: DictionaryLayout, statistic: PassStatistic) throws {
        if let reason = unsupported(statistic) { throw EddyError("OpenCL: no \(statistic.rawValue) pass: \(reason)") }
        guard layer.inputSize == layout.windowSize, layer.width == layout.width else {
            throw EddyError("OpenCL backend: the hidden layer (\(layer.inputSize) → \(layer.width)) does not fit the layout (p = \(layout.windowSize), M = \(layout.width))")
        }
        pass = nil
        let pass = try Pass(context: context, layer: layer, layout: layout, rows: rows, real: real,
                            mixed: precision == .mixed, hostAccumulation: precision == .mixed && addIntoDouble == nil,
                            factor: statistic == .qr)
        self.pass = pass
        // A dry slice (every mask 0, so it adds exact zeros) compiles CLBlast's kernels for these shapes and
        // touches every buffer now: a build failure or an out-of-memory shows at the start of the pass, where
        // `auto` can still fall back to the CPU.
        do {
            try enqueueSlice(pass, WindowChunk(windows: [], inputs: [], linked: []), from: 0)
            try context.finish()
            pass.computeDone = [nil, nil]
        } catch {
            self.pass = nil
            throw error
        }
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
        try context.finish()
        pass.computeDone = [nil, nil]
        if var state = pass.factor, var builder = pass.blocks {
            try builder.flush(into: &state)
            return .factor(state)
        }
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
            rhs = [Double](repeating: 0, count: pass.ld * pass.rhsLd)
            try gram.withUnsafeMutableBytes { try pass.gram.download(on: context.compute, into: $0.baseAddress!, bytes: $0.count) }
            try rhs.withUnsafeMutableBytes { try pass.rhs.download(on: context.compute, into: $0.baseAddress!, bytes: $0.count) }
        }
        for i in 0..<f {
            for j in i..<f { sums.gram[i * f + j] = gram[i * pass.ld + j] }
            for j in 0..<t { sums.rightHandSide[i * t + j] = rhs[i * pass.rhsLd + j] }
        }
        sums.mirrorUpperTriangle()
        return .gram(sums)
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
        if layout.width > 0 {
            try hidden.set([.int(pass.lifted), .int(p), .int(layout.width), .int(pass.activation), .int(pass.ld),
                            .buffer(pass.windows[slot]), .buffer(pass.weights), .buffer(pass.biases), .buffer(pass.masks[slot]),
                            .buffer(pass.sources), .buffer(full), .int(writeFull)])
            _ = try hidden.enqueue(on: c, global: [(layout.width + 63) / 64 * 16, (pass.lifted + 63) / 64 * 16], local: [16, 16], after: after)
            after = nil   // the compute queue is in order
        }
        try frame.set([.int(pass.lifted), .int(p), .int(layout.width), .int(m), .int(pass.ld),
                       .buffer(pass.windows[slot]), .buffer(pass.inputs[slot]), .buffer(pass.masks[slot]),
                       .buffer(pass.sources), .buffer(full), .int(writeFull)])
        _ = try frame.enqueue(on: c, global: [pass.ld - layout.width, pass.lifted], local: nil, after: after)
        try lap(&clock, "lift", c)

        // QR pass: the lifted rows come back to the host, which folds the slice's pairs into the factor (LAPACK).
        if pass.factor != nil {
            try foldIntoFactor(pass, chunk, from: start, lifted: lifted)
            try lap(&clock, "factor", c)
            return
        }

        // G += Φᵀ Φ over the masked rows (mixed: a float chunk Gram, added into double below).
        let gramTarget = pass.gramPart ?? pass.gram
        let beta = pass.gramPart == nil ? 1.0 : 0.0
        var done = try CLBlast.syrk(real, n: pass.ld, k: rows, a: pass.sources, lda: pass.ld, beta: beta, c: gramTarget, ldc: pass.ld, queue: c)
        try lap(&clock, "gram", c)

        // R += Φᵀ Y: Koopman Y = the next dictionary rows (offset one row); recurrent Y = x_{t+1}, the first
        // n values of the next window (offset one window).
        let rhsTarget = pass.rhsPart ?? pass.rhs
        switch layout.form {
        case .koopman:
            done = try CLBlast.gemmTransposedA(real, m: pass.ld, n: pass.rhsLd, k: rows, a: pass.sources, lda: pass.ld,
                                               b: pass.full!, bOffset: pass.ld, ldb: pass.ld, beta: beta, c: rhsTarget, ldc: pass.rhsLd, queue: c)
        case .recurrent:
            done = try CLBlast.gemmTransposedA(real, m: pass.ld, n: layout.variables, k: rows, a: pass.sources, lda: pass.ld,
                                               b: pass.windows[slot], bOffset: p, ldb: p, beta: beta, c: rhsTarget, ldc: pass.rhsLd, queue: c)
        }
        try lap(&clock, "rhs", c)

        // Mixed: add the chunk's float products into the double sums.
        if let gramPart = pass.gramPart, let rhsPart = pass.rhsPart {
            if let add = addIntoDouble {
                try add.set([.int(pass.ld * pass.ld), .buffer(gramPart), .buffer(pass.gram)])
                _ = try add.enqueue(on: c, global: [pass.ld * pass.ld], local: [256])
                try add.set([.int(pass.ld * pass.rhsLd), .buffer(rhsPart), .buffer(pass.rhs)])
                done = try add.enqueue(on: c, global: [pass.ld * pass.rhsLd], local: [256])
            } else {
                try pass.addOnHost(context)
            }
            try lap(&clock, "sum", c)
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

/// The device buffers and host staging of one pass.
private final class Pass {
    let layout: DictionaryLayout
    let ld: Int          // features padded to a multiple of 64
    let rhsLd: Int       // columns of R: D padded to 64 (Koopman), n (recurrent)
    let lifted: Int      // rows lifted per slice: sources + 1 target row
    let activation: Int
    let hostAccumulation: Bool
    let weights: CLBuffer
    let biases: CLBuffer
    let windows: [CLBuffer]
    let inputs: [CLBuffer]
    let masks: [CLBuffer]
    let staging: [Staging]
    let sources: CLBuffer
    let full: CLBuffer?
    let gram: CLBuffer       // double, ld × ld (upper triangle meaningful)
    let rhs: CLBuffer        // double, ld × rhsLd
    let gramPart: CLBuffer?  // mixed: a chunk's float products
    let rhsPart: CLBuffer?
    var hostGram: [Double] = []
    var hostRhs: [Double] = []
    /// QR passes: the factor on the host, its block builder, and one slice's lifted rows read back.
    var factor: QRFactor?
    var blocks: QRBlockBuilder?
    var hostRows: [Double] = []
    var computeDone: [CLEvent?] = [nil, nil]
    var slices = 0
    var pairs = 0

    init(context: CLContext, layer: HiddenLayer, layout: DictionaryLayout, rows: Int, real: CLBlast.Precision,
         mixed: Bool, hostAccumulation: Bool, factor qr: Bool = false) throws {
        self.layout = layout
        let p = layout.windowSize, m = layout.inputs
        let ld = (layout.featureCount + 63) / 64 * 64, rhsLd = layout.form == .koopman ? (layout.dictionarySize + 63) / 64 * 64 : layout.variables
        self.ld = ld
        if qr {
            factor = QRFactor(layout: layout)
            blocks = QRBlockBuilder(layout: layout)
            hostRows = [Double](repeating: 0, count: (rows + 1) * ld)
        }
        self.rhsLd = rhsLd
        let lifted = rows + 1
        self.lifted = lifted
        activation = layer.activation == .tanh ? 0 : 1
        self.hostAccumulation = hostAccumulation
        let r = real.bytes
        let device = context.device
        // Refuse up front what cannot fit, with sizes, rather than meet an allocation failure mid-pass.
        let bytes = lifted * ld * r * (layout.form == .koopman ? 2 : 1) + ld * (ld + rhsLd) * (8 + (mixed ? 4 : 0))
            + 2 * lifted * (p + m + 1) * r + (p + 1) * layout.width * r
        let largest = max(lifted * ld * r, ld * ld * 8)
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
        rhs = try CLBuffer(context, bytes: ld * rhsLd * 8, what: "R")
        gramPart = mixed ? try CLBuffer(context, bytes: ld * ld * 4, what: "chunk G") : nil
        rhsPart = mixed ? try CLBuffer(context, bytes: ld * rhsLd * 4, what: "chunk R") : nil
        if hostAccumulation {
            hostGram = [Double](repeating: 0, count: ld * ld)
            hostRhs = [Double](repeating: 0, count: ld * rhsLd)
        }
        for b in [gram, rhs] + [gramPart, rhsPart].compactMap({ $0 }) { try b.zero(on: context.compute) }

        // The hidden layer, once per pass, in the lift's precision.
        let w = Staging.reals(layer.weights, real), b = Staging.reals(layer.biases, real)
        try w.withUnsafeBytes { if $0.count > 0 { try weights.upload(on: context.compute, from: $0.baseAddress!, bytes: $0.count).wait() } }
        try b.withUnsafeBytes { if $0.count > 0 { try biases.upload(on: context.compute, from: $0.baseAddress!, bytes: $0.count).wait() } }
    }

    /// Mixed precision without FP64 on the device: add the chunk's float products on the host.
    func addOnHost(_ context: CLContext) throws {
        var g = [Float](repeating: 0, count: ld * ld), r = [Float](repeating: 0, count: ld * rhsLd)
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
