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

    /// Writes atomically: a temporary file beside `path`, renamed into place when complete.
    public static func write(_ model: Model, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var metadata = model.metadata
        // Readers before version 2 cannot run a reduced model; every other model stays readable by them.
        metadata.formatVersion = metadata.solver == .qr ? 3 : model.eof == nil ? 1 : 2
        let meta = String(decoding: try encoder.encode(metadata), as: UTF8.self)
        var entries: [String] = []
        var offset = 0
        let list = tensors(of: model)
        for (name, shape, values) in list {
            let shapeText = shape.map(String.init).joined(separator: ",")
            entries.append("\"\(name)\":{\"dtype\":\"F64\",\"shape\":[\(shapeText)],\"data_offsets\":[\(offset),\(offset + values.count * 8)]}")
            offset += values.count * 8
        }
        let metaString = String(decoding: try encoder.encode(["eddy": meta]), as: UTF8.self)
        var header = "{\"__metadata__\":\(metaString)," + entries.joined(separator: ",") + "}"
        while (8 + header.utf8.count) % 8 != 0 { header += " " }
        let file = try AtomicFile(path: path)
        var length = UInt64(header.utf8.count).littleEndian
        try withUnsafeBytes(of: &length) { try file.write($0) }
        try file.write(header)
        for (_, _, values) in list { try file.write(doubles: values.map { Double(bitPattern: $0.bitPattern.littleEndian) }) }
        try file.commit()
    }

    public static func read(_ path: String) throws -> Model {
        let file = try InputFile(path: path)
        let size = file.size
        guard size >= 8 else { throw EddyError("\(path): not an Eddy model file (only \(size) bytes; expected a safetensors file)") }
        let lead = file.readBytes(8)
        var length = 0
        for (i, b) in lead.enumerated() { length |= Int(b) << (8 * i) }
        guard length > 1, length <= size - 8, length < 100_000_000 else {
            throw EddyError("\(path): not an Eddy model file or truncated (header length \(length), file size \(size) bytes)")
        }
        let headerBytes = file.readBytes(length)
        let header: Header
        do {
            header = try JSONDecoder().decode(Header.self, from: Data(headerBytes))
        } catch {
            throw EddyError("\(path): corrupted model file: its header is not valid safetensors JSON")
        }
        guard let metaText = header.metadata["eddy"] else {
            throw EddyError("\(path): a safetensors file without Eddy metadata (__metadata__.eddy); not an Eddy model")
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
        func tensor(_ name: String, _ shape: [Int]) throws -> [Double] {
            guard let info = header.tensors[name] else { throw EddyError("\(path): model file lacks tensor '\(name)'") }
            guard info.dtype == "F64", info.shape == shape else {
                throw EddyError("\(path): tensor '\(name)' is \(info.dtype) \(info.shape), expected F64 \(shape)")
            }
            let count = shape.reduce(1, *)
            guard info.data_offsets.count == 2, info.data_offsets[1] - info.data_offsets[0] == count * 8,
                  info.data_offsets[0] >= 0, info.data_offsets[1] <= dataSize else {
                throw EddyError("\(path): truncated or corrupted model file: tensor '\(name)' lies outside the data (\(dataSize) bytes)")
            }
            try file.seek(to: dataStart + info.data_offsets[0])
            let bytes = file.readBytes(count * 8)
            guard bytes.count == count * 8 else { throw EddyError("\(path): truncated model file (tensor '\(name)')") }
            return bytes.withUnsafeBytes { raw in
                (0..<count).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) }
            }
        }
        let outputs = metadata.variables.count, m = metadata.inputs.count
        let n = metadata.reduction?.components ?? outputs
        guard n > 0, n <= outputs, metadata.delays > 0, metadata.width >= 0 else { throw EddyError("\(path): corrupted model metadata (sizes)") }
        let layout = DictionaryLayout(variables: n, delays: metadata.delays, width: metadata.width, inputs: m, form: metadata.form)
        let d = layout.dictionarySize, r = layout.targetCount
        let w = try tensor("W", [layout.windowSize, metadata.width])
        let b = try tensor("b", [metadata.width])
        let norm = Normalisation(variableMean: try tensor("x_mean", [n]), variableStd: try tensor("x_std", [n]),
                                 inputMean: m > 0 ? try tensor("u_mean", [m]) : [], inputStd: m > 0 ? try tensor("u_std", [m]) : [])
        var theta = try tensor(metadata.form == .koopman ? "K" : "A", [d, r])
        if m > 0 { theta += try tensor("B", [m, r]) }
        guard (w + b + theta).allSatisfy(\.isFinite) else { throw EddyError("\(path): corrupted model file: non-finite weights") }
        let climatology = try metadata.climatologyPeriod.map { try tensor("climatology", [$0, outputs]) }
        let layer = HiddenLayer(inputSize: layout.windowSize, width: metadata.width, weights: w, biases: b, activation: metadata.activation)
        var eof: EOFBasis?
        if let r = metadata.reduction {
            guard r.componentVariance.count == n else { throw EddyError("\(path): corrupted model metadata (reduction)") }
            eof = EOFBasis(columns: outputs, components: n, mean: try tensor("eof_mean", [outputs]), scale: try tensor("eof_scale", [outputs]),
                           columnStd: try tensor("eof_std", [outputs]), vectors: try tensor("eof_vectors", [outputs, n]),
                           variance: r.componentVariance, totalVariance: r.totalVariance)
            guard (eof!.mean + eof!.columnStd + eof!.vectors).allSatisfy(\.isFinite), eof!.scale.allSatisfy({ $0 > 0 && $0.isFinite }) else {
                throw EddyError("\(path): corrupted model file: non-finite EOFs or a scale that is not positive")
            }
        }
        return Model(metadata: metadata, layer: layer, normalisation: norm, theta: theta, climatology: climatology, eof: eof)
    }
}
