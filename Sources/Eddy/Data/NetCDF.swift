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

/// Streams gridded fields from a NetCDF file (classic or netCDF-4, through `libnetcdf`) as one trajectory named `"0"`:
/// the state at each time is the flattened selection of the chosen variables, read one time step at a time
/// (`nc_get_vara_double`), so memory does not grow with the number of time steps.
///
/// - Time: the dimension named `time` (else the unlimited dimension). When a 1-D coordinate variable of that name has
///   CF units `UNIT since DATE` (UNIT: seconds, minutes, hours or days), times become seconds since 1970-01-01 UTC
///   (so `dt`, calendar inputs and `from`/`until` work as for a CSV time column); other numeric times are used as
///   they are; without a coordinate variable the steps are simply counted.
/// - Variables: `spec.ncVariables`, or every numeric variable with the time dimension that is not a coordinate
///   variable, in the file's order.
/// - Levels: `spec.ncLevels` picks indices along a dimension named `level`, `lev`, `plev`, `pressure_level` or
///   `isobaricInhPa`. Box: `spec.ncBox` keeps the latitudes and longitudes inside, by the 1-D coordinate variables
///   `lat`/`latitude` and `lon`/`longitude`.
/// - Missing: values equal to `_FillValue` or `missing_value` (or, for float and double variables without
///   `_FillValue`, the netCDF default fill), and NaN; a time step with any missing value splits the trajectory
///   (or is filled, see `fillGaps`). `scale_factor` and `add_offset` are applied.
///
/// Variable names and order: variable by variable (in the order above), then the variable's other dimensions in
/// the file's order (C order: the last dimension varies fastest), e.g. `t[level=500:lat=40.5:lon=280]`, each
/// dimension as `NAME=VALUE` with the coordinate value (`NAME=#i`, the index, where the dimension has no 1-D
/// coordinate variable: never mistaken for a coordinate, e.g. a latitude), joined by `:`; a variable with only the time dimension is named as it is. `spec.columns` and
/// `spec.inputs` may select among these names.
public final class NetCDFReader: RowReader {
    public let path: String
    public let variableNames: [String]
    public let inputNames: [String]
    public var inferredDt: Double? { shaper.dt }
    /// Valid values per selected element, then the calendar inputs (valid in every time step read).
    public var validCounts: [Int] { counts + [Int](repeating: step, count: 2 * calendarCount) }
    private var counts: [Int]
    private let calendarCount: Int
    /// Times came from CF units `UNIT since DATE` (seconds since 1970).
    public private(set) var timesAreDates = false
    public var filledRows: Int { shaper.filledRows }
    public var filledGaps: Int { shaper.filledGaps }
    public var fill: FillReport { shaper.fill }
    /// Every flattened element in the documented order (before `columns`/`inputs` pick among them).
    public let elementNames: [String]
    /// The number of time steps in the file.
    public let steps: Int

    static let levelNames: Set<String> = ["level", "lev", "plev", "pressure_level", "isobaricinhpa"]
    static let latNames: Set<String> = ["lat", "latitude"]
    static let lonNames: Set<String> = ["lon", "longitude"]

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
    private let picked: [Int]
    private let times: [Double]?
    private let shaper: RowShaper
    private var step = 0
    /// One past the last time step read (`steps`, or the end of `DataSpec.rawRows`).
    private var end = 0
    private var buffer: [Double] = []
    private var full: [Double]

