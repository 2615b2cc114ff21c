/// The two recurrent forms (METHOD.md, "Two recurrent forms").
public enum Form: String, Codable, CaseIterable, Sendable {
    /// `Ψ_{t+1} ≈ Ψ_t K + u_t B`, read out by `x_t = Ψ_t C`.
    case koopman
    /// `x_{t+1} ≈ Ψ_t A + u_t B`, re-lifted every step.
    case recurrent
}

/// Column layout of a source row `[1, z, φ(z), u]` and of the targets (METHOD.md, "Dictionary").
public struct DictionaryLayout: Sendable, Equatable {
    public var variables: Int      // n
    public var delays: Int         // k
    public var width: Int          // M
    public var inputs: Int         // m
    public var form: Form

    public init(variables: Int, delays: Int, width: Int, inputs: Int, form: Form) {
        self.variables = variables
        self.delays = delays
        self.width = width
        self.inputs = inputs
        self.form = form
    }

    public var windowSize: Int { variables * delays }           // p
    public var dictionarySize: Int { 1 + windowSize + width }   // D
    public var featureCount: Int { dictionarySize + inputs }    // D + m, the size of G
    /// Koopman: the next dictionary row Ψ_{t+1}; recurrent: the next state x_{t+1}.
    public var targetCount: Int { form == .koopman ? dictionarySize : variables }
}

/// The sufficient statistics of one pass: `G = Σ Φᵀ Φ` (full, symmetric) and `R = Σ Φᵀ Y` over all pairs.
/// A pure sum: partial results from chunks, devices or machines add up with `+`.
public struct GramSums: Sendable {
    public var layout: DictionaryLayout
    public var gram: [Double]          // featureCount × featureCount, row-major
    public var rightHandSide: [Double] // featureCount × targetCount, row-major
    public var pairs: Int

    public init(layout: DictionaryLayout) {
        self.layout = layout
        gram = .init(repeating: 0, count: layout.featureCount * layout.featureCount)
        rightHandSide = .init(repeating: 0, count: layout.featureCount * layout.targetCount)
        pairs = 0
    }

    public static func + (a: GramSums, b: GramSums) -> GramSums {
        precondition(a.layout == b.layout)
        var s = a
        for i in s.gram.indices { s.gram[i] += b.gram[i] }
        for i in s.rightHandSide.indices { s.rightHandSide[i] += b.rightHandSide[i] }
        s.pairs += b.pairs
        return s
    }
}

/// What differs between compute devices: lifting chunks of windows and reducing them into the pass statistic (the Gram
/// sums or the QR factor). Everything else — reading, sampling, solving, forecasting — is shared and never sees a device type.
public protocol Backend: AnyObject {
    /// A short name (`cpu`, `opencl`).
    var name: String { get }
    /// One line on the device and library, for logs and `eddy devices`.
    var details: String { get }
    /// nil when this backend can produce `statistic`, else why not (callers fall back to the CPU with that reason).
    func unsupported(_ statistic: PassStatistic) -> String?
    /// Starts a pass with a fixed hidden layer and layout that produces `statistic`.
    func beginPass(layer: HiddenLayer, layout: DictionaryLayout, statistic: PassStatistic) throws
    /// Lifts one chunk and adds its pairs to the pass state.
    func accumulate(_ chunk: WindowChunk) throws
    /// Returns the state of the pass (G mirrored to full, or the factor) and ends it.
    func endPass() throws -> PassState
    /// What the backend noticed since the last call (e.g. a device that failed at the start of a pass, replaced by the
    /// CPU): the library never prints, its callers do (under MPI, once and from rank 0).
    func takeWarnings() -> [String]
}

extension Backend {
    public func takeWarnings() -> [String] { [] }

    /// Starts a Gram pass.
    public func beginPass(layer: HiddenLayer, layout: DictionaryLayout) throws {
        try beginPass(layer: layer, layout: layout, statistic: .gram)
    }

    /// Ends a Gram pass and returns its sums.
    public func endGramPass() throws -> GramSums { try endPass().gram() }
}

extension WindowChunk {
    /// A chunk built directly, for backends, self-tests and benchmarks outside this module: row `i` is a pair
    /// source exactly when `linked[i]` (its successor is row `i + 1`).
    public init(windows: [Double], inputs: [Double], linked: [Bool]) {
        self.init()
        count = linked.count
        self.windows = windows
        self.inputs = inputs
        self.linked = linked
    }
}

/// `opencl` is resolved by `EddyOpenCL.BackendSelection`, which sees both this library and OpenCL.
public enum BackendChoice: String, CaseIterable, Sendable {
    case auto, cpu, opencl
}
