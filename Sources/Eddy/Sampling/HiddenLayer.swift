#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

public enum Activation: String, Codable, CaseIterable, Sendable {
    case tanh, relu
}

public enum SamplerKind: String, Codable, CaseIterable, Sendable {
    case swim, random
}

/// The sampled, fixed hidden layer `φ(z) = σ(z W + b)` (METHOD.md, "Hidden layer"). `W` is stored `p × M`
/// row-major (one column per neuron) so that a chunk of windows lifts with one matrix product. Neurons are
/// kept in draw order: the first `w` columns are a valid width-`w` layer.
public struct HiddenLayer: Sendable, Equatable {
    public var inputSize: Int
    public var width: Int
    public var weights: [Double]
    public var biases: [Double]
    public var activation: Activation

    public init(inputSize: Int, width: Int, weights: [Double], biases: [Double], activation: Activation) {
        precondition(weights.count == inputSize * width && biases.count == width)
        self.inputSize = inputSize
        self.width = width
        self.weights = weights
        self.biases = biases
        self.activation = activation
    }

    /// The first `w` neurons.
    public func prefix(_ w: Int) -> HiddenLayer {
        var wts = [Double](repeating: 0, count: inputSize * w)
        for r in 0..<inputSize {
            for c in 0..<w { wts[r * w + c] = weights[r * width + c] }
        }
        return HiddenLayer(inputSize: inputSize, width: w, weights: wts, biases: Array(biases[0..<w]), activation: activation)
    }
}

/// Reservoir of training pairs for SWIM's candidate pool: a keyed bottom-k sample. Every pair gets a key from a
/// hash of the seed and the pair itself (the bit patterns of its window and target, as read), and the pool keeps
/// the `capacity` pairs with the smallest keys, in key order. Which pairs those are depends on the pairs and the seed
/// only — not on the chunking, on how the pairs were spread over processes, nor on where in which file they stand:
/// the merge of two reservoirs is the `capacity` smallest of their union (`Processes.mergePool`). A pair that occurs
/// twice has one key (both copies are in, or neither; they are the same candidate to SWIM). Model format 5 and later
/// draw this way (format 4's Algorithm R drew another sample from the same seed).
public struct PairReservoir: Sendable {
    public let capacity: Int
    public let windowSize: Int
    public let targetSize: Int
    /// Pairs offered to this reservoir.
    public private(set) var seen = 0
    public private(set) var windows: [Double] = []
    public private(set) var targets: [Double] = []
    /// Each stored pair's key and a second hash that breaks ties; sorted ascending after `prune`.
    public private(set) var keys: [UInt64] = []
    public private(set) var ties: [UInt64] = []
    private let keySalt: UInt64
    private let tieSalt: UInt64
    /// Keys above this are never kept (the largest kept key once the reservoir has been pruned full).
    private var threshold = UInt64.max
    private var sorted = true

    public init(capacity: Int, windowSize: Int, targetSize: Int, seed: UInt64) {
        self.capacity = capacity
        self.windowSize = windowSize
        self.targetSize = targetSize
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in "swim-reservoir".utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        keySalt = RowTagger.mix(seed ^ h)
        tieSalt = RowTagger.mix(keySalt ^ 0x7469_6562_7265_616B)
    }

    public var count: Int { keys.count }

    /// The key of a pair (and the second hash that breaks ties): window values, then target values. The key hashes
    /// the values rounded to single precision, so differences in the last bits (the same data through EOFs fitted in
    /// another order, say) keep the same pool; the tie-break hashes them in full.
    func key(_ values: ArraySlice<Double>, _ target: ArraySlice<Double>) -> (UInt64, UInt64) {
        var a = keySalt, b = tieSalt
        for v in values { a = RowTagger.mix(a ^ UInt64(Float(v).bitPattern)); b = RowTagger.mix(b &+ v.bitPattern) }
        for v in target { a = RowTagger.mix(a ^ UInt64(Float(v).bitPattern)); b = RowTagger.mix(b &+ v.bitPattern) }
        return (a, b)
    }

    /// Offers every pair of a chunk: window `i` with target `x_{t+1}`, the first `targetSize` values of window `i+1`.
    public mutating func offer(_ chunk: WindowChunk) {
        let p = windowSize
        for i in 0..<chunk.count where chunk.linked[i] {
            seen += 1
            let (k, t) = key(chunk.windows[(i * p)..<((i + 1) * p)], chunk.windows[((i + 1) * p)..<((i + 1) * p + targetSize)])
            if k > threshold { continue }
            windows += chunk.windows[(i * p)..<((i + 1) * p)]
            targets += chunk.windows[((i + 1) * p)..<((i + 1) * p + targetSize)]
            keys.append(k)
            ties.append(t)
            sorted = false
            if keys.count >= 2 * capacity { prune() }
        }
    }

    /// Keeps the `capacity` smallest keys, in key order.
    public mutating func prune() {
        if sorted && keys.count <= capacity { return }
        let order = keys.indices.sorted { (keys[$0], ties[$0]) < (keys[$1], ties[$1]) }.prefix(capacity)
        select(Array(order))
        if keys.count == capacity { threshold = keys[capacity - 1] }
    }

    private mutating func select(_ order: [Int]) {
        let p = windowSize, q = targetSize
        var w = [Double](), y = [Double](), k = [UInt64](), t = [UInt64]()
        w.reserveCapacity(order.count * p)
        y.reserveCapacity(order.count * q)
        for j in order {
            w += windows[(j * p)..<((j + 1) * p)]
            y += targets[(j * q)..<((j + 1) * q)]
            k.append(keys[j])
            t.append(ties[j])
        }
        (windows, targets, keys, ties) = (w, y, k, t)
        sorted = true
    }

