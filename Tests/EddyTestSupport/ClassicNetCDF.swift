/// Writes classic netCDF files (CDF-1, CDF-2, CDF-5) byte by byte, as the format specification lays them out, so
/// that hostile-input tests can change any single field of the header: the file is a list of labelled segments
/// (`"numrecs"`, `"dim.0.length"`, `"var.1.begin"`, …), and `bytes(replacing:)` swaps some of them.
public struct ClassicNetCDFBuilder: Sendable {
    public struct Variable: Sendable {
        public var name: String
        public var dimensions: [Int]
        /// nc_type: 1 byte, 3 short, 4 int, 5 float, 6 double.
        public var type: Int
        /// Every value (a record variable's: all records, record after record).
        public var values: [Double]
        public var attributes: [(String, String)]
        /// Numeric attributes (name, nc_type, values), after the text ones: `scale_factor`, `_FillValue`, ….
        public var numericAttributes: [(String, Int, [Double])]

        public init(_ name: String, _ dimensions: [Int], type: Int = 6, values: [Double], attributes: [(String, String)] = [],
                    numericAttributes: [(String, Int, [Double])] = []) {
            self.name = name
            self.dimensions = dimensions
            self.type = type
            self.values = values
            self.attributes = attributes
            self.numericAttributes = numericAttributes
        }
    }

    public var version: UInt8
    public var records: Int
    /// Lengths; 0 is the record dimension.
    public var dimensions: [(String, Int)]
    public var attributes: [(String, String)] = []
    public var variables: [Variable]

    public init(version: UInt8 = 1, records: Int, dimensions: [(String, Int)], variables: [Variable]) {
        self.version = version
        self.records = records
        self.dimensions = dimensions
        self.variables = variables
    }

    /// A small gridded field as `NetCDFReader` reads it: `time` (the record dimension, hours since 2000), `lat` (2),
    /// `lon` (3) and `t(time, lat, lon)` with `t = 100·step + 10·i + j`.
    public static func field(version: UInt8 = 1, steps: Int = 4) -> ClassicNetCDFBuilder {
        var t: [Double] = []
        for n in 0..<steps { for i in 0..<2 { for j in 0..<3 { t.append(Double(100 * n + 10 * i + j)) } } }
        let times: [Double] = (0..<steps).map(Double.init)
        let variables: [Variable] = [
            Variable("lat", [1], values: [10, 20], attributes: [("units", "degrees_north")]),
            Variable("lon", [2], values: [0, 5, 10], attributes: [("units", "degrees_east")]),
            Variable("time", [0], values: times, attributes: [("units", "hours since 2000-01-01 00:00:00")]),
            Variable("t", [0, 1, 2], values: t),
        ]
        return ClassicNetCDFBuilder(version: version, records: steps, dimensions: [("time", 0), ("lat", 2), ("lon", 3)], variables: variables)
    }

    static func typeSize(_ type: Int) -> Int { [1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8][type] ?? 8 }

    public func isRecord(_ v: Variable) -> Bool { v.dimensions.first.map { dimensions[$0].1 == 0 } ?? false }

    /// Bytes of a variable (a record variable: of one record), unpadded.
    public func size(_ v: Variable) -> Int {
        (isRecord(v) ? Array(v.dimensions.dropFirst()) : v.dimensions).map { dimensions[$0].1 }.reduce(1, *) * Self.typeSize(v.type)
    }

    static func padded(_ n: Int) -> Int { (n + 3) / 4 * 4 }

    func be(_ v: UInt64, _ count: Int) -> [UInt8] { (0..<count).map { UInt8((v >> UInt64(8 * (count - 1 - $0))) & 0xFF) } }
    var wide: Int { version == 5 ? 8 : 4 }
    func nonNeg(_ v: Int) -> [UInt8] { be(UInt64(v), wide) }

    func encode(_ value: Double, _ type: Int) -> [UInt8] {
        switch type {
        case 1, 2: return [UInt8(bitPattern: Int8(value))]
        case 3: return be(UInt64(UInt16(bitPattern: Int16(value))), 2)
        case 4: return be(UInt64(UInt32(bitPattern: Int32(value))), 4)
        case 5: return be(UInt64(Float(value).bitPattern), 4)
        default: return be(value.bitPattern, 8)
        }
    }

