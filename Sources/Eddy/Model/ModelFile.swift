#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The model file: safetensors (an 8-byte little-endian header length, a JSON header naming each float64
/// tensor's shape and byte range, then the tensor bytes) with Eddy's metadata as a JSON string under
/// `__metadata__.eddy`. Tensors: `W` (p, M), `b` (M), `x_mean`, `x_std` (n), `u_mean`, `u_std` (m, with inputs);
/// Koopman form `K` (D, D), `C` (D, n), `B` (m, D); recurrent form `A` (D, n), `B` (m, n); and with a daily cycle
/// in the training data's time column, `climatology` (phases, n). With `--pca K` the state is K components: `x_mean`,
/// `x_std` and the dictionary hold components, and `eof_mean`, `eof_scale`, `eof_std` (n) and `eof_vectors` (n, K)
/// map them to the variables (`x = eof_mean + eof_scale ⊙ (eof_vectors · pc)`); `climatology` stays in variables.
///
/// Format 4 adds `__metadata__.eddy_checksum`, `fnv1a64:<data>:<metadata>` (16 hex digits each): FNV-1a 64 over
/// the tensor bytes in file order, and over the metadata text, a newline and the tensor table (`name:dtype:shape:
/// begin,end;` per tensor, by name). Files of versions 1–3 load without it, with a note that says so.
///
/// Reading treats the file as hostile: every size in the header and the metadata is checked (without overflow)
/// against the others and against the file before anything is allocated or read, duplicate JSON keys are refused,
/// the tensors must tile the data exactly, and the values must be usable (finite weights, positive scales).
public enum ModelFile {
    struct TensorInfo: Codable {
        var dtype: String
        var shape: [Int]
        var data_offsets: [Int]
    }

