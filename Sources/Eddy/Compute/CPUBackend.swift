/// The CPU twin: lift with OpenBLAS `dgemm` plus a parallel activation, accumulate with `dsyrk` (upper triangle)
/// and `dgemm`, all in double precision.
public final class CPUBackend: Backend {
    public let name = "cpu"
    public var details: String { "\(BLAS.configuration), \(BLAS.threads) threads, double precision" }

    private var layer: HiddenLayer?
    private var sums: GramSums?
    private var factor: QRFactor?
    private var blocks: QRBlockBuilder?
    private var features: [Double] = []
    /// Rows per `dtpqrt` block in QR passes (nil: `QRBlockBuilder`'s default); tests vary it.
    public var qrBlockRows: Int?

    public init() {}

    public func unsupported(_ statistic: PassStatistic) -> String? { nil }

    public func beginPass(layer: HiddenLayer, layout: DictionaryLayout, statistic: PassStatistic) throws {
        self.layer = layer
        switch statistic {
        case .gram:
            sums = GramSums(layout: layout)
            factor = nil
            blocks = nil
        case .qr:
            sums = nil
            factor = QRFactor(layout: layout)
            blocks = QRBlockBuilder(layout: layout, blockRows: qrBlockRows)
        }
    }

    public func accumulate(_ chunk: WindowChunk) throws {
        if factor != nil { return try accumulateFactor(chunk) }
        guard let layer, var s = sums else { throw EddyError("CPU backend: accumulate() before beginPass()") }
        sums = nil  // keep the arrays uniquely referenced while BLAS writes into them
        let layout = s.layout
        let f = layout.featureCount, d = layout.dictionarySize, p = layout.windowSize
        lift(chunk, layer: layer, layout: layout)
        features.withUnsafeMutableBufferPointer { phi in
            let phiBase = UnsafePointer(phi.baseAddress!)
            s.gram.withUnsafeMutableBufferPointer { g in
                s.rightHandSide.withUnsafeMutableBufferPointer { r in
                    for run in chunk.runs {
                        let sources = phiBase + run.start * f
                        BLAS.syrkTransposed(n: f, k: run.length, a: sources, lda: f, c: g.baseAddress!, ldc: f)
                        switch layout.form {
                        case .koopman:
                            // Targets Ψ_{t+1}: the next rows of the same chunk, first D columns (no second lift).
                            BLAS.gemm(transA: true, transB: false, m: f, n: d, k: run.length, a: sources, lda: f,
                                      b: sources + f, ldb: f, beta: 1, c: r.baseAddress!, ldc: d)
                        case .recurrent:
                            // Targets x_{t+1}: the first n values of the next window.
                            chunk.windows.withUnsafeBufferPointer { w in
                                BLAS.gemm(transA: true, transB: false, m: f, n: layout.variables, k: run.length, a: sources, lda: f,
                                          b: w.baseAddress! + (run.start + 1) * p, ldb: p, beta: 1, c: r.baseAddress!, ldc: layout.variables)
                            }
                        }
                    }
                }
            }
        }
        s.pairs += chunk.pairCount
        sums = s
    }

    /// QR pass: lift, then fold the chunk's pair rows into the factor.
    private func accumulateFactor(_ chunk: WindowChunk) throws {
        guard let layer, var state = factor, var builder = blocks else { throw EddyError("CPU backend: accumulate() before beginPass()") }
        factor = nil
        let layout = state.layout
        lift(chunk, layer: layer, layout: layout)
        try features.withUnsafeBufferPointer { phi in
            try chunk.windows.withUnsafeBufferPointer { w in
                try builder.add(features: phi.baseAddress!, ld: layout.featureCount, count: chunk.count, linked: chunk.linked,
                                windows: w.baseAddress!, into: &state)
            }
        }
        factor = state
        blocks = builder
    }

    /// The chunk's dictionary rows into `features` (grown as needed), for either pass statistic.
    private func lift(_ chunk: WindowChunk, layer: HiddenLayer, layout: DictionaryLayout) {
        let f = layout.featureCount
        if features.count < chunk.count * f { features = [Double](repeating: 0, count: chunk.count * f) }
        features.withUnsafeMutableBufferPointer { phi in
            chunk.windows.withUnsafeBufferPointer { w in
                chunk.inputs.withUnsafeBufferPointer { u in
                    Lift.rows(windows: w.baseAddress!, inputs: u.baseAddress, count: chunk.count, layer: layer, layout: layout, into: phi.baseAddress!)
                }
            }
        }
    }

    public func endPass() throws -> PassState {
        defer {
            sums = nil
            factor = nil
            blocks = nil
            layer = nil
            features = []
        }
        if var state = factor, var builder = blocks {
            try builder.flush(into: &state)
            return .factor(state)
        }
        guard var s = sums else { throw EddyError("CPU backend: endPass() before beginPass()") }
        s.mirrorUpperTriangle()
        return .gram(s)
    }
}

extension GramSums {
    /// Copies the upper triangle into the lower one (SYRK writes only the upper).
    public mutating func mirrorUpperTriangle() {
        let f = layout.featureCount
        for i in 0..<f {
            for j in 0..<i { gram[i * f + j] = gram[j * f + i] }
        }
    }
}
