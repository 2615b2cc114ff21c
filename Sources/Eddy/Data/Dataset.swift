/// What to read: a file (CSV or `.npy`) or a directory of them, which columns are state variables, which are
/// inputs (controls or exogenous drivers), and which column names the trajectory (episode) a row belongs to.
public struct DataSpec: Sendable {
    public var path: String
    /// State variables by name; nil takes every column except the episode column, the inputs and a time column (`t`, `time`).
    /// Without `episodeColumn`, a column named `episode` is the episode column.
    public var columns: [String]?
    public var inputs: [String]
    public var episodeColumn: String?
    /// Rows per block handed on by the reader (fewer for wide rows: a block holds at most 2²¹ values).
    public var blockRows: Int
    /// A column of times (ISO 8601 or numbers): rows must increase in time within an episode, a jump of more than
    /// one step splits the trajectory (or is filled, see `fillGaps`), and calendar inputs are computed from it.
    public var timeColumn: String?
    /// The time step in the time column's units (seconds for ISO times); nil: the first difference.
    public var dt: Double?
    /// Variables that are angles in degrees (0…360), each turned into `NAME_sin` and `NAME_cos`.
    public var angles: [String] = []
    /// Calendar inputs computed from the time column.
    public var calendar: [CalendarFeature] = []
    /// Gaps (missing rows or values) of at most this many steps are filled by linear interpolation; 0: never.
    public var fillGaps = 0
    /// Keep rows with `from ≤ time < until` (times as in the time column).
    public var from: Double?
    public var until: Double?
    /// A column (e.g. a station) whose values become separate copies of every variable, aligned on time:
    /// one joint trajectory with variables `NAME@VALUE`. Reads the file into memory.
    public var pivot: String?
    /// A strftime-style format for the time column's dates (`%d.%m.%Y %H:%M`; TimeParser.seconds(_:format:)); nil:
    /// ISO 8601 and its slash and space forms, or numbers.
    public var timeFormat: String?
    /// NetCDF (`.nc`) only: the variables to read; empty: every variable with a time dimension (coordinate variables aside).
    public var ncVariables: [String] = []
    /// NetCDF only: indices along a level dimension (`level`, `lev`, `plev`, `pressure_level`); nil: every level.
    public var ncLevels: [Int]?
    /// NetCDF only: keep the grid points inside this box (degrees, by the 1-D `lat`/`latitude` and `lon`/`longitude`
    /// coordinates; longitudes compared modulo 360, so `lonMin > lonMax` crosses the date line); nil: the whole grid.
    public var ncBox: (latMin: Double, latMax: Double, lonMin: Double, lonMax: Double)?
    /// A shard's raw rows (data lines of a CSV file, rows of an `.npy` array with its trajectories one after another,
    /// time steps of a NetCDF file; for a directory, its files): reading starts `rawHistory` rows before it (earlier
    /// rows are skipped unparsed, or seeked past where the format allows) and stops at its end; what `--fill-gaps`
    /// fills is counted from its start. nil: every row. See `ShardPlan`.
    public var rawRows: Range<Int>?
    public var rawHistory = 0
    /// NetCDF only: the time dimension, or a 1-D time variable (and so its dimension); nil: found by convention
    /// (`time`, `valid_time`, CF `axis: T` or `standard_name: time`, the unlimited dimension).
    public var ncTime: String?
    /// NetCDF only: step by calendar month (monthly means stamped with CF dates 28–31 days apart): each time becomes
    /// its month, counted from January 1970 (= 0), as a plain number.
    public var ncMonths = false

    public init(path: String, columns: [String]? = nil, inputs: [String] = [], episodeColumn: String? = nil, blockRows: Int = 4096) {
        self.path = path
        self.columns = columns
        self.inputs = inputs
        self.episodeColumn = episodeColumn
        self.blockRows = blockRows
    }
}

/// Contiguous valid rows of one trajectory: each row holds the variables then the inputs (`width = n + m`).
/// A block either starts a new segment (a new episode, or the first row after a gap or missing value) or
/// continues the previous block's segment. Pairs are formed only inside a segment (METHOD.md, "Data").
public struct RowBlock: Sendable {
    public var episode: String
    public var values: [Double]
    public var rowCount: Int
    public var startsSegment: Bool
    /// Where the first row came from, for messages (a line of a CSV file, a row of an array).
    public var firstLine: Int
    /// Each row's time, when the data have a time column (empty otherwise).
    public var times: [Double] = []
    /// Each row's source: the raw row (see `DataSpec.rawRows`) whose reading emitted it (a filled row comes with the
    /// row after its gap). Empty where the reader does not say.
    public var sources: [Int] = []
    /// The file of a directory the block comes from (0 for a single file).
    public var file = 0
}

