// libFuzzer harness for the netCDF reader: the classic header parser over the bytes, then `NetCDFReader` (through
// libnetcdf) on the same bytes written to a file in /dev/shm, read to the end. Every input must parse or throw
// EddyError; a trap, crash or hang — also inside libnetcdf, on a file our header check let through — is a finding
// (the fix: tighten the check, so that libnetcdf never sees such a file). Only classic files reach libnetcdf:
// netCDF-4 files are HDF5, whose parser is HDF5's, not Eddy's (see Fuzz/README.md).
#if canImport(Glibc)
import Glibc
#endif
import Eddy

/// One scratch file per fuzzing process, removed at exit.
let scratchPath = "/dev/shm/eddy-fuzz-netcdf-\(getpid()).nc"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNetCDF(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    var accepted = false
    do {
        let header = try ClassicNetCDFHeader.parse(bytes: bytes, path: "fuzz.nc")
        precondition(header.headerLength <= bytes.count && header.requiredLength >= header.headerLength)
        try header.checkLength(bytes.count, path: "fuzz.nc")
        accepted = true
    } catch is EddyError {
    } catch {
        fatalError("not an EddyError: \(error)")
    }
    guard ClassicNetCDFHeader.isClassic(bytes) else { return 0 }
    struct Once { nonisolated(unsafe) static var registered = false }
    if !Once.registered {
        Once.registered = true
        atexit { _ = unlink(scratchPath) }
    }
    guard let f = fopen(scratchPath, "wb") else { fatalError("cannot write \(scratchPath)") }
    if !bytes.isEmpty { precondition(fwrite(bytes, 1, bytes.count, f) == bytes.count) }
    fclose(f)
    do {
        let reader = try NetCDFReader(spec: DataSpec(path: scratchPath))
        precondition(accepted, "the reader opened a file whose header was refused")
        while let block = try reader.next() { precondition(block.values.count == block.rowCount * reader.width) }
    } catch is EddyError {
    } catch {
        fatalError("not an EddyError: \(error)")
    }
    return 0
}