    struct DynamicKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    struct Header: Decodable {
        var tensors: [String: TensorInfo] = [:]
        var metadata: [String: String] = [:]
        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: DynamicKey.self)
            for key in c.allKeys {
                if key.stringValue == "__metadata__" {
                    metadata = try c.decode([String: String].self, forKey: key)
                } else {
                    tensors[key.stringValue] = try c.decode(TensorInfo.self, forKey: key)
                }
            }
        }
    }

    static func tensors(of model: Model) -> [(String, [Int], [Double])] {
        let l = model.layout
        let n = l.variables, m = l.inputs, d = l.dictionarySize, r = l.targetCount
        var out: [(String, [Int], [Double])] = [
            ("W", [l.windowSize, l.width], model.layer.weights),
            ("b", [l.width], model.layer.biases),
            ("x_mean", [n], model.normalisation.variableMean),
            ("x_std", [n], model.normalisation.variableStd),
        ]
        if m > 0 {
            out += [("u_mean", [m], model.normalisation.inputMean), ("u_std", [m], model.normalisation.inputStd)]
        }
        let head = Array(model.theta[0..<(d * r)])
        let tail = Array(model.theta[(d * r)...])
        switch l.form {
        case .koopman: out += [("K", [d, d], head), ("C", [d, n], model.readout)]
        case .recurrent: out += [("A", [d, n], head)]
        }
        if m > 0 { out.append(("B", [m, r], tail)) }
        if let c = model.climatology, let p = model.metadata.climatologyPeriod { out.append(("climatology", [p, model.outputCount], c)) }
        if let e = model.eof {
            out += [("eof_mean", [e.columns], e.mean), ("eof_scale", [e.columns], e.scale), ("eof_std", [e.columns], e.columnStd),
                    ("eof_vectors", [e.columns, e.components], e.vectors)]
        }
        return out
    }

    /// The `__metadata__` key of the checksum (format 4).
    static let checksumKey = "eddy_checksum"

    /// The checksum text stored under `checksumKey`.
    static func checksum(metadataText: String, tensors: [(name: String, info: TensorInfo)], dataHash: UInt64) -> String {
        var h = FNV1a64()
        h.add(metadataText.utf8)
        h.add([0x0A])
        for t in tensors.sorted(by: { $0.name < $1.name }) {
            let shape = t.info.shape.map(String.init).joined(separator: ",")
            let offsets = t.info.data_offsets.map(String.init).joined(separator: ",")
            h.add("\(t.name):\(t.info.dtype):\(shape):\(offsets);".utf8)
        }
        return "fnv1a64:\(FNV1a64.hex(dataHash)):\(FNV1a64.hex(h.value))"
    }

    /// Writes atomically: a temporary file beside `path`, renamed into place when complete. Always format 4
    /// (`ModelMetadata.currentFormatVersion`), with the checksum.
    public static func write(_ model: Model, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var metadata = model.metadata
        metadata.formatVersion = ModelMetadata.currentFormatVersion
        let meta = String(decoding: try encoder.encode(metadata), as: UTF8.self)
        var entries: [String] = []
        var infos: [(name: String, info: TensorInfo)] = []
        var offset = 0
        var dataHash = FNV1a64()
        let list = tensors(of: model).map { ($0.0, $0.1, $0.2.map { Double(bitPattern: $0.bitPattern.littleEndian) }) }
        for (name, shape, values) in list {
            let shapeText = shape.map(String.init).joined(separator: ",")
            entries.append("\"\(name)\":{\"dtype\":\"F64\",\"shape\":[\(shapeText)],\"data_offsets\":[\(offset),\(offset + values.count * 8)]}")
            infos.append((name, TensorInfo(dtype: "F64", shape: shape, data_offsets: [offset, offset + values.count * 8])))
            offset += values.count * 8
            values.withUnsafeBytes { dataHash.add($0) }
        }
        let sum = checksum(metadataText: meta, tensors: infos, dataHash: dataHash.value)
        let metaString = String(decoding: try encoder.encode(["eddy": meta, checksumKey: sum]), as: UTF8.self)
        var header = "{\"__metadata__\":\(metaString)," + entries.joined(separator: ",") + "}"
        while (8 + header.utf8.count) % 8 != 0 { header += " " }
        let file = try AtomicFile(path: path)
        var length = UInt64(header.utf8.count).littleEndian
        try withUnsafeBytes(of: &length) { try file.write($0) }
        try file.write(header)
        for (_, _, values) in list { try file.write(doubles: values) }
        try file.commit()
    }

    /// Reads and checks a model file; see `read(_:notes:)`.
    public static func read(_ path: String) throws -> Model {
        var notes: [String] = []
        return try read(path, notes: &notes)
    }

    /// Reads and checks a model file. `notes` receives what the caller may tell the user about a file that loads
    /// (a file of format 1–3 carries no checksum).
    public static func read(_ path: String, notes: inout [String]) throws -> Model {
        let file = try InputFile(path: path)
        return try decode(.file(file), path: path, notes: &notes)
    }

    /// The same checks over a whole file in memory (for tests and fuzzers); `path` names it in errors.
    public static func read(bytes: [UInt8], path: String, notes: inout [String]) throws -> Model {
        try decode(.memory(bytes), path: path, notes: &notes)
    }

    enum Source {
        case file(InputFile)
        case memory([UInt8])

        var size: Int {
            switch self {
            case .file(let f): return f.size
            case .memory(let b): return b.count
            }
        }

        /// Exactly `count` bytes at `offset`, or nil when the source is shorter.
        func read(at offset: Int, count: Int) throws -> [UInt8]? {
            switch self {
            case .file(let f):
                try f.seek(to: offset)
                let b = f.readBytes(count)
                return b.count == count ? b : nil
            case .memory(let b):
                guard ByteReader.fits(count, at: offset, in: b.count) else { return nil }
                return Array(b[offset..<(offset + count)])
            }
        }
    }

    /// The largest JSON header accepted.
    static let maxHeaderLength = 100_000_000

    static func decode(_ source: Source, path: String, notes: inout [String]) throws -> Model {
        let size = source.size
        guard size >= 8, let lead = try source.read(at: 0, count: 8) else {
            throw EddyError("\(path): not an Eddy model file (only \(size) bytes; expected a safetensors file)")
        }
        var leadReader = ByteReader(lead)
        let claimed = leadReader.u64le() ?? 0
        guard claimed >= 2, claimed <= UInt64(size - 8), claimed <= UInt64(maxHeaderLength) else {
            throw EddyError("\(path): not an Eddy model file or truncated (header length \(claimed), file size \(size) bytes)")
        }
        let length = Int(claimed)
        guard let headerBytes = try source.read(at: 8, count: length) else {
            throw EddyError("\(path): truncated model file (its header)")
        }
        if let problem = JSONScan.problem(in: headerBytes) {
            throw EddyError("\(path): corrupted model file: its header is not valid safetensors JSON (\(problem))")
        }
        let header: Header
        do {
            header = try JSONDecoder().decode(Header.self, from: Data(headerBytes))
        } catch {
            throw EddyError("\(path): corrupted model file: its header is not valid safetensors JSON")
        }
        guard let metaText = header.metadata["eddy"] else {
            throw EddyError("\(path): a safetensors file without Eddy metadata (__metadata__.eddy); not an Eddy model")
        }
        if let problem = JSONScan.problem(in: Array(metaText.utf8)) {
            throw EddyError("\(path): corrupted model metadata: not valid JSON (\(problem))")
        }
        let metadata: ModelMetadata
        do {
            struct Probe: Decodable { var format: String?; var formatVersion: Int? }
            let probe = try JSONDecoder().decode(Probe.self, from: Data(metaText.utf8))
            guard probe.format == "eddy-model" else { throw EddyError("\(path): not an Eddy model (format '\(probe.format ?? "none")')") }
            guard let version = probe.formatVersion, (1...ModelMetadata.currentFormatVersion).contains(version) else {
                throw EddyError("\(path): model format version \(probe.formatVersion.map(String.init) ?? "none") is not supported; this eddy \(Eddy.version) reads versions 1…\(ModelMetadata.currentFormatVersion) (retrain the model with this eddy)")
            }
            metadata = try JSONDecoder().decode(ModelMetadata.self, from: Data(metaText.utf8))
        } catch let e as EddyError {
            throw e
        } catch {
            throw EddyError("\(path): corrupted model metadata: \(error)")
        }
        let dataStart = 8 + length
        let dataSize = size - dataStart
        let layout = try checkLayout(header.tensors, dataSize: dataSize, path: path)

        // The checksum: required from format 4, verified whenever present.
        var expectedDataHash: UInt64?
        if let stored = header.metadata[checksumKey] {
            let parts = stored.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 3, parts[0] == "fnv1a64", let dataHash = UInt64(parts[1], radix: 16), parts[1].count == 16,
                  parts[2].count == 16, UInt64(parts[2], radix: 16) != nil else {
                throw EddyError("\(path): corrupted model file: unreadable checksum '\(stored)'")
            }
            let recomputed = checksum(metadataText: metaText, tensors: layout, dataHash: dataHash)
            guard recomputed == stored else {
                throw EddyError("\(path): corrupted model file: the metadata or tensor table does not match the file's checksum (a damaged copy)")
            }
            expectedDataHash = dataHash
        } else if metadata.formatVersion >= 4 {
            throw EddyError("\(path): corrupted model file: format version \(metadata.formatVersion) requires a checksum (__metadata__.\(checksumKey)) and it is missing")
        } else {
            notes.append("\(path): model format version \(metadata.formatVersion) carries no checksum, so damage to its weights cannot be detected; retrain with this eddy to write format \(ModelMetadata.currentFormatVersion)")
        }

        let expected = try expectedTensors(metadata, path: path)
        for (name, shape) in expected {
            guard let info = header.tensors[name] else { throw EddyError("\(path): model file lacks tensor '\(name)'") }
            guard info.shape == shape else {
                throw EddyError("\(path): tensor '\(name)' is \(info.dtype) \(info.shape), the metadata needs F64 \(shape)")
            }
        }
        let expectedNames = Set(expected.map(\.name))
        if let extra = header.tensors.keys.sorted().first(where: { !expectedNames.contains($0) }) {
            throw EddyError("\(path): corrupted model file: unexpected tensor '\(extra)' (not part of a model with this metadata)")
        }

        // The data, in file order (the layout tiles it exactly): each tensor read once, the checksum on the way.
        var values: [String: [Double]] = [:]
        var dataHash = FNV1a64()
        for t in layout {
            let begin = t.info.data_offsets[0], count = t.info.data_offsets[1] - begin
            guard let bytes = try source.read(at: dataStart + begin, count: count) else {
                throw EddyError("\(path): truncated model file (tensor '\(t.name)')")
            }
            dataHash.add(bytes)
            values[t.name] = bytes.withUnsafeBytes { raw in
                (0..<(count / 8)).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) }
            }
        }
        if let want = expectedDataHash, want != dataHash.value {
            throw EddyError("\(path): corrupted model file: the tensor data do not match the file's checksum (a damaged copy or a flipped bit)")
        }
        func tensor(_ name: String) -> [Double] { values[name] ?? [] }

        let outputs = metadata.variables.count, m = metadata.inputs.count
        let n = metadata.reduction?.components ?? outputs
        let dictionaryLayout = DictionaryLayout(variables: n, delays: metadata.delays, width: metadata.width, inputs: m, form: metadata.form)
        let w = tensor("W"), b = tensor("b")
        let norm = Normalisation(variableMean: tensor("x_mean"), variableStd: tensor("x_std"),
                                 inputMean: m > 0 ? tensor("u_mean") : [], inputStd: m > 0 ? tensor("u_std") : [])
        var theta = tensor(metadata.form == .koopman ? "K" : "A")
        if m > 0 { theta += tensor("B") }
        guard (w + b + theta).allSatisfy(\.isFinite) else { throw EddyError("\(path): corrupted model file: non-finite weights") }
        guard (norm.variableMean + norm.inputMean).allSatisfy(\.isFinite) else {
            throw EddyError("\(path): corrupted model file: a normalisation mean (x_mean, u_mean) is not finite")
        }
        guard (norm.variableStd + norm.inputStd).allSatisfy({ $0 > 0 && $0.isFinite }) else {
            throw EddyError("\(path): corrupted model file: a normalisation standard deviation (x_std, u_std) is not a finite number > 0")
        }
        let climatology = metadata.climatologyPeriod.map { _ in tensor("climatology") }
        if let c = climatology, c.contains(where: \.isInfinite) {
            throw EddyError("\(path): corrupted model file: an infinite climatology value")
        }
        let layer = HiddenLayer(inputSize: dictionaryLayout.windowSize, width: metadata.width, weights: w, biases: b, activation: metadata.activation)
        var eof: EOFBasis?
        if let r = metadata.reduction {
            let e = EOFBasis(columns: outputs, components: n, mean: tensor("eof_mean"), scale: tensor("eof_scale"),
                             columnStd: tensor("eof_std"), vectors: tensor("eof_vectors"),
                             variance: r.componentVariance, totalVariance: r.totalVariance)
            guard (e.mean + e.columnStd + e.vectors).allSatisfy(\.isFinite), e.scale.allSatisfy({ $0 > 0 && $0.isFinite }) else {
                throw EddyError("\(path): corrupted model file: non-finite EOFs or a scale that is not positive")
            }
            eof = e
        }
        return Model(metadata: metadata, layer: layer, normalisation: norm, theta: theta, climatology: climatology, eof: eof)
    }

    /// Checks every tensor entry of the header on its own and together: dtype F64, non-negative shape, a byte
    /// range of exactly the shape's size (computed without overflow), and ranges that tile `0..<dataSize` with no
    /// overlap, gap or trailing bytes. Returns the tensors in file order.
    static func checkLayout(_ tensors: [String: TensorInfo], dataSize: Int, path: String) throws -> [(name: String, info: TensorInfo)] {
        for (name, info) in tensors.sorted(by: { $0.key < $1.key }) {
            guard info.dtype == "F64" else {
                throw EddyError("\(path): tensor '\(name)' has dtype \(info.dtype); Eddy model files hold F64 only")
            }
            guard info.shape.allSatisfy({ $0 >= 0 }) else {
                throw EddyError("\(path): corrupted model file: tensor '\(name)' has a negative dimension in its shape \(info.shape)")
            }
            guard let bytes = CheckedSize.bytes(shape: info.shape, itemSize: 8) else {
                throw EddyError("\(path): corrupted model file: tensor '\(name)' of shape \(info.shape) is too large (its size overflows)")
            }
            guard info.data_offsets.count == 2, info.data_offsets[0] >= 0, info.data_offsets[1] >= info.data_offsets[0] else {
                throw EddyError("\(path): corrupted model file: tensor '\(name)' has data_offsets \(info.data_offsets); expected [begin, end] with 0 ≤ begin ≤ end")
            }
            guard info.data_offsets[1] - info.data_offsets[0] == bytes else {
                throw EddyError("\(path): corrupted model file: tensor '\(name)' of shape \(info.shape) needs \(bytes) bytes, its data_offsets \(info.data_offsets) span \(info.data_offsets[1] - info.data_offsets[0])")
            }
        }
        let ordered = tensors.map { (name: $0.key, info: $0.value) }.sorted {
            ($0.info.data_offsets[0], $0.info.data_offsets[1], $0.name) < ($1.info.data_offsets[0], $1.info.data_offsets[1], $1.name)
        }
        var end = 0
        var previous: String?
        for t in ordered {
            let begin = t.info.data_offsets[0]
            if begin < end {
                throw EddyError("\(path): corrupted model file: tensor '\(t.name)' (bytes \(t.info.data_offsets)) overlaps tensor '\(previous ?? "?")'")
            }
            if begin > end {
                throw EddyError("\(path): corrupted model file: \(begin - end) unused bytes before tensor '\(t.name)' (data_offsets \(t.info.data_offsets))")
            }
            end = t.info.data_offsets[1]
            previous = t.name
        }
        if end > dataSize {
            throw EddyError("\(path): truncated model file: the tensors need \(end) bytes of data, the file has \(dataSize)")
        }
        if end < dataSize {
            throw EddyError("\(path): corrupted model file: \(dataSize - end) trailing bytes after the last tensor")
        }
        return ordered
    }

    /// The tensors (name, shape) a model with this metadata has, after checking the metadata's sizes and their
    /// consistency; every size is computed without overflow.
    static func expectedTensors(_ meta: ModelMetadata, path: String) throws -> [(name: String, shape: [Int])] {
        func bad(_ what: String) -> EddyError { EddyError("\(path): corrupted model metadata: \(what)") }
        let outputs = meta.variables.count, m = meta.inputs.count
        guard outputs > 0 else { throw bad("no variables") }
        let n = meta.reduction?.components ?? outputs
        guard n >= 1, n <= outputs else { throw bad("\(n) EOF components for \(outputs) variables (expected 1…\(outputs))") }
        guard meta.delays >= 1 else { throw bad("delays \(meta.delays) (expected at least 1)") }
        guard meta.width >= 0 else { throw bad("width \(meta.width) (expected at least 0)") }
        guard meta.dt.isFinite, meta.dt > 0 else { throw bad("time step dt \(meta.dt) (expected a finite number > 0)") }
        let calendar = meta.shaping?.calendar.count ?? 0
        guard CheckedSize.multiply(2, calendar).map({ $0 <= m }) == true else {
            throw bad("\(calendar) calendar features need \(2 * calendar) inputs, the model has \(m)")
        }
        if let range = meta.trainingRange {
            guard range.count == outputs, range.allSatisfy({ $0.count == 2 }) else {
                throw bad("trainingRange must hold [minimum, maximum] for each of the \(outputs) variables")
            }
        }
        if let p = meta.climatologyPeriod, p <= 0 { throw bad("climatologyPeriod \(p) (expected at least 1)") }
        if let r = meta.reduction, r.componentVariance.count != n {
            throw bad("reduction lists \(r.componentVariance.count) component variances for \(n) components")
        }
        guard let p = CheckedSize.multiply(n, meta.delays),
              let d = CheckedSize.add(1, p).flatMap({ CheckedSize.add($0, meta.width) }) else {
            throw bad("sizes overflow (variables \(n), delays \(meta.delays), width \(meta.width))")
        }
        let r = meta.form == .koopman ? d : n
        var out: [(name: String, shape: [Int])] = [("W", [p, meta.width]), ("b", [meta.width]), ("x_mean", [n]), ("x_std", [n])]
        if m > 0 { out += [("u_mean", [m]), ("u_std", [m])] }
        switch meta.form {
        case .koopman: out += [("K", [d, d]), ("C", [d, n])]
        case .recurrent: out += [("A", [d, n])]
        }
        if m > 0 { out.append(("B", [m, r])) }
        if let period = meta.climatologyPeriod { out.append(("climatology", [period, outputs])) }
        if meta.reduction != nil {
            out += [("eof_mean", [outputs]), ("eof_scale", [outputs]), ("eof_std", [outputs]), ("eof_vectors", [outputs, n])]
        }
        for t in out where CheckedSize.bytes(shape: t.shape, itemSize: 8) == nil {
            throw bad("tensor '\(t.name)' of shape \(t.shape) would overflow (width \(meta.width), delays \(meta.delays))")
        }
        return out
    }
}