/// Streams a dataset as blocks of rows. Readers are opened afresh for every pass over the data.
public protocol RowReader: AnyObject {
    var path: String { get }
    var variableNames: [String] { get }
    var inputNames: [String] { get }
    /// The time step read off a time column (`t` or `time`), when there is one.
    var inferredDt: Double? { get }
    /// Valid (non-missing) values seen so far per selected column.
    var validCounts: [Int] { get }
    /// The time column holds dates (ISO 8601, or CF time units): forecasts write their times as dates.
    var timesAreDates: Bool { get }
    /// What `--fill-gaps` filled so far.
    var fill: FillReport { get }
    /// What the reader noticed about the data without refusing it (e.g. NetCDF times read as plain numbers,
    /// irregular time steps), one sentence each.
    var warnings: [String] { get }
    func next() throws -> RowBlock?
}

extension RowReader {
    public var width: Int { variableNames.count + inputNames.count }
    public var timesAreDates: Bool { false }
    public var fill: FillReport { FillReport() }
    public var warnings: [String] { [] }
}

public enum DataSource {
    /// Opens a CSV file, an `.npy` file, NetCDF data (a `.nc` file, or a directory, glob or comma-separated list of
    /// them: one dataset joined along time) or a directory of CSV/`.npy` files, chosen by what the path is.
    public static func open(_ spec: DataSpec) throws -> RowReader {
        if NetCDFReader.names(spec.path) { return try NetCDFReader(spec: spec) }
        if FileSystem.isDirectory(spec.path) { return try DirectoryReader(spec: spec) }
        if spec.path.lowercased().hasSuffix(".npy") { return try NPYReader(spec: spec) }
        return try CSVReader(spec: spec)
    }

    /// Reads every segment into memory (forecasting and evaluation work on whole trajectories).
    public static func loadSegments(_ spec: DataSpec) throws -> (reader: RowReader, segments: [Segment]) {
        let reader = try open(spec)
        var segments: [Segment] = []
        while let block = try reader.next() {
            if block.startsSegment || segments.isEmpty {
                segments.append(Segment(episode: block.episode, width: reader.width, firstLine: block.firstLine))
            }
            segments[segments.count - 1].values += block.values
            segments[segments.count - 1].rowCount += block.rowCount
            segments[segments.count - 1].times += block.times
        }
        return (reader, segments)
    }
}

/// One contiguous run of valid rows of one trajectory, in memory.
public struct Segment: Sendable {
    public var episode: String
    public var width: Int
    public var firstLine: Int
    public var values: [Double] = []
    public var rowCount = 0
    /// Each row's time, when the data have a time column (empty otherwise).
    public var times: [Double] = []

    public init(episode: String, width: Int, firstLine: Int) {
        self.episode = episode
        self.width = width
        self.firstLine = firstLine
    }

    public func row(_ t: Int) -> ArraySlice<Double> { values[(t * width)..<((t + 1) * width)] }
}

/// Cuts a stream of rows into blocks: a new block starts at a new episode, after a missing row and when full.
final class BlockBuilder {
    let width: Int
    let capacity: Int
    private var values: [Double] = []
    private var times: [Double] = []
    private var sources: [Int] = []
    private var rows = 0
    private var episode = ""
    private var firstLine = 0
    private var nextStartsSegment = true
    private var lastEpisode: String?
    private(set) var ready: [RowBlock] = []

    /// Values a block holds at most (16 MiB): wide rows (a flattened grid) come in fewer rows per block.
    static let maximumValues = 1 << 21

    init(width: Int, capacity: Int) {
        self.width = width
        self.capacity = max(1, min(capacity, BlockBuilder.maximumValues / max(1, width)))
        values.reserveCapacity(width * self.capacity)
    }

