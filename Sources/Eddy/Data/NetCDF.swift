import CNetCDF
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// libnetcdf (and the HDF5 beneath it) is not thread-safe: every call into it, here and in tests that write
/// files, holds this process-wide lock.
public enum NetCDFLibrary {
    nonisolated(unsafe) private static let mutex: UnsafeMutablePointer<pthread_mutex_t> = {
        let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(m, nil)
        // Every libnetcdf call holds the lock, so this runs before HDF5 starts.
        skipHDF5Termination()
        return m
    }()

    /// HDF5 installs an exit handler that closes every HDF5 object still open. When the disk fills (or a file-size
    /// limit is hit) while a netCDF-4 file is written, the flush inside `nc_close` fails and libnetcdf leaves the file
    /// and its datasets open, half closed (HDF5 still counts 1 file and 14 objects for `generate tracer`'s file);
    /// `nc_abort` fails the same way. At exit that handler closes them again and dereferences a null pointer in
    /// `H5F__close_cb` (HDF5 1.10.8): the error was printed, then the process segfaulted. Eddy closes (or, on an
    /// error, aborts) every file it opens itself, and a half-closed one is to be discarded anyway, so the handler
    /// has nothing to do: `H5dont_atexit`, called before HDF5's first use, turns it off. HDF5 is found at run time
    /// among the loaded libraries (as `silenceHDF5` finds it); without it this does nothing.
    static func skipHDF5Termination() {
        typealias DontAtExit = @convention(c) () -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "H5dont_atexit") else { return }
        _ = unsafeBitCast(symbol, to: DontAtExit.self)()
    }

    public static func lock() { pthread_mutex_lock(mutex) }
    public static func unlock() { pthread_mutex_unlock(mutex) }

    /// Turns off HDF5's automatic error printing (libnetcdf 4.9 with HDF5 1.10 prints harmless `HDF5-DIAG` traces
    /// when it opens netCDF-4 files; the errors that matter come back as netCDF status codes). HDF5 is found at run
    /// time among the libraries already loaded, so nothing more is linked; without it this does nothing.
    static func silenceHDF5() {
        typealias SetAuto = @convention(c) (Int64, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "H5Eset_auto2") else { return }
        _ = unsafeBitCast(symbol, to: SetAuto.self)(0, nil, nil)   // H5E_DEFAULT, no printer
    }

    public static func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }
}
/// Streams gridded fields from one NetCDF file, or from several joined along time, (classic or netCDF-4, through
/// `libnetcdf`) as one trajectory named `"0"`: the state at each time is the flattened selection of the chosen
/// variables, read one time step at a time (`nc_get_vara_double`), so memory grows neither with the number of time
/// steps nor with the number of files.
///
/// - Files: `spec.path` is a `.nc` file, a directory of `.nc` files, a glob (`era5_*.nc`) or a comma-separated list
///   (`NetCDFReader.files(_:)`). Several files are one dataset: ordered by their first time (not by their names),
///   checked to share the variables, the grid and the units (the first file that differs is named), their time
///   ranges may not overlap, and the step from one file to the next is like any other (a gap splits the trajectory
///   or is filled with `fillGaps`). They are opened one after another.
/// - Time: `spec.ncTime` (a dimension, or a 1-D variable and its dimension), else a dimension named `time` or
///   `valid_time`, else the dimension of a 1-D variable with CF `axis: T` or `standard_name: time`, else the
///   unlimited dimension. When its coordinate variable has CF units `UNIT since DATE` (UNIT: seconds, minutes, hours
///   or days; calendar standard, gregorian or proleptic_gregorian), times become seconds since 1970-01-01 UTC (so
///   `dt`, calendar inputs and `from`/`until` work as for a CSV time column). Other units (`Month`, `days`, `months
///   since …`, a 360-day calendar) are never read as dates: the values are used as plain numbers, with a warning
///   (`warnings`), and calendar inputs are refused. Without a coordinate variable the steps are simply counted.
///   Times that are not evenly spaced are reported in `warnings` (how many jumps, the first one).
/// - Variables: `spec.ncVariables`, or every numeric variable with the time dimension that is not a coordinate
///   variable, in the file's order.
/// - Levels: `spec.ncLevels` picks indices along a dimension named `level`, `lev`, `plev`, `pressure_level` or
///   `isobaricInhPa`. Box: `spec.ncBox` keeps the latitudes and longitudes inside, by the 1-D coordinate variables.
/// - Coordinates: a dimension's coordinate variable is the 1-D variable of the same name; else one named by a chosen
///   variable's CF `coordinates` attribute; else the 1-D variable along it with `units` `degrees_north`/`degrees_east`
///   (or `standard_name` `latitude`/`longitude`). Such a latitude or longitude names its grid points `lat=`/`lon=`
///   (by the coordinate variable's name when that is `lat`, `latitude`, `lon` or `longitude`), so boxes, area weights
///   and the gridded scores find it.
/// - Missing: values equal to `_FillValue` or `missing_value` (or, for float and double variables without
///   `_FillValue`, the netCDF default fill), and NaN; a time step with any missing value splits the trajectory
///   (or is filled, see `fillGaps`). `scale_factor` and `add_offset` are applied.
///
/// Variable names and order: variable by variable (in the order above), then the variable's other dimensions in
/// the file's order (C order: the last dimension varies fastest), e.g. `t[level=500:lat=40.5:lon=280]`, each
/// dimension as `NAME=VALUE` with the coordinate value (`NAME=#i`, the index, where the dimension has no 1-D
/// coordinate variable: never mistaken for a coordinate, e.g. a latitude), joined by `:`; a variable with only the time dimension is named as it is. `spec.columns` and
/// `spec.inputs` may select among these names.
///
/// Rows are numbered across the files (`RawRow.line`, 0 at the first step of the first file); `position(ofRow:)`
/// finds the file and step of a row, for a reader that starts further on.
public final class NetCDFReader: RowReader {
    public let path: String
    public let variableNames: [String]
    public let inputNames: [String]
    public var inferredDt: Double? { shaper.dt }
    /// Valid values per selected element, then the calendar inputs (valid in every time step read).
    public var validCounts: [Int] { counts + [Int](repeating: stepsRead, count: 2 * calendarCount) }
    private var counts: [Int]
    private let calendarCount: Int
    /// Times came from CF units `UNIT since DATE` (seconds since 1970).
    public let timesAreDates: Bool
    public var filledRows: Int { shaper.filledRows }
    public var filledGaps: Int { shaper.filledGaps }
    public var fill: FillReport { shaper.fill }
    /// What the reader noticed about the data: time units read as plain numbers, irregular time steps.
    public let warnings: [String]
    /// Every flattened element in the documented order (before `columns`/`inputs` pick among them).
    public let elementNames: [String]
    /// The number of time steps in all files.
    public let steps: Int
    /// The files, in time order, with their numbers of steps.
    public let files: [(path: String, steps: Int)]
    /// The text attributes (`units`, `long_name`, `standard_name`, …) of the chosen variables and of the coordinate
    /// variables of their grid dimensions (by the name used in the element names), as the first file has them.
    public let attributes: NetCDFAttributes

