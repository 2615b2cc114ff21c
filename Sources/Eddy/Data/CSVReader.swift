#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Streams a CSV file with a header line: reads 1 MiB at a time, never the whole file (except with `pivot`, which
/// must align all rows on time). Missing values (`NA`, `NaN`, empty) end a segment unless a short gap is filled;
/// anything else that is not a finite number is an error naming the file, line and column. Hostile input gets a
/// message, never a crash: a UTF-8 byte-order mark before the header is skipped, header names must be distinct and
/// valid UTF-8, episode names and pivot keys must be valid UTF-8 (invalid bytes are refused, not replaced, so two
/// different byte strings never merge into one "�" episode), a line may hold at most `CSVFormat.maxLineBytes`
/// (each byte is scanned once), and a bad field is quoted by at most `CSVFormat.quotedCharacters` characters.
/// The line format itself is `CSVFormat`, which also parses bytes in memory.
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
    public var fill: FillReport { shaper.fill }

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
        lines = LineSplitter(file: file, path: spec.path)
        guard let headerLine = try lines.next() else {
            throw EddyError("\(spec.path): empty file; expected a header line naming the columns")
        }
        header = try CSVFormat.header(headerLine, path: spec.path)
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
        shaper.countsFrom = spec.rawRows?.lowerBound ?? .min
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
                    try shaper.finish()
                    continue
                }
                pivotIndex += 1
                try shaper.add(rows[pivotIndex - 1])
                continue
            }
            // A shard (`DataSpec.rawRows`; raw row i is line i + 2): stop at its end.
            if let window = spec.rawRows, lineNumber - 1 >= window.upperBound {
                done = true
                try shaper.finish()
                continue
            }
            // Lines before a shard's history are passed over unparsed and uncopied.
            if let window = spec.rawRows, lineNumber - 1 < window.lowerBound - spec.rawHistory {
                if try lines.skip() { lineNumber += 1; continue }
            }
            guard let line = try lines.next() else {
                done = true
                try shaper.finish()
                if lineNumber == 1 { throw EddyError("\(path): header only, no data rows") }
                continue
            }
            lineNumber += 1
            if CSVFormat.isBlank(line) { continue }
            let fields = try CSVReader.fields(line, lineNumber: lineNumber, header: header, path: path)
            var row = try CSVReader.parse(fields, lineNumber: lineNumber, selection: selection, header: header, path: path, counts: &counts)
            row.source = lineNumber - 2
            if dates == nil, row.time != nil, let t = selection.time {
                dates = selection.timeFormat != nil || TimeParser.isDate(CSVFormat.text(fields[t]))
            }
            try shaper.add(row)
        }
    }

    /// One line's fields, as many as the header has (counted before anything is allocated per field).
    static func fields(_ line: [UInt8], lineNumber: Int, header: [String], path: String) throws -> [ArraySlice<UInt8>] {
        let count = CSVFormat.fieldCount(line)
        if count != header.count {
            throw EddyError.at(path, line: lineNumber, "expected \(header.count) fields as in the header, found \(count)")
        }
        return CSVFormat.split(line)
    }

    /// One line into a raw row: angles as sine/cosine, NaN where missing.
    static func parse(_ line: [UInt8], lineNumber: Int, selection: ColumnSelection, header: [String], path: String,
                      counts: inout [Int]) throws -> RawRow {
        try parse(fields(line, lineNumber: lineNumber, header: header, path: path), lineNumber: lineNumber, selection: selection,
                  header: header, path: path, counts: &counts)
    }

    /// One line's fields into a raw row.
    static func parse(_ fields: [ArraySlice<UInt8>], lineNumber: Int, selection: ColumnSelection, header: [String], path: String,
                      counts: inout [Int]) throws -> RawRow {
        // Episode names are compared as text: bytes that are not UTF-8 would all read as U+FFFD and merge
        // different episodes, so they are refused.
        let episode = try selection.episode.map {
            try CSVFormat.name(fields[$0], path: path, line: lineNumber, column: $0 + 1, role: "episode name in column '\(CSVFormat.short(header[$0]))'")
        } ?? ""
        var time: Double?
        if let t = selection.time {
            let text = CSVFormat.text(fields[t])
            guard let v = selection.timeFormat.map({ TimeParser.seconds(text, format: $0) }) ?? TimeParser.seconds(text), v.isFinite else {
                let expected = selection.timeFormat.map { "in --time-format '\($0)'" } ?? "a date like 2013-01-01T06:00:00Z, 2013-01-01 06:00 or 2013/01/01 06:00 (or give --time-format), or a number"
                throw EddyError.at(path, line: lineNumber, column: t + 1, "cannot read '\(CSVFormat.short(text))' in time column '\(CSVFormat.short(header[t]))' as a time (expected \(expected))")
            }
            time = v
        }
        var values: [Double] = []
        values.reserveCapacity(counts.count)
        for c in selection.variables + selection.inputs {
            var v = Double.nan
            switch CSVFormat.number(fields[c]) {
            case .value(let x): v = x
            case .missing: break
            case .infinite(let text):
                throw EddyError.at(path, line: lineNumber, column: c + 1,
                                   "infinite value '\(text)' in column '\(CSVFormat.short(header[c]))'; expected a finite number (write NA for a missing value)")
            case .invalid(let text):
                throw EddyError.at(path, line: lineNumber, column: c + 1,
                                   "cannot read '\(text)' in column '\(CSVFormat.short(header[c]))' as a number")
            }
            if selection.angleColumns.contains(c) {
                if !v.isNaN && !(0...360).contains(v) {
                    throw EddyError.at(path, line: lineNumber, column: c + 1, "angle \(Format.general(v)) in column '\(CSVFormat.short(header[c]))' is outside [0, 360] degrees")
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
        while let line = try lines.next() {
            lineNumber += 1
            if CSVFormat.isBlank(line) { continue }
            let fields = try CSVReader.fields(line, lineNumber: lineNumber, header: header, path: path)
            let row = try parse(fields, lineNumber: lineNumber, selection: selection, header: header, path: path, counts: &counts)
            let k = try CSVFormat.name(fields[key], path: path, line: lineNumber, column: key + 1, role: "pivot key in column '\(CSVFormat.short(header[key]))'")
            keys.insert(k)
            if let earlier = byTime[row.time!]?[k] {
                throw EddyError.at(path, line: lineNumber, "the pivot on '\(CSVFormat.short(header[key]))' gives two rows for '\(CSVFormat.short(k))' at time \(Format.general(row.time!, 12)) (also line \(earlier.1)); each key needs one row per time")
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
}

/// The CSV format Eddy reads, over bytes in memory: the parser `CSVReader` uses line by line, and an entry point
/// (`parse`) that takes a whole buffer, for tests and fuzzers. Fields are split on commas outside double quotes;
/// a field's text has surrounding spaces trimmed, its outer quotes removed and doubled quotes (`""`) undone.
public enum CSVFormat {
    /// The longest line accepted (16 MiB): a longer one is not a CSV row (a binary file, a missing newline).
    public static let maxLineBytes = 16 << 20
    /// How many characters of a bad field an error message quotes.
    public static let quotedCharacters = 40

    /// A whole CSV text: the header names (checked as `CSVReader` checks them) and every non-blank row's field
    /// texts. Throws `EddyError` naming `path` and the line for a line over `maxLineBytes`, a bad header, a row
    /// whose field count differs from the header's, or a field that is not valid UTF-8.
    public static func parse(_ bytes: [UInt8], path: String = "<memory>", maxLineBytes: Int = maxLineBytes) throws
        -> (header: [String], rows: [[String]]) {
        var lines = LineSplitter(bytes: bytes, path: path, maxLineBytes: maxLineBytes)
        guard let first = try lines.next() else { throw EddyError("\(path): empty file; expected a header line naming the columns") }
        let header = try Self.header(first, path: path)
        var rows: [[String]] = []
        var number = 1
        while let line = try lines.next() {
            number += 1
            if isBlank(line) { continue }
            let count = fieldCount(line)
            if count != header.count {
                throw EddyError.at(path, line: number, "expected \(header.count) fields as in the header, found \(count)")
            }
            rows.append(try split(line).enumerated().map { c, f in
                try name(f, path: path, line: number, column: c + 1, role: "field in column '\(short(header[c]))'")
            })
        }
        return (header, rows)
    }

    /// The column names of a header line: a UTF-8 byte-order mark is skipped; names must be valid UTF-8 and
    /// distinct (each column is addressed by name), and not all empty.
    public static func header(_ line: [UInt8], path: String) throws -> [String] {
        var bytes = ArraySlice(line)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes = bytes.dropFirst(3) }
        var names: [String] = []
        var seen: [String: Int] = [:]
        var allEmpty = true
        try forEachField(bytes) { field in
            let column = names.count + 1
            let name = try Self.name(field, path: path, line: 1, column: column, role: "column name")
            if let earlier = seen[name] {
                throw EddyError.at(path, line: 1, "the header names column \(earlier) and column \(column) both '\(short(name))'; each column needs its own name")
            }
            seen[name] = column
            if !name.isEmpty { allEmpty = false }
            names.append(name)
        }
        if allEmpty { throw EddyError("\(path):1: empty header line; expected the column names") }
        return names
    }

    /// Whether a line holds nothing (or only a carriage return).
    public static func isBlank(_ line: [UInt8]) -> Bool {
        line.isEmpty || (line.count == 1 && line[0] == UInt8(ascii: "\r"))
    }

    /// Splits on commas outside double quotes; a trailing carriage return is dropped.
    public static func split(_ line: [UInt8]) -> [ArraySlice<UInt8>] {
        var fields: [ArraySlice<UInt8>] = []
        forEachField(line[...]) { fields.append($0) }
        return fields
    }

    /// The number of fields `split` would give, without allocating them.
    public static func fieldCount(_ line: [UInt8]) -> Int {
        var count = 1
        var quoted = false
        for b in line {
            if b == UInt8(ascii: "\"") { quoted.toggle() } else if b == UInt8(ascii: ","), !quoted { count += 1 }
        }
        return count
    }

    static func forEachField(_ line: ArraySlice<UInt8>, _ body: (ArraySlice<UInt8>) throws -> Void) rethrows {
        var start = line.startIndex
        var quoted = false
        for i in line.indices {
            let b = line[i]
            if b == UInt8(ascii: "\"") { quoted.toggle() }
            else if b == UInt8(ascii: ","), !quoted {
                try body(line[start..<i])
                start = i + 1
            }
        }
        var last = line[start...]
        if last.last == UInt8(ascii: "\r") { last = last.dropLast() }
        try body(last)
    }

    /// A field's bytes: spaces, tabs and a carriage return trimmed, outer quotes removed, doubled quotes undone.
    static func unquotedBytes(_ field: ArraySlice<UInt8>) -> [UInt8] {
        func isSpace(_ b: UInt8) -> Bool { b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") || b == UInt8(ascii: "\r") }
        var s = field
        while let f = s.first, isSpace(f) { s = s.dropFirst() }
        while let l = s.last, isSpace(l) { s = s.dropLast() }
        guard s.count >= 2, s.first == UInt8(ascii: "\""), s.last == UInt8(ascii: "\"") else { return Array(s) }
        s = s.dropFirst().dropLast()
        var out: [UInt8] = []
        out.reserveCapacity(s.count)
        var i = s.startIndex
        while i < s.endIndex {
            out.append(s[i])
            // "" inside quotes is one quote.
            if s[i] == UInt8(ascii: "\""), i + 1 < s.endIndex, s[i + 1] == UInt8(ascii: "\"") { i += 1 }
            i += 1
        }
        while let f = out.first, isSpace(f) { out.removeFirst() }
        while let l = out.last, isSpace(l) { out.removeLast() }
        return out
    }

    /// A field's text (`unquotedBytes`); bytes that are not UTF-8 read as U+FFFD. For values only, never names.
    public static func text(_ field: ArraySlice<UInt8>) -> String {
        String(decoding: unquotedBytes(field), as: UTF8.self)
    }

    /// A field used as a name (a column, an episode, a pivot key): its text, which must be valid UTF-8, since
    /// different invalid byte strings would all read as U+FFFD and be merged.
    static func name(_ field: ArraySlice<UInt8>, path: String, line: Int, column: Int, role: String) throws -> String {
        let bytes = unquotedBytes(field)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            let valid = bytes.prefix { $0 < 0x80 }
            let shown = valid.isEmpty ? "" : " (after '\(short(String(decoding: valid, as: UTF8.self)))')"
            throw EddyError.at(path, line: line, column: column, "the \(role) is not valid UTF-8 text\(shown); save the file as UTF-8")
        }
        return text
    }

    /// At most `quotedCharacters` characters of a text, with '…' when cut.
    public static func short(_ text: String) -> String {
        var count = 0
        var end = text.startIndex
        while end < text.endIndex, count < quotedCharacters { end = text.index(after: end); count += 1 }
        return end == text.endIndex ? text : String(text[..<end]) + "…"
    }

    enum Cell { case value(Double), missing, infinite(String), invalid(String) }

    /// A value field: a finite number, missing (`NA`, `NaN`, empty), infinite, or not a number (the text, cut short).
    static func number(_ field: ArraySlice<UInt8>) -> Cell {
        var s = field
        while let f = s.first, f == UInt8(ascii: " ") || f == UInt8(ascii: "\"") || f == UInt8(ascii: "\t") { s = s.dropFirst() }
        while let l = s.last, l == UInt8(ascii: " ") || l == UInt8(ascii: "\"") || l == UInt8(ascii: "\r") || l == UInt8(ascii: "\t") { s = s.dropLast() }
        if s.isEmpty { return .missing }
        if s.count <= 3 {
            let t = String(decoding: s, as: UTF8.self)
            if t == "NA" || t == "NaN" || t == "nan" || t == "NAN" { return .missing }
        }
        func shown() -> String { short(String(decoding: s.prefix(4 * quotedCharacters + 4), as: UTF8.self)) }
        // No number is longer than a few hundred characters; a longer field is not one (and is not copied).
        if s.count > 1024 { return .invalid(shown()) }
        var buffer = [CChar](repeating: 0, count: s.count + 1)
        for (i, b) in s.enumerated() { buffer[i] = CChar(bitPattern: b) }
        var end: UnsafeMutablePointer<CChar>?
        let v = buffer.withUnsafeMutableBufferPointer { p -> Double in
            let r = strtod(p.baseAddress!, &end)
            return end == p.baseAddress! + s.count ? r : .nan
        }
        if v.isNaN { return .invalid(shown()) }
        if v.isInfinite { return .infinite(shown()) }
        return .value(v)
    }
}

/// Splits a file (read a fixed-size buffer at a time) or bytes in memory into lines. Each byte is scanned once,
/// however long the line; a line longer than `maxLineBytes` is an error naming the file and line.
struct LineSplitter {
    let file: InputFile?
    let path: String
    let maxLineBytes: Int
    private var buffer: [UInt8] = []
    private var position = 0
    /// Bytes after `position` already known to hold no newline.
    private var scanned = 0
    private var eof = false
    /// Lines returned so far.
    private(set) var lineCount = 0

    init(file: InputFile, path: String, maxLineBytes: Int = CSVFormat.maxLineBytes) {
        self.file = file
        self.path = path
        self.maxLineBytes = maxLineBytes
    }

    init(bytes: [UInt8], path: String, maxLineBytes: Int = CSVFormat.maxLineBytes) {
        file = nil
        self.path = path
        self.maxLineBytes = maxLineBytes
        buffer = bytes
        eof = true
    }

    private func tooLong() -> EddyError {
        let limit = maxLineBytes % (1 << 20) == 0 ? "\(maxLineBytes >> 20) MiB" : "\(maxLineBytes) bytes"
        return EddyError.at(path, line: lineCount + 1, "line longer than \(limit), the most one CSV row may hold; is this a CSV file with one row per line?")
    }

    /// The offset in `buffer` of the next newline not yet scanned, if the buffer holds one.
    private func newline() -> Int? {
        let from = position + scanned
        return buffer.withUnsafeBufferPointer { p in
            guard from < p.count, let base = p.baseAddress,
                  let hit = memchr(base + from, Int32(UInt8(ascii: "\n")), p.count - from) else { return nil }
            return base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
        }
    }

    /// Passes over the next line without copying it (a shard's rows before its history); false at the end.
    mutating func skip() throws -> Bool {
        if let nl = newline() {
            if nl - position > maxLineBytes { throw tooLong() }
            position = nl + 1
            scanned = 0
            lineCount += 1
            return true
        }
        // No whole line in the buffer: `next` reads on (it copies this one line).
        return try next() != nil
    }

    mutating func next() throws -> [UInt8]? {
        while true {
            if let nl = newline() {
                if nl - position > maxLineBytes { throw tooLong() }
                let line = Array(buffer[position..<nl])
                position = nl + 1
                scanned = 0
                lineCount += 1
                return line
            }
            scanned = buffer.count - position
            if scanned > maxLineBytes { throw tooLong() }
            if eof {
                if position < buffer.count {
                    let line = Array(buffer[position...])
                    position = buffer.count
                    scanned = 0
                    lineCount += 1
                    return line
                }
                return nil
            }
            if position > 0 {
                buffer.removeFirst(position)
                position = 0
            }
            let chunk = file?.readBytes(1 << 20) ?? []
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
