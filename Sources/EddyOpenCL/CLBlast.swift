import CCLBlast
import CLBlastParameters
import COpenCL
import Eddy
#if canImport(Glibc)
import Glibc
#endif

/// The CLBlast routines Eddy uses on device buffers (ENGINEERING.md, "CLBlast"). Calls only enqueue; each returns
/// the event of its last kernel.
///
/// Copies inside CLBlast (1.5.3, src/routines/level3/xgemm.* and xsyrk.cpp): above `XGEMM_MIN_INDIRECT_SIZE`³
/// (m·n·k) a GEMM runs the indirect `Xgemm` kernel, which wants A and C in column-major order and B transposed, all
/// padded to its tiles (MWG, NWG, KWG·KREG) and at offset 0; any operand that is not gets a padded/transposed copy
/// in a temporary buffer allocated on every call (unless one is passed in, `…WithTempBuffer`). A row-major C always
/// needs that copy with GEMMK=0, so the pass calls GEMM in column-major form (C = Rᵀ as rows). SYRK always copies C
/// in and out of an `n_ceiled²` temporary (it must not touch the other triangle), and A when it is not tile-aligned.
enum CLBlast {
    /// The element type of a routine.
    enum Precision {
        case single, double

        var code: CLBlastPrecision { self == .single ? CLBlastPrecisionSingle : CLBlastPrecisionDouble }
        var bytes: Int { self == .single ? 4 : 8 }
        var label: String { self == .single ? "single" : "double" }
    }

    /// Upper triangle of `C (n×n) += Aᵀ A` (beta 1) or `= Aᵀ A` (beta 0) for row-major `A` with `k` rows of `lda` values.
    static func syrk(_ precision: Precision, n: Int, k: Int, a: CLBuffer, lda: Int, beta: Double,
                     c: CLBuffer, ldc: Int, queue: cl_command_queue) throws -> CLEvent {
        var q: cl_command_queue? = queue
        var event: cl_event?
        let status: CLBlastStatusCode
        switch precision {
        case .double:
            status = CLBlastDsyrk(CLBlastLayoutRowMajor, CLBlastTriangleUpper, CLBlastTransposeYes, n, k, 1, a.mem, 0, lda,
                                  beta, c.mem, 0, ldc, &q, &event)
        case .single:
            status = CLBlastSsyrk(CLBlastLayoutRowMajor, CLBlastTriangleUpper, CLBlastTransposeYes, n, k, 1, a.mem, 0, lda,
                                  Float(beta), c.mem, 0, ldc, &q, &event)
        }
        try checkCLBlast(status, "\(precision == .double ? "Dsyrk" : "Ssyrk")(n: \(n), k: \(k))")
        return CLEvent(event!)
    }

