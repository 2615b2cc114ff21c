#if canImport(Glibc)
import Glibc
#endif
import CMPI
import Eddy

/// `ProcessGroup` over MPI's `MPI_COMM_WORLD` (Open MPI or MPICH): the handles stay inside the C shim (`CMPI`), so this
/// type holds only numbers and is `Sendable`. MPI's default error handler aborts the job on a communication failure.
public final class MPIGroup: ProcessGroup {
    public let rank: Int
    public let size: Int
    public let localRank: Int

    /// Initialises MPI (once per process; `finalize()` ends it).
    public init() throws {
        let s = eddy_mpi_init()
        if s != 0 { throw EddyError("MPI_Init failed: \(MPIGroup.describe(s))") }
        rank = Int(eddy_mpi_rank())
        size = Int(eddy_mpi_size())
        localRank = Int(eddy_mpi_local_rank())
    }

    public func finalize() { _ = eddy_mpi_finalize() }

    /// Ends every process of the job with `code` (a failed rank must not leave the others waiting in a collective).
    public func abort(_ code: Int32) -> Never {
        eddy_mpi_abort(code)
        exit(code)
    }

    static let tag: Int32 = 17

    public func send(_ values: [Double], to destination: Int) throws {
        let s = values.withUnsafeBufferPointer { eddy_mpi_send($0.baseAddress, values.count, Int32(destination), MPIGroup.tag) }
        if s != 0 { throw EddyError("MPI: sending \(values.count) values to rank \(destination) failed: \(MPIGroup.describe(s))") }
    }

    public func receive(count: Int, from source: Int) throws -> [Double] {
        var values = [Double](repeating: 0, count: count)
        let s = values.withUnsafeMutableBufferPointer { eddy_mpi_recv($0.baseAddress, count, Int32(source), MPIGroup.tag) }
        if s != 0 { throw EddyError("MPI: receiving \(count) values from rank \(source) failed: \(MPIGroup.describe(s))") }
        return values
    }

    public func broadcast(_ values: inout [Double], root: Int) throws {
        let count = values.count
        let s = values.withUnsafeMutableBufferPointer { eddy_mpi_bcast($0.baseAddress, count, Int32(root)) }
        if s != 0 { throw EddyError("MPI: broadcasting \(count) values from rank \(root) failed: \(MPIGroup.describe(s))") }
    }

    public func allGather(_ bytes: [UInt8]) throws -> [[UInt8]] {
        var lengths = [Int](repeating: 0, count: size)
        var s = lengths.withUnsafeMutableBufferPointer { eddy_mpi_allgather_lengths(bytes.count, $0.baseAddress) }
        if s != 0 { throw EddyError("MPI: gathering lengths failed: \(MPIGroup.describe(s))") }
        let total = lengths.reduce(0, +)
        guard lengths.allSatisfy({ $0 >= 0 && $0 < Int(Int32.max) }), total < Int(Int32.max) else {
            throw EddyError("internal: MPI all-gather of \(total) bytes is too large for one message")
        }
        let counts = lengths.map { Int32($0) }
        var displacements = [Int32](repeating: 0, count: size)
        for r in 1..<max(size, 1) { displacements[r] = displacements[r - 1] + counts[r - 1] }
        var all = [UInt8](repeating: 0, count: max(total, 1))
        s = bytes.withUnsafeBufferPointer { mine in
            all.withUnsafeMutableBufferPointer { a in
                eddy_mpi_allgatherv_bytes(mine.baseAddress, Int32(bytes.count), a.baseAddress, counts, displacements)
            }
        }
        if s != 0 { throw EddyError("MPI: gathering \(total) bytes failed: \(MPIGroup.describe(s))") }
        return (0..<size).map { Array(all[Int(displacements[$0])..<(Int(displacements[$0]) + lengths[$0])]) }
    }

    static func describe(_ code: Int32) -> String {
        let capacity = eddy_mpi_max_error_string()
        var text = [CChar](repeating: 0, count: Int(capacity))
        eddy_mpi_error_string(code, &text, capacity)
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + " (code \(code))"
    }
}
