import CNetCDF
import EddyTestSupport
import Foundation
import Testing
@testable import Eddy

// Hostile netCDF files: the classic header is parsed from bytes and checked before libnetcdf sees the file
// (truncated files are refused instead of read with zeros), and netCDF-4 files declaring huge dimensions are sized
// before anything is allocated.

private func write(_ bytes: [UInt8], _ path: String) throws { try Data(bytes).write(to: URL(fileURLWithPath: path)) }

private func readAll(_ path: String) throws -> (NetCDFReader, [RowBlock]) {
    let reader = try NetCDFReader(spec: DataSpec(path: path))
    var blocks: [RowBlock] = []
    while let b = try reader.next() { blocks.append(b) }
    return (reader, blocks)
}

/// A small field written by libnetcdf itself in a classic format (`mode`: 0, NC_64BIT_OFFSET or NC_64BIT_DATA):
/// `time` (unlimited), `lat` 2, `lon` 3, `t(time, lat, lon)` doubles and `s(time)` shorts.
private func libnetcdfFile(_ path: String, mode: Int32, steps: Int = 5) throws {
    let status = NetCDFLibrary.locked { () -> Int32 in
        var nc: Int32 = 0, time: Int32 = 0, lat: Int32 = 0, lon: Int32 = 0, tv: Int32 = 0, latv: Int32 = 0, t: Int32 = 0, s: Int32 = 0
        var r = nc_create(path, NC_CLOBBER | mode, &nc)
        r |= nc_def_dim(nc, "time", Int(NC_UNLIMITED), &time)
        r |= nc_def_dim(nc, "lat", 2, &lat)
        r |= nc_def_dim(nc, "lon", 3, &lon)
        r |= nc_put_att_text(nc, NC_GLOBAL, "title", 5, "tests")
        r |= nc_def_var(nc, "time", NC_DOUBLE, 1, [time], &tv)
        r |= nc_def_var(nc, "lat", NC_DOUBLE, 1, [lat], &latv)
        r |= nc_def_var(nc, "t", NC_DOUBLE, 3, [time, lat, lon], &t)
        r |= nc_def_var(nc, "s", NC_SHORT, 1, [time], &s)
        r |= nc_enddef(nc)
        r |= nc_put_var_double(nc, latv, [10, 20])
        for n in 0..<steps {
            var h = Double(n)
            var v = Int16(n)
            r |= nc_put_vara_double(nc, tv, [n], [1], &h)
            r |= nc_put_vara_double(nc, t, [n, 0, 0], [1, 2, 3], (0..<6).map { Double(100 * n + $0) })
            r |= nc_put_vara_short(nc, s, [n], [1], &v)
        }
        return r | nc_close(nc)
    }
    #expect(status == NC_NOERR)
}

@Suite("Hostile netCDF: the classic header is checked, declared sizes are sized first")
struct HostileNetCDFTests {
    typealias B = ClassicNetCDFBuilder

    // MARK: The parser agrees with the format and with libnetcdf

    @Test(arguments: [UInt8(1), 2, 5])
    func builderFilesParseAndRead(version: UInt8) throws {
        let builder = B.field(version: version)
        let bytes = builder.bytes()
        let header = try ClassicNetCDFHeader.parse(bytes: bytes, path: "f.nc")
        #expect(header.format.rawValue == version && header.records == 4)
        #expect(header.dimensions.map(\.name) == ["time", "lat", "lon"] && header.dimensions.map(\.length) == [0, 2, 3])
        #expect(header.variables.map(\.name) == ["lat", "lon", "time", "t"])
        #expect(header.variables.map(\.isRecord) == [false, false, true, true])
        #expect(header.recordSize == 8 + 48)
        #expect(header.headerLength == builder.offset(of: "data"))
        #expect(header.requiredLength == bytes.count)
        // libnetcdf reads the same file, every value as written.
        let path = try scratch("eddy-nc-classic") + "/f.nc"
        try write(bytes, path)
        let (reader, blocks) = try readAll(path)
        #expect(reader.variableNames == ["t[lat=10:lon=0]", "t[lat=10:lon=5]", "t[lat=10:lon=10]", "t[lat=20:lon=0]", "t[lat=20:lon=5]", "t[lat=20:lon=10]"])
        #expect(blocks.flatMap(\.values) == (0..<4).flatMap { n in [0, 1, 2, 10, 11, 12].map { Double(100 * n + $0) } })
    }