/// A strict structural check of JSON text before it is decoded: well-formed values, nesting at most 64 deep and
/// no object with the same key twice at any depth (`JSONDecoder` would silently keep one of them). Keys are
/// compared after decoding their escapes, so `"W"` and `"\u0057"` are the same key.
enum JSONScan {
    static let maxDepth = 64

    /// nil when the text passes; otherwise what is wrong, with the byte offset.
    static func problem(in bytes: [UInt8]) -> String? {
        var scanner = Scanner(reader: ByteReader(bytes))
        do {
            scanner.space()
            try scanner.value(depth: 0)
            scanner.space()
            guard scanner.reader.isAtEnd else { throw scanner.fail("unexpected text after the JSON value") }
            return nil
        } catch let e as Failure {
            return e.message
        } catch {
            return "\(error)"
        }
    }

    struct Failure: Error { var message: String }

    struct Scanner {
        var reader: ByteReader

        func fail(_ what: String) -> Failure { Failure(message: "\(what) at byte \(reader.offset)") }

        mutating func space() { reader.skip { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D } }

        mutating func expect(_ word: String) throws {
            guard reader.consume(Array(word.utf8)) else { throw fail("expected '\(word)'") }
        }

        mutating func value(depth: Int) throws {
            guard depth < JSONScan.maxDepth else { throw fail("nesting deeper than \(JSONScan.maxDepth)") }
            guard let c = reader.peek() else { throw fail("unexpected end of the text") }
            switch c {
            case UInt8(ascii: "{"):
                reader.skip(1)
                var keys: Set<[UInt8]> = []
                space()
                if reader.peek() == UInt8(ascii: "}") { reader.skip(1); return }
                while true {
                    space()
                    guard reader.peek() == UInt8(ascii: "\"") else { throw fail("expected a key") }
                    let key = try string()
                    guard keys.insert(key).inserted else {
                        throw fail("duplicate key '\(String(decoding: key, as: UTF8.self))'")
                    }
                    space()
                    guard reader.u8() == UInt8(ascii: ":") else { throw fail("expected ':'") }
                    space()
                    try value(depth: depth + 1)
                    space()
                    guard let b = reader.u8() else { throw fail("unterminated object") }
                    if b == UInt8(ascii: "}") { return }
                    guard b == UInt8(ascii: ",") else { throw fail("expected ',' or '}'") }
                }
            case UInt8(ascii: "["):
                reader.skip(1)
                space()
                if reader.peek() == UInt8(ascii: "]") { reader.skip(1); return }
                while true {
                    space()
                    try value(depth: depth + 1)
                    space()
                    guard let b = reader.u8() else { throw fail("unterminated array") }
                    if b == UInt8(ascii: "]") { return }
                    guard b == UInt8(ascii: ",") else { throw fail("expected ',' or ']'") }
                }
            case UInt8(ascii: "\""): _ = try string()
            case UInt8(ascii: "t"): try expect("true")
            case UInt8(ascii: "f"): try expect("false")
            case UInt8(ascii: "n"): try expect("null")
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try number()
            default: throw fail("unexpected byte \(c)")
            }
        }

