/// The header of a classic netCDF file (CDF-1, CDF-2 with 64-bit offsets, CDF-5 with 64-bit data), parsed from bytes
/// with a bounds-checked reader before libnetcdf sees the file, and the file length it implies.
///
/// libnetcdf trusts the header: a count is allocated as it stands, and data past the end of a truncated file read as
/// zeros (the fill libnetcdf's I/O layer supplies). So `NetCDFReader` parses the header here first and refuses a
/// malformed one with the place, and a file shorter than the data its header declares. The layout (the format
/// specification, "The NetCDF Classic Format Specification"; all integers big-endian):
///
///     header   = magic numrecs dim_list gatt_list var_list
///     magic    = 'C' 'D' 'F' VERSION            VERSION = 1 | 2 | 5
///     numrecs  = NON_NEG | STREAMING            STREAMING = all bits set (the count was never written)
///     list     = ABSENT | TAG nelems [item …]   ABSENT = ZERO nelems(0); TAG = 0x0A dim, 0x0B var, 0x0C attr
///     dim      = name dim_length                (length 0: the record dimension)
///     attr     = name nc_type nelems [values]   (values padded to 4 bytes)
///     var      = name nelems [dimid …] vatt_list nc_type vsize begin
///     name     = nelems chars                   (padded to 4 bytes)
///
/// NON_NEG (counts, lengths, dimension ids, vsize) is 4 bytes in CDF-1 and CDF-2 and 8 in CDF-5; `begin` is 4 bytes
/// in CDF-1 and 8 in the others; tags and types are 4 bytes. `vsize` is redundant (and saturates for large
/// variables), so sizes are computed from the dimensions, as libnetcdf does.
public struct ClassicNetCDFHeader: Sendable, Equatable {
    public enum Format: UInt8, Sendable { case cdf1 = 1, cdf2 = 2, cdf5 = 5 }

    public struct Dimension: Sendable, Equatable {
        public var name: String
        /// 0 for the record (unlimited) dimension, whose length is the header's record count.
        public var length: Int
    }

    public struct Variable: Sendable, Equatable {
        public var name: String
        public var dimensions: [Int]
        public var type: Int
        public var begin: Int
        /// The variable's bytes (a record variable's: in one record), without the padding to 4 bytes.
        public var bytes: Int
        /// The variable's first dimension is the record dimension.
        public var isRecord: Bool
        /// `bytes` rounded up to a multiple of 4 (what the variable occupies, as libnetcdf lays it out).
        public var padded: Int
    }

    public var format: Format
    public var records: Int
    public var dimensions: [Dimension]
    public var variables: [Variable]
    /// Bytes of the header itself.
    public var headerLength: Int
    /// Bytes of one record (every record variable's slab, padded; a single record variable is not padded).
    public var recordSize: Int
    /// The file length the header implies: the end of the last byte of data any variable has (trailing padding is
    /// not required).
    public var requiredLength: Int
    /// Where the record variables' data end (0 without records).
    public var recordEnd: Int
    /// The largest name (NC_MAX_NAME) and number of dimensions of a variable (NC_MAX_VAR_DIMS) netCDF allows.
    public static let maxName = 256
    public static let maxVariableDimensions = 1024

    /// Bytes per value of a netCDF type (NC_BYTE 1 … NC_DOUBLE 6; CDF-5 adds NC_UBYTE 7 … NC_UINT64 11).
    static func typeSize(_ type: Int, _ format: Format) -> Int? {
        switch type {
        case 1, 2: return 1
        case 3: return 2
        case 4, 5: return 4
        case 6: return 8
        case 7 where format == .cdf5: return 1
        case 8 where format == .cdf5: return 2
        case 9 where format == .cdf5: return 4
        case 10 where format == .cdf5, 11 where format == .cdf5: return 8
        default: return nil
        }
    }