    static let levelNames: Set<String> = ["level", "lev", "plev", "pressure_level", "isobaricinhpa"]
    static let latNames: Set<String> = ["lat", "latitude"]
    static let lonNames: Set<String> = ["lon", "longitude"]
    static let timeNames = ["time", "valid_time"]

    private let spec: DataSpec
    private var current: NetCDFFile?
    private var fileIndex = 0
    private var stepInFile = 0
    private var row = 0
    private var stepsRead = 0
    private let shaper: RowShaper
    /// One past the last row read (`steps`, or the end of `DataSpec.rawRows`).
    private var end = 0
    private var ended = false

    public init(spec: DataSpec) throws {
        path = spec.path
        self.spec = spec
        let paths = try NetCDFReader.files(spec.path)
        // The files in time order, each checked against the first; only the first stays open.
        var opened: [(file: NetCDFFile?, path: String, steps: Int, first: Double?, last: Double?)] = []
        var reference: NetCDFFile?
        for p in paths {
            let f = try NetCDFFile(path: p, spec: spec)
            if let r = reference {
                try f.checkMatches(r)
                opened.append((nil, p, f.steps, f.times?.first, f.times?.last))
                f.close()
            } else {
                reference = f
                opened.append((f, p, f.steps, f.times?.first, f.times?.last))
            }
        }
        let first = reference!
        if paths.count > 1 {
            for o in opened where o.first == nil {
                throw EddyError("\(o.path): no time coordinate variable '\(first.timeName)'; the files of a multi-file dataset are joined in the order of their times")
            }
            opened.sort { $0.first! < $1.first! }
            for (a, b) in zip(opened, opened.dropFirst()) where b.first! <= a.last! {
                throw EddyError("\(b.path): its times (from \(first.describe(time: b.first!))) overlap those of \(a.path) (until \(first.describe(time: a.last!))); the files of a dataset must follow one another in time")
            }
        }
        files = opened.map { ($0.path, $0.steps) }
        steps = opened.reduce(0) { $0 + $1.steps }
        variableNames = first.variableNames
        inputNames = first.inputNames + spec.calendar.flatMap(\.inputNames)
        elementNames = first.elementNames
        timesAreDates = first.timesAreDates
        attributes = first.attributes
        calendarCount = spec.calendar.count
        counts = [Int](repeating: 0, count: first.picked.count)
        if first.times == nil && (!spec.calendar.isEmpty || spec.from != nil || spec.until != nil) {
            throw EddyError("\(first.path): calendar inputs and --from/--until need a time coordinate variable '\(first.timeName)', which the file lacks")
        }
        if !spec.calendar.isEmpty && first.times != nil && !first.timesAreDates {
            throw EddyError("\(first.path): calendar inputs need dates, and the time variable '\(first.timeName)' has units '\(first.timeUnits ?? "")', which are not 'UNIT since DATE' in a standard calendar; leave out --calendar, name another time variable with --nc-time, or give the file CF units (e.g. 'days since 2000-01-01')")
        }
        // Irregular steps, over all files in order (the files' times were read to order them; read again here one
        // file at a time, so only one file's times are held).
        var w = first.warnings
        if let irregular = try NetCDFReader.irregularity(files: opened.map { ($0.file, $0.path) }, spec: spec, reference: first) { w.append(irregular) }
        warnings = w
        current = opened.first { $0.file != nil }?.file
        if opened.first?.file == nil { current?.close(); current = nil }
        shaper = RowShaper(path: path, width: first.picked.count, calendar: spec.calendar, fillGaps: spec.fillGaps,
                           from: spec.from, until: spec.until, dt: spec.dt, blockRows: spec.blockRows)
        // A shard (`DataSpec.rawRows`, rows counted across the files) starts its history rows on and stops at its end.
        end = steps
        if let window = spec.rawRows {
            let lo = min(steps, max(0, window.lowerBound - spec.rawHistory))
            end = max(lo, min(steps, window.upperBound))
            shaper.countsFrom = window.lowerBound
            if lo > 0 {
                current?.close()
                current = nil
                (fileIndex, stepInFile) = position(ofRow: lo) ?? (files.count, 0)
                row = lo
            }
        }
    }

    /// The file (index into `files`) and the step within it of row `row` counted across the files.
    public func position(ofRow row: Int) -> (file: Int, step: Int)? {
        var r = row
        for (i, f) in files.enumerated() {
            if r < f.steps { return (i, r) }
            r -= f.steps
        }
        return nil
    }

    public func next() throws -> RowBlock? {
        while true {
            if let block = shaper.builder.take() { return block }
            if row >= end && !ended {
                // The end of a shard before the end of the data.
                ended = true
                current?.close()
                current = nil
                try shaper.finish()
                continue
            }
            if fileIndex == files.count || ended { return nil }
            if current == nil { current = try NetCDFFile(path: files[fileIndex].path, spec: spec) }
            let file = current!
            let values = try file.row(at: stepInFile)
            for (k, v) in values.enumerated() where !v.isNaN { counts[k] += 1 }
            try shaper.add(RawRow(episode: "0", time: file.times?[stepInFile], values: values, line: row, source: row))
            row += 1
            stepsRead += 1
            stepInFile += 1
            if stepInFile == file.steps {
                file.close()
                current = nil
                stepInFile = 0
                fileIndex += 1
                if fileIndex == files.count { ended = true; try shaper.finish() }
            }
        }
    }

