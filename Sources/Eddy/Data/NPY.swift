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

    /// Parses the header at the start of `file`.
    public static func readHeader(_ file: InputFile) throws -> Header {
        let path = file.path
        let lead = file.readBytes(10)
        guard lead.count == 10, lead[0] == 0x93, Array(lead[1..<6]) == Array("NUMPY".utf8) else {
            throw EddyError("\(path): not a NumPy .npy file (bad magic bytes)")
        }
        let major = lead[6]
        var headerLength: Int
        var offset: Int
        switch major {
        case 1:
            headerLength = Int(lead[8]) | Int(lead[9]) << 8
            offset = 10
        case 2, 3:
            let more = file.readBytes(2)
            guard more.count == 2 else { throw EddyError("\(path): truncated .npy header") }
            headerLength = Int(lead[8]) | Int(lead[9]) << 8 | Int(more[0]) << 16 | Int(more[1]) << 24
            offset = 12
        default:
            throw EddyError("\(path): .npy format version \(major) is not supported (expected 1, 2 or 3)")
        }
        let text = file.readBytes(headerLength)
        guard text.count == headerLength else { throw EddyError("\(path): truncated .npy header") }
        let dict = String(decoding: text, as: UTF8.self)
        guard let descr = value(of: "descr", in: dict) else { throw EddyError("\(path): .npy header has no 'descr'") }
        let itemSize: Int
        switch descr.filter({ $0 != "'" && $0 != "\"" && $0 != " " }) {
        case "<f8", "f8", "=f8": itemSize = 8
        case "<f4", "f4", "=f4": itemSize = 4
        default:
            throw EddyError("\(path): .npy dtype \(descr) is not supported; expected little-endian float32 ('<f4') or float64 ('<f8')")
        }
        if let fortran = value(of: "fortran_order", in: dict), fortran.hasPrefix("True") {
            throw EddyError("\(path): Fortran-ordered .npy arrays are not supported; save with C order (np.ascontiguousarray)")
        }
        guard let shapeText = value(of: "shape", in: dict), let open = shapeText.firstIndex(of: "("),
              let close = shapeText.firstIndex(of: ")") else {
            throw EddyError("\(path): .npy header has no shape")
        }
        let shape = shapeText[shapeText.index(after: open)..<close].split(separator: ",").compactMap {
            Int($0.filter { !$0.isWhitespace && $0 != "L" })
        }
        return Header(shape: shape, itemSize: itemSize, dataOffset: offset + headerLength)
    }

    /// The text after `'key':` up to the next top-level comma (a tuple is kept whole).
    private static func value(of key: String, in dict: String) -> String? {
        guard let end = dict.endOfFirst("'\(key)'") ?? dict.endOfFirst("\"\(key)\"") else { return nil }
        var rest = dict[end...].drop { $0 == " " || $0 == ":" }
        if rest.first == "(" {
            guard let close = rest.firstIndex(of: ")") else { return nil }
            return String(rest[...close])
        }
        if let comma = rest.firstIndex(of: ",") { rest = rest[..<comma] }
        return String(rest).trimmedSpaces
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
        let expected = header.dataOffset + episodes * steps * columnCount * header.itemSize
        if file.size < expected {
            throw EddyError("\(spec.path): truncated .npy file: shape \(header.shape) needs \(expected) bytes, the file has \(file.size)")
        }
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
        if steps == 0 || episodes == 0 { throw EddyError("\(spec.path): the array is empty (shape \(header.shape))") }
    }

    public func next() throws -> RowBlock? {
        let columns = selection.variables + selection.inputs
        var raw = [Double](repeating: 0, count: columnCount)
        var row = [Double](repeating: 0, count: columns.count)
        while true {
            if let block = builder.take() { return block }
            if episode == episodes { return nil }
            let name = episodeNames?[episode] ?? (episodes == 1 ? "0" : "\(episode)")
            // Read up to one block of rows of this episode.
            let rows = min(builder.capacity, steps - step)
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
                    try shaper.add(RawRow(episode: name, time: nil, values: row, line: step + r))
                }
            }
            step += rows
            if step == steps {
                step = 0
                episode += 1
                shaper.finish()
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
    private var current: RowReader?
    public let timesAreDates: Bool

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
        let reader = try DirectoryReader.reader(first, spec: spec)
        variableNames = reader.variableNames
        inputNames = reader.inputNames
        inferredDt = reader.inferredDt
        timesAreDates = reader.timesAreDates
        finishedCounts = [Int](repeating: 0, count: reader.width)
        current = reader
    }

    static func reader(_ file: String, spec: DataSpec) throws -> RowReader {
        var s = spec
        s.path = file
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
                if index >= files.count { return nil }
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
                return block
            }
            finishedCounts = validCounts
            current = nil
            index += 1
        }
    }
}

extension String {
    /// The index just past the first occurrence of `needle`.
    func endOfFirst(_ needle: String) -> String.Index? {
        let n = Array(needle)
        var i = startIndex
        while i < endIndex {
            var j = i, k = 0
            while k < n.count, j < endIndex, self[j] == n[k] { j = index(after: j); k += 1 }
            if k == n.count { return j }
            i = index(after: i)
        }
        return nil
    }
}