    /// Whether `bytes` start like a classic netCDF file (`CDF` and any version byte; the version is checked by `parse`).
    public static func isClassic(_ bytes: some Collection<UInt8>) -> Bool { bytes.starts(with: [0x43, 0x44, 0x46]) }

    /// The header's bytes ran out before the header did, in a file that has more: read more and try again.
    struct NeedMore: Error {}

    /// Parses a header from the start of a file: `bytes` is the whole file or a prefix of it that holds the header,
    /// `fileLength` the file's length (nil: `bytes.count`). Every count is compared with what is left of the file
    /// before anything is read, and every size is computed without overflow. Throws `EddyError`
    /// ("PATH: classic netCDF header, byte N: …") for anything malformed.
    public static func parse(bytes: [UInt8], path: String, fileLength: Int? = nil) throws -> ClassicNetCDFHeader {
        var parser = Parser(bytes: bytes, path: path, fileLength: fileLength ?? bytes.count)
        return try parser.header()
    }

    /// Reads and parses the header of the file at `path` (at most the header's own bytes, read in growing prefixes).
    public static func read(_ file: InputFile) throws -> ClassicNetCDFHeader {
        let length = file.size
        var prefix = min(length, 1 << 16)
        while true {
            try file.seek(to: 0)
            let bytes = file.readBytes(prefix)
            if bytes.count < prefix { throw EddyError("\(file.path): the file shrank while its header was read") }
            do {
                return try parse(bytes: bytes, path: file.path, fileLength: length)
            } catch is NeedMore {
                // Only when bytes.count < length, so this grows, and stops at the whole file.
                prefix = prefix > length / 2 ? length : 2 * prefix
            }
        }
    }

    /// Throws when `fileLength` is shorter than the data the header declares: a truncated file, whose missing
    /// bytes libnetcdf would read as zeros.
    public func checkLength(_ fileLength: Int, path: String) throws {
        guard fileLength < requiredLength else { return }
        if records > 0 && recordEnd == requiredLength {
            throw EddyError("\(path): truncated: the header declares \(records) records of \(recordSize) bytes (needs \(requiredLength) bytes) but the file has \(fileLength) bytes")
        }
        if let v = variables.first(where: { !$0.isRecord && $0.begin + $0.bytes == requiredLength }) {
            throw EddyError("\(path): truncated: variable '\(ClassicNetCDFHeader.quoted(v.name))' ends at byte \(requiredLength) but the file has \(fileLength) bytes")
        }
        throw EddyError("\(path): truncated: the header needs \(requiredLength) bytes but the file has \(fileLength)")
    }

    /// A name for a message: at most 40 characters.
    static func quoted(_ name: String) -> String { name.count > 40 ? String(name.prefix(40)) + "…" : name }
}

/// The cursor of `ClassicNetCDFHeader.parse`: reads that fail past the end of a prefix ask for more (`NeedMore`),
/// past the end of the file they are errors.
private struct Parser {
    var reader: ByteReader
    let path: String
    let fileLength: Int
    var format: ClassicNetCDFHeader.Format = .cdf1

    init(bytes: [UInt8], path: String, fileLength: Int) {
        reader = ByteReader(bytes)
        self.path = path
        self.fileLength = max(fileLength, bytes.count)
    }

    func fail(_ what: String, at offset: Int? = nil) -> EddyError {
        EddyError("\(path): classic netCDF header, byte \(offset ?? reader.offset): \(what)")
    }

    /// Bytes left in the file after the cursor (not only in the prefix at hand).
    var fileRemaining: Int { fileLength - reader.offset }

    /// Whether the prefix ends before the file does.
    var isPrefix: Bool { reader.bytes.count < fileLength }

    mutating func ensure(_ count: Int, _ what: String) throws {
        if count <= reader.remaining { return }
        if count <= fileRemaining && isPrefix { throw ClassicNetCDFHeader.NeedMore() }
        throw fail("the file ends inside \(what) (\(count) bytes needed, \(fileRemaining) left)")
    }