    /// This reservoir's pairs at `indices` (in that order).
    func entries(_ indices: [Int]) -> (windows: [Double], targets: [Double]) {
        let p = windowSize, q = targetSize
        var w = [Double](), y = [Double]()
        for j in indices {
            w += windows[(j * p)..<((j + 1) * p)]
            y += targets[(j * q)..<((j + 1) * q)]
        }
        return (w, y)
    }

    /// Replaces the contents (a merged pool, already in key order).
    mutating func replace(windows w: [Double], targets y: [Double], keys k: [UInt64], ties t: [UInt64], seen s: Int) {
        (windows, targets, keys, ties, seen) = (w, y, k, t, s)
        sorted = true
        threshold = k.count == capacity ? k[capacity - 1] : .max
    }

    /// Standardises the stored raw pairs (windows repeat the variables once per delay).
    public mutating func standardise(_ norm: Normalisation) {
        let n = targetSize
        for r in 0..<count {
            for c in 0..<windowSize {
                let i = c % n
                windows[r * windowSize + c] = (windows[r * windowSize + c] - norm.variableMean[i]) / norm.variableStd[i]
            }
            for i in 0..<n {
                targets[r * n + i] = (targets[r * n + i] - norm.variableMean[i]) / norm.variableStd[i]
            }
        }
    }
}

public enum Sampler {
    /// SWIM (METHOD.md, "SWIM"): candidate pairs drawn uniformly from the pool, weighted by
    /// `‖y_j − y_i‖∞ / max(‖z_j − z_i‖₂, 1e-10)`, `M` of them drawn with replacement in proportion, each turned into
    /// a neuron that reads −½ at `z_i` and +½ at `z_j` (tanh) or 0 at `z_i` and 1 at `z_j` (ReLU).
    public static func swim(pool: PairReservoir, width: Int, activation: Activation, seed: UInt64) throws -> HiddenLayer {
        let n = pool.count
        let p = pool.windowSize
        let q = pool.targetSize
        guard n >= 2 else {
            throw EddyError("SWIM needs at least 2 training pairs to sample from, found \(n)")
        }
        var rng = SeededGenerator(seed: seed, stream: "swim")
        let candidates = max(1, (width + n - 1) / n) * n
        var from = [Int](repeating: 0, count: candidates)
        var to = [Int](repeating: 0, count: candidates)
        var weight = [Double](repeating: 0, count: candidates)
        pool.windows.withUnsafeBufferPointer { z in
            pool.targets.withUnsafeBufferPointer { y in
                for c in 0..<candidates {
                    let i = rng.index(below: n)
                    var j = rng.index(below: n - 1)
                    if j >= i { j += 1 }
                    from[c] = i
                    to[c] = j
                    var dz = 0.0
                    for k in 0..<p { let d = z[j * p + k] - z[i * p + k]; dz += d * d }
                    var dy = 0.0
                    for k in 0..<q { dy = max(dy, abs(y[j * q + k] - y[i * q + k])) }
                    // A pair of identical windows cannot define a direction: it gets no weight.
                    weight[c] = dz.squareRoot() < 1e-10 ? 0 : dy / max(dz.squareRoot(), 1e-10)
                }
            }
        }
        var cumulative = [Double](repeating: 0, count: candidates)
        var total = 0.0
        var usable = 0
        for c in 0..<candidates {
            total += weight[c]
            cumulative[c] = total
        }
        if !(total > 0) || !total.isFinite {
            // All weights vanish: uniform over candidates with distinct windows.
            total = 0
            for c in 0..<candidates {
                var dz = 0.0
                for k in 0..<p { let d = pool.windows[to[c] * p + k] - pool.windows[from[c] * p + k]; dz += d * d }
                if dz.squareRoot() >= 1e-10 { total += 1; usable += 1 }
                cumulative[c] = total
            }
            if usable == 0 { throw EddyError("SWIM: every training window is identical; no neuron can be sampled") }
        }
        let s = 0.5 * log(3.0)  // atanh(1/2)
        var w = [Double](repeating: 0, count: p * width)
        var b = [Double](repeating: 0, count: width)
        for m in 0..<width {
            let target = rng.uniform() * total
            var lo = 0, hi = candidates - 1
            while lo < hi {
                let mid = (lo + hi) / 2
                if cumulative[mid] > target { hi = mid } else { lo = mid + 1 }
            }
            let i = from[lo], j = to[lo]
            var d2 = 0.0
            for k in 0..<p { let d = pool.windows[j * p + k] - pool.windows[i * p + k]; d2 += d * d }
            let scale = activation == .tanh ? 2 * s / d2 : 1 / d2
            var dot = 0.0
            for k in 0..<p {
                let wk = scale * (pool.windows[j * p + k] - pool.windows[i * p + k])
                w[k * width + m] = wk
                dot += wk * pool.windows[i * p + k]
            }
            b[m] = -dot - (activation == .tanh ? s : 0)
        }
        return HiddenLayer(inputSize: p, width: width, weights: w, biases: b, activation: activation)
    }

    /// Random features (METHOD.md): `W_ij ~ N(0, scale²)`, `b ~ U(−π, π)`, drawn neuron by neuron.
    public static func random(inputSize p: Int, width: Int, activation: Activation, scale: Double, seed: UInt64) -> HiddenLayer {
        var rng = SeededGenerator(seed: seed, stream: "random-features")
        var w = [Double](repeating: 0, count: p * width)
        var b = [Double](repeating: 0, count: width)
        for m in 0..<width {
            for k in 0..<p { w[k * width + m] = scale * rng.normal() }
            b[m] = (2 * rng.uniform() - 1) * Double.pi
        }
        return HiddenLayer(inputSize: p, width: width, weights: w, biases: b, activation: activation)
    }
}
