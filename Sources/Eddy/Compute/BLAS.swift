import CBLAS
import CLAPACKE

/// Thin wrappers over CBLAS and LAPACKE, row-major throughout. Wrapped here once so the rest of Eddy calls
/// Swift functions with Swift integers.
enum BLAS {
    /// `C (m×n) = alpha · op(A) · op(B) + beta · C`.
    static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Double = 1,
                     a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
                     beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int) {
        guard m > 0, n > 0, k > 0 else { return }
        cblas_dgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
    }

    /// `C (rows×columns) = A (rows×inner) · B`, where `B` is `inner × columns`, or with `transposedB` the transpose
    /// of a `columns × inner` matrix; arrays in, into `c` (overwritten).
    static func multiply(_ a: [Double], rows: Int, inner: Int, _ b: [Double], columns: Int, transposedB: Bool = false,
                         into c: inout [Double]) {
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                c.withUnsafeMutableBufferPointer {
                    gemm(transA: false, transB: transposedB, m: rows, n: columns, k: inner, a: ap.baseAddress!, lda: inner,
                         b: bp.baseAddress!, ldb: transposedB ? inner : columns, beta: 0, c: $0.baseAddress!, ldc: columns)
                }
            }
        }
    }

    /// `C (columns × columnsB) = Aᵀ B` for `A` (rows × columns) and `B` (rows × columnsB).
    static func multiplyTransposedA(_ a: [Double], rows: Int, columns: Int, _ b: [Double], columnsB: Int, into c: inout [Double]) {
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                c.withUnsafeMutableBufferPointer {
                    gemm(transA: true, transB: false, m: columns, n: columnsB, k: rows, a: ap.baseAddress!, lda: columns,
                         b: bp.baseAddress!, ldb: columnsB, beta: 0, c: $0.baseAddress!, ldc: columnsB)
                }
            }
        }
    }

    /// Upper triangle of `C (n×n) += Aᵀ A` for `A` with `k` rows of `n` columns.
    static func syrkTransposed(n: Int, k: Int, a: UnsafePointer<Double>, lda: Int, c: UnsafeMutablePointer<Double>, ldc: Int) {
        guard n > 0, k > 0 else { return }
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, blasint(n), blasint(k), 1, a, blasint(lda), 1, c, blasint(ldc))
    }

    static var configuration: String { String(cString: openblas_get_config()) }
    static var threads: Int { Int(openblas_get_num_threads()) }
}

enum LAPACK {
    static let upper = CChar(UInt8(ascii: "U"))

    /// Cholesky factorisation of a symmetric positive-definite matrix (upper triangle used); false if not positive definite.
    static func potrf(_ a: inout [Double], n: Int) -> Int32 {
        a.withUnsafeMutableBufferPointer { LAPACKE_dpotrf(LAPACK_ROW_MAJOR, upper, Int32(n), $0.baseAddress, Int32(n)) }
    }

    static func potrs(_ factor: [Double], n: Int, _ b: inout [Double], columns: Int) -> Int32 {
        factor.withUnsafeBufferPointer { f in
            b.withUnsafeMutableBufferPointer {
                LAPACKE_dpotrs(LAPACK_ROW_MAJOR, upper, Int32(n), Int32(columns), f.baseAddress, Int32(n), $0.baseAddress, Int32(columns))
            }
        }
    }

    /// Reciprocal condition number (1-norm) of a Cholesky-factored matrix whose 1-norm is `anorm`.
    static func pocon(_ factor: [Double], n: Int, anorm: Double) -> Double {
        var rcond = 0.0
        _ = factor.withUnsafeBufferPointer {
            LAPACKE_dpocon(LAPACK_ROW_MAJOR, upper, Int32(n), $0.baseAddress, Int32(n), anorm, &rcond)
        }
        return rcond
    }

