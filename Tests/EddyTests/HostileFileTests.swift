import EddyTestSupport
import Foundation
import Testing
@testable import Eddy

// Hostile input never crashes, hangs or destroys data: the `.npy` and model-file readers refuse malformed bytes
// with an `EddyError` that names the file and what is wrong.

// MARK: - Helpers

/// An `.npy` header (format 1.0) around an arbitrary dictionary text, padded as NumPy does.
private func npyHeader(_ dict: String, major: UInt8 = 1) -> [UInt8] {
    let preamble = major == 1 ? 10 : 12
    var body = Array(dict.utf8)
    let padding = 64 - ((preamble + body.count + 1) % 64)
    body += [UInt8](repeating: 0x20, count: padding) + [0x0A]
    var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [major, 0]
    out += major == 1 ? [UInt8(body.count & 0xFF), UInt8(body.count >> 8)]
                      : [UInt8(body.count & 0xFF), UInt8((body.count >> 8) & 0xFF), UInt8((body.count >> 16) & 0xFF), UInt8(body.count >> 24)]
    return out + body
}

private func doubles(_ values: [Double]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }

private func validNPY() -> [UInt8] {
    NPY.header(shape: [2, 3, 2]) + doubles([1, 2, 3, 4, 5, 6, 7, 8, .nan, 0, 11, 12])
}

/// A model file taken apart: metadata text, checksum, tensor table and data, to be edited and put back together
/// (optionally re-signed, so that a test reaches the check behind the checksum).
private struct Parts {
    struct Tensor { var name: String; var dtype = "F64"; var shape: [Int]; var offsets: [Int] }
    var meta: String
    var checksum: String?
    var tensors: [Tensor]
    var data: [UInt8]
    /// Raw text added inside the header object (for duplicate keys).
    var extraHeader = ""

    init(_ bytes: [UInt8]) throws {
        var length = 0
        for i in 0..<8 { length |= Int(bytes[i]) << (8 * i) }
        let header = try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + length)])) as! [String: Any]
        let metadata = header["__metadata__"] as! [String: String]
        meta = metadata["eddy"]!
        checksum = metadata["eddy_checksum"]
        tensors = header.filter { $0.key != "__metadata__" }.map { key, value in
            let d = value as! [String: Any]
            return Tensor(name: key, dtype: d["dtype"] as! String, shape: (d["shape"] as! [NSNumber]).map(\.intValue),
                          offsets: (d["data_offsets"] as! [NSNumber]).map(\.intValue))
        }.sorted { $0.offsets[0] < $1.offsets[0] }
        data = Array(bytes[(8 + length)...])
    }

    func values(_ name: String) -> [Double] {
        let t = tensors.first { $0.name == name }!
        return Array(data[t.offsets[0]..<t.offsets[1]]).withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
    }

    /// Replaces (or, with nil, removes) a tensor's values and shape; the data are laid out again contiguously.
    mutating func set(_ name: String, shape: [Int], values: [Double]?) {
        var chunks: [(Tensor, [UInt8])] = tensors.map { ($0, Array(data[$0.offsets[0]..<$0.offsets[1]])) }
        if let i = chunks.firstIndex(where: { $0.0.name == name }) {
            if let values { chunks[i] = (Tensor(name: name, shape: shape, offsets: []), doubles(values)) } else { chunks.remove(at: i) }
        } else if let values {
            chunks.append((Tensor(name: name, shape: shape, offsets: []), doubles(values)))
        }
        tensors = []
        data = []
        for (t, bytes) in chunks {
            tensors.append(Tensor(name: t.name, dtype: t.dtype, shape: t.shape, offsets: [data.count, data.count + bytes.count]))
            data += bytes
        }
    }

    /// Replaces `old` by `new` in the metadata text (exactly once).
    mutating func edit(_ old: String, _ new: String) {
        #expect(meta.components(separatedBy: old).count == 2, "'\(old)' once in the metadata")
        meta = meta.replacingOccurrences(of: old, with: new)
    }

    /// A fresh checksum over the current parts, as the writer computes it.
    mutating func resign() {
        var h = FNV1a64()
        h.add(data)
        checksum = ModelFile.checksum(metadataText: meta,
                                      tensors: tensors.map { ($0.name, ModelFile.TensorInfo(dtype: $0.dtype, shape: $0.shape, data_offsets: $0.offsets)) },
                                      dataHash: h.value)
    }

    var bytes: [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var metadata = ["eddy": meta]
        if let checksum { metadata["eddy_checksum"] = checksum }
        let metaText = String(decoding: try! encoder.encode(metadata), as: UTF8.self)
        let entries = tensors.map { t in
            "\"\(t.name)\":{\"dtype\":\"\(t.dtype)\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(t.offsets.map(String.init).joined(separator: ","))]}"
        }
        var header = "{\"__metadata__\":\(metaText)," + (entries + (extraHeader.isEmpty ? [] : [extraHeader])).joined(separator: ",") + "}"
        while header.utf8.count % 8 != 0 { header += " " }
        let length = UInt64(header.utf8.count)
        return (0..<8).map { UInt8((length >> (8 * UInt64($0))) & 0xFF) } + Array(header.utf8) + data
    }
}