    /// A valid row.
    func append(_ row: UnsafeBufferPointer<Double>, episode ep: String, line: Int, time: Double? = nil, source: Int = -1) {
        if ep != lastEpisode {
            close()
            nextStartsSegment = true
            lastEpisode = ep
        }
        if rows == 0 {
            episode = ep
            firstLine = line
        }
        values.append(contentsOf: row)
        if let time { times.append(time) }
        if source >= 0 { sources.append(source) }
        rows += 1
        if rows == capacity { close() }
    }

    /// A row with a missing value: it ends the current segment.
    func gap(episode ep: String) {
        close()
        nextStartsSegment = true
        lastEpisode = ep
    }

    /// Hands on the rows collected so far as a block.
    func close() {
        guard rows > 0 else { return }
        ready.append(RowBlock(episode: episode, values: values, rowCount: rows, startsSegment: nextStartsSegment, firstLine: firstLine,
                              times: times.count == rows ? times : [], sources: sources.count == rows ? sources : []))
        nextStartsSegment = false
        values.removeAll(keepingCapacity: true)
        times.removeAll(keepingCapacity: true)
        sources.removeAll(keepingCapacity: true)
        rows = 0
    }

    func take() -> RowBlock? { ready.isEmpty ? nil : ready.removeFirst() }
}

/// Resolves the selected columns of a file's header, with messages that list what is there.
struct ColumnSelection {
    var variables: [Int]
    var inputs: [Int]
    var episode: Int?
    var time: Int?
    var pivot: Int?
    var variableNames: [String]
    var inputNames: [String]
    /// Variable columns given in degrees, each read as a sine/cosine pair.
    var angleColumns: Set<Int> = []
    /// The time column's date format (`DataSpec.timeFormat`).
    var timeFormat: String?

    init(header: [String], spec: DataSpec, path: String) throws {
        func index(of name: String, role: String) throws -> Int {
            guard let i = header.firstIndex(of: name) else {
                throw EddyError("\(path): no \(role) column named '\(name)'; the columns are: \(header.joined(separator: ", "))")
            }
            return i
        }
        // A column named `episode` (as `eddy generate` writes) is the episode column unless another is named.
        episode = try spec.episodeColumn.map { try index(of: $0, role: "episode") }
            ?? (spec.columns?.contains("episode") == true || spec.inputs.contains("episode") || spec.pivot != nil ? nil : header.firstIndex(of: "episode"))
        inputs = try spec.inputs.map { try index(of: $0, role: "input") }
        time = try spec.timeColumn.map { try index(of: $0, role: "time") } ?? header.firstIndex(of: "t") ?? header.firstIndex(of: "time")
        pivot = try spec.pivot.map { try index(of: $0, role: "pivot") }
        if let names = spec.columns {
            if names.isEmpty { throw EddyError("\(path): --columns is empty; name at least one variable") }
            variables = try names.map { try index(of: $0, role: "variable") }
        } else {
            let taken = Set(inputs + [episode, time, pivot].compactMap { $0 })
            variables = header.indices.filter { !taken.contains($0) }
            if variables.isEmpty {
                throw EddyError("\(path): no variable columns left after the episode, input and time columns; name them with --columns")
            }
        }
        if time != nil, variables.contains(time!) || inputs.contains(time!) {
            if spec.timeColumn != nil { throw EddyError("\(path): the time column '\(header[time!])' cannot also be a variable or input") }
            time = nil
        }
        for a in spec.angles where !variables.contains(where: { header[$0] == a }) {
            throw EddyError("\(path): --angles names '\(a)', which is not among the variables (\(variables.map { header[$0] }.joined(separator: ", ")))")
        }
        if (spec.from != nil || spec.until != nil) && time == nil {
            throw EddyError("\(path): --from and --until select rows by time; name the time column with --time-column")
        }
        if !spec.calendar.isEmpty && time == nil {
            throw EddyError("\(path): calendar inputs need a time column; name it with --time-column")
        }
        let all = variables + inputs
        if Set(all).count != all.count {
            throw EddyError("\(path): a column is named twice among --columns and --inputs")
        }
        if let e = episode, all.contains(e) {
            throw EddyError("\(path): the episode column '\(header[e])' cannot also be a variable or input")
        }
        variableNames = variables.flatMap { spec.angles.contains(header[$0]) ? ["\(header[$0])_sin", "\(header[$0])_cos"] : [header[$0]] }
        inputNames = inputs.map { header[$0] }
        angleColumns = Set(variables.filter { spec.angles.contains(header[$0]) })
        timeFormat = spec.timeFormat
    }
}
