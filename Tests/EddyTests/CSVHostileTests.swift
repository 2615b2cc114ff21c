import EddyTestSupport
import Foundation
import Testing
@testable import Eddy

/// The CSV line format over bytes in memory (`CSVFormat.parse`, the parser the reader uses): hostile bytes give an
/// `EddyError` naming the place, never a crash, and long lines cost linear time.
@Suite("CSV format: hostile bytes")
struct CSVHostileTests {
    func message(_ bytes: [UInt8], maxLineBytes: Int = CSVFormat.maxLineBytes) -> String? {
        do {
            _ = try CSVFormat.parse(bytes, path: "mem.csv", maxLineBytes: maxLineBytes)
            return nil
        } catch let e as EddyError {
            return e.message
        } catch {
            return "unexpected \(error)"
        }
    }

    @Test func byteOrderMarkQuotesAndBlankLines() throws {
        let (header, rows) = try CSVFormat.parse([0xEF, 0xBB, 0xBF] + Array("a, \"b,c\" \r\n1,\"say \"\"hi\"\"\"\r\n\r\n\n2,3".utf8))
        #expect(header == ["a", "b,c"])
        #expect(rows == [["1", "say \"hi\""], ["2", "3"]])
    }

    @Test func duplicateAndInvalidNames() {
        #expect(message(Array("x,y,x\n1,2,3\n".utf8))?.contains("mem.csv:1: the header names column 1 and column 3 both 'x'") == true)
        #expect(message(Array(",,\n".utf8))?.contains("column 1 and column 2") == true)
        #expect(message(Array(" , \n".utf8)) != nil)
        #expect(message([0x61, 0xC3] + Array(",b\n".utf8))?.contains("mem.csv:1:1:") == true)
        // Two different invalid byte strings never read as the same name.
        #expect(message(Array("e\n".utf8) + [0xFF, 0x0A, 0xFE, 0x0A])?.contains("mem.csv:2:1:") == true)
        #expect(message(Array("a,b\n1\n".utf8))?.contains("mem.csv:2: expected 2 fields as in the header, found 1") == true)
        #expect(message([])?.contains("empty file") == true)
    }

    @Test func lineLengthIsCapped() throws {
        let limit = 1 << 10
        #expect(message(Array("a\n".utf8) + [UInt8](repeating: 0x31, count: limit + 1) + [0x0A], maxLineBytes: limit)?
            .contains("mem.csv:2: line longer than 1024 bytes") == true)
        #expect(message(Array("a\n".utf8) + [UInt8](repeating: 0x31, count: limit + 1), maxLineBytes: limit)?.contains("mem.csv:2:") == true)
        #expect(message(Array("a\n".utf8) + [UInt8](repeating: 0x31, count: limit) + [0x0A], maxLineBytes: limit) == nil)
    }

    /// A line of 12 MiB read from a file in 1 MiB chunks is scanned once, not once per chunk.
    @Test func longLineFromAFileIsReadInLinearTime() throws {
        let dir = try scratch("csv-hostile")
        let path = dir + "/long.csv"
        var bytes = Array("a,b\n".utf8) + [UInt8](repeating: UInt8(ascii: "1"), count: 12 << 20) + Array(",2\n3,4\n".utf8)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        bytes = []
        var lines = LineSplitter(file: try InputFile(path: path), path: path)
        let start = Date()
        var lengths: [Int] = []
        while let line = try lines.next() { lengths.append(line.count) }
        #expect(lengths == [3, (12 << 20) + 2, 3])
        #expect(Date().timeIntervalSince(start) < 20)
    }

    @Test func messagesQuoteShortPrefixes() {
        let long = String(repeating: "é", count: 100)
        #expect(CSVFormat.short(long) == String(repeating: "é", count: 40) + "…")
        #expect(CSVFormat.short("abc") == "abc")
        if case .invalid(let text) = CSVFormat.number(ArraySlice(Array(String(repeating: "z", count: 1 << 20).utf8))) {
            #expect(text == String(repeating: "z", count: 40) + "…")
        } else {
            Issue.record("a megabyte of z is not a number")
        }
    }

    /// Random bytes (commas, quotes, newlines, BOMs, invalid UTF-8 heavy): parse returns or throws, never traps.
    @Test func randomBytesNeverCrash() {
        var rng = SeededGenerator(seed: 7, stream: "csv.fuzz")
        let alphabet: [UInt8] = [0x2C, 0x22, 0x0A, 0x0D, 0x20, 0x61, 0x62, 0x31, 0x2E, 0xEF, 0xBB, 0xBF, 0xFF, 0xC3, 0x80, 0x00]
        var parsed = 0
        for _ in 0..<3000 {
            let n = Int(rng.next() % 64)
            let bytes = (0..<n).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }
            if (try? CSVFormat.parse(bytes, maxLineBytes: 16)) != nil { parsed += 1 }
        }
        #expect(parsed > 0)
    }
}
