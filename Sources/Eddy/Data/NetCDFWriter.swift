import CNetCDF
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Writes a netCDF-4 file through libnetcdf, atomically: the library writes a temporary file beside the target,
/// and `commit()` closes it and renames it into place; dropped without `commit()`, nothing is left behind.
/// Every call holds `NetCDFLibrary`'s lock. The netCDF id is released at most once: `nc_close` in `commit()`, or
/// `nc_abort` when the writer is dropped after a definition error (a bad name or dimension; the file is discarded).
/// After a failed write, end of definitions or close (a full disk, a file-size limit: HDF5 could not flush), the id
/// is left alone: libnetcdf leaves the HDF5 file half closed, and closing or aborting it then crashes inside HDF5
/// (`nc_abort` after a failed `nc_enddef` segfaulted in `H5Iget_name`, listing the objects it could not close). The
/// temporary file is removed all the same, and HDF5's exit handler, which would crash on those objects, is off
/// (`NetCDFLibrary.skipHDF5Termination`).
public final class NetCDFWriter {
    public let path: String
    private let file: AtomicFile
    private var ncid: Int32 = -1
    /// An I/O operation failed: the id must not be used again, not even to abort.
    private var abandoned = false

    public init(path: String) throws {
        self.path = path
        file = try AtomicFile(path: path)
        var id: Int32 = 0
        let status = NetCDFLibrary.locked { nc_create(file.temporaryPath, NC_CLOBBER | NC_NETCDF4, &id) }
        try check(status, "cannot create the file")
        ncid = id
    }

    deinit {
        if ncid >= 0 && !abandoned { _ = NetCDFLibrary.locked { nc_abort(ncid) } }
    }

    /// `io`: the call writes to the file (end of definitions, data, close), so its failure abandons the id.
    private func check(_ status: Int32, _ what: String, io: Bool = false) throws {
        guard status == NC_NOERR else {
            if io { abandoned = true }
            let reason = NetCDFLibrary.locked { String(cString: nc_strerror(status)) }
            throw EddyError("\(path): \(what) (netCDF: \(reason)\(io && status == NC_EHDFERR ? "; HDF5 could not write: is the disk full, or a file-size limit reached?" : ""))")
        }
    }

    /// A dimension; nil length: unlimited.
    public func dimension(_ name: String, _ length: Int?) throws -> Int32 {
        var id: Int32 = 0
        try check(NetCDFLibrary.locked { nc_def_dim(ncid, name, length ?? Int(NC_UNLIMITED), &id) }, "cannot define dimension '\(name)'")
        return id
    }

    /// A double (or 32-bit integer) variable with text attributes; doubles get NaN as `_FillValue`.
    public func variable(_ name: String, _ dims: [Int32], integer: Bool = false, attributes: [(String, String)] = []) throws -> Int32 {
        var id: Int32 = 0
        try check(NetCDFLibrary.locked { nc_def_var(ncid, name, integer ? NC_INT : NC_DOUBLE, Int32(dims.count), dims, &id) },
                  "cannot define variable '\(name)'")
        if !integer {
            var fill = Double.nan
            try check(NetCDFLibrary.locked { nc_put_att_double(ncid, id, "_FillValue", NC_DOUBLE, 1, &fill) }, "cannot set '\(name)' fill value")
        }
        for (key, value) in attributes { try attribute(id, key, value) }
        return id
    }

    /// A variable-length string variable (netCDF-4 `string`) with text attributes.
    public func stringVariable(_ name: String, _ dims: [Int32], attributes: [(String, String)] = []) throws -> Int32 {
        var id: Int32 = 0
        try check(NetCDFLibrary.locked { nc_def_var(ncid, name, NC_STRING, Int32(dims.count), dims, &id) }, "cannot define variable '\(name)'")
        for (key, value) in attributes { try attribute(id, key, value) }
        return id
    }

    /// A text attribute of a variable, or of the file with `NC_GLOBAL`.
    public func attribute(_ variable: Int32, _ name: String, _ text: String) throws {
        try check(NetCDFLibrary.locked { nc_put_att_text(ncid, variable, name, text.utf8.count, text) }, "cannot write attribute '\(name)'")
    }

    public func endDefinitions() throws {
        try check(NetCDFLibrary.locked { nc_enddef(ncid) }, "cannot finish the header", io: true)
    }

    /// Values of the hyperslab `start`/`count` (C order).
    public func put(_ variable: Int32, start: [Int], count: [Int], _ values: [Double]) throws {
        precondition(values.count == count.reduce(1, *))
        try check(NetCDFLibrary.locked { nc_put_vara_double(ncid, variable, start, count, values) }, "cannot write data", io: true)
    }

