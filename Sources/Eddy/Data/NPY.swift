/// The NumPy `.npy` format (version 1.0 written; 1.0–3.0 read): little-endian float32/float64, C order.
public enum NPY {
    public struct Header: Sendable, Equatable {
        public var shape: [Int]
        /// Bytes per element: 4 (`<f4`) or 8 (`<f8`).
        public var itemSize: Int
        /// Where the data start.
        public var dataOffset: Int
    }

    /// The format 1.0 header for a C-order little-endian float64 array, byte for byte as `numpy.save` writes it
    /// (including the spare spaces NumPy leaves for growing the first axis); the data start on a 64-byte boundary.
    public static func header(shape: [Int]) -> [UInt8] {
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map { "\($0)" }.joined(separator: ", ") + ")"
        var dict = "{'descr': '<f8', 'fortran_order': False, 'shape': \(shapeText), }"
        if let first = shape.first { dict += String(repeating: " ", count: max(0, 21 - "\(first)".utf8.count)) }
        let hlen = dict.utf8.count + 1
        let padding = 64 - ((10 + hlen) % 64)
        let headerLength = hlen + padding
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(headerLength & 0xFF), UInt8(headerLength >> 8)]
        bytes += Array(dict.utf8) + [UInt8](repeating: 0x20, count: padding) + [0x0A]
        return bytes
    }

    /// Parses and checks the header at the start of `file` (see `Header.parse(bytes:path:fileSize:)`) and leaves
    /// the file at the start of the data. Reads no more than the header's own bytes, after checking they fit.
    public static func readHeader(_ file: InputFile) throws -> Header {
        let size = file.size
        try file.seek(to: 0)
        var lead = file.readBytes(min(size, 10))
        if lead.count == 10, lead[6] == 2 || lead[6] == 3 { lead += file.readBytes(2) }
        let (offset, length) = try Header.extent(lead: lead, path: file.path, fileSize: size)
        let text = file.readBytes(length)
        guard text.count == length else { throw EddyError("\(file.path): truncated .npy header") }
        let header = try Header.parse(bytes: Array(lead.prefix(offset)) + text, path: file.path, fileSize: size)
        try file.seek(to: header.dataOffset)
        return header
    }

    /// The largest header accepted (NumPy writes well under 1 KiB for the arrays Eddy reads; its own limit is 10 000).
    public static let maxHeaderLength = 1 << 20
}

extension NPY.Header {
    /// Parses and checks an `.npy` header from bytes in memory: `bytes` is the start of the file (at least the
    /// whole header) or all of it, and `fileSize` the file's length (nil: `bytes.count`, the whole file).
    /// Refuses, with an error naming `path`: bad magic, versions other than 1.0, 2.0 and 3.0, a header that does
    /// not fit in the file, a dictionary that is not exactly `{'descr': …, 'fortran_order': …, 'shape': (…)}`
    /// (duplicate or unknown keys, a malformed tuple, negative or non-integer dimensions), dtypes other than
    /// little-endian float32/float64, Fortran order, and data whose size — computed without overflow — differs
    /// from what the file holds after the header (truncated, or trailing bytes).
    public static func parse(bytes: [UInt8], path: String, fileSize: Int? = nil) throws -> NPY.Header {
        let size = fileSize ?? bytes.count
        let (offset, length) = try extent(lead: Array(bytes.prefix(12)), path: path, fileSize: size)
        guard ByteReader.fits(length, at: offset, in: bytes.count) else { throw EddyError("\(path): truncated .npy header") }
        let text = Array(bytes[offset..<(offset + length)])
        let dict = try NPYDictionary.parse(text, path: path)
        guard let descr = dict.descr else { throw EddyError("\(path): .npy header has no 'descr'") }
        guard let shape = dict.shape else { throw EddyError("\(path): .npy header has no shape") }
        let itemSize: Int
        switch descr {
        case "<f8", "=f8", "f8": itemSize = 8
        case "<f4", "=f4", "f4": itemSize = 4
        default:
            throw EddyError("\(path): .npy dtype '\(descr)' is not supported; expected little-endian float32 ('<f4') or float64 ('<f8')")
        }
        if dict.fortranOrder == true {
            throw EddyError("\(path): Fortran-ordered .npy arrays are not supported; save with C order (np.ascontiguousarray)")
        }
        let dataOffset = offset + length
        guard let dataLength = CheckedSize.bytes(shape: shape, itemSize: itemSize) else {
            throw EddyError("\(path): .npy shape \(shape) is too large (its size overflows)")
        }
        let available = size - dataOffset   // extent() checked dataOffset <= size
        if dataLength > available {
            throw EddyError("\(path): truncated .npy file: shape \(shape) needs \(dataLength) bytes of data after the \(dataOffset)-byte header, the file has \(available)")
        }
        if dataLength < available {
            throw EddyError("\(path): corrupted .npy file: \(available - dataLength) bytes after the data of shape \(shape) (\(dataLength) bytes); the header does not describe the file")
        }
        return NPY.Header(shape: shape, itemSize: itemSize, dataOffset: dataOffset)
    }