    /// The file as labelled segments.
    public func segments() -> [(label: String, bytes: [UInt8])] {
        var header: [(String, [UInt8])] = []
        func name(_ label: String, _ text: String) {
            let b = Array(text.utf8)
            header.append(("\(label).namelen", nonNeg(b.count)))
            header.append(("\(label).name", b + [UInt8](repeating: 0, count: Self.padded(b.count) - b.count)))
        }
        func attributes(_ label: String, _ list: [(String, String)], _ numeric: [(String, Int, [Double])] = []) {
            header.append(("\(label).tag", be(list.isEmpty && numeric.isEmpty ? 0 : 0x0C, 4)))
            header.append(("\(label).count", nonNeg(list.count + numeric.count)))
            for (i, (key, value)) in list.enumerated() {
                name("\(label).\(i)", key)
                header.append(("\(label).\(i).type", be(2, 4)))
                let v = Array(value.utf8)
                header.append(("\(label).\(i).count", nonNeg(v.count)))
                header.append(("\(label).\(i).values", v + [UInt8](repeating: 0, count: Self.padded(v.count) - v.count)))
            }
            for (j, (key, type, values)) in numeric.enumerated() {
                let i = list.count + j
                name("\(label).\(i)", key)
                header.append(("\(label).\(i).type", be(UInt64(type), 4)))
                header.append(("\(label).\(i).count", nonNeg(values.count)))
                let b = values.flatMap { encode($0, type) }
                header.append(("\(label).\(i).values", b + [UInt8](repeating: 0, count: Self.padded(b.count) - b.count)))
            }
        }
        header.append(("magic", Array("CDF".utf8) + [version]))
        header.append(("numrecs", nonNeg(records)))
        header.append(("dims.tag", be(dimensions.isEmpty ? 0 : 0x0A, 4)))
        header.append(("dims.count", nonNeg(dimensions.count)))
        for (d, (n, length)) in dimensions.enumerated() {
            name("dim.\(d)", n)
            header.append(("dim.\(d).length", nonNeg(length)))
        }
        attributes("gatts", self.attributes)
        header.append(("vars.tag", be(variables.isEmpty ? 0 : 0x0B, 4)))
        header.append(("vars.count", nonNeg(variables.count)))
        var beginFields: [Int] = []
        for (k, v) in variables.enumerated() {
            name("var.\(k)", v.name)
            header.append(("var.\(k).ndims", nonNeg(v.dimensions.count)))
            for (a, id) in v.dimensions.enumerated() { header.append(("var.\(k).dimid.\(a)", nonNeg(id))) }
            attributes("var.\(k).atts", v.attributes, v.numericAttributes)
            header.append(("var.\(k).type", be(UInt64(v.type), 4)))
            header.append(("var.\(k).vsize", nonNeg(Self.padded(size(v)))))
            beginFields.append(header.count)
            header.append(("var.\(k).begin", be(0, version == 1 ? 4 : 8)))
        }
        // Offsets: the non-record variables after the header, then the records.
        let headerLength = header.reduce(0) { $0 + $1.1.count }
        var at = headerLength
        var begins = [Int](repeating: 0, count: variables.count)
        for (k, v) in variables.enumerated() where !isRecord(v) { begins[k] = at; at += Self.padded(size(v)) }
        let recordVariables = variables.indices.filter { isRecord(variables[$0]) }
        for k in recordVariables { begins[k] = at; at += Self.padded(size(variables[k])) }
        for (k, field) in beginFields.enumerated() { header[field].1 = be(UInt64(begins[k]), version == 1 ? 4 : 8) }
        var data: [UInt8] = []
        for v in variables where !isRecord(v) {
            var b = v.values.flatMap { encode($0, v.type) }
            b += [UInt8](repeating: 0, count: Self.padded(b.count) - b.count)
            data += b
        }
        let single = recordVariables.count == 1
        for r in 0..<records {
            for k in recordVariables {
                let v = variables[k]
                let per = size(v) / Self.typeSize(v.type)
                var b = v.values[(r * per)..<((r + 1) * per)].flatMap { encode($0, v.type) }
                if !single { b += [UInt8](repeating: 0, count: Self.padded(b.count) - b.count) }
                data += b
            }
        }
        return header.map { (label: $0.0, bytes: $0.1) } + [(label: "data", bytes: data)]
    }

    /// The file's bytes, with some segments replaced (by label).
    public func bytes(replacing: [String: [UInt8]] = [:]) -> [UInt8] {
        let parts = segments()
        for key in replacing.keys { precondition(parts.contains { $0.label == key }, "no segment '\(key)'") }
        return parts.flatMap { replacing[$0.label] ?? $0.bytes }
    }

    /// Where a segment starts.
    public func offset(of label: String) -> Int {
        var at = 0
        for s in segments() {
            if s.label == label { return at }
            at += s.bytes.count
        }
        preconditionFailure("no segment '\(label)'")
    }

    /// A big-endian integer field of `count` bytes, for `bytes(replacing:)`.
    public func field(_ v: UInt64, _ count: Int? = nil) -> [UInt8] { be(v, count ?? wide) }
}
