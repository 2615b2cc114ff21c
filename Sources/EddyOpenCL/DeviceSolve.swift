import CCLBlast
import CLAPACKE
import COpenCL
import Eddy

/// `(G + λI) Θ = R` on the device, on the pass's double sums where they already are (issue 16): a right-looking blocked
/// Cholesky `G + λI = L Lᵀ` — each diagonal block factored on the host (LAPACK `dpotrf`, `block`² values each way), the
/// panel below it by CLBlast `Dtrsm`, the trailing matrix by `Dsyrk` — then two `Dtrsm` solves for every right-hand
/// side, and only Θ read back. The pass keeps `G` as a row-major upper triangle and `R` transposed, which is, in
/// column-major terms, exactly a lower-stored `G` and `R` itself: no transposes. The padding beyond the features gets
/// 1 on its diagonal (its rows are zero), so it solves to zero. λ is `Solver.relativeRidge` of the ridge, as the host
/// solve's. The condition estimate stays with the host solve (it needs the factor on the host).
enum DeviceSolve {
    struct Result {
        var theta: [Double]
        var seconds: [String: Double]
    }

    static func solve(context: CLContext, gram: CLBuffer, rhs: CLBuffer, ld: Int, features f: Int, targets t: Int, lambda: Double,
                      block nb: Int = 256) throws -> Result {
        guard context.device.fp64 else { throw EddyError("OpenCL: the device solve needs double precision (FP64)") }
        let q = context.compute
        var clock = Stopwatch()
        let a = try CLBuffer(context, bytes: ld * ld * 8, what: "G + λI")
        try a.copy(from: gram, on: q)
        let program = try CLProgram(context, source: KernelSources.accumulate, options: "-cl-std=CL1.2", name: "accumulate.cl")
        let diagonal = try CLKernel(program, "add_to_diagonal")
        try diagonal.set([.int(f), .int(ld), .double(lambda), .buffer(a)])
        _ = try diagonal.enqueue(on: q, global: [ld], local: nil)
        var host = [Double](repeating: 0, count: nb * nb)
        var queue: cl_command_queue? = q
        let lower = Int8(UInt8(ascii: "L"))
        var j = 0
        while j < ld {
            let jb = min(nb, ld - j)
            try host.withUnsafeMutableBytes { try a.block(false, on: q, row: j, column: j, rows: jb, columns: jb, ld: ld, host: $0.baseAddress!) }
            let info = host.withUnsafeMutableBufferPointer { LAPACKE_dpotrf(LAPACK_COL_MAJOR, lower, Int32(jb), $0.baseAddress, Int32(jb)) }
            if info > 0 {
                throw EddyError("Cholesky failed on the device: G + λI is not positive definite (leading minor \(j + Int(info)) of \(f)); raise --ridge")
            }
            try host.withUnsafeMutableBytes { try a.block(true, on: q, row: j, column: j, rows: jb, columns: jb, ld: ld, host: $0.baseAddress!) }
            let rest = ld - j - jb
            if rest > 0 {
                // Panel: A[j+jb…, j…j+jb] ← A[j+jb…, j…j+jb] · L_jjᵀ⁻¹; trailing: A[j+jb…, j+jb…] −= panel · panelᵀ (lower).
                try CLBlast.checkCLBlast(CLBlastDtrsm(CLBlastLayoutColMajor, CLBlastSideRight, CLBlastTriangleLower, CLBlastTransposeYes,
                                                      CLBlastDiagonalNonUnit, rest, jb, 1, a.mem, j + j * ld, ld, a.mem, j + jb + j * ld, ld,
                                                      &queue, nil), "Dtrsm(panel \(rest) × \(jb))")
                try CLBlast.checkCLBlast(CLBlastDsyrk(CLBlastLayoutColMajor, CLBlastTriangleLower, CLBlastTransposeNo, rest, jb, -1,
                                                      a.mem, j + jb + j * ld, ld, 1, a.mem, (j + jb) * (ld + 1), ld, &queue, nil),
                                         "Dsyrk(trailing \(rest), k: \(jb))")
            }
            j += jb
        }
        try context.finish()
        var seconds = ["factor": clock.lap()]
        // L Lᵀ Θ = R: R (transposed in the pass's row-major terms) is column-major ld × t already.
        let theta = try CLBuffer(context, bytes: ld * t * 8, what: "Θ")
        try theta.copy(from: rhs, on: q)
        for transpose in [CLBlastTransposeNo, CLBlastTransposeYes] {
            try CLBlast.checkCLBlast(CLBlastDtrsm(CLBlastLayoutColMajor, CLBlastSideLeft, CLBlastTriangleLower, transpose, CLBlastDiagonalNonUnit,
                                                  ld, t, 1, a.mem, 0, ld, theta.mem, 0, ld, &queue, nil), "Dtrsm(\(ld) × \(t))")
        }
        try context.finish()
        seconds["triangular"] = clock.lap()
        var raw = [Double](repeating: 0, count: ld * t)
        try raw.withUnsafeMutableBytes { try theta.download(on: q, into: $0.baseAddress!, bytes: $0.count) }
        var out = [Double](repeating: 0, count: f * t)
        for i in 0..<f { for c in 0..<t { out[i * t + c] = raw[i + c * ld] } }
        seconds["readback"] = clock.lap()
        return Result(theta: out, seconds: seconds)
    }
}