    /// Where the header dictionary lies, `(offset, length)`, from the first 10 (version 1) or 12 bytes; checks the
    /// magic, the version and that the dictionary fits in `fileSize` bytes before anything is read or allocated.
    static func extent(lead: [UInt8], path: String, fileSize: Int) throws -> (offset: Int, length: Int) {
        if fileSize == 0 { throw EddyError("\(path): empty file; expected a NumPy .npy array") }
        var r = ByteReader(lead)
        guard r.u8() == 0x93, r.consume(Array("NUMPY".utf8)) else {
            throw EddyError("\(path): not a NumPy .npy file (bad magic bytes)")
        }
        guard let major = r.u8(), let minor = r.u8() else { throw EddyError("\(path): truncated .npy header") }
        let length: Int, offset: Int
        switch (major, minor) {
        case (1, 0):
            guard let l = r.u16le() else { throw EddyError("\(path): truncated .npy header") }
            (length, offset) = (Int(l), 10)
        case (2, 0), (3, 0):
            guard let l = r.u32le() else { throw EddyError("\(path): truncated .npy header") }
            (length, offset) = (Int(l), 12)
        default:
            throw EddyError("\(path): .npy format version \(major).\(minor) is not supported (expected 1.0, 2.0 or 3.0)")
        }
        guard ByteReader.fits(length, at: offset, in: fileSize) else {
            throw EddyError("\(path): truncated or corrupted .npy file: the header claims \(length) bytes, the file has \(max(0, fileSize - offset)) after the \(offset)-byte preamble")
        }
        guard length <= NPY.maxHeaderLength else {
            throw EddyError("\(path): corrupted .npy file: a \(length)-byte header (at most \(NPY.maxHeaderLength) accepted)")
        }
        return (offset, length)
    }
}

/// The header dictionary of an `.npy` file, a Python literal such as
/// `{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }` followed by spaces and a newline, parsed strictly.
struct NPYDictionary {
    var descr: String?
    var fortranOrder: Bool?
    var shape: [Int]?

