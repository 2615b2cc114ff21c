// libFuzzer harness for the .npy header parser (not wired into Package.swift; see Fuzz/README.md).
// Every input must either parse or throw EddyError: a trap, crash or hang is a finding.
#if canImport(Eddy)
import Eddy   // built against the module; compiled together with its sources (Fuzz/README.md) it is the same module
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNPY(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    do {
        let header = try NPY.Header.parse(bytes: bytes, path: "fuzz.npy")
        // A parsed header describes exactly the bytes present.
        precondition(header.dataOffset <= bytes.count)
    } catch is EddyError {
    } catch {
        fatalError("not an EddyError: \(error)")
    }
    return 0
}
