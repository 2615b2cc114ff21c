#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Streams a CSV file with a header line: reads 1 MiB at a time, never the whole file (except with `pivot`, which
/// must align all rows on time). Missing values (`NA`, `NaN`, empty) end a segment unless a short gap is filled;
/// anything else that is not a finite number is an error naming the file, line and column.
public final class CSVReader: RowReader {
    public let path: String
    public let variableNames: [String]
    public let inputNames: [String]
    public var inferredDt: Double? { shaper.dt }
    public var validCounts: [Int] { counts + [Int](repeating: emitted, count: 2 * spec.calendar.count) }
    /// Rows filled by interpolation (with `fillGaps`), and in how many gaps.
    public var filledRows: Int { shaper.filledRows }
    /// Whether the time column holds dates (ISO 8601) rather than plain numbers.
    public var timesAreDates: Bool { dates ?? false }
    private var dates: Bool?          // decided on the first row with a time
    public var filledGaps: Int { shaper.filledGaps }

    private let spec: DataSpec
    private let file: InputFile
    private let selection: ColumnSelection
    private let header: [String]
    private let shaper: RowShaper
    private var lines: LineSplitter
    private var lineNumber = 1
    private var done = false
    private var counts: [Int]
    private var emitted = 0
    /// With `pivot`: the joint rows in time order, served from memory.
    private var pivoted: [RawRow]?
    private var pivotIndex = 0

    public init(spec: DataSpec) throws {
        self.spec = spec
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
        let rawWidth = selection.variableNames.count + selection.inputNames.count
        counts = [Int](repeating: 0, count: rawWidth)
        if spec.pivot != nil {
            if spec.episodeColumn != nil { throw EddyError("\(spec.path): --pivot and --episode-column exclude each other (the pivot joins the episodes into one trajectory)") }
            guard selection.time != nil else { throw EddyError("\(spec.path): --pivot aligns rows on time; name the time column with --time-column") }
            var splitter = lines, number = 1, rawCounts = counts
            let (rows, keys) = try CSVReader.pivot(lines: &splitter, lineNumber: &number, selection: selection, header: header, spec: spec,
                                                   path: spec.path, counts: &rawCounts)
            lines = splitter
            lineNumber = number
            pivoted = rows
            let n = selection.variableNames.count
            let names = selection.variableNames
            variableNames = keys.flatMap { key in names.map { "\($0)@\(key)" } }
            inputNames = selection.inputNames + spec.calendar.flatMap(\.inputNames)
            // Counts per joint column are those of the underlying variable; inputs keep theirs.
            counts = keys.flatMap { _ in Array(rawCounts[0..<n]) } + Array(rawCounts[n...])
            shaper = RowShaper(path: spec.path, width: keys.count * n + selection.inputNames.count, calendar: spec.calendar,
                               fillGaps: spec.fillGaps, from: spec.from, until: spec.until, dt: spec.dt, blockRows: spec.blockRows)
        } else {
            variableNames = selection.variableNames
            inputNames = selection.inputNames + spec.calendar.flatMap(\.inputNames)
            shaper = RowShaper(path: spec.path, width: rawWidth, calendar: spec.calendar, fillGaps: spec.fillGaps,
                               from: spec.from, until: spec.until, dt: spec.dt, blockRows: spec.blockRows)
        }
    }

    public func next() throws -> RowBlock? {
        while true {
            if let block = shaper.builder.take() {
                emitted += block.rowCount
                return block
            }
            if done { return nil }
            if let rows = pivoted {
                if pivotIndex >= rows.count {
                    done = true
                    pivoted = []
                    shaper.finish()
                    continue
                }
                pivotIndex += 1
                try shaper.add(rows[pivotIndex - 1])
                continue
            }
            guard let line = lines.next() else {
                done = true
                shaper.finish()
                if lineNumber == 1 { throw EddyError("\(path): header only, no data rows") }
                continue
            }
            lineNumber += 1
            if line.isEmpty || (line.count == 1 && line[0] == UInt8(ascii: "\r")) { continue }
            let row = try CSVReader.parse(line, lineNumber: lineNumber, selection: selection, header: header, path: path, counts: &counts)
            if dates == nil, row.time != nil, let t = selection.time {
                dates = TimeParser.isDate(CSVReader.unquote(CSVReader.split(line)[t]).trimmedSpaces)
            }
            try shaper.add(row)
        }
    }

