#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Calendar inputs computed from a time column, each as a sine/cosine pair: known in the future, so forecasts can
/// use them past the end of the data.
public enum CalendarFeature: String, CaseIterable, Codable, Sendable {
    /// Hour of day (UTC), period 24 h.
    case hour
    /// Day of year, period 365.2425 days.
    case doy
    /// Day of week, period 7 days.
    case week

    var period: Double {
        switch self {
        case .hour: return 86_400
        case .doy: return 365.2425 * 86_400
        case .week: return 7 * 86_400
        }
    }

    public var inputNames: [String] { ["\(rawValue)_sin", "\(rawValue)_cos"] }

    /// The pair at a time in seconds since 1970 (UTC).
    public func values(at seconds: Double) -> (Double, Double) {
        var phase = seconds.truncatingRemainder(dividingBy: period) / period
        if phase < 0 { phase += 1 }
        return (sin(2 * Double.pi * phase), cos(2 * Double.pi * phase))
    }
}

/// Times in a time column: ISO 8601 (`2013-01-01T06:00:00Z`, `2013-01-01 06:00`, `2013-01-01`, with an optional
/// `Z` or `±hh:mm` offset; slashes for the dashes too, `2013/01/01 06:00`) become seconds since 1970-01-01 UTC; plain numbers are taken as they are.
public enum TimeParser {
    /// Whether a time text is a date (ISO 8601) rather than a plain number.
    public static func isDate(_ text: String) -> Bool { Double(text) == nil }