        mutating func digits() -> Int {
            let start = reader.offset
            reader.skip { $0 >= 0x30 && $0 <= 0x39 }
            return reader.offset - start
        }

        mutating func number() throws {
            _ = reader.consume([UInt8(ascii: "-")])
            if reader.peek() == UInt8(ascii: "0") { reader.skip(1) } else if digits() == 0 { throw fail("malformed number") }
            if reader.consume([UInt8(ascii: ".")]), digits() == 0 { throw fail("malformed number") }
            if reader.peek() == UInt8(ascii: "e") || reader.peek() == UInt8(ascii: "E") {
                reader.skip(1)
                if reader.peek() == UInt8(ascii: "+") || reader.peek() == UInt8(ascii: "-") { reader.skip(1) }
                if digits() == 0 { throw fail("malformed number") }
            }
        }

        mutating func hex4() throws -> UInt32 {
            guard let h = reader.read(4) else { throw fail("truncated \\u escape") }
            var v: UInt32 = 0
            for b in h {
                let d: UInt8
                switch b {
                case 0x30...0x39: d = b - 0x30
                case 0x41...0x46: d = b - 0x41 + 10
                case 0x61...0x66: d = b - 0x61 + 10
                default: throw fail("bad \\u escape")
                }
                v = v << 4 | UInt32(d)
            }
            return v
        }

