// libFuzzer harness for the CSV line format (`CSVFormat.parse`, the code `CSVReader` reads every line with).
// Every input must either parse or throw EddyError: a trap, crash or hang is a finding.
import Eddy

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCSV(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    do {
        // A small line cap so that the cap's own path is reached by short inputs too.
        let (header, rows) = try CSVFormat.parse(bytes, path: "fuzz.csv", maxLineBytes: 512)
        precondition(rows.allSatisfy { $0.count == header.count })
    } catch is EddyError {
    } catch {
        fatalError("not an EddyError: \(error)")
    }
    return 0
}