    /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days-from-civil).
    static func days(year y: Int, month mo: Int, day d: Int) -> Int {
        let yy = mo <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The proleptic Gregorian date (year, month 1…12, day 1…31) of days since 1970-01-01 (H. Hinnant's
    /// civil-from-days).
    static func civil(days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    /// `YYYY-MM-DDTHH:MM:SSZ` for seconds since 1970-01-01 UTC (whole seconds).
    public static func iso(_ seconds: Double) -> String {
        let total = Int((seconds).rounded(.down))
        var days = total / 86_400
        var rest = total % 86_400
        if rest < 0 { rest += 86_400; days -= 1 }
        let (y, m, d) = civil(days: days)
        func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(y)-\(two(m))-\(two(d))T\(two(rest / 3600)):\(two(rest / 60 % 60)):\(two(rest % 60))Z"
    }

    /// A time in a strftime-style `format`: `%Y` (4 digits), `%y` (2: 69…99 → 19xx, else 20xx), `%m`, `%d`, `%H`,
    /// `%M`, `%S` (1 or 2 digits each, `%S` with an optional fraction), `%b` (Jan…Dec, any case), `%z` (`Z`, `±hh`,
    /// `±hhmm` or `±hh:mm`), `%%`; any other character must match itself. Seconds since 1970-01-01 UTC; nil when
    /// the text does not match the whole format or a field is out of range.
    public static func seconds(_ text: String, format: String) -> Double? {
        let t = Array(text.utf8), f = Array(format.utf8)
        var i = 0, k = 0
        var y = 1970, mo = 1, d = 1, h = 0, mi = 0, s = 0.0, offset = 0
        func digits(_ most: Int) -> Int? {
            var v = 0, n = 0
            while n < most, i < t.count, t[i] >= 48, t[i] <= 57 { v = v * 10 + Int(t[i] - 48); i += 1; n += 1 }
            return n == 0 ? nil : v
        }
        while k < f.count {
            if f[k] == UInt8(ascii: "%"), k + 1 < f.count {
                let c = f[k + 1]
                k += 2
                switch c {
                case UInt8(ascii: "Y"): guard let v = digits(4) else { return nil }; y = v
                case UInt8(ascii: "y"): guard let v = digits(2) else { return nil }; y = v >= 69 ? 1900 + v : 2000 + v
                case UInt8(ascii: "m"): guard let v = digits(2) else { return nil }; mo = v
                case UInt8(ascii: "d"): guard let v = digits(2) else { return nil }; d = v
                case UInt8(ascii: "H"): guard let v = digits(2) else { return nil }; h = v
                case UInt8(ascii: "M"): guard let v = digits(2) else { return nil }; mi = v
                case UInt8(ascii: "S"):
                    guard let v = digits(2) else { return nil }
                    s = Double(v)
                    if i < t.count, t[i] == UInt8(ascii: ".") {
                        i += 1
                        var scale = 0.1
                        while i < t.count, t[i] >= 48, t[i] <= 57 { s += Double(t[i] - 48) * scale; scale /= 10; i += 1 }
                    }
                case UInt8(ascii: "b"):
                    guard i + 3 <= t.count else { return nil }
                    let name = String(decoding: t[i..<(i + 3)], as: UTF8.self).lowercased()
                    guard let m = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"].firstIndex(of: name) else { return nil }
                    mo = m + 1; i += 3
                case UInt8(ascii: "z"):
                    guard i < t.count else { return nil }
                    if t[i] == UInt8(ascii: "Z") { i += 1; offset = 0; break }
                    guard t[i] == UInt8(ascii: "+") || t[i] == UInt8(ascii: "-") else { return nil }
                    let sign = t[i] == UInt8(ascii: "+") ? 1 : -1
                    i += 1
                    let start = i
                    guard let oh = digits(2), i - start == 2 else { return nil }
                    if i < t.count, t[i] == UInt8(ascii: ":") { i += 1 }
                    let om = digits(2) ?? 0
                    offset = sign * (oh * 3600 + om * 60)
                case UInt8(ascii: "%"): guard i < t.count, t[i] == UInt8(ascii: "%") else { return nil }; i += 1
                default: return nil
                }
            } else {
                guard i < t.count, t[i] == f[k] else { return nil }
                i += 1; k += 1
            }
        }
        guard i == t.count, (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, s < 61 else { return nil }
        return Double(days(year: y, month: mo, day: d) * 86_400 + h * 3600 + mi * 60 - offset) + s
    }

    public static func seconds(_ text: String) -> Double? {
        if let v = Double(text) { return v }
        let b = Array(text.utf8)
        func number(_ from: Int, _ count: Int) -> Int? {
            guard from + count <= b.count else { return nil }
            var v = 0
            for i in from..<(from + count) {
                guard b[i] >= 48 && b[i] <= 57 else { return nil }
                v = v * 10 + Int(b[i] - 48)
            }
            return v
        }
        // Dashes (ISO 8601) or slashes (2010/01/01, as station exports write them), the same in both places.
        guard b.count >= 10, let y = number(0, 4), b[4] == 45 || b[4] == 47, let mo = number(5, 2), b[7] == b[4], let d = number(8, 2),
              (1...12).contains(mo), (1...31).contains(d) else { return nil }
        var h = 0, mi = 0
        var s = 0.0
        var i = 10
        if b.count > 10 {
            guard b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: " "), let hh = number(11, 2), b.count >= 16, b[13] == 58,
                  let mm = number(14, 2) else { return nil }
            h = hh; mi = mm
            i = 16
            if i < b.count, b[i] == 58 {
                guard let ss = number(i + 1, 2) else { return nil }
                s = Double(ss)
                i += 3
                if i < b.count, b[i] == UInt8(ascii: ".") {
                    var j = i + 1, scale = 0.1
                    while j < b.count, b[j] >= 48, b[j] <= 57 { s += Double(b[j] - 48) * scale; scale /= 10; j += 1 }
                    i = j
                }
            }
        }
        var offset = 0
        if i < b.count {
            if b[i] == UInt8(ascii: "Z") && i == b.count - 1 {
            } else if (b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-")), let oh = number(i + 1, 2) {
                let om = b.count >= i + 6 ? (number(i + 4, 2) ?? number(i + 3, 2) ?? 0) : (number(i + 3, 2) ?? 0)
                offset = (b[i] == UInt8(ascii: "+") ? 1 : -1) * (oh * 3600 + om * 60)
            } else {
                return nil
            }
        }
        return Double(days(year: y, month: mo, day: d) * 86_400 + h * 3600 + mi * 60 - offset) + s
    }
}

/// A parsed row before shaping: its episode, its time (when the data have a time column) and the selected values
/// (variables, angle columns already as sine/cosine, then inputs), NaN where missing.
struct RawRow {
    var episode: String
    var time: Double?
    var values: [Double]
    var line: Int
    /// The raw row's index in the dataset (`DataSpec.rawRows`); −1 where unknown.
    var source = -1
}

/// What `--fill-gaps` made up: rows interpolated, in how many gaps, and the longest gap (its rows, and the line,
/// or the time step of a NetCDF file, of the row that ends it).
public struct FillReport: Sendable, Equatable {
    public var rows = 0
    public var gaps = 0
    public var longest = 0
    public var longestEndsAt = 0
    public var longestTime: Double?
    public var longestPath = ""

    public init() {}

    public mutating func add(_ other: FillReport) {
        rows += other.rows
        gaps += other.gaps
        if other.longest > longest {
            (longest, longestEndsAt, longestTime, longestPath) = (other.longest, other.longestEndsAt, other.longestTime, other.longestPath)
        }
    }

    /// "3 rows in 2 gaps (the longest, 2 rows, before data.csv:41)", nil when nothing was filled.
    /// A time as it reads best: whole numbers without a decimal point.
    static func text(_ t: Double) -> String { t == t.rounded() && abs(t) < 1e15 ? "\(Int(t))" : "\(t)" }

    public var summary: String? {
        guard rows > 0 else { return nil }
        let time = longestTime.map { " (time \(FillReport.text($0)))" } ?? ""
        return "\(rows) row\(rows == 1 ? "" : "s") in \(gaps) gap\(gaps == 1 ? "" : "s") (the longest, \(longest) row\(longest == 1 ? "" : "s"), before \(longestPath):\(longestEndsAt)\(time))"
    }
}

/// Turns raw rows into blocks: a time window (`from`, `until`), segment breaks where time jumps or values are
/// missing, optional linear interpolation of gaps of at most `fillGaps` steps (counted and reported), and the
/// calendar inputs appended after the data's own inputs.
final class RowShaper {
    let path: String
    let width: Int
    let calendar: [CalendarFeature]
    let fillGaps: Int
    let from: Double?
    let until: Double?
    var dt: Double?
    let builder: BlockBuilder
    private(set) var fill = FillReport()
    var filledRows: Int { fill.rows }
    var filledGaps: Int { fill.gaps }
    /// Rows read into the shaper (inside the time window): filled rows may be at most as many.
    private(set) var rowsRead = 0
    /// Filled rows may run ahead of the rows read by this many while reading (a gap early in the data waits for the
    /// rows after it); at the end they may not exceed the rows read.
    static let fillSlack = 4096

    private var episode: String?
    private var last: (index: Int, time: Double?, values: [Double])?
    private var origin: Double?          // time of index 0 in the current segment
    private var pending: [Int: RawRow] = [:]
    private var counter = 0              // index for data without time
    private var source = -1              // the raw row being placed: every row it emits carries it
    /// Fills are counted (`fill`) for rows from this raw row on: a shard's history rows are another shard's to count.
    var countsFrom = Int.min

    init(path: String, width: Int, calendar: [CalendarFeature], fillGaps: Int, from: Double?, until: Double?, dt: Double?, blockRows: Int) {
        self.path = path
        self.width = width
        self.calendar = calendar
        self.fillGaps = fillGaps
        self.from = from
        self.until = until
        self.dt = dt
        builder = BlockBuilder(width: width + 2 * calendar.count, capacity: blockRows)
    }

    private func breakSegment() {
        builder.gap(episode: episode ?? "")
        last = nil
        origin = nil
        pending.removeAll()
    }

    func add(_ row: RawRow) throws {
        source = row.source
        if row.episode != episode {
            episode = row.episode
            breakSegment()
            counter = 0
        }
        if let t = row.time {
            if !t.isFinite {
                throw EddyError.at(path, line: row.line, "time \(t) is not a finite number; expected a date or a number")
            }
            if let f = from, t < f { breakSegment(); return }
            if let u = until, t >= u { breakSegment(); return }
        }
        rowsRead += 1
        // The row's position on the time axis of its segment.
        let index: Int
        if let t = row.time {
            if let prev = last?.time ?? pending.values.compactMap(\.time).max(), t <= prev {
                throw EddyError.at(path, line: row.line, "time \(Format.general(t, 10)) does not increase (previous row: \(Format.general(prev, 10))); rows of one episode must be in time order")
            }
            if dt == nil, let prev = last?.time {
                guard (t - prev).isFinite else {
                    throw EddyError.at(path, line: row.line, "the time step from \(Format.general(prev, 10)) to \(Format.general(t, 10)) is too large to represent")
                }
                dt = t - prev
            }
            guard let step = dt else {
                // The first row: its time sets the origin.
                origin = t
                index = 0
                return try place(row, index: index)
            }
            if origin == nil { origin = t }
            let exact = (t - origin!) / step
            let rounded = exact.rounded()
            // Off the grid of this segment, or further along it than steps can be counted: start a new one here.
            if !exact.isFinite || abs(rounded) > 1e15 || abs(exact - rounded) > 1e-6 * max(1, abs(rounded)) {
                breakSegment()
                origin = t
                index = 0
            } else {
                index = Int(rounded)
            }
        } else {
            counter += 1
            index = counter
        }
        try place(row, index: index)
    }

    private func place(_ row: RawRow, index: Int) throws {
        let complete = !row.values.contains { $0.isNaN }
        guard complete else {
            if last != nil && fillGaps > 0 && index - last!.index <= fillGaps { pending[index] = row } else { breakSegment() }
            return
        }
        if let l = last {
            let gap = index - l.index - 1
            if gap > 0 {
                if gap <= fillGaps {
                    if source >= countsFrom {
                        var after = fill
                        after.add({ var f = FillReport(); f.rows = gap; f.gaps = 1; f.longest = gap; f.longestEndsAt = row.line
                                    f.longestTime = row.time; f.longestPath = path; return f }())
                        // Refused before the rows are made: a gap of 10⁷ steps is not interpolated first.
                        if after.rows > rowsRead + RowShaper.fillSlack { throw tooMuchFilled(after) }
                        fill = after
                    }
                    // Linear interpolation between the last complete row and this one, keeping values that are present.
                    for j in 1...gap {
                        let w = Double(j) / Double(gap + 1)
                        var v = pending[l.index + j]?.values ?? [Double](repeating: .nan, count: width)
                        for c in 0..<width where v[c].isNaN { v[c] = l.values[c] + w * (row.values[c] - l.values[c]) }
                        let t = l.time.flatMap { lt in dt.map { lt + Double(j) * $0 } }
                        emit(v, time: t, line: pending[l.index + j]?.line ?? row.line)
                    }
                } else {
                    breakSegment()
                    if row.time != nil { origin = row.time; last = nil }
                    return try place(row, index: 0)
                }
            }
        }
        pending.removeAll()
        emit(row.values, time: row.time, line: row.line)
        last = (index, row.time, row.values)
    }

    private func emit(_ values: [Double], time: Double?, line: Int) {
        var out = values
        for f in calendar {
            let (s, c) = f.values(at: time ?? 0)
            out.append(s)
            out.append(c)
        }
        out.withUnsafeBufferPointer { builder.append($0, episode: episode ?? "", line: line, time: time, source: source) }
    }

    /// The end of the data: the last block, and the cap on filled rows (at most as many as were read).
    func finish() throws {
        builder.close()
        if fill.rows > rowsRead { throw tooMuchFilled(fill) }
    }

    private func tooMuchFilled(_ f: FillReport) -> EddyError {
        EddyError.at(path, line: f.longestEndsAt, "--fill-gaps \(fillGaps) would fill \(f.rows) rows in \(f.gaps) gap\(f.gaps == 1 ? "" : "s"), more than the \(rowsRead) rows read so far (at most as many rows are filled as read); the longest gap, \(f.longest) rows, ends here\(f.longestTime.map { " (time \(FillReport.text($0)))" } ?? ""); use a smaller --fill-gaps (longer gaps then split the trajectory)")
    }
}