    public init(spec: DataSpec) throws {
        path = spec.path
        let path = spec.path
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
            guard let timeDim = dimNames.firstIndex(of: "time") ?? dimNames.firstIndex(where: { $0.lowercased() == "time" })
                    ?? (unlimited >= 0 ? Int(unlimited) : nil) else {
                throw EddyError("\(path): no time dimension (expected one named 'time', or an unlimited dimension); the dimensions are: \(dimNames.joined(separator: ", "))")
            }
            steps = dimLengths[timeDim]
            if steps == 0 { throw EddyError("\(path): the time dimension '\(dimNames[timeDim])' is empty") }

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
            let chosen: [Int]
            if spec.ncVariables.isEmpty {
                chosen = infos.indices.filter {
                    infos[$0].dims.contains(timeDim) && !dimNames.contains(infos[$0].name) && numeric(infos[$0].type)
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

            // A dimension's 1-D coordinate variable, read whole.
            func coordinate(_ d: Int) throws -> [Double]? {
                guard let v = infos.firstIndex(where: { $0.name == dimNames[d] && $0.dims == [d] }), numeric(infos[v].type) else { return nil }
                var values = [Double](repeating: 0, count: dimLengths[d])
                if values.isEmpty { return values }
                try check(nc_get_var_double(id, Int32(v), &values), "reading coordinate '\(dimNames[d])'")
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
                                                dimNames: dimNames, dimLengths: dimLengths, levels: spec.ncLevels, box: spec.ncBox != nil,
                                                coordinates: Set((0..<dimNames.count).filter { d in
                                                    infos.contains { $0.name == dimNames[d] && $0.dims == [d] && numeric($0.type) }
                                                }))
            var selection: [Int: [Int]] = [:]
            var coordinates: [Int: [Double]] = [:]
            var sawLevel = false, sawLat = false, sawLon = false
            for d in used {
                let name = dimNames[d].lowercased()
                let coords = try coordinate(d)
                coordinates[d] = coords
                var indices = Array(0..<dimLengths[d])
                if NetCDFReader.levelNames.contains(name), let levels = spec.ncLevels {
                    sawLevel = true
                    for l in levels where !(0..<dimLengths[d]).contains(l) {
                        throw EddyError("\(path): level index \(l) is out of range: dimension '\(dimNames[d])' has \(dimLengths[d]) levels (indices 0…\(dimLengths[d] - 1))")
                    }
                    if levels.isEmpty { throw EddyError("\(path): the level selection is empty") }
                    if Set(levels).count != levels.count { throw EddyError("\(path): a level index is named twice") }
                    indices = levels
                }
                if let box = spec.ncBox, NetCDFReader.latNames.contains(name) || NetCDFReader.lonNames.contains(name) {
                    let isLat = NetCDFReader.latNames.contains(name)
                    if isLat { sawLat = true } else { sawLon = true }
                    guard let c = coords else {
                        throw EddyError("\(path): a lat/lon box needs the coordinate variable '\(dimNames[d])', which the file lacks")
                    }
                    indices = indices.filter {
                        isLat ? c[$0] >= box.latMin && c[$0] <= box.latMax : NetCDFReader.inside(lon: c[$0], box.lonMin, box.lonMax)
                    }
                    if indices.isEmpty {
                        func extent(_ values: [Double]) -> String {
                            values.isEmpty ? "none" : "\(NetCDFReader.text(values.min()!))…\(NetCDFReader.text(values.max()!))"
                        }
                        let others = used.filter { $0 != d && (NetCDFReader.latNames.contains(dimNames[$0].lowercased()) || NetCDFReader.lonNames.contains(dimNames[$0].lowercased())) }
                        let grid = ([d] + others).sorted { NetCDFReader.latNames.contains(dimNames[$0].lowercased()) && !NetCDFReader.latNames.contains(dimNames[$1].lowercased()) }.map { "\(dimNames[$0]) \(extent((try? coordinate($0)) ?? nil ?? []))" }.joined(separator: ", ")
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
                    throw EddyError("\(path): a lat/lon box was given but no chosen variable has a lat/latitude or lon/longitude dimension; its dimensions: \(used.map { dimNames[$0] }.joined(separator: ", "))")
                }
                if box.latMin > box.latMax { throw EddyError("\(path): the lat/lon box has latMin \(box.latMin) > latMax \(box.latMax)") }
            }

            // The selection is known: its size, and the memory of the names and buffers, before they are made.
            try NetCDFReader.checkSelection(path: path, chosen: chosen.map { (infos[$0].name, infos[$0].dims) }, timeDim: timeDim,
                                            dimNames: dimNames, selection: selection)

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
                            l2.append(l.isEmpty ? "\(dimNames[d])=\(value)" : "\(l):\(dimNames[d])=\(value)")
                        }
                    }
                    offsets = o2
                    labels = l2
                }
                names += labels.map { $0.isEmpty ? info.name : "\(info.name)[\($0)]" }
                // Missing-value markers and packing.
                func attribute(_ name: String) -> [Double]? {
                    var length = 0
                    guard nc_inq_attlen(id, varid, name, &length) == NC_NOERR, length > 0 else { return nil }
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
            inputNames = inputs.map { names[$0] } + spec.calendar.flatMap(\.inputNames)
            calendarCount = spec.calendar.count
            self.plans = plans
            full = [Double](repeating: 0, count: names.count)
            counts = [Int](repeating: 0, count: picked.count)

            // Times.
            if let c = try coordinate(timeDim) {
                var t = c
                var length = 0
                if let tv = infos.firstIndex(where: { $0.name == dimNames[timeDim] }),
                   nc_inq_attlen(id, Int32(tv), "units", &length) == NC_NOERR, length > 0 {
                    var chars = [CChar](repeating: 0, count: length + 1)
                    if nc_get_att_text(id, Int32(tv), "units", &chars) == NC_NOERR,
                       let (scale, origin) = NetCDFReader.timeUnits(NetCDFReader.string(chars)) {
                        t = c.map { origin + $0 * scale }
                        timesAreDates = true
                    }
                }
                times = t
            } else {
                times = nil
            }
            if times == nil && (!spec.calendar.isEmpty || spec.from != nil || spec.until != nil) {
                throw EddyError("\(path): calendar inputs and --from/--until need a time coordinate variable '\(dimNames[timeDim])', which the file lacks")
            }
            shaper = RowShaper(path: path, width: picked.count, calendar: spec.calendar, fillGaps: spec.fillGaps,
                               from: spec.from, until: spec.until, dt: spec.dt, blockRows: spec.blockRows)
            // A shard reads its own time steps only (`DataSpec.rawRows`).
            step = min(steps, max(0, (spec.rawRows?.lowerBound ?? 0) - spec.rawHistory))
            end = max(step, min(steps, spec.rawRows?.upperBound ?? steps))
            shaper.countsFrom = spec.rawRows?.lowerBound ?? .min
        } catch {
            nc_close(id)
            ncid = -1
            throw error
        }
    }

    deinit { if ncid >= 0 { NetCDFLibrary.locked { _ = nc_close(ncid) } } }

    public func next() throws -> RowBlock? {
        while true {
            if let block = shaper.builder.take() { return block }
            if step == end {
                if ncid >= 0 { NetCDFLibrary.locked { _ = nc_close(ncid) }; ncid = -1 }
                return nil
            }
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
            let row = picked.map { full[$0] }
            for (k, v) in row.enumerated() where !v.isNaN { counts[k] += 1 }
            try shaper.add(RawRow(episode: "0", time: times?[step], values: row, line: step, source: step))
            step += 1
            if step == end { try shaper.finish() }
        }
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
    }
}