    /// Eigen-decomposition of a symmetric matrix: ascending eigenvalues; `a` becomes the eigenvectors (columns).
    static func syevd(_ a: inout [Double], n: Int) -> (values: [Double], info: Int32) {
        var w = [Double](repeating: 0, count: n)
        let info = a.withUnsafeMutableBufferPointer { p in
            w.withUnsafeMutableBufferPointer {
                LAPACKE_dsyevd(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "V")), upper, Int32(n), p.baseAddress, Int32(n), $0.baseAddress)
            }
        }
        return (w, info)
    }

    /// Replaces the columns of `a` (rows × columns, row-major, rows ≥ columns) by an orthonormal basis of their span
    /// (Householder QR, `dgeqrf` + `dorgqr`).
    static func orthonormalise(_ a: inout [Double], rows: Int, columns: Int) -> Int32 {
        var tau = [Double](repeating: 0, count: columns)
        return a.withUnsafeMutableBufferPointer { p in
            let info = LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, Int32(rows), Int32(columns), p.baseAddress, Int32(columns), &tau)
            guard info == 0 else { return info }
            return LAPACKE_dorgqr(LAPACK_ROW_MAJOR, Int32(rows), Int32(columns), Int32(columns), p.baseAddress, Int32(columns), &tau)
        }
    }

    /// The `k` largest eigenpairs of a symmetric matrix (`dsyevr`, upper triangle; `a` is destroyed): eigenvalues
    /// ascending and the eigenvectors as the columns of an `n × k` row-major matrix.
    static func syevrLargest(_ a: inout [Double], n: Int, k: Int) -> (values: [Double], vectors: [Double], info: Int32) {
        var w = [Double](repeating: 0, count: n)
        var z = [Double](repeating: 0, count: n * k)
        var support = [Int32](repeating: 0, count: 2 * max(1, k))
        var found: Int32 = 0
        let info = a.withUnsafeMutableBufferPointer { p in
            LAPACKE_dsyevr(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "V")), CChar(UInt8(ascii: "I")), upper, Int32(n), p.baseAddress, Int32(n),
                           0, 0, Int32(n - k + 1), Int32(n), 0, &found, &w, &z, Int32(k), &support)
        }
        return (Array(w.prefix(Int(found))), z, info)
    }

    /// Minimum-norm least squares by SVD (divide and conquer): `a` is rows×cols, `b` rows×nrhs (overwritten;
    /// the solution is its first `cols` rows). Returns the singular values and the effective rank.
    static func gelsd(_ a: inout [Double], rows: Int, cols: Int, _ b: inout [Double], nrhs: Int, rcond: Double) -> (singular: [Double], rank: Int, info: Int32) {
        var s = [Double](repeating: 0, count: min(rows, cols))
        var rank: Int32 = 0
        let info = a.withUnsafeMutableBufferPointer { ap in
            b.withUnsafeMutableBufferPointer { bp in
                s.withUnsafeMutableBufferPointer { sp in
                    LAPACKE_dgelsd(LAPACK_ROW_MAJOR, Int32(rows), Int32(cols), Int32(nrhs), ap.baseAddress, Int32(cols),
                                   bp.baseAddress, Int32(nrhs), sp.baseAddress, rcond, &rank)
                }
            }
        }
        return (s, Int(rank), info)
    }

    /// Eigenvalues of a general square matrix.
    static func geev(_ a: [Double], n: Int) -> (real: [Double], imaginary: [Double], info: Int32) {
        var m = a
        var wr = [Double](repeating: 0, count: n)
        var wi = [Double](repeating: 0, count: n)
        var dummy = [Double](repeating: 0, count: 1)
        let no = CChar(UInt8(ascii: "N"))
        let info = m.withUnsafeMutableBufferPointer { mp in
            wr.withUnsafeMutableBufferPointer { r in
                wi.withUnsafeMutableBufferPointer { i in
                    dummy.withUnsafeMutableBufferPointer { d in
                        LAPACKE_dgeev(LAPACK_ROW_MAJOR, no, no, Int32(n), mp.baseAddress, Int32(n), r.baseAddress, i.baseAddress,
                                      d.baseAddress, 1, d.baseAddress, 1)
                    }
                }
            }
        }
        return (wr, wi, info)
    }
}

