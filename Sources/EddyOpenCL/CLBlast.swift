import CCLBlast
import COpenCL
import Eddy
#if canImport(Glibc)
import Glibc
#endif

/// The CLBlast routines Eddy uses, row-major, on device buffers (ENGINEERING.md, "CLBlast"). Calls only
/// enqueue; each returns the event of its last kernel.
enum CLBlast {
    /// The element type of a routine.
    enum Precision {
        case single, double

        var code: CLBlastPrecision { self == .single ? CLBlastPrecisionSingle : CLBlastPrecisionDouble }
        var bytes: Int { self == .single ? 4 : 8 }
        var label: String { self == .single ? "single" : "double" }
    }

    /// Upper triangle of `C (n×n) += Aᵀ A` (beta 1) or `= Aᵀ A` (beta 0) for `A` with `k` rows of `lda` values.
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

    /// `C (m×n) += Aᵀ B` (beta 1) or `= Aᵀ B` (beta 0); `A` is k×m, `B` k×n starting `bOffset` elements in.
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

    /// Replaces CLBlast's tuning parameters for one kernel family on a device (applies to later calls).
    static func override(device: OpenCLDevice, kernel: String, precision: Precision, parameters: [(String, Int)]) throws {
        let names = parameters.map { strdup($0.0) }
        defer { names.forEach { free($0) } }
        var pointers: [UnsafePointer<CChar>?] = names.map { UnsafePointer($0) }
        var values = parameters.map { $0.1 }
        let status = CLBlastOverrideParameters(device.handle.id, kernel, precision.code, parameters.count, &pointers, &values)
        try checkCLBlast(status, "OverrideParameters(\(kernel), \(precision.label))")
    }

    /// Drops CLBlast's in-process cache of compiled kernels (after an override, or to time a cold start).
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
        default: meaning = statusName(code)
        }
        throw EddyError("CLBlast: \(call()) failed: \(meaning)")
    }
}
