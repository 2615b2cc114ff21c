// libFuzzer harness for the model-file reader (safetensors + JSON metadata); see Fuzz/README.md.
// Every input must either load or throw EddyError; a loaded model must be usable without trapping.
#if canImport(Eddy)
import Eddy   // built against the module; compiled together with its sources (Fuzz/README.md) it is the same module
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzModelFile(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    var notes: [String] = []
    do {
        let model = try ModelFile.read(bytes: bytes, path: "fuzz.safetensors", notes: &notes)
        _ = model.readout
        _ = model.koopmanMatrix
        _ = model.externalInputs
        _ = model.outputStd
    } catch is EddyError {
    } catch {
        fatalError("not an EddyError: \(error)")
    }
    return 0
}