    static func parse(_ text: [UInt8], path: String) throws -> NPYDictionary {
        var r = ByteReader(text)
        func fail(_ what: String) -> EddyError {
            EddyError("\(path): malformed .npy header at byte \(r.offset) of the dictionary: \(what)")
        }
        func space(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }
        func string() throws -> String {
            guard let quote = r.u8(), quote == UInt8(ascii: "'") || quote == UInt8(ascii: "\"") else { throw fail("expected a quoted string") }
            var out: [UInt8] = []
            while true {
                guard let b = r.u8() else { throw fail("unterminated string") }
                if b == quote { break }
                guard b >= 0x20, b < 0x7F, b != UInt8(ascii: "\\") else { throw fail("unexpected byte \(b) in a string") }
                out.append(b)
            }
            return String(decoding: out, as: UTF8.self)
        }
        func integer() throws -> Int {
            if r.peek() == UInt8(ascii: "-") { throw fail("negative dimension in the shape") }
            var digits: [UInt8] = []
            while let b = r.peek(), b >= 0x30, b <= 0x39 { digits.append(b); r.skip(1) }
            guard !digits.isEmpty else { throw fail("expected a non-negative integer dimension") }
            if r.peek() == UInt8(ascii: "L") || r.peek() == UInt8(ascii: "l") { r.skip(1) }   // Python 2 long
            guard let v = Int(String(decoding: digits, as: UTF8.self)) else { throw fail("dimension \(String(decoding: digits, as: UTF8.self)) is too large") }
            return v
        }
        func tuple() throws -> [Int] {
            guard r.u8() == UInt8(ascii: "(") else { throw fail("expected a tuple '(…)' for the shape") }
            var dims: [Int] = []
            r.skip(while: space)
            if r.peek() == UInt8(ascii: ")") { r.skip(1); return dims }
            while true {
                dims.append(try integer())
                r.skip(while: space)
                guard let b = r.u8() else { throw fail("unterminated shape tuple") }
                if b == UInt8(ascii: ")") {
                    // `(3)` is the number 3 in Python, not a tuple.
                    guard dims.count > 1 else { throw fail("a one-element shape must be written (n,)") }
                    return dims
                }
                guard b == UInt8(ascii: ",") else { throw fail("expected ',' or ')' in the shape") }
                r.skip(while: space)
                if r.peek() == UInt8(ascii: ")") { r.skip(1); return dims }
            }
        }
        var dict = NPYDictionary()
        r.skip(while: space)
        guard r.u8() == UInt8(ascii: "{") else { throw fail("expected '{'") }
        var seen: Set<String> = []
        while true {
            r.skip(while: space)
            if r.peek() == UInt8(ascii: "}") { r.skip(1); break }
            let key = try string()
            guard seen.insert(key).inserted else { throw fail("duplicate key '\(key)'") }
            r.skip(while: space)
            guard r.u8() == UInt8(ascii: ":") else { throw fail("expected ':' after '\(key)'") }
            r.skip(while: space)
            switch key {
            case "descr": dict.descr = try string()
            case "fortran_order":
                if r.consume(Array("True".utf8)) { dict.fortranOrder = true }
                else if r.consume(Array("False".utf8)) { dict.fortranOrder = false }
                else { throw fail("'fortran_order' must be True or False") }
            case "shape": dict.shape = try tuple()
            default: throw fail("unknown key '\(key)' (expected 'descr', 'fortran_order' and 'shape')")
            }
            r.skip(while: space)
            guard let b = r.u8() else { throw fail("unterminated dictionary") }
            if b == UInt8(ascii: "}") { break }
            guard b == UInt8(ascii: ",") else { throw fail("expected ',' or '}'") }
        }
        r.skip(while: { space($0) || $0 == 0 })
        guard r.isAtEnd else { throw fail("unexpected bytes after the dictionary") }
        return dict
    }
}

/// Streams an `.npy` array of shape `(T, n)` (one trajectory) or `(E, T, n)` (E trajectories).
/// Columns are named `c0`, `c1`, …; NaN rows end a segment; infinite values are errors.
public final class NPYReader: RowReader {
    public let path: String
    public let variableNames: [String]
    public let inputNames: [String]
    public let inferredDt: Double? = nil
    public private(set) var validCounts: [Int]
    let episodes: Int
    let steps: Int
    let columnCount: Int
    let episodeNames: [String]?

    private let file: InputFile
    private let header: NPY.Header
    private let selection: ColumnSelection
    private let shaper: RowShaper
    private var builder: BlockBuilder { shaper.builder }
    public var fill: FillReport { shaper.fill }
    private var episode = 0
    private var step = 0

    public convenience init(spec: DataSpec) throws {
        try self.init(spec: spec, episodeNames: nil)
    }

