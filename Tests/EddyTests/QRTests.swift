import EddyTestSupport
import Foundation
import Testing
@testable import Eddy

/// A noisy nonlinear series with one input, in several episodes: well-conditioned features for random layers.
func noisyCSV(_ path: String, episodes: Int = 3, steps: Int = 120, constantColumn: Bool = false, seed: UInt64 = 5) throws {
    var rng = SeededGenerator(seed: seed)
    var text = "episode,t,a,b" + (constantColumn ? ",c" : "") + ",u\n"
    for e in 0..<episodes {
        var a = rng.normal(), b = rng.normal()
        for t in 0..<steps {
            let u = rng.normal()
            text += "ep\(e),\(Double(t)),\(a),\(b)" + (constantColumn ? ",2.5" : "") + ",\(u)\n"
            (a, b) = (0.8 * a + 0.3 * tanh(b) + 0.2 * u + 0.1 * rng.normal(), 0.7 * b - 0.2 * a * a / (1 + a * a) + 0.1 * rng.normal())
        }
    }
    try writeText(text, path)
}

@Suite("Streamed QR (TSQR) solver")
struct QRTests {
    let blocks: [RowBlock] = {
        var rng = SeededGenerator(seed: 3)
        return [40, 1, 57, 23].enumerated().map { (e, len) in
            RowBlock(episode: "e\(e)", values: (0..<(len * 3)).map { _ in rng.normal() }, rowCount: len, startsSegment: true, firstLine: 0)
        }
    }()
    let norm = Normalisation(variableMean: [0.1, -0.2], variableStd: [1.5, 0.5], inputMean: [0.3], inputStd: [2])
    let layer = Sampler.random(inputSize: 4, width: 9, activation: .tanh, scale: 0.7, seed: 11)

    func layout(_ form: Form, width: Int = 9) -> DictionaryLayout {
        DictionaryLayout(variables: 2, delays: 2, width: width, inputs: 1, form: form)
    }

    func factor(_ chunks: [WindowChunk], layout: DictionaryLayout, blockRows: Int? = nil, layer: HiddenLayer? = nil) throws -> QRFactor {
        let backend = CPUBackend()
        backend.qrBlockRows = blockRows
        try backend.beginPass(layer: layer ?? self.layer, layout: layout, statistic: .qr)
        for c in chunks { try backend.accumulate(c) }
        return try backend.endPass().factor()
    }

    /// The weights of the unregularised least-squares problem a factor holds (no cut-off).
    func weights(_ f: QRFactor, width: Int? = nil) throws -> [Double] {
        try Solver.factorPath(f, width: width ?? f.layout.width, targets: Array(0..<f.layout.targetCount), ridges: [0], rconds: [0])[0][0].theta
    }