    public func put(_ variable: Int32, start: [Int], count: [Int], ints values: [Int32]) throws {
        precondition(values.count == count.reduce(1, *))
        try check(NetCDFLibrary.locked { nc_put_vara_int(ncid, variable, start, count, values) }, "cannot write data", io: true)
    }

    public func put(_ variable: Int32, start: [Int], count: [Int], strings values: [String]) throws {
        precondition(values.count == count.reduce(1, *))
        // C strings that live for the call.
        let copies = values.map { strdup($0) }
        defer { copies.forEach { free($0) } }
        var pointers: [UnsafePointer<CChar>?] = copies.map { UnsafePointer($0) }
        try check(NetCDFLibrary.locked { nc_put_vara_string(ncid, variable, start, count, &pointers) }, "cannot write data", io: true)
    }

    /// Closes the file and moves it into place.
    public func commit() throws {
        precondition(ncid >= 0 && !abandoned, "NetCDFWriter.commit() after a failed write or a commit")
        let status = NetCDFLibrary.locked { nc_close(ncid) }
        ncid = -1
        try check(status, "cannot finish the file", io: true)
        try file.commit()
    }
}

/// Columns named as `NetCDFReader` names grid points, `VAR[DIM=VALUE:…]`, arranged back into gridded variables:
/// each variable's dimensions with their coordinate values, in the columns' (C) order.
public struct GridLayout: Sendable, Equatable {
    public struct Dimension: Sendable, Equatable {
        public var name: String
        /// Coordinate values as written in the names (numbers where they parse).
        public var labels: [String]
        public var values: [Double]? { let v = labels.compactMap(Double.init); return v.count == labels.count ? v : nil }
    }

    public struct Variable: Sendable, Equatable {
        public var name: String
        /// The variable's grid dimensions (empty for a column without `[…]`).
        public var dimensions: [Dimension]
        /// Indices of its columns, in C order of its dimensions.
        public var columns: [Int]
    }

    public var variables: [Variable]

    /// A column name `VAR[DIM=VALUE:…]` split into the variable and its `DIM=VALUE` labels; parts without `=` are
    /// skipped, and `complete` says whether there were none. Nil for a name without brackets.
    static func labels(of name: String) -> (variable: Substring, labels: [(key: Substring, value: Substring)], complete: Bool)? {
        guard let open = name.firstIndex(of: "["), name.hasSuffix("]") else { return nil }
        var labels: [(key: Substring, value: Substring)] = []
        var complete = true
        for part in name[name.index(after: open)..<name.index(before: name.endIndex)].split(separator: ":", omittingEmptySubsequences: false) {
            guard let eq = part.firstIndex(of: "=") else { complete = false; continue }
            labels.append((part[..<eq], part[part.index(after: eq)...]))
        }
        return (name[..<open], labels, complete)
    }

    /// Groups columns by variable and checks each group fills its grid in C order; nil when the names are not a grid.
    public static func parse(_ names: [String]) -> GridLayout? {
        var order: [String] = []
        var groups: [String: [(Int, [(String, String)])]] = [:]
        for (c, name) in names.enumerated() {
            var variable = name
            var pairs: [(String, String)] = []
            if let parsed = labels(of: name) {
                guard parsed.complete else { return nil }
                variable = String(parsed.variable)
                pairs = parsed.labels.map { (String($0.key), String($0.value)) }
            }
            if groups[variable] == nil { order.append(variable) }
            groups[variable, default: []].append((c, pairs))
        }
        var variables: [Variable] = []
        for name in order {
            let members = groups[name]!
            let dimNames = members[0].1.map(\.0)
            guard members.allSatisfy({ $0.1.map(\.0) == dimNames }) else { return nil }
            var dims = dimNames.map { Dimension(name: $0, labels: []) }
            for (_, pairs) in members {
                for (d, pair) in pairs.enumerated() where !dims[d].labels.contains(pair.1) { dims[d].labels.append(pair.1) }
            }
            // The columns must be the full product in C order.
            guard members.count == dims.map(\.labels.count).reduce(1, *) else { return nil }
            for (position, (_, pairs)) in members.enumerated() {
                var index = 0
                for (d, pair) in pairs.enumerated() { index = index * dims[d].labels.count + dims[d].labels.firstIndex(of: pair.1)! }
                guard index == position else { return nil }
            }
            variables.append(Variable(name: name, dimensions: dims, columns: members.map(\.0)))
        }
        return GridLayout(variables: variables)
    }
}