    /// `episodeNames` overrides the trajectory names (a directory reader names them after the file).
    init(spec: DataSpec, episodeNames: [String]?) throws {
        path = spec.path
        file = try InputFile(path: spec.path)
        if file.size == 0 { throw EddyError("\(spec.path): empty file; expected a NumPy .npy array") }
        header = try NPY.readHeader(file)
        switch header.shape.count {
        case 2: (episodes, steps, columnCount) = (1, header.shape[0], header.shape[1])
        case 3: (episodes, steps, columnCount) = (header.shape[0], header.shape[1], header.shape[2])
        default:
            throw EddyError("\(spec.path): .npy shape \(header.shape) is not supported; expected (T, n) or (E, T, n)")
        }
        // The header's size check covers the data; an empty array is refused before anything is sized by its
        // other dimensions (`(0, 2⁶²)` holds no bytes).
        if steps == 0 || episodes == 0 || columnCount == 0 { throw EddyError("\(spec.path): the array is empty (shape \(header.shape))") }
        if spec.episodeColumn != nil {
            throw EddyError("\(spec.path): --episode-column applies to CSV files; an .npy array of shape (E, T, n) holds E trajectories")
        }
        let names = (0..<columnCount).map { "c\($0)" }
        selection = try ColumnSelection(header: names, spec: spec, path: spec.path)
        variableNames = selection.variableNames
        inputNames = selection.inputNames
        self.episodeNames = episodeNames
        if spec.timeColumn != nil || !spec.calendar.isEmpty || spec.pivot != nil || !spec.angles.isEmpty || spec.from != nil || spec.until != nil {
            throw EddyError("\(spec.path): time columns, calendar inputs, angles, time windows and pivots apply to CSV data; an .npy array has none")
        }
        shaper = RowShaper(path: spec.path, width: selection.variables.count + selection.inputs.count, calendar: [], fillGaps: spec.fillGaps,
                           from: nil, until: nil, dt: nil, blockRows: spec.blockRows)
        validCounts = [Int](repeating: 0, count: selection.variables.count + selection.inputs.count)
        // A shard: seek to its first raw row (trajectories one after another), stop at its end.
        if let window = spec.rawRows {
            let total = episodes * steps
            let lo = min(max(0, window.lowerBound - spec.rawHistory), total)
            end = min(max(lo, window.upperBound), total)
            shaper.countsFrom = window.lowerBound
            (episode, step) = (lo / steps, lo % steps)
            try file.seek(to: header.dataOffset + lo * columnCount * header.itemSize)
        } else {
            end = episodes * steps
        }
    }

    /// One past the last raw row read (`episodes × steps`, or the end of `DataSpec.rawRows`).
    private var end = 0

    public func next() throws -> RowBlock? {
        let columns = selection.variables + selection.inputs
        var raw = [Double](repeating: 0, count: columnCount)
        var row = [Double](repeating: 0, count: columns.count)
        while true {
            if let block = builder.take() { return block }
            if episode == episodes || episode * steps + step >= end { return nil }
            let name = episodeNames?[episode] ?? (episodes == 1 ? "0" : "\(episode)")
            // Read up to one block of rows of this episode.
            let rows = min(builder.capacity, steps - step, end - (episode * steps + step))
            let bytes = file.readBytes(rows * columnCount * header.itemSize)
            if bytes.count < rows * columnCount * header.itemSize {
                throw EddyError("\(path): truncated .npy data at trajectory \(episode), row \(step)")
            }
            try bytes.withUnsafeBytes { buf in
                for r in 0..<rows {
                    for c in 0..<columnCount {
                        let at = (r * columnCount + c) * header.itemSize
                        raw[c] = header.itemSize == 8
                            ? Double(bitPattern: UInt64(littleEndian: buf.loadUnaligned(fromByteOffset: at, as: UInt64.self)))
                            : Double(Float(bitPattern: UInt32(littleEndian: buf.loadUnaligned(fromByteOffset: at, as: UInt32.self))))
                    }
                    for (k, c) in columns.enumerated() {
                        let v = raw[c]
                        if v.isInfinite {
                            throw EddyError("\(path): trajectory \(episode), row \(step + r), column \(c): infinite value; expected a finite number (NaN marks a missing value)")
                        }
                        if !v.isNaN { validCounts[k] += 1 }
                        row[k] = v
                    }
                    try shaper.add(RawRow(episode: name, time: nil, values: row, line: step + r, source: episode * steps + step + r))
                }
            }
            step += rows
            if step == steps {
                step = 0
                episode += 1
                try shaper.finish()
            } else if episode * steps + step >= end {
                try shaper.finish()
            }
        }
    }
}