    mutating func u32(_ what: String) throws -> Int {
        try ensure(4, what)
        return Int(reader.u32be()!)
    }

    /// NON_NEG: 4 bytes (CDF-1, CDF-2) or 8 (CDF-5).
    mutating func count(_ what: String) throws -> Int {
        if format != .cdf5 { return try u32(what) }
        try ensure(8, what)
        let start = reader.offset
        let v = reader.u64be()!
        guard v <= UInt64(Int.max) else { throw fail("\(what) \(v) is out of range", at: start) }
        return Int(v)
    }

    /// A count of list items each at least `itemBytes` long: no more than what is left of the file can hold.
    mutating func listCount(_ what: String, itemBytes: Int) throws -> Int {
        let start = reader.offset
        let n = try count("the number of \(what)")
        guard n <= fileRemaining / itemBytes else {
            throw fail("\(n) \(what) declared, but the \(fileRemaining) bytes left in the file hold at most \(fileRemaining / itemBytes)", at: start)
        }
        return n
    }

    mutating func skip(_ count: Int, _ what: String) throws {
        try ensure(count, what)
        reader.skip(count)
    }

    /// Rounded up to a multiple of 4, nil on overflow.
    static func padded(_ n: Int) -> Int? { CheckedSize.add(n, 3).map { $0 / 4 * 4 } }

    mutating func name(_ what: String) throws -> String {
        let start = reader.offset
        let length = try count("the length of \(what)'s name")
        guard length >= 1 && length <= ClassicNetCDFHeader.maxName else {
            throw fail("\(what)'s name is \(length) bytes long; netCDF names have 1…\(ClassicNetCDFHeader.maxName)", at: start)
        }
        let stored = Parser.padded(length)!
        try ensure(stored, "\(what)'s name")
        let chars = reader.read(stored)!.prefix(length)
        return String(decoding: chars, as: UTF8.self)
    }

    /// The tag of a list: ABSENT (0) or `expected`, with its count; a non-empty list must carry its tag.
    mutating func list(_ expected: Int, _ what: String, itemBytes: Int) throws -> Int {
        let start = reader.offset
        let tag = try u32("the tag of the \(what) list")
        let n = try listCount(what, itemBytes: itemBytes)
        if n > 0 && tag != expected {
            throw fail("the \(what) list has tag \(tag), expected \(expected) (or 0 and no \(what))", at: start)
        }
        if tag != 0 && tag != expected {
            throw fail("the \(what) list has tag \(tag), expected \(expected) or 0", at: start)
        }
        return n
    }

    var wide: Int { format == .cdf5 ? 8 : 4 }

    mutating func attributes(_ owner: String) throws {
        // name (count + 4 bytes at least), type, count.
        let n = try list(0x0C, "attributes of \(owner)", itemBytes: wide + 4 + 4 + wide)
        for i in 0..<n {
            let name = try self.name("attribute \(i + 1) of \(owner)")
            let what = "attribute '\(ClassicNetCDFHeader.quoted(name))' of \(owner)"
            let typeAt = reader.offset
            let type = try u32("the type of \(what)")
            guard let size = ClassicNetCDFHeader.typeSize(type, format) else {
                throw fail("\(what) has type \(type), not a netCDF type of this format", at: typeAt)
            }
            let countAt = reader.offset
            let values = try count("the number of values of \(what)")
            guard values <= fileRemaining / size, let stored = Parser.padded(values * size) else {
                throw fail("\(what) declares \(values) values of \(size) bytes, more than the \(fileRemaining) bytes left in the file", at: countAt)
            }
            try skip(stored, "the values of \(what)")
        }
    }