/// A small trained model (2 variables, 1 input, width 6, 2 delays), with a 3-phase climatology added.
private let smallModel: Model = {
    let dir = try! scratch("eddy-hostile-model")
    try! rotationCSV(dir + "/rot.csv", withInput: true)
    var config = TrainingConfig(data: DataSpec(path: dir + "/rot.csv", inputs: ["u"], episodeColumn: "episode"))
    config.width = 6
    config.delays = 2
    config.sampler = .random
    var model = try! Trainer(config: config, backend: CPUBackend()).train().0
    model.metadata.climatologyPeriod = 3
    model.climatology = [0.5, -0.5, 0.25, -0.25, 0.125, -0.125]
    return model
}()

private func validModelBytes() throws -> [UInt8] {
    let path = try scratch("eddy-hostile") + "/m.safetensors"
    try ModelFile.write(smallModel, to: path)
    return [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
}

private func readModel(_ bytes: [UInt8], path: String = "test.safetensors") throws -> (Model, [String]) {
    var notes: [String] = []
    let m = try ModelFile.read(bytes: bytes, path: path, notes: &notes)
    return (m, notes)
}

/// What a loaded model is used for first: nothing of it may trap.
private func exercise(_ model: Model) {
    _ = ModelFile.tensors(of: model)
    _ = model.readout
    _ = model.koopmanMatrix
    _ = model.externalInputs
    _ = model.outputStd
}

// MARK: - Tests

@Suite("Hostile files: .npy and model files are checked, never trusted")
struct HostileFileTests {
    // MARK: .npy

    @Test func npyHeaderParsesFromBytes() throws {
        let h = try NPY.Header.parse(bytes: validNPY(), path: "a.npy")
        #expect(h.shape == [2, 3, 2] && h.itemSize == 8 && h.dataOffset == 128)
        // The header alone, with the file's size.
        let alone = try NPY.Header.parse(bytes: NPY.header(shape: [2, 3, 2]), path: "a.npy", fileSize: 128 + 96)
        #expect(alone == h)
        let v2 = try NPY.Header.parse(bytes: npyHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", major: 2) + [UInt8](repeating: 0, count: 12),
                                      path: "b.npy")
        #expect(v2.shape == [3] && v2.itemSize == 4 && v2.dataOffset == 128)
    }

    @Test(arguments: ["(-1, 3)", "(300, -3)", ")(300, 3)", "(3,,)", "(,)", "(3", "3, 4", "(3)", "[3, 4]", "(1e3, 2)", "(3.0, 2)",
                      "(99999999999999999999, 2)", "(3, 2)(3, 2)", "(3 2)", "('3', 2)"])
    func malformedNPYShapesAreRefused(shape: String) throws {
        let bytes = npyHeader("{'descr': '<f8', 'fortran_order': False, 'shape': \(shape), }") + [UInt8](repeating: 0, count: 48)
        let message = refusal(shape) { _ = try NPY.Header.parse(bytes: bytes, path: "bad.npy") }
        #expect(message.hasPrefix("bad.npy: "), "\(message)")
    }

    @Test func npyHeaderLengthBeyondTheFileIsRefusedAtOnce() throws {
        // A version 2 header claiming 0xFFFFFFFF bytes in a 14-byte file.
        let bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [2, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0x7B, 0x7D]
        #expect(bytes.count == 14)
        let message = refusal("v2 4 GB header") { _ = try NPY.Header.parse(bytes: bytes, path: "huge.npy") }
        #expect(message.contains("huge.npy") && message.contains("4294967295"), "\(message)")
        // The same through the file reader: refused before any read of the header's claimed length.
        let dir = try scratch()
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/huge.npy"))
        let start = Date()
        let fromFile = refusal("v2 4 GB header file") { _ = try DataSource.open(DataSpec(path: dir + "/huge.npy")) }
        #expect(fromFile.contains(dir + "/huge.npy") && fromFile.contains("4294967295"), "\(fromFile)")
        #expect(Date().timeIntervalSince(start) < 1)
        // Version 1 too: a 65535-byte header in a short file.
        let v1: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, 0xFF, 0xFF] + Array("{}".utf8)
        #expect(refusal("v1 long header") { _ = try NPY.Header.parse(bytes: v1, path: "v1.npy") }.contains("65535"))
    }

    @Test func npyMagicVersionsAndDictionaryAreChecked() throws {
        let good = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }"
        let data = [UInt8](repeating: 0, count: 32)
        var cases: [(String, [UInt8], String)] = [
            ("empty", [], "empty"),
            ("bad magic", [0x93] + Array("NUMPZ".utf8) + [1, 0, 0, 0], "magic"),
            ("short", [0x93] + Array("NUMPY".utf8) + [1], "truncated"),
            ("text", Array("hello, world".utf8), "magic"),
        ]
        for (major, minor) in [(0, 0), (4, 0), (1, 1), (255, 0)] as [(UInt8, UInt8)] {
            var b = npyHeader(good) + data
            b[6] = major
            b[7] = minor
            cases.append(("version \(major).\(minor)", b, "version \(major).\(minor)"))
        }
        for (dict, needle) in [
            ("{'descr': '>f8', 'fortran_order': False, 'shape': (2, 2), }", "dtype"),
            ("{'descr': '<i8', 'fortran_order': False, 'shape': (2, 2), }", "dtype"),
            ("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }", "Fortran"),
            ("{'descr': '<f8', 'fortran_order': Maybe, 'shape': (2, 2), }", "fortran_order"),
            ("{'descr': '<f8', 'descr': '<f4', 'shape': (2, 2), }", "duplicate key 'descr'"),
            ("{'descr': '<f8', 'shape': (2, 2), 'shape': (4, 1), }", "duplicate key 'shape'"),
            ("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), 'extra': 1, }", "unknown key"),
            ("{'descr': '<f8', 'fortran_order': False, }", "no shape"),
            ("{'fortran_order': False, 'shape': (2, 2), }", "no 'descr'"),
            ("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), } x", "after the dictionary"),
            ("{'descr': '<f8' 'fortran_order': False, 'shape': (2, 2), }", "expected ','"),
            ("{'descr': '<f8, 'fortran_order': False, 'shape': (2, 2), }", "malformed"),
            ("'descr': '<f8', 'shape': (2, 2)", "expected '{'"),
            ("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2)", "unterminated"),
        ] {
            cases.append((dict, npyHeader(dict) + data, needle))
        }
        for (what, bytes, needle) in cases {
            let message = refusal(what) { _ = try NPY.Header.parse(bytes: bytes, path: "x.npy") }
            #expect(message.hasPrefix("x.npy: ") && message.contains(needle), "\(what): \(message)")
        }
    }

    @Test func npyDataSizeIsCheckedWithoutOverflow() throws {
        // 2⁶² × 4 elements overflow; 2⁶⁰ × 8 bytes too; 2⁵⁹ elements fit in Int but not in the file.
        for (shape, needle) in [("(4611686018427387904, 4)", "overflow"), ("(1152921504606846976,)", "overflow"),
                                ("(576460752303423488, 1)", "truncated"), ("(2, 3)", "truncated"), ("(1, 1)", "bytes after the data")] {
            let bytes = npyHeader("{'descr': '<f8', 'fortran_order': False, 'shape': \(shape), }") + [UInt8](repeating: 0, count: 16)
            let message = refusal(shape) { _ = try NPY.Header.parse(bytes: bytes, path: "s.npy") }
            #expect(message.contains(needle), "\(shape): \(message)")
        }
        // An empty array with a huge other dimension holds no bytes: the reader refuses it before sizing anything.
        let dir = try scratch()
        for shape in ["(0, 4611686018427387904)", "(4611686018427387904, 0)", "(1, 0, 4611686018427387904)"] {
            try Data(npyHeader("{'descr': '<f8', 'fortran_order': False, 'shape': \(shape), }")).write(to: URL(fileURLWithPath: dir + "/e.npy"))
            #expect(refusal(shape) { _ = try DataSource.open(DataSpec(path: dir + "/e.npy")) }.contains("empty"))
        }
        // Truncated data through the reader still says so.
        try Data(NPY.header(shape: [2, 3, 2]) + doubles([1, 2, 3])).write(to: URL(fileURLWithPath: dir + "/t.npy"))
        #expect(refusal("truncated") { _ = try DataSource.open(DataSpec(path: dir + "/t.npy")) }.contains("truncated"))
    }

    /// Seeded random flips, byte overwrites, truncations and insertions of a valid .npy: each parses or throws
    /// EddyError, in memory and (fewer) through the file reader, reading every row.
    @Test func npyMutationsNeverCrash() throws {
        let valid = validNPY()
        var rng = SeededGenerator(seed: 20_240_601)
        let parsed = try mutationRuns(4000, fileEvery: 10, file: try scratch() + "/m.npy", next: { _ in mutate(valid, &rng) },
                                      inMemory: { _ = try NPY.Header.parse(bytes: $0, path: "m.npy") },
                                      fromFile: { _ = try readAll(DataSpec(path: $0)) })
        #expect(parsed > 0)   // some mutations (in the data) leave a valid file
    }

    // MARK: Model files

    @Test func modelFilesAreWrittenAsVersion5WithAChecksum() throws {
        let bytes = try validModelBytes()
        let parts = try Parts(bytes)
        #expect(parts.checksum?.hasPrefix("fnv1a64:") == true)
        let (model, notes) = try readModel(bytes)
        #expect(notes.isEmpty)
        #expect(model.metadata.formatVersion == 5 && ModelMetadata.currentFormatVersion == 5)
        #expect(model.theta == smallModel.theta && model.layer == smallModel.layer && model.climatology == smallModel.climatology)
        // The reassembly used by the tests below is faithful: an unchanged round trip loads.
        var same = parts
        same.resign()
        #expect(same.checksum == parts.checksum)
        _ = try readModel(same.bytes)
    }

    @Test func oldFilesWithoutChecksumLoadWithANote() throws {
        for version in 1...3 {
            var parts = try Parts(try validModelBytes())
            parts.edit("\"formatVersion\":5", "\"formatVersion\":\(version)")
            parts.checksum = nil
            let (model, notes) = try readModel(parts.bytes, path: "old.safetensors")
            #expect(model.metadata.formatVersion == version)
            #expect(model.theta == smallModel.theta)
            #expect(notes.count == 1 && notes[0].contains("old.safetensors") && notes[0].contains("no checksum"), "\(notes)")
        }
        // Version 4 without its checksum is refused.
        var parts = try Parts(try validModelBytes())
        parts.checksum = nil
        #expect(refusal("v4 without checksum") { _ = try readModel(parts.bytes, path: "v4.safetensors") }.contains("checksum"))
        // An unreadable checksum too.
        parts.checksum = "crc32:1234"
        #expect(refusal("bad checksum text") { _ = try readModel(parts.bytes, path: "v4.safetensors") }.contains("checksum"))
    }

    @Test func aFlippedBitInAWeightTensorIsRefused() throws {
        let bytes = try validModelBytes()
        let parts = try Parts(bytes)
        let w = parts.tensors.first { $0.name == "W" }!
        let dataStart = bytes.count - parts.data.count
        var flipped = bytes
        flipped[dataStart + w.offsets[0] + 13] ^= 0x04
        let message = refusal("flipped W bit") { _ = try readModel(flipped, path: "flip.safetensors") }
        #expect(message.hasPrefix("flip.safetensors: ") && message.contains("checksum"), "\(message)")
        // Through the file reader too.
        let path = try scratch() + "/flip.safetensors"
        try Data(flipped).write(to: URL(fileURLWithPath: path))
        #expect(refusal("flipped W bit (file)") { _ = try ModelFile.read(path) }.contains(path))
        // And in the metadata: the ridge's text changed by one bit.
        var meta = parts
        let ridge = meta.meta.range(of: "\"ridge\":")!
        var text = Array(meta.meta.utf8)
        let at = meta.meta.utf8.distance(from: meta.meta.utf8.startIndex, to: ridge.upperBound)
        text[at] ^= 0x01   // a digit becomes another digit
        meta.meta = String(decoding: text, as: UTF8.self)
        let m = refusal("flipped metadata bit") { _ = try readModel(meta.bytes, path: "meta.safetensors") }
        #expect(m.hasPrefix("meta.safetensors: ") && m.contains("checksum"), "\(m)")
    }

    /// Every single-bit flip anywhere in a valid file — length prefix, header, metadata, checksum, data — is refused.
    @Test func everySingleBitFlipIsRefused() throws {
        let bytes = try validModelBytes()
        for i in bytes.indices {
            var b = bytes
            b[i] ^= UInt8(1) << UInt8(i % 8)
            do {
                _ = try readModel(b, path: "f.safetensors")
                Issue.record("bit \(i % 8) of byte \(i) flipped: accepted")
            } catch let e as EddyError {
                if !e.message.hasPrefix("f.safetensors: ") { Issue.record("byte \(i): \(e.message)") }
            }
        }
    }

    @Test(arguments: [("\"width\":6", "\"width\":-3", "width -3"), ("\"width\":6", "\"width\":0", "'W'"),
                      ("\"width\":6", "\"width\":2305843009213693952", "overflow"), ("\"width\":6", "\"width\":9223372036854775807", "overflow"),
                      ("\"delays\":2", "\"delays\":0", "delays 0"), ("\"delays\":2", "\"delays\":-1", "delays -1"),
                      ("\"delays\":2", "\"delays\":4611686018427387904", "overflow"),
                      ("\"variables\":[\"a\",\"b\"]", "\"variables\":[]", "no variables"),
                      ("\"variables\":[\"a\",\"b\"]", "\"variables\":[\"a\",\"b\",\"c\"]", "trainingRange"),
                      ("\"inputs\":[\"u\"]", "\"inputs\":[]", "unexpected tensor"),
                      ("\"climatologyPeriod\":3", "\"climatologyPeriod\":-3", "climatologyPeriod -3"),
                      ("\"climatologyPeriod\":3", "\"climatologyPeriod\":4", "'climatology'"),
                      ("\"dt\":0.1", "\"dt\":0", "dt"), ("\"dt\":0.1", "\"dt\":-0.1", "dt"),
                      ("\"form\":\"recurrent\"", "\"form\":\"koopman\"", "tensor"),
                      ("\"width\":6", "\"width\":6,\"width\":6", "duplicate key 'width'"),
                      ("\"delays\":2", "\"delays\":2,\"delay\\u0073\":3", "duplicate key 'delays'")])
    func inconsistentMetadataIsRefused(old: String, new: String, needle: String) throws {
        var parts = try Parts(try validModelBytes())
        parts.edit(old, new)
        parts.resign()
        let message = refusal(new) { _ = try readModel(parts.bytes, path: "meta.safetensors") }
        #expect(message.hasPrefix("meta.safetensors: ") && message.contains(needle), "\(new): \(message)")
    }

    @Test func climatologyShapeAndPeriodAreChecked() throws {
        // A shape with a negative dimension.
        var negative = try Parts(try validModelBytes())
        let c = negative.tensors.firstIndex { $0.name == "climatology" }!
        negative.tensors[c].shape = [-1, 2]
        negative.resign()
        #expect(refusal("[-1, 2]") { _ = try readModel(negative.bytes, path: "c.safetensors") }.contains("negative dimension"))
        // Period 0 with an empty tensor of shape [0, 2].
        var zero = try Parts(try validModelBytes())
        zero.set("climatology", shape: [0, 2], values: [])
        zero.edit("\"climatologyPeriod\":3", "\"climatologyPeriod\":0")
        zero.resign()
        #expect(refusal("period 0") { _ = try readModel(zero.bytes, path: "c.safetensors") }.contains("climatologyPeriod 0"))
        // Shape [3, 1] for 2 variables (same byte count as needed elsewhere: still refused).
        var narrow = try Parts(try validModelBytes())
        narrow.set("climatology", shape: [6, 1], values: [1, 2, 3, 4, 5, 6])
        narrow.resign()
        #expect(refusal("[6, 1]") { _ = try readModel(narrow.bytes, path: "c.safetensors") }.contains("'climatology'"))
        // Infinite values.
        var infinite = try Parts(try validModelBytes())
        infinite.set("climatology", shape: [3, 2], values: [1, 2, .infinity, 4, 5, 6])
        infinite.resign()
        #expect(refusal("inf climatology") { _ = try readModel(infinite.bytes, path: "c.safetensors") }.contains("climatology"))
    }

    @Test func normalisationAndWeightsMustBeUsable() throws {
        for (name, values, needle) in [("x_std", [0.0, 1], "standard deviation"), ("x_std", [-1.0, 1], "standard deviation"),
                                       ("x_std", [Double.nan, 1], "standard deviation"), ("u_std", [Double.infinity], "standard deviation"),
                                       ("x_mean", [Double.nan, 0], "mean"), ("u_mean", [-Double.infinity], "mean"),
                                       ("b", [0, 0, 0, .nan, 0, 0], "non-finite weights")] {
            var parts = try Parts(try validModelBytes())
            parts.set(name, shape: parts.tensors.first { $0.name == name }!.shape, values: values)
            parts.resign()
            let message = refusal("\(name) \(values)") { _ = try readModel(parts.bytes, path: "n.safetensors") }
            #expect(message.hasPrefix("n.safetensors: ") && message.contains(needle), "\(name): \(message)")
        }
    }

    @Test func tensorRangesMustTileTheDataExactly() throws {
        let base = try Parts(try validModelBytes())
        func check(_ what: String, _ needle: String, _ change: (inout Parts) -> Void) {
            var p = base
            change(&p)
            p.resign()
            let message = refusal(what) { _ = try readModel(p.bytes, path: "r.safetensors") }
            #expect(message.hasPrefix("r.safetensors: ") && message.contains(needle), "\(what): \(message)")
        }
        check("overlap", "overlaps") { p in
            // b points into W's bytes (same length, shifted by 8).
            let i = p.tensors.firstIndex { $0.name == "b" }!
            p.tensors[i].offsets = [p.tensors[i].offsets[0] - 8, p.tensors[i].offsets[1] - 8]
        }
        check("two tensors on the same bytes", "overlaps") { p in
            let w = p.tensors.first { $0.name == "x_mean" }!
            let i = p.tensors.firstIndex { $0.name == "x_std" }!
            p.tensors[i].offsets = w.offsets
        }
        check("trailing bytes", "trailing bytes") { p in p.data += [0, 0, 0, 0, 0, 0, 0, 0] }
        check("truncated", "truncated") { p in p.data.removeLast(8) }
        check("gap", "unused bytes") { p in
            let i = p.tensors.firstIndex { $0.name == "b" }!
            p.tensors[i].offsets = [p.tensors[i].offsets[0] + 8, p.tensors[i].offsets[1] + 8]
        }
        check("offsets beyond the file", "truncated") { p in
            let last = p.tensors.count - 1, begin = p.tensors[last].offsets[0]
            p.tensors[last].offsets = [begin, begin + 8 << 40]
            p.tensors[last].shape = [1 << 40]
        }
        check("huge shape", "overflow") { p in p.tensors[0].shape = [Int.max / 2, 4] }
        check("negative offset", "data_offsets") { p in p.tensors[0].offsets = [-8, p.tensors[0].offsets[1]] }
        check("three offsets", "data_offsets") { p in p.tensors[0].offsets += [0] }
        check("reversed offsets", "data_offsets") { p in p.tensors[0].offsets.reverse() }
        check("size differs from the shape", "needs") { p in p.tensors[0].shape[0] += 1 }
        check("F32", "F64 only") { p in p.tensors[0].dtype = "F32" }
        check("an extra tensor", "unexpected tensor 'extra'") { p in p.set("extra", shape: [1], values: [1]) }
        check("a missing tensor", "lacks tensor 'b'") { p in p.set("b", shape: [6], values: nil) }
        check("duplicate tensor key", "duplicate key 'W'") { p in
            let w = p.tensors.first { $0.name == "W" }!
            p.extraHeader = "\"W\":{\"dtype\":\"F64\",\"shape\":[\(w.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(w.offsets[0]),\(w.offsets[1])]}"
        }
        check("duplicate key spelled with an escape", "duplicate key") { p in
            p.extraHeader = "\"\\u005f_metadata__\":{}"
        }
        check("deep nesting", "nesting") { p in
            p.extraHeader = "\"deep\":" + String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        }
    }

    @Test func headerLengthIsChecked() throws {
        let bytes = try validModelBytes()
        for (what, b, needle) in [("empty", [UInt8](), "not an Eddy model file"), ("7 bytes", Array(bytes.prefix(7)), "not an Eddy model file"),
                                  ("length 2⁶⁴−1", [UInt8](repeating: 0xFF, count: 8) + bytes.dropFirst(8), "header length"),
                                  ("length 0", [UInt8](repeating: 0, count: 8) + bytes.dropFirst(8), "header length"),
                                  ("half", Array(bytes.prefix(bytes.count / 2)), "truncated"),
                                  ("text", Array("hello, world".utf8), "not an Eddy model file")] {
            let message = refusal(what) { _ = try readModel(b, path: "h.safetensors") }
            #expect(message.hasPrefix("h.safetensors: ") && message.contains(needle), "\(what): \(message)")
        }
    }

    /// Seeded random mutations of a valid version-4 file and of a version-1 file (no checksum, so damaged values
    /// get as far as the value checks): each loads or throws EddyError; loaded models can be used.
    @Test func modelFileMutationsNeverCrash() throws {
        let v4 = try validModelBytes()
        var old = try Parts(v4)
        old.edit("\"formatVersion\":5", "\"formatVersion\":1")
        old.checksum = nil
        let v1 = old.bytes
        var rng = SeededGenerator(seed: 7_001)
        let loaded = try mutationRuns(3000, fileEvery: 15, file: try scratch() + "/m.safetensors", next: { mutate($0 % 2 == 0 ? v4 : v1, &rng) },
                                      inMemory: { exercise(try readModel($0).0) },
                                      fromFile: { exercise(try ModelFile.read($0)) })
        #expect(loaded > 0)   // some changes to the unprotected version-1 file's values are still a valid model
    }
}