    /// The files `path` names: a directory's `.nc` files, the files a glob (`*`, `?`, `[`) matches, a comma-separated
    /// list, or the path itself. Sorted by name here; the reader orders them by time.
    public static func files(_ path: String) throws -> [String] {
        if FileSystem.isDirectory(path) {
            let all = try FileSystem.files(in: path)
            let nc = all.filter { $0.lowercased().hasSuffix(".nc") }
            if nc.isEmpty { throw EddyError("\(path): the directory holds no .nc files") }
            return nc
        }
        if FileSystem.exists(path) { return [path] }
        if path.contains(",") {
            let list = path.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmedSpaces }
            if let empty = list.firstIndex(where: \.isEmpty) { throw EddyError("\(path): item \(empty + 1) of the list of files is empty") }
            for f in list where !FileSystem.exists(f) { throw EddyError("\(f): no such file (in the list \(path))") }
            for f in list where FileSystem.isDirectory(f) { throw EddyError("\(f): is a directory (in the list \(path)); list files, or give the directory alone") }
            if Set(list).count != list.count { throw EddyError("\(path): a file is listed twice") }
            return list
        }
        if path.contains(where: { "*?[".contains($0) }) {
            var g = glob_t()
            defer { globfree(&g) }
            let status = glob(path, 0, nil, &g)
            if status == GLOB_NOMATCH { throw EddyError("\(path): no file matches") }
            if status != 0 { throw EddyError("\(path): cannot expand the pattern (glob error \(status))") }
            var out: [String] = []
            for i in 0..<Int(g.gl_pathc) { if let p = g.gl_pathv[i] { out.append(String(cString: p)) } }
            out = out.filter { !FileSystem.isDirectory($0) }.sorted()
            if out.isEmpty { throw EddyError("\(path): no file matches") }
            return out
        }
        throw EddyError("\(path): no such file")
    }

    /// Whether `path` names NetCDF data: a `.nc` file, a directory holding `.nc` files, or a glob or list of them.
    public static func names(_ path: String) -> Bool {
        if FileSystem.isDirectory(path) {
            return ((try? FileSystem.files(in: path)) ?? []).contains { $0.lowercased().hasSuffix(".nc") }
        }
        if path.lowercased().hasSuffix(".nc") { return true }
        if FileSystem.exists(path) { return false }
        return path.split(separator: ",").contains { $0.lowercased().trimmedSpaces.hasSuffix(".nc") }
    }

    /// A warning when the times are not evenly spaced: with `spec.dt` (else the first step) as the step, the jumps
    /// that skip whole steps (gaps: they split the trajectory, or `--fill-gaps` fills them) and those off the grid
    /// (they start a new segment), counted over all files in order, with the first one.
    static func irregularity(files: [(file: NetCDFFile?, path: String)], spec: DataSpec, reference: NetCDFFile) throws -> String? {
        var dt = spec.dt
        var previous: Double?
        var gaps = 0, offGrid = 0, steps = 0
        // Every step a whole number of calendar months (28–31 days each): monthly data, which --nc-months steps by.
        var monthly = reference.timesAreDates
        var firstJump: String?
        for (f, p) in files {
            let file = try f ?? NetCDFFile(path: p, spec: spec)
            defer { if f == nil { file.close() } }
            guard let times = file.times else { return nil }
            for (i, t) in times.enumerated() {
                defer { previous = t }
                // Times that are not finite or do not increase are refused by the shaper, at their step.
                guard t.isFinite else { return nil }
                guard let prev = previous else { continue }
                let d = t - prev
                guard d.isFinite, d > 0 else { return nil }
                steps += 1
                let k = (d / 2_629_746).rounded()   // mean Gregorian month
                if !(k >= 1 && d >= k * 28 * 86_400 && d <= k * 31 * 86_400) { monthly = false }
                guard let step = dt else { dt = d; continue }
                let ratio = d / step
                if abs(ratio - 1) <= 1e-6 { continue }
                if abs(ratio - ratio.rounded()) <= 1e-6 * max(1, ratio.rounded()) { gaps += 1 } else { offGrid += 1 }
                if firstJump == nil {
                    firstJump = "from \(reference.describe(time: prev)) to \(reference.describe(time: t)) (step \(i) of \(p))"
                }
            }
        }
        guard let jump = firstJump, let step = dt else { return nil }
        let kinds = [gaps > 0 ? "\(gaps) skip whole steps (gaps: each splits the trajectory unless --fill-gaps fills it)" : nil,
                     offGrid > 0 ? "\(offGrid) are not a whole number of steps (each starts a new segment)" : nil].compactMap { $0 }
        return "\(spec.path): the times of '\(reference.timeName)' are irregular: \(gaps + offGrid) of \(steps) steps differ from the step \(reference.describe(step: step)); \(kinds.joined(separator: ", ")); the first jump is \(jump)"
            + (monthly ? "; every step is a whole number of calendar months: for monthly data pass --nc-months" : "")
    }

    /// The most grid points read as one state (2²⁴ = 16.8 M; e.g. a 0.25° global grid at 16 levels). Training needs
    /// at least a few hundred bytes per point even with `--pca` (the randomized EOFs hold n × (K + 10) doubles three
    /// times over, the names table another ~100 bytes), so more than this is beyond any machine Eddy runs on; and
    /// a 12 KB netCDF-4 file can declare 10⁸ points, which must be refused before anything is allocated.
    public static let maximumElements = 1 << 24

    static let advice = "select fewer points with --nc-box, --nc-levels or --nc-variables"

    /// Before any coordinate is read: no dimension of the chosen variables longer than `maximumElements`, a state
    /// no larger even if a lat/lon box kept a single point, and the coordinate arrays within the memory budget.
    static func checkDeclaredSizes(path: String, chosen: [(name: String, dims: [Int])], timeDim: Int, dimNames: [String], dimLengths: [Int],
                                   levels: [Int]?, box: Bool, coordinates: Set<Int>) throws {
        var coordinateValues = 0.0
        for d in Set(chosen.flatMap(\.dims)).sorted() {
            if d == timeDim {
                if coordinates.contains(d) { coordinateValues += Double(dimLengths[d]) }
                continue
            }
            if dimLengths[d] > maximumElements {
                throw EddyError("\(path): dimension '\(dimNames[d])' has \(dimLengths[d]) points, more than the \(maximumElements) Eddy reads (as one state, or along one dimension); \(advice)")
            }
            // Its coordinate values and the list of its indices.
            coordinateValues += Double(dimLengths[d]) * (coordinates.contains(d) ? 2 : 1)
        }
        // The fewest points the selection can have: levels as given, a lat/lon box down to one point per dimension.
        let boxed = box ? Set(dimNames.indices.filter { latNames.contains(dimNames[$0].lowercased()) || lonNames.contains(dimNames[$0].lowercased()) }) : []
        var fewest = 0.0
        var largest = (name: "", points: 0.0, shape: "")
        for v in chosen {
            var points = 1.0
            var shape: [String] = []
            for d in v.dims where d != timeDim {
                let n = boxed.contains(d) ? 1 : levels != nil && levelNames.contains(dimNames[d].lowercased()) ? levels!.count : dimLengths[d]
                points *= Double(n)
                shape.append("\(dimNames[d]) \(n)")
            }
            fewest += points
            if points > largest.points { largest = (v.name, points, shape.joined(separator: " × ")) }
        }
        if fewest > Double(maximumElements) {
            let atLeast = chosen.contains { $0.dims.contains(where: boxed.contains) } ? "at least " : ""
            throw EddyError("\(path): the selection has \(atLeast)\(count(fewest)) grid points (the largest variable, '\(largest.name)': \(largest.shape)), more than the \(maximumElements) Eddy reads as one state; \(advice)")
        }
        try MemoryBudget.check(8 * coordinateValues, "\(path): reading the coordinates", breakdown: "\(count(coordinateValues)) values",
                               advice: advice)
    }

    /// With the selection made: at most `maximumElements` points, and the names table, the offsets and one time
    /// step's hyperslab (the bounding box of the selection) within the memory budget.
    static func checkSelection(path: String, chosen: [(name: String, dims: [Int])], timeDim: Int, dimNames: [String], selection: [Int: [Int]]) throws {
        var elements = 0.0, nameBytes = 0.0, slab = 0.0
        var largest = (name: "", points: 0.0, shape: "")
        for v in chosen {
            var points = 1.0, box = 1.0
            var nameLength = Double(v.name.utf8.count) + 2
            var shape: [String] = []
            for d in v.dims where d != timeDim {
                let sel = selection[d] ?? []
                points *= Double(sel.count)
                box *= Double((sel.max() ?? 0) - (sel.min() ?? 0) + 1)
                nameLength += Double(dimNames[d].utf8.count) + 24   // "NAME=VALUE:" with a value of up to 22 characters
                shape.append("\(dimNames[d]) \(sel.count)")
            }
            elements += points
            nameBytes += points * nameLength
            slab = max(slab, box)
            if points > largest.points { largest = (v.name, points, shape.joined(separator: " × ")) }
        }
        if elements > Double(maximumElements) {
            throw EddyError("\(path): the selection has \(count(elements)) grid points (the largest variable, '\(largest.name)': \(largest.shape)), more than the \(maximumElements) Eddy reads as one state; \(advice)")
        }
        // Names are built twice over (the labels being extended, then the table), each a 16-byte String with its
        // own allocation (rounded to 16, and malloc's 16 more) for names past 15 bytes; offsets twice, the row once.
        let names = 2 * (nameBytes + 48 * elements)
        let bytes = names + 8 * (3 * elements + slab)
        try MemoryBudget.check(bytes, "\(path): reading the selection",
                               breakdown: "\(count(elements)) grid points: names \(MemoryBudget.format(names)), one time step's hyperslab \(MemoryBudget.format(8 * slab)), offsets and the row \(MemoryBudget.format(24 * elements))",
                               advice: advice)
    }

    static func count(_ x: Double) -> String { x < 1e15 ? "\(Int(x))" : Format.scientific(x, 1) }

    /// The netCDF default fill value for doubles (`NC_FILL_DOUBLE`).
    static let defaultFill = 9.9692099683868690e+36

    /// Longitude `x` inside `[lo, hi]` modulo 360 (`lo > hi` crosses the date line).
    static func inside(lon x: Double, _ lo: Double, _ hi: Double) -> Bool {
        if hi - lo >= 360 { return true }
        func mod(_ v: Double) -> Double { let r = v.truncatingRemainder(dividingBy: 360); return r < 0 ? r + 360 : r }
        return mod(x - lo) <= mod(hi - lo) + 1e-9
    }

    /// CF time units `UNIT since DATE` as (seconds per unit, the origin in seconds since 1970).
    static func timeUnits(_ units: String) -> (Double, Double)? {
        let parts = units.trimmedSpaces.split(separator: " ", maxSplits: 2).map(String.init)
        guard parts.count == 3, parts[1].lowercased() == "since" else { return nil }
        let scale: Double
        switch parts[0].lowercased() {
        case "second", "seconds", "sec", "secs", "s": scale = 1
        case "minute", "minutes", "min", "mins": scale = 60
        case "hour", "hours", "hr", "hrs", "h": scale = 3600
        case "day", "days", "d": scale = 86_400
        default: return nil
        }
        var date = parts[2].trimmedSpaces
        // "1900-01-01 00:00:00.0" and "1900-1-1" forms: pad the date, drop a trailing "UTC".
        if date.hasSuffix(" UTC") { date.removeLast(4) }
        let pieces = date.split(separator: " ", maxSplits: 1).map(String.init)
        let ymd = pieces[0].split(separator: "-").map(String.init)
        if ymd.count == 3 {
            func pad(_ s: String) -> String { s.count == 1 ? "0" + s : s }
            date = "\(ymd[0])-\(pad(ymd[1]))-\(pad(ymd[2]))"
            if pieces.count > 1 {
                var clock = pieces[1]
                let hms = clock.split(separator: ":").map(String.init)
                if hms.count >= 2 {
                    var fields = [pad(hms[0]), pad(hms[1])]
                    if hms.count > 2 { fields.append((hms[2].split(separator: ".").first?.count ?? 0) == 1 ? "0" + hms[2] : hms[2]) }
                    clock = fields.joined(separator: ":")
                }
                date += "T" + clock
            }
        }
        guard let origin = TimeParser.seconds(date) else { return nil }
        return (scale, origin)
    }

    /// A NUL-terminated C string in a buffer.
    static func string(_ chars: [CChar]) -> String {
        String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A coordinate value for a name: integers without a decimal point, others as Swift prints them.
    static func text(_ v: Double) -> String {
        if v == v.rounded(), abs(v) < 1e15 { return "\(Int(v))" }
        return "\(v)"
    }}