    mutating func header() throws -> ClassicNetCDFHeader {
        try ensure(4, "the magic number")
        guard ClassicNetCDFHeader.isClassic(reader.bytes) else { throw fail("not a classic netCDF file (it does not start with 'CDF')", at: 0) }
        reader.skip(3)
        let version = reader.u8()!
        guard let f = ClassicNetCDFHeader.Format(rawValue: version) else {
            throw fail("unknown classic netCDF version \(version) (expected 1, 2 or 5)", at: 3)
        }
        format = f
        // numrecs: STREAMING (all bits set) means the writer never recorded how many records there are.
        let recordsAt = reader.offset
        let records: Int
        if format == .cdf5 {
            try ensure(8, "the record count")
            let v = reader.u64be()!
            if v == UInt64.max {
                throw fail("the record count is STREAMING (all bits set: the writer never recorded it), so the number of records is unknown; rewrite the file with its real record count (e.g. nccopy)", at: recordsAt)
            }
            guard v <= UInt64(Int.max) else { throw fail("the record count \(v) is out of range", at: recordsAt) }
            records = Int(v)
        } else {
            records = try u32("the record count")
            if records == 0xFFFF_FFFF {
                throw fail("the record count is STREAMING (0xFFFFFFFF: the writer never recorded it), so the number of records is unknown; rewrite the file with its real record count (e.g. nccopy)", at: recordsAt)
            }
        }

        // Dimensions: name (count + at least 4 bytes) and length.
        var dimensions: [ClassicNetCDFHeader.Dimension] = []
        let dimensionCount = try list(0x0A, "dimensions", itemBytes: wide + 4 + wide)
        var recordDimension: Int?
        for d in 0..<dimensionCount {
            let name = try self.name("dimension \(d)")
            let at = reader.offset
            let length = try count("the length of dimension '\(ClassicNetCDFHeader.quoted(name))'")
            if length == 0 {
                if let r = recordDimension {
                    throw fail("dimensions \(r) and \(d) both have length 0 (the record dimension); a file has at most one", at: at)
                }
                recordDimension = d
            }
            dimensions.append(.init(name: name, length: length))
        }
        try attributes("the file")

        // Variables: name, dimension count, attribute list (8 bytes or 12 in CDF-5 at least), type, vsize, begin.
        var variables: [ClassicNetCDFHeader.Variable] = []
        let offsetBytes = format == .cdf1 ? 4 : 8
        let variableCount = try list(0x0B, "variables", itemBytes: wide + 4 + wide + 4 + wide + 4 + wide + offsetBytes)
        for v in 0..<variableCount {
            let name = try self.name("variable \(v)")
            let what = "variable '\(ClassicNetCDFHeader.quoted(name))'"
            let rankAt = reader.offset
            let rank = try count("the number of dimensions of \(what)")
            guard rank <= ClassicNetCDFHeader.maxVariableDimensions else {
                throw fail("\(what) has \(rank) dimensions; netCDF allows at most \(ClassicNetCDFHeader.maxVariableDimensions)", at: rankAt)
            }
            var ids: [Int] = []
            for a in 0..<rank {
                let at = reader.offset
                let id = format == .cdf5 ? try count("a dimension of \(what)") : Int(Int32(truncatingIfNeeded: try u32("a dimension of \(what)")))
                guard id >= 0 && id < dimensions.count else {
                    throw fail("\(what) uses dimension \(id), but the file has \(dimensions.count) (0…\(dimensions.count - 1))", at: at)
                }
                if id == recordDimension && a > 0 {
                    throw fail("\(what) has the record dimension '\(ClassicNetCDFHeader.quoted(dimensions[id].name))' at position \(a + 1); it may only come first", at: at)
                }
                ids.append(id)
            }
            try attributes(what)
            let typeAt = reader.offset
            let type = try u32("the type of \(what)")
            guard let size = ClassicNetCDFHeader.typeSize(type, format) else {
                throw fail("\(what) has type \(type), not a netCDF type of this format", at: typeAt)
            }
            _ = try count("the size (vsize) of \(what)")   // redundant; computed below
            let beginAt = reader.offset
            let begin: Int
            if format == .cdf1 {
                begin = Int(Int32(truncatingIfNeeded: try u32("the offset of \(what)")))
            } else {
                try ensure(8, "the offset of \(what)")
                begin = Int(Int64(bitPattern: reader.u64be()!))
            }
            guard begin >= 0 else { throw fail("\(what) starts at the negative offset \(begin)", at: beginAt) }
            let isRecord = ids.first.map { $0 == recordDimension } ?? false
            let shape = (isRecord ? Array(ids.dropFirst()) : ids).map { dimensions[$0].length }
            guard let bytes = CheckedSize.bytes(shape: shape, itemSize: size), let padded = Parser.padded(bytes) else {
                throw fail("the size of \(what) (\(shape.map(String.init).joined(separator: " × ")) values of \(size) bytes) overflows", at: rankAt)
            }
            variables.append(.init(name: name, dimensions: ids, type: type, begin: begin, bytes: bytes, isRecord: isRecord, padded: padded))
        }
        let headerLength = reader.offset
        return try layout(records: records, dimensions: dimensions, variables: variables, headerLength: headerLength)
    }