        /// A string, its escapes decoded (bytes as UTF-8).
        mutating func string() throws -> [UInt8] {
            reader.skip(1)
            var out: [UInt8] = []
            while true {
                guard let b = reader.u8() else { throw fail("unterminated string") }
                switch b {
                case UInt8(ascii: "\""): return out
                case UInt8(ascii: "\\"):
                    guard let e = reader.u8() else { throw fail("unterminated string") }
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        var v = try hex4()
                        if (0xD800..<0xDC00).contains(v) {
                            guard reader.consume(Array("\\u".utf8)) else { throw fail("unpaired surrogate in a \\u escape") }
                            let low = try hex4()
                            guard (0xDC00..<0xE000).contains(low) else { throw fail("unpaired surrogate in a \\u escape") }
                            v = 0x10000 + ((v - 0xD800) << 10) + (low - 0xDC00)
                        } else if (0xDC00..<0xE000).contains(v) {
                            throw fail("unpaired surrogate in a \\u escape")
                        }
                        guard let scalar = Unicode.Scalar(v) else { throw fail("bad \\u escape") }
                        out += Array(String(Character(scalar)).utf8)
                    default: throw fail("bad escape in a string")
                    }
                default:
                    guard b >= 0x20 else { throw fail("control character in a string") }
                    out.append(b)
                }
            }
        }
    }
}