/// The text attributes a forecast file copies from the data: per chosen variable and per grid coordinate (by the
/// dimension name used in the element names), `units`, `long_name`, `standard_name` (and `axis`, `positive` for
/// coordinates) where the file has them.
public struct NetCDFAttributes: Sendable, Equatable {
    public var variables: [String: [String: String]] = [:]
    public var coordinates: [String: [String: String]] = [:]
    public init() {}
}

/// One NetCDF file opened and planned for `NetCDFReader`: the time axis, the chosen variables' read plans, the names.
final class NetCDFFile {
    let path: String
    let variableNames: [String]
    let inputNames: [String]
    let elementNames: [String]
    /// Indices into the flattened elements: the variables, then the inputs.
    let picked: [Int]
    let steps: Int
    /// The times, as seconds since 1970 when `timesAreDates`, else as the file has them; nil without a coordinate.
    let times: [Double]?
    let timesAreDates: Bool
    /// The time dimension's name (or the time variable's, when `--nc-time` named a variable).
    let timeName: String
    let timeUnits: String?
    let warnings: [String]
    let attributes: NetCDFAttributes
    /// Per chosen variable: its name and `units` ("" without).
    let units: [(String, String)]
    /// Per grid dimension (label name): its coordinate values, or its length as indices.
    let grid: [(String, [Double]?, Int)]

    /// One variable's read plan: the bounding hyperslab of its selection per time step and where each selected
    /// element lies in it.
    struct Plan {
        var name: String
        var varid: Int32
        var start: [Int]
        var count: [Int]
        var timeAxis: Int
        var offsets: [Int]
        var fills: [Double]
        var scale: Double
        var offset: Double
    }

    private var ncid: Int32 = -1
    private let plans: [Plan]
    private var buffer: [Double] = []
    private var full: [Double]

    static let calendars: Set<String> = ["standard", "gregorian", "proleptic_gregorian"]
    static let latUnits: Set<String> = ["degrees_north", "degree_north", "degree_n", "degrees_n", "degreen", "degreesn"]
    static let lonUnits: Set<String> = ["degrees_east", "degree_east", "degree_e", "degrees_e", "degreee", "degreese"]