    /// The data layout libnetcdf expects (its `NC_computeshapes` and `NC_check_voffs`), checked with messages, and the
    /// file length it implies.
    func layout(records: Int, dimensions: [ClassicNetCDFHeader.Dimension], variables: [ClassicNetCDFHeader.Variable],
                headerLength: Int) throws -> ClassicNetCDFHeader {
        func bad(_ what: String) -> EddyError { EddyError("\(path): classic netCDF header: \(what)") }
        func quoted(_ v: ClassicNetCDFHeader.Variable) -> String { "'\(ClassicNetCDFHeader.quoted(v.name))'" }
        var end = headerLength            // where the previous variable's data end
        var required = headerLength, recordEnd = 0
        for v in variables where !v.isRecord {
            guard v.begin >= end else {
                throw bad(v.begin < headerLength
                          ? "variable \(quoted(v)) starts at byte \(v.begin), inside the header (\(headerLength) bytes)"
                          : "variable \(quoted(v)) starts at byte \(v.begin), before the previous variable ends (byte \(end))")
            }
            guard let e = CheckedSize.add(v.begin, v.padded), let last = CheckedSize.add(v.begin, v.bytes) else {
                throw bad("variable \(quoted(v)) ends past any file length (offset \(v.begin) + \(v.bytes) bytes)")
            }
            end = e
            required = max(required, last)
        }
        let recordVariables = variables.filter(\.isRecord)
        var recordSize = 0
        for v in recordVariables {
            guard let s = CheckedSize.add(recordSize, v.padded) else { throw bad("the record size overflows") }
            recordSize = s
        }
        // A single record variable is not padded between records (the format's special case, as libnetcdf reads it).
        if recordVariables.count == 1 { recordSize = recordVariables[0].bytes }
        for v in recordVariables {
            guard v.begin >= end else {
                throw bad(v.begin < headerLength
                          ? "record variable \(quoted(v)) starts at byte \(v.begin), inside the header (\(headerLength) bytes)"
                          : "record variable \(quoted(v)) starts at byte \(v.begin), before the previous variable ends (byte \(end))")
            }
            guard let e = CheckedSize.add(v.begin, v.padded) else { throw bad("record variable \(quoted(v)) ends past any file length") }
            end = e
            if records > 0 {
                guard let offset = CheckedSize.multiply(records - 1, recordSize), let a = CheckedSize.add(v.begin, offset),
                      let last = CheckedSize.add(a, v.bytes) else {
                    throw bad("\(records) records of \(recordSize) bytes from byte \(v.begin) overflow any file length")
                }
                recordEnd = max(recordEnd, last)
            }
        }
        return ClassicNetCDFHeader(format: format, records: records, dimensions: dimensions, variables: variables,
                                   headerLength: headerLength, recordSize: recordSize, requiredLength: max(required, recordEnd),
                                   recordEnd: recordEnd)
    }
}