/// A directory of CSV or `.npy` files, one trajectory (or, for CSV with an episode column, several) each,
/// read in name order. All files must have the same columns.
public final class DirectoryReader: RowReader {
    public let path: String
    public let variableNames: [String]
    public let inputNames: [String]
    public let inferredDt: Double?
    private let files: [String]
    private let spec: DataSpec
    private var finishedCounts: [Int]
    public var validCounts: [Int] {
        guard let c = current?.validCounts else { return finishedCounts }
        return zip(finishedCounts, c).map { $0 + $1 }
    }
    private var index = 0
    /// One past the last file read.
    private var end = 0
    /// The files in the directory, in the order they are read.
    public var fileCount: Int { files.count }
    private var current: RowReader?
    public let timesAreDates: Bool
    private var finishedFill = FillReport()
    public var fill: FillReport {
        var f = finishedFill
        if let c = current { f.add(c.fill) }
        return f
    }

    public init(spec: DataSpec) throws {
        path = spec.path
        self.spec = spec
        files = try FileSystem.files(in: spec.path).filter {
            let l = $0.lowercased()
            return l.hasSuffix(".csv") || l.hasSuffix(".npy")
        }
        guard let first = files.first else {
            throw EddyError("\(spec.path): the directory holds no .csv or .npy files")
        }
        // A shard (`DataSpec.rawRows`) is a range of the files; each file starts its own segments, so none needs history.
        if let window = spec.rawRows {
            index = min(max(0, window.lowerBound), files.count)
            end = min(max(index, window.upperBound), files.count)
        } else {
            end = files.count
        }
        let reader = try DirectoryReader.reader(first, spec: spec)
        variableNames = reader.variableNames
        inputNames = reader.inputNames
        inferredDt = reader.inferredDt
        timesAreDates = reader.timesAreDates
        finishedCounts = [Int](repeating: 0, count: reader.width)
        current = index == 0 && end > 0 ? reader : nil
    }

    static func reader(_ file: String, spec: DataSpec) throws -> RowReader {
        var s = spec
        s.path = file
        s.rawRows = nil
        s.rawHistory = 0
        let name = AtomicFile.basename(of: file)
        if file.lowercased().hasSuffix(".npy") {
            let r = try NPYReader(spec: s, episodeNames: nil)
            return try NPYReader(spec: s, episodeNames: (0..<r.episodes).map { r.episodes == 1 ? name : "\(name)/\($0)" })
        }
        return try CSVReader(spec: s)
    }

    public func next() throws -> RowBlock? {
        while true {
            if current == nil {
                if index >= end { return nil }
                let r = try DirectoryReader.reader(files[index], spec: spec)
                if r.variableNames != variableNames || r.inputNames != inputNames {
                    throw EddyError("\(files[index]): columns \(r.variableNames + r.inputNames) differ from those of \(files[0]) (\(variableNames + inputNames))")
                }
                current = r
            }
            if var block = try current!.next() {
                if spec.episodeColumn == nil && !files[index].lowercased().hasSuffix(".npy") {
                    block.episode = AtomicFile.basename(of: files[index])
                }
                block.file = index
                return block
            }
            finishedCounts = validCounts
            finishedFill = fill
            current = nil
            index += 1
        }
    }
}