    init(path: String, spec: DataSpec) throws {
        self.path = path
        if !FileSystem.exists(path) { throw EddyError("\(path): no such file") }
        if FileSystem.isDirectory(path) { throw EddyError("\(path): is a directory, expected a NetCDF file") }
        // A classic file's header is parsed and checked here first: libnetcdf trusts its counts, and reads the
        // missing bytes of a truncated file as zeros. (netCDF-4 files are HDF5, whose own library reads them.)
        do {
            let file = try InputFile(path: path)
            if ClassicNetCDFHeader.isClassic(file.readBytes(4)) {
                try ClassicNetCDFHeader.read(file).checkLength(file.size, path: path)
            }
        }
        NetCDFLibrary.lock()
        defer { NetCDFLibrary.unlock() }
        NetCDFLibrary.silenceHDF5()
        var id: Int32 = -1
        let status = nc_open(path, NC_NOWRITE, &id)
        if status != NC_NOERR {
            throw EddyError("\(path): not a NetCDF file (\(String(cString: nc_strerror(status))))")
        }
        ncid = id
        func check(_ s: Int32, _ what: String) throws {
            if s != NC_NOERR { throw EddyError("\(path): \(what): \(String(cString: nc_strerror(s)))") }
        }
        /// A text attribute (nil when absent or not text).
        func text(_ varid: Int32, _ name: String) -> String? {
            var length = 0, type: nc_type = 0
            guard nc_inq_att(id, varid, name, &type, &length) == NC_NOERR, type == NC_CHAR, length > 0, length < 1 << 20 else { return nil }
            var chars = [CChar](repeating: 0, count: length + 1)
            guard nc_get_att_text(id, varid, name, &chars) == NC_NOERR else { return nil }
            return NetCDFReader.string(chars).trimmedSpaces
        }
        do {
            if spec.episodeColumn != nil || spec.pivot != nil || spec.timeColumn != nil || !spec.angles.isEmpty {
                throw EddyError("\(path): episode, pivot, time and angle columns apply to CSV data; a NetCDF file is one trajectory along its time dimension")
            }
            // Dimensions.
            var ndims: Int32 = 0, nvars: Int32 = 0, unlimited: Int32 = -1
            try check(nc_inq_ndims(id, &ndims), "reading dimensions")
            try check(nc_inq_nvars(id, &nvars), "reading variables")
            try check(nc_inq_unlimdim(id, &unlimited), "reading dimensions")
            var dimNames: [String] = [], dimLengths: [Int] = []
            for d in 0..<ndims {
                var name = [CChar](repeating: 0, count: Int(NC_MAX_NAME) + 1)
                var length = 0
                try check(nc_inq_dim(id, d, &name, &length), "reading dimension \(d)")
                dimNames.append(NetCDFReader.string(name))
                dimLengths.append(length)
            }

            // Variables.
            struct Info { var name: String; var type: nc_type; var dims: [Int] }
            var infos: [Info] = []
            for v in 0..<nvars {
                var name = [CChar](repeating: 0, count: Int(NC_MAX_NAME) + 1)
                var type: nc_type = 0
                var nd: Int32 = 0
                try check(nc_inq_var(id, v, &name, &type, &nd, nil, nil), "reading variable \(v)")
                var dims = [Int32](repeating: 0, count: Int(nd))
                if nd > 0 { try check(nc_inq_vardimid(id, v, &dims), "reading variable \(v)") }
                infos.append(Info(name: NetCDFReader.string(name), type: type, dims: dims.map(Int.init)))
            }
            let numeric: (nc_type) -> Bool = { $0 != NC_CHAR && $0 != NC_STRING }

            // The time axis: --nc-time, a dimension named time or valid_time, a CF time variable (axis T or
            // standard_name time), the unlimited dimension.
            var timeVar: Int?
            let timeDim: Int
            if let name = spec.ncTime {
                if let d = dimNames.firstIndex(of: name) {
                    timeDim = d
                    timeVar = infos.firstIndex { $0.name == name && $0.dims == [d] && numeric($0.type) }
                } else if let v = infos.firstIndex(where: { $0.name == name }) {
                    guard infos[v].dims.count == 1, numeric(infos[v].type) else {
                        throw EddyError("\(path): --nc-time \(name): the variable '\(name)' has \(infos[v].dims.count) dimensions (\(infos[v].dims.map { dimNames[$0] }.joined(separator: ", "))); a time variable is numeric and has one dimension")
                    }
                    timeDim = infos[v].dims[0]
                    timeVar = v
                } else {
                    throw EddyError("\(path): --nc-time \(name): no dimension or variable of that name; the dimensions are: \(dimNames.joined(separator: ", "))")
                }
            } else {
                let cfTime = infos.indices.first { v in
                    infos[v].dims.count == 1 && numeric(infos[v].type)
                        && (text(Int32(v), "axis")?.uppercased() == "T" || text(Int32(v), "standard_name")?.lowercased() == "time")
                }
                if let d = NetCDFReader.timeNames.lazy.compactMap({ n in dimNames.firstIndex(where: { $0.lowercased() == n }) }).first {
                    timeDim = d
                } else if let v = cfTime {
                    timeDim = infos[v].dims[0]
                    timeVar = v
                } else if unlimited >= 0 {
                    timeDim = Int(unlimited)
                } else {
                    throw EddyError("\(path): no time dimension (expected one named 'time' or 'valid_time', a variable with CF axis 'T' or standard_name 'time', or an unlimited dimension; or name it with --nc-time); the dimensions are: \(dimNames.joined(separator: ", "))")
                }
                if timeVar == nil {
                    timeVar = infos.firstIndex { $0.name == dimNames[timeDim] && $0.dims == [timeDim] && numeric($0.type) }
                        ?? cfTime.flatMap { infos[$0].dims == [timeDim] ? $0 : nil }
                }
            }
            timeName = timeVar.map { infos[$0].name } ?? dimNames[timeDim]
            steps = dimLengths[timeDim]
            if steps == 0 { throw EddyError("\(path): the time dimension '\(dimNames[timeDim])' is empty") }

            // Variables named by others as their coordinates or cell bounds are not data.
            var auxiliary: Set<String> = []
            for v in infos.indices {
                for key in ["coordinates", "bounds"] {
                    if let list = text(Int32(v), key) { auxiliary.formUnion(list.split(separator: " ").map(String.init)) }
                }
            }
            let chosen: [Int]
            if spec.ncVariables.isEmpty {
                chosen = infos.indices.filter {
                    infos[$0].dims.contains(timeDim) && !dimNames.contains(infos[$0].name) && numeric(infos[$0].type)
                        && $0 != timeVar && !auxiliary.contains(infos[$0].name)
                }
                if chosen.isEmpty {
                    throw EddyError("\(path): no variable has the time dimension '\(dimNames[timeDim])'; the variables are: \(infos.map(\.name).joined(separator: ", "))")
                }
            } else {
                chosen = try spec.ncVariables.map { name in
                    guard let i = infos.firstIndex(where: { $0.name == name }) else {
                        throw EddyError("\(path): no variable named '\(name)'; the variables are: \(infos.map(\.name).joined(separator: ", "))")
                    }
                    if !infos[i].dims.contains(timeDim) {
                        throw EddyError("\(path): variable '\(name)' has no time dimension '\(dimNames[timeDim])' (its dimensions: \(infos[i].dims.map { dimNames[$0] }.joined(separator: ", ")))")
                    }
                    if !numeric(infos[i].type) { throw EddyError("\(path): variable '\(name)' is not numeric") }
                    return i
                }
                if Set(spec.ncVariables).count != spec.ncVariables.count { throw EddyError("\(path): a variable is named twice in the NetCDF variables") }
            }

            // A dimension's 1-D coordinate variable: the variable of its name; else one a chosen variable names in
            // its `coordinates` attribute; else a latitude or longitude by its units or standard name.
            func axisKind(_ v: Int) -> String? {
                let units = text(Int32(v), "units")?.lowercased() ?? "", standard = text(Int32(v), "standard_name")?.lowercased() ?? ""
                if NetCDFFile.latUnits.contains(units) || standard == "latitude" { return "lat" }
                if NetCDFFile.lonUnits.contains(units) || standard == "longitude" { return "lon" }
                return nil
            }
            let named = Set(chosen.flatMap { (text(Int32($0), "coordinates") ?? "").split(separator: " ").map(String.init) })
            var coordinateVar: [Int: Int] = [:]
            for d in dimNames.indices where d != timeDim {
                let candidates = infos.indices.filter { infos[$0].dims == [d] && numeric(infos[$0].type) }
                if let v = candidates.first(where: { infos[$0].name == dimNames[d] })
                    ?? candidates.first(where: { named.contains(infos[$0].name) })
                    ?? candidates.first(where: { axisKind($0) != nil }) {
                    coordinateVar[d] = v
                }
            }
            // The name of each dimension in the element names: its own, except that a latitude or longitude found
            // by its coordinate variable is called by that variable's name (lat, latitude, lon, longitude) or lat/lon.
            var labelNames = dimNames
            var isLat = Set<Int>(), isLon = Set<Int>(), isLevel = Set<Int>()
            for d in dimNames.indices {
                let own = dimNames[d].lowercased(), v = coordinateVar[d]
                let varName = v.map { infos[$0].name.lowercased() } ?? ""
                let kind = v.flatMap(axisKind)
                if NetCDFReader.latNames.contains(own) || NetCDFReader.latNames.contains(varName) || kind == "lat" {
                    isLat.insert(d)
                    if !NetCDFReader.latNames.contains(own) { labelNames[d] = NetCDFReader.latNames.contains(varName) ? infos[v!].name : "lat" }
                } else if NetCDFReader.lonNames.contains(own) || NetCDFReader.lonNames.contains(varName) || kind == "lon" {
                    isLon.insert(d)
                    if !NetCDFReader.lonNames.contains(own) { labelNames[d] = NetCDFReader.lonNames.contains(varName) ? infos[v!].name : "lon" }
                } else if NetCDFReader.levelNames.contains(own) || NetCDFReader.levelNames.contains(varName) {
                    isLevel.insert(d)
                }
            }
            func coordinate(_ d: Int) throws -> [Double]? {
                guard let v = coordinateVar[d] else { return nil }
                var values = [Double](repeating: 0, count: dimLengths[d])
                if values.isEmpty { return values }
                try check(nc_get_var_double(id, Int32(v), &values), "reading coordinate '\(infos[v].name)'")
                return values
            }
            // The selected indices of every dimension used by the chosen variables.
            let used = Set(chosen.flatMap { infos[$0].dims }).subtracting([timeDim]).sorted()
            for v in chosen {
                if infos[v].dims.filter({ $0 == timeDim }).count > 1 {
                    throw EddyError("\(path): variable '\(infos[v].name)' has the time dimension '\(dimNames[timeDim])' more than once; expected it once")
                }
                if let d = infos[v].dims.first(where: { $0 != timeDim && dimLengths[$0] == 0 }) {
                    throw EddyError("\(path): variable '\(infos[v].name)' has no values: its dimension '\(dimNames[d])' is empty (length 0); leave it out with --nc-variables")
                }
            }
            // Sized before anything is read: a small netCDF-4 file can declare dimensions of any length.
            try NetCDFReader.checkDeclaredSizes(path: path, chosen: chosen.map { (infos[$0].name, infos[$0].dims) }, timeDim: timeDim,
                                                dimNames: labelNames, dimLengths: dimLengths, levels: spec.ncLevels, box: spec.ncBox != nil,
                                                coordinates: Set(coordinateVar.keys).union(timeVar.map { _ in [timeDim] } ?? []))
            var selection: [Int: [Int]] = [:]
            var coordinates: [Int: [Double]] = [:]
            var sawLevel = false, sawLat = false, sawLon = false
            for d in used {
                let coords = try coordinate(d)
                coordinates[d] = coords
                var indices = Array(0..<dimLengths[d])
                if isLevel.contains(d), let levels = spec.ncLevels {
                    sawLevel = true
                    for l in levels where !(0..<dimLengths[d]).contains(l) {
                        throw EddyError("\(path): level index \(l) is out of range: dimension '\(dimNames[d])' has \(dimLengths[d]) levels (indices 0…\(dimLengths[d] - 1))")
                    }
                    if levels.isEmpty { throw EddyError("\(path): the level selection is empty") }
                    if Set(levels).count != levels.count { throw EddyError("\(path): a level index is named twice") }
                    indices = levels
                }
                if let box = spec.ncBox, isLat.contains(d) || isLon.contains(d) {
                    let lat = isLat.contains(d)
                    if lat { sawLat = true } else { sawLon = true }
                    guard let c = coords else {
                        throw EddyError("\(path): a lat/lon box needs the coordinate variable '\(dimNames[d])', which the file lacks")
                    }
                    indices = indices.filter {
                        lat ? c[$0] >= box.latMin && c[$0] <= box.latMax : NetCDFReader.inside(lon: c[$0], box.lonMin, box.lonMax)
                    }
                    if indices.isEmpty {
                        func extent(_ values: [Double]) -> String {
                            values.isEmpty ? "none" : "\(NetCDFReader.text(values.min()!))…\(NetCDFReader.text(values.max()!))"
                        }
                        let axes = used.filter { isLat.contains($0) || isLon.contains($0) }.sorted { isLat.contains($0) && !isLat.contains($1) }
                        let grid = axes.map { "\(labelNames[$0]) \(extent((try? coordinate($0)) ?? nil ?? []))" }.joined(separator: ", ")
                        throw EddyError("\(path): the lat/lon box lat \(NetCDFReader.text(box.latMin))…\(NetCDFReader.text(box.latMax)), lon \(NetCDFReader.text(box.lonMin))…\(NetCDFReader.text(box.lonMax)) contains no grid point; the grid spans \(grid)")
                    }
                }
                selection[d] = indices
            }
            if spec.ncLevels != nil && !sawLevel {
                throw EddyError("\(path): level indices were given but no chosen variable has a level dimension (level, lev, plev, pressure_level); its dimensions: \(used.map { dimNames[$0] }.joined(separator: ", "))")
            }
            if let box = spec.ncBox {
                if !sawLat && !sawLon {
                    throw EddyError("\(path): a lat/lon box was given but no chosen variable has a latitude or longitude dimension (named lat/latitude, lon/longitude, or with a coordinate variable in degrees_north/degrees_east); its dimensions: \(used.map { dimNames[$0] }.joined(separator: ", "))")
                }
                if box.latMin > box.latMax { throw EddyError("\(path): the lat/lon box has latMin \(box.latMin) > latMax \(box.latMax)") }
            }

            // The selection is known: its size, and the memory of the names and buffers, before they are made.
            try NetCDFReader.checkSelection(path: path, chosen: chosen.map { (infos[$0].name, infos[$0].dims) }, timeDim: timeDim,
                                            dimNames: labelNames, selection: selection)

            // Read plans and names.
            var plans: [Plan] = []
            var names: [String] = []
            for v in chosen {
                let info = infos[v]
                let varid = Int32(v)
                var start = [Int](repeating: 0, count: info.dims.count)
                var count = [Int](repeating: 1, count: info.dims.count)
                let timeAxis = info.dims.firstIndex(of: timeDim)!
                for (a, d) in info.dims.enumerated() where a != timeAxis {
                    let sel = selection[d]!
                    start[a] = sel.min()!
                    count[a] = sel.max()! - sel.min()! + 1
                }
                // Offsets of the selected elements in the bounding hyperslab, in C order of the selection.
                var strides = [Int](repeating: 1, count: info.dims.count)
                for a in stride(from: info.dims.count - 2, through: 0, by: -1) { strides[a] = strides[a + 1] * count[a + 1] }
                var offsets: [Int] = [0]
                var labels: [String] = [""]
                for (a, d) in info.dims.enumerated() where a != timeAxis {
                    let sel = selection[d]!
                    var o2: [Int] = [], l2: [String] = []
                    o2.reserveCapacity(offsets.count * sel.count)
                    for (o, l) in zip(offsets, labels) {
                        for i in sel {
                            o2.append(o + (i - start[a]) * strides[a])
                            let value = (coordinates[d] ?? nil).map { NetCDFReader.text($0[i]) } ?? "#\(i)"
                            l2.append(l.isEmpty ? "\(labelNames[d])=\(value)" : "\(l):\(labelNames[d])=\(value)")
                        }
                    }
                    offsets = o2
                    labels = l2
                }
                names += labels.map { $0.isEmpty ? info.name : "\(info.name)[\($0)]" }
                // Missing-value markers and packing.
                func attribute(_ name: String) -> [Double]? {
                    var length = 0, type: nc_type = 0
                    guard nc_inq_att(id, varid, name, &type, &length) == NC_NOERR, type != NC_CHAR, type != NC_STRING, length > 0, length < 1 << 16 else { return nil }
                    var values = [Double](repeating: 0, count: length)
                    guard nc_get_att_double(id, varid, name, &values) == NC_NOERR else { return nil }
                    return values
                }
                var fills = attribute("_FillValue") ?? []
                if fills.isEmpty {
                    if info.type == NC_DOUBLE { fills = [NetCDFReader.defaultFill] }
                    if info.type == NC_FLOAT { fills = [Double(Float(NetCDFReader.defaultFill))] }
                }
                fills += attribute("missing_value") ?? []
                plans.append(Plan(name: info.name, varid: varid, start: start, count: count, timeAxis: timeAxis, offsets: offsets,
                                  fills: fills, scale: attribute("scale_factor")?.first ?? 1, offset: attribute("add_offset")?.first ?? 0))
            }
            if Set(names).count != names.count {
                throw EddyError("\(path): two grid points get the same name (repeated coordinate values?); the names would not be unique")
            }
            elementNames = names

            // Columns and inputs among the flattened names.
            func index(_ name: String, _ role: String) throws -> Int {
                guard let i = names.firstIndex(of: name) else {
                    let shown = names.prefix(8).joined(separator: ", ") + (names.count > 8 ? ", … (\(names.count) in all)" : "")
                    throw EddyError("\(path): no \(role) named '\(name)'; the flattened variables are: \(shown)")
                }
                return i
            }
            let inputs = try spec.inputs.map { try index($0, "input") }
            let variables = try spec.columns.map { try $0.map { try index($0, "variable") } } ?? names.indices.filter { !inputs.contains($0) }
            if variables.isEmpty { throw EddyError("\(path): no variables left to read") }
            if Set(variables + inputs).count != variables.count + inputs.count {
                throw EddyError("\(path): a variable is named twice among the columns and inputs")
            }
            picked = variables + inputs
            variableNames = variables.map { names[$0] }
            inputNames = inputs.map { names[$0] }
            self.plans = plans
            full = [Double](repeating: 0, count: names.count)

            // What a forecast file copies, and what the files of one dataset must share.
            var attributes = NetCDFAttributes()
            var units: [(String, String)] = []
            for v in chosen {
                var a: [String: String] = [:]
                for key in ["units", "long_name", "standard_name"] { if let t = text(Int32(v), key) { a[key] = t } }
                attributes.variables[infos[v].name] = a
                units.append((infos[v].name, a["units"] ?? ""))
            }
            var grid: [(String, [Double]?, Int)] = []
            for d in used {
                grid.append((labelNames[d], coordinates[d] ?? nil, dimLengths[d]))
                guard let v = coordinateVar[d] else { continue }
                var a: [String: String] = [:]
                for key in ["units", "long_name", "standard_name", "axis", "positive"] { if let t = text(Int32(v), key) { a[key] = t } }
                attributes.coordinates[labelNames[d]] = a
            }
            self.attributes = attributes
            self.units = units
            self.grid = grid

            // Times: dates from CF units in a standard calendar, else plain numbers (with a warning), never misread.
            var warnings: [String] = []
            if let tv = timeVar {
                var raw = [Double](repeating: 0, count: steps)
                try check(nc_get_var_double(id, Int32(tv), &raw), "reading the time variable '\(timeName)'")
                let unitText = text(Int32(tv), "units")
                let calendar = text(Int32(tv), "calendar")?.lowercased()
                var dates: [Double]?
                if let u = unitText, u.lowercased().contains(" since ") {
                    let word = u.trimmedSpaces.split(separator: " ").first.map { $0.lowercased() } ?? ""
                    if let (scale, origin) = NetCDFReader.timeUnits(u) {
                        if calendar == nil || NetCDFFile.calendars.contains(calendar!) {
                            dates = raw.map { origin + $0 * scale }
                        } else {
                            warnings.append("\(path): the time variable '\(timeName)' is in the '\(calendar!)' calendar, which Eddy does not convert to dates; its values (\(u)) are read as plain numbers, so forecasts carry them as numbers and calendar inputs are not available")
                        }
                    } else if ["month", "months", "year", "years", "common_year", "common_years"].contains(word) {
                        warnings.append("\(path): the time variable '\(timeName)' has units '\(u)': months and years have no fixed length, so its values are read as plain numbers (steps of \(word)), not as dates")
                    } else {
                        throw EddyError("\(path): cannot read the units '\(u)' of the time variable '\(timeName)'; expected 'UNIT since DATE' with UNIT seconds, minutes, hours or days and DATE like 2000-01-01 00:00:00; name another time variable with --nc-time, or correct the file's units")
                    }
                } else {
                    let what = unitText.map { "has units '\($0)', with no reference date (not 'UNIT since DATE')" } ?? "has no units"
                    warnings.append("\(path): the time variable '\(timeName)' \(what): its values are read as plain numbers (one step = their difference, or --dt), not as dates")
                }
                if spec.ncMonths {
                    guard let dates else {
                        throw EddyError("\(path): --nc-months steps by calendar month and needs CF dates, but the time variable '\(timeName)' has \(unitText.map { "units '\($0)'" } ?? "no units"); leave out --nc-months")
                    }
                    var months: [Double] = []
                    for (i, t) in dates.enumerated() {
                        guard abs(t) < 1e13 else { throw EddyError("\(path): --nc-months: time step \(i) of '\(timeName)' (\(Format.general(t, 6)) s since 1970) is beyond any calendar") }
                        let (y, m) = NetCDFFile.yearMonth(t)
                        let month = Double((y - 1970) * 12 + m - 1)
                        if let last = months.last, month <= last {
                            throw EddyError("\(path): --nc-months: time steps \(i - 1) and \(i) of '\(timeName)' (\(TimeParser.iso(dates[i - 1])), \(TimeParser.iso(t))) are not in successive months; the times must be one per month")
                        }
                        months.append(month)
                    }
                    times = months
                    timesAreDates = false
                    timeUnits = "months since 1970-01"
                } else if let dates {
                    times = dates
                    timesAreDates = true
                    timeUnits = unitText
                } else {
                    times = raw
                    timesAreDates = false
                    timeUnits = unitText
                }
            } else {
                if spec.ncMonths { throw EddyError("\(path): --nc-months needs a time variable with CF dates; '\(dimNames[timeDim])' has none") }
                times = nil
                timesAreDates = false
                timeUnits = nil
            }
            self.warnings = warnings
        } catch {
            nc_close(id)
            ncid = -1
            throw error
        }
    }