/// `count` mutated inputs (`next(k)`), each parsed in memory and every `fileEvery`-th also through a file: each must
/// parse or throw EddyError (anything else is recorded). Returns how many parsed in memory.
private func mutationRuns(_ count: Int, fileEvery: Int, file: String, next: (Int) -> [UInt8], inMemory: ([UInt8]) throws -> Void,
                          fromFile: (String) throws -> Void) throws -> Int {
    var parsed = 0
    for k in 0..<count {
        let bytes = next(k)
        do {
            try inMemory(bytes)
            parsed += 1
        } catch is EddyError {
        } catch {
            Issue.record("mutation \(k): \(type(of: error)) \(error)")
        }
        if k % fileEvery == 0 {
            try Data(bytes).write(to: URL(fileURLWithPath: file))
            do { try fromFile(file) } catch is EddyError {} catch {
                Issue.record("file mutation \(k): \(type(of: error)) \(error)")
            }
        }
    }
    return parsed
}

/// One random change: bit flips, a byte overwritten with a random or boundary value, a truncation, an insertion,
/// a deletion, or a run of bytes duplicated.
private func mutate(_ valid: [UInt8], _ rng: inout SeededGenerator) -> [UInt8] {
    var b = valid
    let rounds = 1 + rng.index(below: 3)
    for _ in 0..<rounds {
        guard !b.isEmpty else { break }
        let at = rng.index(below: b.count)
        switch rng.index(below: 7) {
        case 0: b[at] ^= UInt8(1) << UInt8(rng.index(below: 8))
        case 1: b[at] = UInt8(truncatingIfNeeded: rng.next())
        case 2: b[at] = [0x00, 0xFF, 0x7F, 0x80, 0x20, 0x22, 0x2C, 0x2D, 0x30, 0x39, 0x5B, 0x5D, 0x7B, 0x7D, 0x28, 0x29][rng.index(below: 16)]
        case 3: b.removeLast(b.count - at)
        case 4: b.insert(contentsOf: [UInt8](repeating: UInt8(truncatingIfNeeded: rng.next()), count: 1 + rng.index(below: 8)), at: at)
        case 5: b.removeSubrange(at..<min(b.count, at + 1 + rng.index(below: 8)))
        default:
            let end = min(b.count, at + 1 + rng.index(below: 16))
            b.insert(contentsOf: Array(b[at..<end]), at: at)
        }
    }
    return b
}