    /// `C (m×n) += Aᵀ B` (beta 1) or `= Aᵀ B` (beta 0), row-major; `A` is k×m, `B` k×n starting `bOffset` elements in.
    static func gemmTransposedA(_ precision: Precision, m: Int, n: Int, k: Int, a: CLBuffer, lda: Int,
                                b: CLBuffer, bOffset: Int, ldb: Int, beta: Double, c: CLBuffer, ldc: Int,
                                queue: cl_command_queue) throws -> CLEvent {
        var q: cl_command_queue? = queue
        var event: cl_event?
        let status: CLBlastStatusCode
        switch precision {
        case .double:
            status = CLBlastDgemm(CLBlastLayoutRowMajor, CLBlastTransposeYes, CLBlastTransposeNo, m, n, k, 1, a.mem, 0, lda,
                                  b.mem, bOffset, ldb, beta, c.mem, 0, ldc, &q, &event)
        case .single:
            status = CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeYes, CLBlastTransposeNo, m, n, k, 1, a.mem, 0, lda,
                                  b.mem, bOffset, ldb, Float(beta), c.mem, 0, ldc, &q, &event)
        }
        try checkCLBlast(status, "\(precision == .double ? "Dgemm" : "Sgemm")(m: \(m), n: \(n), k: \(k))")
        return CLEvent(event!)
    }

    /// The pass's cross product `Rᵀ (n×m, rows of ldc ≥ m) += (Aᵀ B)ᵀ` for row-major `A` (k×m, lda) and `B` (k×n, ldb,
    /// from `bOffset`), as CLBlast's column-major `C = A·Bᵀ` on the same memory: A and C are then in the order the
    /// indirect kernel wants (no transpose copies) and, at offset 0 with tile-multiple sizes, B too. `temp` (sized by
    /// `gemmTempBytes`) replaces CLBlast's per-call temporary when some operand still needs a copy.
    static func crossProduct(_ precision: Precision, m: Int, n: Int, k: Int, a: CLBuffer, lda: Int,
                             b: CLBuffer, bOffset: Int, ldb: Int, beta: Double, c: CLBuffer, ldc: Int,
                             temp: CLBuffer?, queue: cl_command_queue) throws -> CLEvent {
        var q: cl_command_queue? = queue
        var event: cl_event?
        let status: CLBlastStatusCode
        switch (precision, temp) {
        case (.double, nil):
            status = CLBlastDgemm(CLBlastLayoutColMajor, CLBlastTransposeNo, CLBlastTransposeYes, m, n, k, 1, a.mem, 0, lda,
                                  b.mem, bOffset, ldb, beta, c.mem, 0, ldc, &q, &event)
        case (.single, nil):
            status = CLBlastSgemm(CLBlastLayoutColMajor, CLBlastTransposeNo, CLBlastTransposeYes, m, n, k, 1, a.mem, 0, lda,
                                  b.mem, bOffset, ldb, Float(beta), c.mem, 0, ldc, &q, &event)
        case (.double, let t?):
            status = CLBlastDgemmWithTempBuffer(CLBlastLayoutColMajor, CLBlastTransposeNo, CLBlastTransposeYes, m, n, k, 1, a.mem, 0, lda,
                                                b.mem, bOffset, ldb, beta, c.mem, 0, ldc, &q, &event, t.mem)
        case (.single, let t?):
            status = CLBlastSgemmWithTempBuffer(CLBlastLayoutColMajor, CLBlastTransposeNo, CLBlastTransposeYes, m, n, k, 1, a.mem, 0, lda,
                                                b.mem, bOffset, ldb, Float(beta), c.mem, 0, ldc, &q, &event, t.mem)
        }
        try checkCLBlast(status, "\(precision == .double ? "Dgemm" : "Sgemm")(m: \(m), n: \(n), k: \(k))")
        return CLEvent(event!)
    }

    /// Bytes of the temporary CLBlast allocates (and fills with padded/transposed copies) for one `crossProduct` call
    /// — 0 when the direct kernel runs or no operand needs a copy; `rowMajorTransposedA` sizes the call as
    /// `gemmTransposedA` makes it instead. CLBlast's own computation (`CLBlastXGemmTempBufferSize`).
    static func gemmTempBytes(_ precision: Precision, m: Int, n: Int, k: Int, lda: Int, bOffset: Int, ldb: Int, ldc: Int,
                              rowMajorTransposedA: Bool = false, queue: cl_command_queue) throws -> Int {
        var q: cl_command_queue? = queue
        var size = 0
        let layout = rowMajorTransposedA ? CLBlastLayoutRowMajor : CLBlastLayoutColMajor
        let ta = rowMajorTransposedA ? CLBlastTransposeYes : CLBlastTransposeNo
        let tb = rowMajorTransposedA ? CLBlastTransposeNo : CLBlastTransposeYes
        let status = precision == .double
            ? CLBlastDGemmTempBufferSize(layout, ta, tb, m, n, k, 0, lda, bOffset, ldb, 0, ldc, &q, &size)
            : CLBlastSGemmTempBufferSize(layout, ta, tb, m, n, k, 0, lda, bOffset, ldb, 0, ldc, &q, &size)
        try checkCLBlast(status, "GemmTempBufferSize(m: \(m), n: \(n), k: \(k))")
        return size
    }

    /// The parameters CLBlast applies to `kernel` (`Xgemm`, `XgemmDirect`, `GemmRoutine`, …) on the device now —
    /// its database entry or an override — sorted by name.
    static func parameters(device: OpenCLDevice, kernel: String, precision: Precision) throws -> [(String, Int)] {
        var text = [CChar](repeating: 0, count: 4096)
        let status = eddy_clblast_parameters(UnsafeMutableRawPointer(device.handle.id), kernel, precision == .double ? 64 : 32,
                                             &text, text.count)
        guard status == 0 else {
            throw EddyError("CLBlast: reading the \(kernel) \(precision.label) parameters for \(device.name) failed (status \(status))")
        }
        let line = text.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return line.split(separator: " ").compactMap { word in
            let kv = word.split(separator: "=")
            guard kv.count == 2, let v = Int(kv[1]) else { return nil }
            return (String(kv[0]), v)
        }
    }

    /// SYRK's per-call temporaries in bytes (CLBlast 1.5.3 xsyrk.cpp): C's `n_ceiled²` copy always, and A (and its
    /// second view B) when `n`, `k` or `lda` are not the tile multiples Xgemm wants.
    static func syrkTempBytes(_ precision: Precision, n: Int, k: Int, lda: Int, xgemm: [String: Int]) -> Int {
        let mwg = xgemm["MWG"] ?? 64, nwg = xgemm["NWG"] ?? 64, kwg = (xgemm["KWG"] ?? 32) * (xgemm["KREG"] ?? 1)
        let gemmk = xgemm["GEMMK"] ?? 0
        let nCeiled = ceil(ceil(n, mwg), nwg), kCeiled = ceil(k, kwg)
        // Row-major Aᵀ: A is stored as the kernel wants with GEMMK 0 (B always); GEMMK 1 wants A rotated: a copy.
        let aligned = nCeiled == n && kCeiled == k && lda == n
        let a = aligned && gemmk == 0 ? 0 : nCeiled * kCeiled
        let b = aligned ? 0 : nCeiled * kCeiled
        return (a + b + nCeiled * nCeiled) * precision.bytes
    }

    static func ceil(_ x: Int, _ m: Int) -> Int { m <= 0 ? x : (x + m - 1) / m * m }

    /// Replaces CLBlast's tuning parameters for one kernel family on a device (applies to later calls).
    static func override(device: OpenCLDevice, kernel: String, precision: Precision, parameters: [(String, Int)]) throws {
        let names = parameters.map { strdup($0.0) }
        defer { names.forEach { free($0) } }
        var pointers: [UnsafePointer<CChar>?] = names.map { UnsafePointer($0) }
        var values = parameters.map { $0.1 }
        let status = CLBlastOverrideParameters(device.handle.id, kernel, precision.code, parameters.count, &pointers, &values)
        try checkCLBlast(status, "OverrideParameters(\(kernel), \(precision.label))")
    }

    /// Drops CLBlast's in-process cache of compiled kernels (after an override, or to time a cold start). Overrides
    /// stay: CLBlast keeps them in a separate database cache.
    static func clearCache() { _ = CLBlastClearCache() }

    static func checkCLBlast(_ status: CLBlastStatusCode, _ call: @autoclosure () -> String) throws {
        guard status != CLBlastSuccess else { return }
        let code = Int32(status.rawValue)
        let meaning: String
        switch code {
        case -2050 ... -2039: meaning = [
            -2046: "not enough local memory on the device for these parameters",
            -2044: "the device has no double precision",
            -2048: "unknown kernel name", -2047: "missing override parameter",
            -2041: "no database entry for the device",
        ][code] ?? "CLBlast status \(code)"
        case -1024 ... -1000: meaning = "invalid argument (CLBlast status \(code))"
        default: meaning = statusName(code) + lateFaultNote(code)
        }
        throw EddyError("CLBlast: \(call()) failed: \(meaning)")
    }
}