    deinit { close() }

    func close() {
        if ncid >= 0 { NetCDFLibrary.locked { _ = nc_close(ncid) } }
        ncid = -1
    }

    /// The picked values (variables, then inputs) at one time step: missing ones NaN, packing undone.
    func row(at step: Int) throws -> [Double] {
        NetCDFLibrary.lock()
        defer { NetCDFLibrary.unlock() }
        var at = 0
        for p in plans {
            var start = p.start, count = p.count
            start[p.timeAxis] = step
            count[p.timeAxis] = 1
            guard let n = CheckedSize.product(count) else {   // sized by checkSelection; never trust it blindly
                throw EddyError("\(path): the hyperslab of '\(p.name)' (\(count.map(String.init).joined(separator: " × "))) overflows")
            }
            if buffer.count < n { buffer = [Double](repeating: 0, count: n) }
            let s = nc_get_vara_double(ncid, p.varid, start, count, &buffer)
            if s != NC_NOERR {
                throw EddyError("\(path): reading '\(p.name)' at time step \(step): \(String(cString: nc_strerror(s)))")
            }
            for o in p.offsets {
                let raw = buffer[o]
                if raw.isInfinite {
                    throw EddyError("\(path): '\(p.name)' at time step \(step): infinite value; expected a finite number (a fill value or NaN marks a missing one)")
                }
                full[at] = raw.isNaN || p.fills.contains(raw) ? .nan : raw * p.scale + p.offset
                at += 1
            }
        }
        return picked.map { full[$0] }
    }