    /// One line into a raw row: angles as sine/cosine, NaN where missing.
    static func parse(_ line: [UInt8], lineNumber: Int, selection: ColumnSelection, header: [String], path: String,
                      counts: inout [Int]) throws -> RawRow {
        let fields = CSVReader.split(line)
        if fields.count != header.count {
            throw EddyError.at(path, line: lineNumber, "expected \(header.count) fields as in the header, found \(fields.count)")
        }
        let episode = selection.episode.map { CSVReader.unquote(fields[$0]).trimmedSpaces } ?? ""
        var time: Double?
        if let t = selection.time {
            let text = CSVReader.unquote(fields[t]).trimmedSpaces
            guard let v = TimeParser.seconds(text), v.isFinite else {
                throw EddyError.at(path, line: lineNumber, column: t + 1, "cannot read '\(text)' in time column '\(header[t])' as a time (expected ISO 8601 like 2013-01-01T06:00:00Z, or a number)")
            }
            time = v
        }
        var values: [Double] = []
        values.reserveCapacity(counts.count)
        for c in selection.variables + selection.inputs {
            var v = Double.nan
            switch CSVReader.number(fields[c]) {
            case .value(let x): v = x
            case .missing: break
            case .infinite(let text):
                throw EddyError.at(path, line: lineNumber, column: c + 1,
                                   "infinite value '\(text)' in column '\(header[c])'; expected a finite number (write NA for a missing value)")
            case .invalid(let text):
                throw EddyError.at(path, line: lineNumber, column: c + 1,
                                   "cannot read '\(text)' in column '\(header[c])' as a number")
            }
            if selection.angleColumns.contains(c) {
                if !v.isNaN && !(0...360).contains(v) {
                    throw EddyError.at(path, line: lineNumber, column: c + 1, "angle \(Format.general(v)) in column '\(header[c])' is outside [0, 360] degrees")
                }
                let r = v * Double.pi / 180
                values.append(sin(r))
                values.append(cos(r))
            } else {
                values.append(v)
            }
            if !v.isNaN {
                counts[values.count - 1] += 1
                if selection.angleColumns.contains(c) { counts[values.count - 2] += 1 }
            }
        }
        return RawRow(episode: episode, time: time, values: values, line: lineNumber)
    }

    /// Reads every row and joins the values of each pivot key on time: one row per time, the variables of every
    /// key in key order (missing keys as NaN), then the inputs (which must agree across keys at a time).
    static func pivot(lines: inout LineSplitter, lineNumber: inout Int, selection: ColumnSelection, header: [String], spec: DataSpec,
                      path: String, counts: inout [Int]) throws -> ([RawRow], [String]) {
        let key = selection.pivot!
        var byTime: [Double: [String: (RawRow, Int)]] = [:]
        var keys = Set<String>()
        while let line = lines.next() {
            lineNumber += 1
            if line.isEmpty || (line.count == 1 && line[0] == UInt8(ascii: "\r")) { continue }
            let fields = CSVReader.split(line)
            let row = try parse(line, lineNumber: lineNumber, selection: selection, header: header, path: path, counts: &counts)
            let k = CSVReader.unquote(fields[key]).trimmedSpaces
            keys.insert(k)
            if let earlier = byTime[row.time!]?[k] {
                throw EddyError.at(path, line: lineNumber, "the pivot on '\(header[key])' gives two rows for '\(k)' at time \(Format.general(row.time!, 12)) (also line \(earlier.1)); each key needs one row per time")
            }
            byTime[row.time!, default: [:]][k] = (row, lineNumber)
        }
        if lineNumber == 1 { throw EddyError("\(path): header only, no data rows") }
        let ordered = keys.sorted()
        let n = selection.variableNames.count, m = selection.inputNames.count
        var rows: [RawRow] = []
        rows.reserveCapacity(byTime.count)
        for t in byTime.keys.sorted() {
            let atTime = byTime[t]!
            var values: [Double] = []
            for k in ordered {
                if let (r, _) = atTime[k] { values += r.values[0..<n] } else { values += [Double](repeating: .nan, count: n) }
            }
            var inputs = [Double](repeating: .nan, count: m)
            for (r, _) in atTime.values { for j in 0..<m where inputs[j].isNaN { inputs[j] = r.values[n + j] } }
            rows.append(RawRow(episode: "", time: t, values: values + inputs, line: atTime.values.map(\.1).min()!))
        }
        return (rows, ordered)
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