    @Test(arguments: [Form.koopman, .recurrent])
    func factorHoldsTheGramInAnyChunkingAndMergeTree(form: Form) throws {
        let layout = self.layout(form)
        let gram = try sums(CPUBackend(), chunks(blocks, norm: norm, delays: 2, chunkRows: 4096), layer: layer, layout: layout)
        let f = layout.featureCount, t = layout.targetCount
        let order = (0..<f).map { QRFactor.factorColumn($0, layout: layout) }
        #expect(Set(order).count == f)
        var rng = SeededGenerator(seed: 99)
        var reference: [Double]?
        for (chunkRows, blockRows) in [(4096, nil), (3, 1), (5, 7), (17, 4), (2, 64)] as [(Int, Int?)] {
            let cs = chunks(blocks, norm: norm, delays: 2, chunkRows: chunkRows)
            // Partial factors of random groups of chunks, merged in a random tree.
            var parts: [QRFactor] = []
            var i = 0
            while i < cs.count {
                let n = 1 + Int(rng.next() % 3)
                parts.append(try factor(Array(cs[i..<min(cs.count, i + n)]), layout: layout, blockRows: blockRows))
                i += n
            }
            while parts.count > 1 {
                let a = Int(rng.next() % UInt64(parts.count))
                let x = parts.remove(at: a)
                let b = Int(rng.next() % UInt64(parts.count))
                parts[b] = try (rng.next() % 2 == 0) ? x.merged(with: parts[b]) : parts[b].merged(with: x)
            }
            let state = parts[0]
            #expect(state.pairs == gram.pairs)
            // RᵀR is the Gram of the rows in factor order: its feature block is G, its cross block Σ Φᵀ Y.
            let rtr = state.gramOfRows, n = state.size
            var g = [Double](repeating: 0, count: f * f), r = [Double](repeating: 0, count: f * t)
            for a in 0..<f {
                for b in 0..<f { g[a * f + b] = rtr[order[a] * n + order[b]] }
                for b in 0..<t { r[a * t + b] = rtr[order[a] * n + f + b] }
            }
            #expect(relative(g, gram.gram) < 1e-12)
            #expect(relative(r, gram.rightHandSide) < 1e-12)
            let w = try weights(state)
            if let reference { #expect(relative(w, reference) < 1e-10) } else { reference = w }
        }
    }

    @Test func ridgeThroughTheFactorEqualsCholeskyOnTheGram() throws {
        let layout = self.layout(.recurrent)
        let cs = chunks(blocks, norm: norm, delays: 2, chunkRows: 11)
        let state = try factor(cs, layout: layout)
        let gram = try sums(CPUBackend(), cs, layer: layer, layout: layout)
        for alpha in [1e-6, 1e-3] {
            let viaQR = try Solver.factorPath(state, width: 9, targets: [0, 1], ridges: [alpha], rconds: [0])[0][0]
            let viaGram = try Solver.solve(gram, solver: .cholesky, ridge: alpha)
            #expect(relative(viaQR.theta, viaGram.theta) < 1e-9)
            #expect(abs(viaQR.lambda - viaGram.lambda) <= 1e-12 * viaGram.lambda)
        }
    }

    @Test(arguments: [Form.koopman, .recurrent])
    func everyPrefixWidthIsTheFactorOfThatWidth(form: Form) throws {
        let cs = chunks(blocks, norm: norm, delays: 2, chunkRows: 13)
        let wide = try factor(cs, layout: layout(form))
        for w in [0, 1, 4, 9] {
            let narrowLayout = layout(form, width: w)
            let narrow = try factor(cs, layout: narrowLayout, layer: layer.prefix(w))
            // Koopman targets of the narrow model are the first 1 + p + w dictionary columns of Ψ_{t+1}.
            let targets = Array(0..<narrowLayout.targetCount)
            let fromWide = try Solver.factorPath(wide, width: w, targets: targets, ridges: [0, 1e-4], rconds: [0, 1e-3])
            let direct = try Solver.factorPath(narrow, width: w, targets: targets, ridges: [0, 1e-4], rconds: [0, 1e-3])
            for i in 0..<2 {
                for j in 0..<2 {
                    #expect(relative(fromWide[i][j].theta, direct[i][j].theta) < 1e-10, "width \(w) ridge \(i) cut-off \(j)")
                    #expect(fromWide[i][j].dropped == direct[i][j].dropped)
                    // The residual of a narrow model computed from the wide factor includes the unused features' rows.
                    #expect(abs(fromWide[i][j].residual! - direct[i][j].residual!) <= 1e-9 * direct[i][j].residual!)
                }
            }
        }
    }

    @Test(arguments: [Form.koopman, .recurrent])
    func qrTrainingEqualsInMemoryLstsqAndItsResidual(form: Form) throws {
        let dir = try scratch("qr")
        let path = dir + "/noisy.csv"
        try noisyCSV(path)
        func train(_ solver: SolverKind, rcond: Double, chunkRows: Int = 4096) throws -> Model {
            var spec = DataSpec(path: path)
            spec.episodeColumn = "episode"
            spec.inputs = ["u"]
            var config = TrainingConfig(data: spec)
            config.width = 12
            config.delays = 2
            config.sampler = .random
            config.randomScale = 0.5
            config.form = form
            config.solver = solver
            config.ridge = 0
            config.rcond = rcond
            config.chunkRows = chunkRows
            return try Trainer(config: config, backend: CPUBackend()).train().0
        }
        let qr = try train(.qr, rcond: 1e-10), lstsq = try train(.lstsq, rcond: 1e-10)
        #expect(relative(qr.theta, lstsq.theta) < 1e-10)
        #expect(qr.metadata.solver == .qr && qr.metadata.rcond == 1e-10 && qr.metadata.dropped == 0)
        let rechunked = try train(.qr, rcond: 1e-10, chunkRows: 7)
        #expect(relative(rechunked.theta, qr.theta) < 1e-12)
        // The residual the factor reports is the RMS misfit of the rows themselves.
        var spec = DataSpec(path: path)
        spec.episodeColumn = "episode"
        spec.inputs = ["u"]
        let open: ReaderFactory = { try DataSource.open(spec) }
        let data = try Trainer.prepare(open, path: path, delays: 2, seed: 0, poolSize: 1000, chunkRows: 4096)
        let layout = qr.layout
        let (rows, targets, count) = try Trainer.collectRows(open, data, layer: qr.layer, layout: layout, chunkRows: 4096, progress: nil)
        let f = layout.featureCount, t = layout.targetCount
        var sq = 0.0
        for i in 0..<count {
            for j in 0..<t {
                var y = 0.0
                for k in 0..<f { y += rows[i * f + k] * qr.theta[k * t + j] }
                sq += (y - targets[i * t + j]) * (y - targets[i * t + j])
            }
        }
        let direct = (sq / Double(count * t)).squareRoot()
        #expect(abs(qr.metadata.residual! - direct) <= 1e-8 * direct)
        #expect(qr.metadata.rowsCondition! > 1 && qr.metadata.condition == qr.metadata.rowsCondition)
    }

    @Test func rankDeficientRowsAreCutNotCrashed() throws {
        let dir = try scratch("qr")
        let path = dir + "/constant.csv"
        try noisyCSV(path, constantColumn: true)
        var spec = DataSpec(path: path)
        spec.episodeColumn = "episode"
        spec.inputs = ["u"]
        var config = TrainingConfig(data: spec)
        config.width = 10
        config.solver = .qr
        config.ridge = 0
        let (model, report) = try Trainer(config: config, backend: CPUBackend()).train()
        // The constant column is centred to an exact zero column: one direction with σ = 0 is dropped.
        #expect(model.metadata.dropped! >= 1)
        #expect(model.theta.allSatisfy { $0.isFinite })
        #expect((model.metadata.rowsCondition ?? .infinity) > 1e15)   // σ_min is round-off (or exactly 0: not recorded)
        #expect(report.warnings.contains { $0.contains("constant") })
        // Written and read back as format 3 with the record.
        let file = dir + "/m.safetensors"
        try ModelFile.write(model, to: file)
        let back = try ModelFile.read(file)
        #expect(back.metadata.formatVersion == ModelMetadata.currentFormatVersion)
        #expect(back.metadata.dropped == model.metadata.dropped && back.metadata.residual == model.metadata.residual)
        #expect(back.theta == model.theta)
    }

    @Test func badCutoffsAreRefused() throws {
        var config = TrainingConfig(data: DataSpec(path: "x.csv"))
        for bad in [-1.0, .nan, 1.0, .infinity] {
            config.rcond = bad
            #expect(throws: EddyError.self) { try config.validate() }
        }
    }
}