    /// Refuses a file that does not continue `first`'s dataset: other variables, another grid, other units.
    func checkMatches(_ first: NetCDFFile) throws {
        let why = "the files of a dataset must share their variables, grid and units"
        if units.map(\.0) != first.units.map(\.0) {
            throw EddyError("\(path): its variables (\(units.map(\.0).joined(separator: ", "))) differ from those of \(first.path) (\(first.units.map(\.0).joined(separator: ", "))); \(why)")
        }
        for ((name, u), (_, v)) in zip(units, first.units) where u != v {
            throw EddyError("\(path): variable '\(name)' has units '\(u)', but '\(v)' in \(first.path); \(why)")
        }
        let mine = Dictionary(grid.map { ($0.0, ($0.1, $0.2)) }, uniquingKeysWith: { a, _ in a })
        for (name, values, length) in first.grid {
            guard let (v, n) = mine[name] else {
                throw EddyError("\(path): it has no grid dimension '\(name)', which \(first.path) has; \(why)")
            }
            if n != length {
                throw EddyError("\(path): its grid differs from that of \(first.path): '\(name)' has \(n) points, there \(length); \(why)")
            }
            if let a = values, let b = v, let i = a.indices.first(where: { i in i < b.count && a[i] != b[i] }) {
                throw EddyError("\(path): its grid differs from that of \(first.path): '\(name)' point \(i) is \(NetCDFReader.text(b[i])), there \(NetCDFReader.text(a[i])); \(why)")
            }
        }
        if let i = elementNames.indices.first(where: { i in i < first.elementNames.count && elementNames[i] != first.elementNames[i] }) ?? (elementNames.count != first.elementNames.count ? min(elementNames.count, first.elementNames.count) : nil) {
            let here = i < elementNames.count ? elementNames[i] : "none", there = i < first.elementNames.count ? first.elementNames[i] : "none"
            throw EddyError("\(path): its grid differs from that of \(first.path): element \(i) is '\(here)', there '\(there)'; \(why)")
        }
        if timesAreDates != first.timesAreDates || (!timesAreDates && timeUnits != first.timeUnits) {
            throw EddyError("\(path): its time variable '\(timeName)' has units '\(timeUnits ?? "none")', but '\(first.timeUnits ?? "none")' in \(first.path); the files of a dataset must give their times alike")
        }
    }

    /// The proleptic Gregorian year and month (1…12) of seconds since 1970 (H. Hinnant's civil-from-days).
    static func yearMonth(_ seconds: Double) -> (Int, Int) {
        let date = TimeParser.civil(days: Int((seconds / 86_400).rounded(.down)))
        return (date.year, date.month)
    }

    /// A time as a message shows it: a date when the times are dates.
    func describe(time t: Double) -> String { timesAreDates && abs(t) < 1e11 ? TimeParser.iso(t) : NetCDFReader.text(t) }

    /// A step as a message shows it: in hours or days when the times are dates.
    func describe(step s: Double) -> String {
        guard timesAreDates else { return NetCDFReader.text(s) }
        if s >= 86_400, s.truncatingRemainder(dividingBy: 86_400) == 0 { return "\(NetCDFReader.text(s / 86_400)) days" }
        if s >= 3600 { return "\(NetCDFReader.text(s / 3600)) hours" }
        return "\(NetCDFReader.text(s)) s"
    }
}