// MARK: - Added for control (Control/): a general solve and the ordered real Schur form.

extension LAPACK {
    /// Solves `A X = B` by LU with partial pivoting (`dgesv`): `a` is n×n (overwritten by its factors), `b` n×columns
    /// (overwritten by X). Returns LAPACK's info (> 0: `A` is exactly singular).
    static func gesv(_ a: inout [Double], n: Int, _ b: inout [Double], columns: Int) -> Int32 {
        guard n > 0, columns > 0 else { return 0 }
        var pivots = [Int32](repeating: 0, count: n)
        return a.withUnsafeMutableBufferPointer { ap in
            b.withUnsafeMutableBufferPointer { bp in
                pivots.withUnsafeMutableBufferPointer { pp in
                    LAPACKE_dgesv(LAPACK_ROW_MAJOR, Int32(n), Int32(columns), ap.baseAddress, Int32(n), pp.baseAddress,
                                  bp.baseAddress, Int32(columns))
                }
            }
        }
    }

    /// Real Schur form `A = Z T Zᵀ` (`dgees`, unordered): `a` becomes the quasi-triangular `T` (1×1 and 2×2 blocks
    /// for real eigenvalues and complex pairs); returns the orthogonal `Z` (row-major) and the eigenvalues.
    static func gees(_ a: inout [Double], n: Int) -> (vectors: [Double], real: [Double], imaginary: [Double], info: Int32) {
        var z = [Double](repeating: 0, count: n * n)
        var wr = [Double](repeating: 0, count: n), wi = [Double](repeating: 0, count: n)
        var sdim: Int32 = 0
        let info = a.withUnsafeMutableBufferPointer { ap in
            z.withUnsafeMutableBufferPointer { zp in
                wr.withUnsafeMutableBufferPointer { r in
                    wi.withUnsafeMutableBufferPointer { i in
                        LAPACKE_dgees(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "V")), CChar(UInt8(ascii: "N")), nil, Int32(n),
                                      ap.baseAddress, Int32(n), &sdim, r.baseAddress, i.baseAddress, zp.baseAddress, Int32(n))
                    }
                }
            }
        }
        return (z, wr, wi, info)
    }

    /// Reorders a real Schur factorisation (`dtrsen`, no condition estimates) so that the selected eigenvalues lead:
    /// afterwards the first `kept` columns of `z` span the invariant subspace of those eigenvalues. A complex pair is
    /// selected when either of its two entries is. Returns `kept` and LAPACK's info.
    static func trsen(select: [Bool], _ t: inout [Double], _ z: inout [Double], n: Int) -> (kept: Int, info: Int32) {
        let flags = select.map { Int32($0 ? 1 : 0) }
        var wr = [Double](repeating: 0, count: n), wi = [Double](repeating: 0, count: n)
        // The `_work` entry point with our own workspace: LAPACKE_dtrsen allocates none for job 'N', though
        // dtrsen needs LWORK ≥ N there.
        var work = [Double](repeating: 0, count: max(1, n))
        var iwork: [Int32] = [0]
        var m: Int32 = 0, s = 0.0, sep = 0.0
        let info = t.withUnsafeMutableBufferPointer { tp in
            z.withUnsafeMutableBufferPointer { zp in
                wr.withUnsafeMutableBufferPointer { r in
                    wi.withUnsafeMutableBufferPointer { i in
                        work.withUnsafeMutableBufferPointer { w in
                            iwork.withUnsafeMutableBufferPointer { iw in
                                LAPACKE_dtrsen_work(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "N")), CChar(UInt8(ascii: "V")), flags, Int32(n),
                                                    tp.baseAddress, Int32(n), zp.baseAddress, Int32(n), r.baseAddress, i.baseAddress,
                                                    &m, &s, &sep, w.baseAddress, Int32(max(1, n)), iw.baseAddress, 1)
                            }
                        }
                    }
                }
            }
        }
        return (Int(m), info)
    }
}
