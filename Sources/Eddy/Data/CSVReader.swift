#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Streams a CSV file with a header line: reads 1 MiB at a time, never the whole file.
/// Missing values (`NA`, `NaN`, empty) end a segment; anything else that is not a finite number is an error
/// naming the file, line and column.
public final class CSVReader: RowReader {
    public let path: String
    public let variableNames: [String]
    public let inputNames: [String]
    public private(set) var inferredDt: Double?
    public private(set) var validCounts: [Int]

    private let file: InputFile
    private let selection: ColumnSelection
    private let header: [String]
    private let builder: BlockBuilder
    private var lines: LineSplitter
    private var lineNumber = 1
    private var done = false
    private var row: [Double]
    private var firstTimes: [Double] = []
    private var firstEpisode: String?

    public init(spec: DataSpec) throws {
        path = spec.path
        file = try InputFile(path: spec.path)
        lines = LineSplitter(file: file)
        guard let headerLine = lines.next() else {
            throw EddyError("\(spec.path): empty file; expected a header line naming the columns")
        }
        header = CSVReader.split(headerLine).map { CSVReader.unquote($0).trimmedSpaces }
        if header.allSatisfy({ $0.isEmpty }) {
            throw EddyError("\(spec.path):1: empty header line; expected the column names")
        }
        selection = try ColumnSelection(header: header, spec: spec, path: spec.path)
        variableNames = selection.variableNames
        inputNames = selection.inputNames
        builder = BlockBuilder(width: selection.variables.count + selection.inputs.count, capacity: spec.blockRows)
        row = [Double](repeating: 0, count: selection.variables.count + selection.inputs.count)
        validCounts = [Int](repeating: 0, count: row.count)
    }

    public func next() throws -> RowBlock? {
        while true {
            if let block = builder.take() { return block }
            if done { return nil }
            guard let line = lines.next() else {
                done = true
                builder.close()
                if lineNumber == 1 { throw EddyError("\(path): header only, no data rows") }
                continue
            }
            lineNumber += 1
            if line.isEmpty || (line.count == 1 && line[0] == UInt8(ascii: "\r")) { continue }
            try parse(line)
        }
    }

    private func parse(_ line: [UInt8]) throws {
        let fields = CSVReader.split(line)
        if fields.count != header.count {
            throw EddyError.at(path, line: lineNumber, "expected \(header.count) fields as in the header, found \(fields.count)")
        }
        let episode = selection.episode.map { CSVReader.unquote(fields[$0]).trimmedSpaces } ?? ""
        var missing = false
        for (k, c) in (selection.variables + selection.inputs).enumerated() {
            switch CSVReader.number(fields[c]) {
            case .value(let v): row[k] = v; validCounts[k] += 1
            case .missing: missing = true
            case .infinite(let text):
                throw EddyError.at(path, line: lineNumber, column: c + 1,
                                   "infinite value '\(text)' in column '\(header[c])'; expected a finite number (write NA for a missing value)")
            case .invalid(let text):
                throw EddyError.at(path, line: lineNumber, column: c + 1,
                                   "cannot read '\(text)' in column '\(header[c])' as a number")
            }
        }
        if let t = selection.time, firstTimes.count < 2, !missing {
            if firstEpisode == nil { firstEpisode = episode }
            if episode == firstEpisode, case .value(let v) = CSVReader.number(fields[t]) {
                firstTimes.append(v)
                if firstTimes.count == 2, firstTimes[1] > firstTimes[0] { inferredDt = firstTimes[1] - firstTimes[0] }
            }
        }
        if missing {
            builder.gap(episode: episode)
        } else {
            row.withUnsafeBufferPointer { builder.append($0, episode: episode, line: lineNumber) }
        }
    }

    enum Cell { case value(Double), missing, infinite(String), invalid(String) }

    static func number(_ field: ArraySlice<UInt8>) -> Cell {
        var s = field
        while let f = s.first, f == UInt8(ascii: " ") || f == UInt8(ascii: "\"") { s = s.dropFirst() }
        while let l = s.last, l == UInt8(ascii: " ") || l == UInt8(ascii: "\"") || l == UInt8(ascii: "\r") { s = s.dropLast() }
        if s.isEmpty { return .missing }
        if s.count <= 3 {
            let t = String(decoding: s, as: UTF8.self)
            if t == "NA" || t == "NaN" || t == "nan" || t == "NAN" { return .missing }
        }
        var buffer = [CChar](repeating: 0, count: s.count + 1)
        for (i, b) in s.enumerated() { buffer[i] = CChar(bitPattern: b) }
        var end: UnsafeMutablePointer<CChar>?
        let v = buffer.withUnsafeMutableBufferPointer { p -> Double in
            let r = strtod(p.baseAddress!, &end)
            return end == p.baseAddress! + s.count ? r : .nan
        }
        if v.isNaN { return .invalid(String(decoding: s, as: UTF8.self)) }
        if v.isInfinite { return .infinite(String(decoding: s, as: UTF8.self)) }
        return .value(v)
    }

    /// Splits on commas outside double quotes.
    static func split(_ line: [UInt8]) -> [ArraySlice<UInt8>] {
        var fields: [ArraySlice<UInt8>] = []
        var start = 0
        var quoted = false
        for i in line.indices {
            let b = line[i]
            if b == UInt8(ascii: "\"") { quoted.toggle() }
            else if b == UInt8(ascii: ","), !quoted {
                fields.append(line[start..<i])
                start = i + 1
            }
        }
        var last = line[start...]
        if last.last == UInt8(ascii: "\r") { last = last.dropLast() }
        fields.append(last)
        return fields
    }

    static func unquote(_ field: ArraySlice<UInt8>) -> String {
        var s = field
        if s.first == UInt8(ascii: "\""), s.last == UInt8(ascii: "\""), s.count >= 2 { s = s.dropFirst().dropLast() }
        return String(decoding: s, as: UTF8.self)
    }
}

/// Splits a file into lines, reading a fixed-size buffer at a time.
struct LineSplitter {
    let file: InputFile
    private var buffer: [UInt8] = []
    private var position = 0
    private var eof = false

    init(file: InputFile) { self.file = file }

    mutating func next() -> [UInt8]? {
        while true {
            if let nl = buffer[position...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(buffer[position..<nl])
                position = nl + 1
                return line
            }
            if eof {
                if position < buffer.count {
                    let line = Array(buffer[position...])
                    position = buffer.count
                    return line
                }
                return nil
            }
            buffer.removeFirst(position)
            position = 0
            let chunk = file.readBytes(1 << 20)
            if chunk.isEmpty { eof = true } else { buffer += chunk }
        }
    }
}

extension String {
    var trimmedSpaces: String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" || s.last == "\r" { s = s.dropLast() }
        return String(s)
    }
}