    @Test(arguments: [Int32(0), NC_64BIT_OFFSET, NC_64BIT_DATA])
    func libnetcdfFilesParse(mode: Int32) throws {
        let path = try scratch("eddy-nc-classic") + "/lib.nc"
        try libnetcdfFile(path, mode: mode)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let header = try ClassicNetCDFHeader.parse(bytes: bytes, path: path)
        #expect(header.format == (mode == 0 ? .cdf1 : mode == NC_64BIT_OFFSET ? .cdf2 : .cdf5))
        #expect(header.records == 5 && header.dimensions.map(\.length) == [0, 2, 3])
        #expect(header.variables.map(\.name) == ["time", "lat", "t", "s"])
        // Three record variables (8 + 48 + 2 → 4 bytes padded).
        #expect(header.recordSize == 8 + 48 + 4)
        // libnetcdf writes the file out to its padded size: the data end at most 3 bytes before.
        #expect(header.requiredLength <= bytes.count && bytes.count - header.requiredLength < 4, "\(header.requiredLength) of \(bytes.count)")
        try header.checkLength(bytes.count, path: path)
        // A header alone (a prefix) with the file's length parses the same, or asks for more.
        #expect(try ClassicNetCDFHeader.parse(bytes: Array(bytes.prefix(header.headerLength)), path: path, fileLength: bytes.count) == header)
        #expect(throws: ClassicNetCDFHeader.NeedMore.self) {
            _ = try ClassicNetCDFHeader.parse(bytes: Array(bytes.prefix(header.headerLength - 1)), path: path, fileLength: bytes.count)
        }
    }

    /// A single record variable of shorts is not padded between records (the format's special case).
    @Test func singleRecordVariableIsNotPadded() throws {
        let b = B(records: 3, dimensions: [("time", 0)], variables: [B.Variable("s", [0], type: 3, values: [1, 2, 3])])
        let bytes = b.bytes()
        let header = try ClassicNetCDFHeader.parse(bytes: bytes, path: "s.nc")
        #expect(header.recordSize == 2 && header.requiredLength == bytes.count && bytes.count == header.headerLength + 6)
        let path = try scratch("eddy-nc-classic") + "/s.nc"
        try write(bytes, path)
        let (_, blocks) = try readAll(path)
        #expect(blocks.flatMap(\.values) == [1, 2, 3])
    }

    // MARK: Truncated files

    /// ISSUE 12: a truncated classic netCDF was read with zeros for the missing bytes. Now refused: the header's
    /// record count and sizes give the length the file must have.
    @Test(arguments: [UInt8(1), 2, 5])
    func truncatedFilesAreRefused(version: UInt8) throws {
        let dir = try scratch("eddy-nc-truncated")
        let bytes = B.field(version: version).bytes()
        let header = try ClassicNetCDFHeader.parse(bytes: bytes, path: "f.nc")
        for cut in [1, 8, 56, bytes.count - header.headerLength] {
            let path = dir + "/cut\(cut).nc"
            try write(Array(bytes.dropLast(cut)), path)
            let m = refusal("cut \(cut)") { _ = try readAll(path) }
            #expect(m == "\(path): truncated: the header declares 4 records of 56 bytes (needs \(bytes.count) bytes) but the file has \(bytes.count - cut) bytes", "\(m)")
        }
        // Inside the header: the place is named.
        let path = dir + "/header.nc"
        try write(Array(bytes.prefix(header.headerLength - 3)), path)
        let m = refusal("header cut") { _ = try readAll(path) }
        #expect(m.hasPrefix("\(path): classic netCDF header, byte ") && m.contains("the file ends inside"), "\(m)")
        // A record count raised past the data (a writer that died after updating numrecs).
        let raised = dir + "/raised.nc"
        let b = B.field(version: version)
        try write(b.bytes(replacing: ["numrecs": b.field(1_000_000)]), raised)
        let r = refusal("numrecs 1e6") { _ = try readAll(raised) }
        #expect(r.contains("\(raised): truncated: the header declares 1000000 records of 56 bytes") && r.contains("but the file has \(bytes.count) bytes"), "\(r)")
        // Without records: a fixed variable that ends past the end.
        let fixed = B(version: version, records: 0, dimensions: [("time", 5)], variables: [B.Variable("h", [0], values: [1, 2, 3, 4, 5])])
        let f = dir + "/fixed.nc"
        try write(Array(fixed.bytes().dropLast(8)), f)
        let fm = refusal("fixed") { _ = try readAll(f) }
        #expect(fm.hasPrefix("\(f): truncated: variable 'h' ends at byte "), "\(fm)")
    }

    @Test(arguments: [Int32(0), NC_64BIT_OFFSET, NC_64BIT_DATA])
    func truncatedLibnetcdfFilesAreRefused(mode: Int32) throws {
        let dir = try scratch("eddy-nc-truncated")
        let path = dir + "/lib.nc"
        try libnetcdfFile(path, mode: mode)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        _ = try readAll(path)
        let cut = dir + "/cut.nc"
        try write(Array(bytes.dropLast(20)), cut)
        let m = refusal("cut") { _ = try readAll(cut) }
        #expect(m.hasPrefix("\(cut): truncated: the header declares 5 records of 60 bytes"), "\(m)")
    }

    // MARK: Malformed headers

    static let malformed: [(String, String, @Sendable (B) -> [UInt8], String)] = [
        ("STREAMING", "CDF-1", { $0.bytes(replacing: ["numrecs": $0.field(0xFFFF_FFFF)]) }, "the record count is STREAMING"),
        ("STREAMING", "CDF-5", { b in var c = b; c.version = 5; return c.bytes(replacing: ["numrecs": c.field(UInt64.max)]) }, "the record count is STREAMING"),
        ("huge count", "dims", { $0.bytes(replacing: ["dims.count": $0.field(0x7FFF_FFFF)]) }, "2147483647 dimensions declared"),
        ("huge count", "vars", { $0.bytes(replacing: ["vars.count": $0.field(0xFFFF_FFFF)]) }, "4294967295 variables declared"),
        ("huge count", "CDF-5 dims", { b in var c = b; c.version = 5; return c.bytes(replacing: ["dims.count": c.field(1 << 62)]) }, "dimensions declared"),
        ("out of range", "CDF-5 length", { b in var c = b; c.version = 5; return c.bytes(replacing: ["dim.1.length": c.field(1 << 63)]) }, "out of range"),
        ("name", "empty", { $0.bytes(replacing: ["dim.1.namelen": $0.field(0)]) }, "names have 1…256"),
        ("name", "long", { $0.bytes(replacing: ["var.0.namelen": $0.field(1000)]) }, "1000 bytes long"),
        ("dimension id", "missing", { $0.bytes(replacing: ["var.3.dimid.1": $0.field(7)]) }, "uses dimension 7, but the file has 3"),
        ("dimension id", "negative", { $0.bytes(replacing: ["var.3.dimid.2": $0.field(0xFFFF_FFFF)]) }, "uses dimension -1"),
        ("record dimension", "not first", { $0.bytes(replacing: ["var.3.dimid.1": $0.field(0)]) }, "may only come first"),
        ("record dimension", "two", { $0.bytes(replacing: ["dim.2.length": $0.field(0)]) }, "dimensions 0 and 2 both have length 0"),
        ("type", "unknown", { $0.bytes(replacing: ["var.3.type": $0.field(13, 4)]) }, "type 13, not a netCDF type"),
        ("type", "CDF-5 only", { $0.bytes(replacing: ["var.3.type": $0.field(10, 4)]) }, "type 10, not a netCDF type of this format"),
        ("type", "attribute", { $0.bytes(replacing: ["var.0.atts.0.type": $0.field(0, 4)]) }, "type 0"),
        ("attribute", "huge", { $0.bytes(replacing: ["var.0.atts.0.count": $0.field(0x7FFF_FFF0)]) }, "declares 2147483632 values"),
        ("offset", "in header", { $0.bytes(replacing: ["var.0.begin": $0.field(8, 4)]) }, "starts at byte 8, inside the header"),
        ("offset", "overlap", { b in b.bytes(replacing: ["var.1.begin": b.field(UInt64(b.offset(of: "data")), 4)]) }, "before the previous variable ends"),
        ("offset", "negative", { $0.bytes(replacing: ["var.0.begin": $0.field(0x8000_0000, 4)]) }, "negative offset"),
        ("size", "overflow", { $0.bytes(replacing: ["dim.1.length": $0.field(0x7FFF_FFFF), "dim.2.length": $0.field(0x7FFF_FFFF)]) }, "overflows"),
        ("tag", "wrong", { $0.bytes(replacing: ["dims.tag": $0.field(0x0B, 4)]) }, "has tag 11, expected 10"),
        ("tag", "absent with items", { $0.bytes(replacing: ["vars.tag": $0.field(0, 4)]) }, "has tag 0, expected 11"),
        ("version", "3", { $0.bytes(replacing: ["magic": Array("CDF".utf8) + [3]]) }, "unknown classic netCDF version 3"),
    ]

    @Test(arguments: 0..<malformed.count)
    func malformedHeadersAreRefusedWithThePlace(index: Int) throws {
        let (what, detail, make, expected) = Self.malformed[index]
        let bytes = make(B.field())
        let m = refusal("\(what) (\(detail))") { _ = try ClassicNetCDFHeader.parse(bytes: bytes, path: "bad.nc").checkLength(bytes.count, path: "bad.nc") }
        #expect(m.hasPrefix("bad.nc: "), "\(m)")
        #expect(m.contains(expected), "\(what) (\(detail)): \(m)")
        // Through the reader, from a file: the same refusal, naming the file (libnetcdf never sees it).
        let path = try scratch("eddy-nc-malformed") + "/bad.nc"
        try write(bytes, path)
        let r = refusal("\(what) (\(detail)) file") { _ = try readAll(path) }
        #expect(r.hasPrefix("\(path): ") && r.contains(expected), "\(r)")
    }

    /// Seeded mutations (byte flips, truncations, insertions) of valid classic files: the parser returns or throws
    /// EddyError, never traps; what it accepts has a consistent layout.
    @Test func classicHeaderMutationsNeverCrash() throws {
        var rng = SeededGenerator(seed: 12, stream: "netcdf-mutations")
        let seeds = [B.field(version: 1).bytes(), B.field(version: 2).bytes(), B.field(version: 5).bytes()]
        var accepted = 0
        for i in 0..<6000 {
            var bytes = seeds[i % 3]
            for _ in 0..<(1 + Int(rng.next() % 4)) {
                let at = Int(rng.next() % UInt64(bytes.count))
                switch rng.next() % 5 {
                case 0: bytes = Array(bytes.prefix(at))
                case 1: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: at)
                case 2: bytes[at] = 0xFF
                default: bytes[at] ^= UInt8(1 << (rng.next() % 8))
                }
                if bytes.isEmpty { break }
            }
            do {
                let h = try ClassicNetCDFHeader.parse(bytes: bytes, path: "m.nc")
                #expect(h.headerLength <= bytes.count && h.requiredLength >= h.headerLength)
                try h.checkLength(bytes.count, path: "m.nc")
                accepted += 1
            } catch is EddyError {
            }
        }
        #expect(accepted > 0)
    }

    // MARK: Fuzzer findings (Fuzz/crashes/FuzzNetCDF), each a valid header with values or a layout the reader trapped on

    /// crash-be3a…: a time coordinate so large that its step index overflowed converting to Int; NaN and infinite
    /// times trapped the same way. Now a time too far along the grid starts a new segment, a non-finite one is refused.
    @Test func timesThatAreHugeOrNotFiniteDoNotTrap() throws {
        let dir = try scratch("eddy-nc-times")
        var b = B.field(steps: 4)
        b.variables[2].values = [0, 1, 1e300, 1e300 + 1e285]
        try write(b.bytes(), dir + "/huge.nc")
        let (_, segments) = try DataSource.loadSegments(DataSpec(path: dir + "/huge.nc"))
        #expect(segments.map(\.rowCount) == [2, 1, 1])
        for (value, shown) in [(Double.nan, "nan"), (1e305, "inf")] {
            b.variables[2].values = [0, 1, value, 3]
            let path = dir + "/\(shown).nc"
            try write(b.bytes(), path)
            let m = refusal(shown) { _ = try readAll(path) }
            #expect(m.hasPrefix(path) && m.contains("time \(shown) is not a finite number"), "\(m)")
        }
    }

    /// crash-2ba0…: a variable over an empty dimension (the record dimension with no records, while `time` is a
    /// fixed one) trapped building its read plan; so did one with the time dimension twice.
    @Test func emptyAndRepeatedDimensionsAreRefused() throws {
        let dir = try scratch("eddy-nc-dims")
        let empty = B(records: 0, dimensions: [("rec", 0), ("time", 3)], variables: [
            B.Variable("time", [1], values: [0, 1, 2]), B.Variable("v", [0, 1], values: []),
        ])
        try write(empty.bytes(), dir + "/empty.nc")
        let m = refusal("empty") { _ = try readAll(dir + "/empty.nc") }
        #expect(m == "\(dir)/empty.nc: variable 'v' has no values: its dimension 'rec' is empty (length 0); leave it out with --nc-variables", "\(m)")
        let twice = B(records: 0, dimensions: [("time", 2)], variables: [B.Variable("c", [0, 0], values: [1, 2, 3, 4])])
        try write(twice.bytes(), dir + "/twice.nc")
        let t = refusal("twice") { _ = try readAll(dir + "/twice.nc") }
        #expect(t.contains("variable 'c' has the time dimension 'time' more than once"), "\(t)")
    }

    // MARK: netCDF-4 files declaring huge dimensions

    /// A netCDF-4 file whose variable is declared over `length` points (chunked, nothing written: a few KB).
    func hugeNetCDF4(_ path: String, length: Int, coordinate: Bool, name: String = "x") throws {
        let status = NetCDFLibrary.locked { () -> Int32 in
            var nc: Int32 = 0, time: Int32 = 0, x: Int32 = 0, tv: Int32 = 0, v: Int32 = 0, xv: Int32 = 0
            var r = nc_create(path, NC_CLOBBER | NC_NETCDF4, &nc)
            r |= nc_def_dim(nc, "time", 2, &time)
            r |= nc_def_dim(nc, name, length, &x)
            r |= nc_def_var(nc, "time", NC_DOUBLE, 1, [time], &tv)
            if coordinate {
                r |= nc_def_var(nc, name, NC_DOUBLE, 1, [x], &xv)
                r |= nc_def_var_chunking(nc, xv, NC_CHUNKED, [4096])
            }
            r |= nc_def_var(nc, "v", NC_DOUBLE, 2, [time, x], &v)
            r |= nc_def_var_chunking(nc, v, NC_CHUNKED, [1, 4096])
            r |= nc_enddef(nc)
            r |= nc_put_var_double(nc, tv, [0, 1])
            return r | nc_close(nc)
        }
        try #require(status == NC_NOERR)
    }

    /// ISSUE 12: a 12 KB netCDF-4 declaring 10⁸ points allocated 2 GB before failing. Now refused before any
    /// coordinate, name or buffer is made, with the sizes and a way out.
    @Test(arguments: [false, true])
    func hugeDeclaredDimensionsAreRefusedBeforeAllocating(coordinate: Bool) throws {
        let path = try scratch("eddy-nc-huge") + "/huge.nc"
        try hugeNetCDF4(path, length: 100_000_000, coordinate: coordinate)
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        #expect(size < 64 * 1024, "a small file: \(size) bytes")
        let start = Date()
        let m = refusal("10⁸ points") { _ = try DataSource.open(DataSpec(path: path)) }
        #expect(m == "\(path): dimension 'x' has 100000000 points, more than the 16777216 Eddy reads (as one state, or along one dimension); select fewer points with --nc-box, --nc-levels or --nc-variables", "\(m)")
        #expect(Date().timeIntervalSince(start) < 5)
    }

    /// Dimensions each within the limit whose product is not: refused by the count, before the coordinates are read.
    @Test func productsOfDimensionsAreSizedBeforeReading() throws {
        let path = try scratch("eddy-nc-huge") + "/wide.nc"
        let status = NetCDFLibrary.locked { () -> Int32 in
            var nc: Int32 = 0, time: Int32 = 0, lat: Int32 = 0, lon: Int32 = 0, tv: Int32 = 0, v: Int32 = 0, latv: Int32 = 0, lonv: Int32 = 0
            var r = nc_create(path, NC_CLOBBER | NC_NETCDF4, &nc)
            r |= nc_def_dim(nc, "time", 1, &time)
            r |= nc_def_dim(nc, "lat", 10_000_000, &lat)
            r |= nc_def_dim(nc, "lon", 10_000_000, &lon)
            r |= nc_def_var(nc, "time", NC_DOUBLE, 1, [time], &tv)
            r |= nc_def_var(nc, "lat", NC_DOUBLE, 1, [lat], &latv)
            r |= nc_def_var(nc, "lon", NC_DOUBLE, 1, [lon], &lonv)
            r |= nc_def_var_chunking(nc, latv, NC_CHUNKED, [4096])
            r |= nc_def_var_chunking(nc, lonv, NC_CHUNKED, [4096])
            r |= nc_def_var(nc, "q", NC_FLOAT, 3, [time, lat, lon], &v)
            r |= nc_def_var_chunking(nc, v, NC_CHUNKED, [1, 64, 64])
            return r | nc_close(nc)
        }
        try #require(status == NC_NOERR)
        let m = refusal("10¹⁴ points") { _ = try DataSource.open(DataSpec(path: path)) }
        #expect(m == "\(path): the selection has 100000000000000 grid points (the largest variable, 'q': lat 10000000 × lon 10000000), more than the 16777216 Eddy reads as one state; select fewer points with --nc-box, --nc-levels or --nc-variables", "\(m)")
    }
}
