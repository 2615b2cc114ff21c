import EddyTestSupport
import Foundation
import Testing
@testable import Eddy

/// A reference written without BLAS: the dictionary row by explicit loops (METHOD.md, "Dictionary").
func referenceRow(_ z: [Double], _ u: [Double], _ layer: HiddenLayer) -> [Double] {
    var row = [1.0] + z
    for m in 0..<layer.width {
        var a = layer.biases[m]
        for k in 0..<layer.inputSize { a += z[k] * layer.weights[k * layer.width + m] }
        row.append(layer.activation == .tanh ? tanh(a) : max(0, a))
    }
    return row + u
}

@Suite("Accumulation, solving, sampling")
struct TrainingTests {
    let blocks: [RowBlock] = {
        var rng = SeededGenerator(seed: 3)
        // Three segments of a 2-variable series with one input, lengths 9, 1 and 14.
        return [9, 1, 14].enumerated().map { (e, len) in
            RowBlock(episode: "e\(e)", values: (0..<(len * 3)).map { _ in rng.normal() }, rowCount: len, startsSegment: true, firstLine: 0)
        }
    }()

    func layer(_ activation: Activation = .tanh) -> HiddenLayer {
        Sampler.random(inputSize: 4, width: 7, activation: activation, scale: 0.7, seed: 11)
    }

    @Test(arguments: [Form.koopman, .recurrent], [Activation.tanh, .relu])
    func cpuSumsMatchAnExplicitReference(form: Form, activation: Activation) throws {
        let norm = Normalisation(variableMean: [0.1, -0.2], variableStd: [1.5, 0.5], inputMean: [0.3], inputStd: [2])
        let layout = DictionaryLayout(variables: 2, delays: 2, width: 7, inputs: 1, form: form)
        let layer = self.layer(activation)
        // Reference: every pair inside a segment, by explicit loops.
        let f = layout.featureCount, r = layout.targetCount
        var g = [Double](repeating: 0, count: f * f), rhs = [Double](repeating: 0, count: f * r)
        var pairs = 0
        for block in blocks {
            let rows = (0..<block.rowCount).map { t in
                (0..<2).map { (block.values[t * 3 + $0] - norm.variableMean[$0]) / norm.variableStd[$0] }
            }
            let u = (0..<block.rowCount).map { (block.values[$0 * 3 + 2] - 0.3) / 2 }
            guard block.rowCount >= 3 else { continue }
            for t in 1..<(block.rowCount - 1) {
                let z = rows[t] + rows[t - 1], zNext = rows[t + 1] + rows[t]
                let phi = referenceRow(z, [u[t]], layer)
                let target = form == .koopman ? Array(referenceRow(zNext, [], layer)) : rows[t + 1]
                for i in 0..<f {
                    for j in 0..<f { g[i * f + j] += phi[i] * phi[j] }
                    for j in 0..<r { rhs[i * r + j] += phi[i] * target[j] }
                }
                pairs += 1
            }
        }
        for chunkRows in [2, 3, 5, 4096] {
            let backend = CPUBackend()
            try backend.beginPass(layer: layer, layout: layout)
            for c in chunks(blocks, norm: norm, delays: 2, chunkRows: chunkRows) { try backend.accumulate(c) }
            let sums = try backend.endGramPass()
            #expect(sums.pairs == pairs)
            #expect(maxAbsDiff(sums.gram, g) <= 1e-12 * maxAbs(g), "G, chunk \(chunkRows)")
            #expect(maxAbsDiff(sums.rightHandSide, rhs) <= 1e-12 * maxAbs(rhs), "R, chunk \(chunkRows)")
        }
    }

    @Test func sumsAddUp() throws {
        let layout = DictionaryLayout(variables: 2, delays: 1, width: 7, inputs: 1, form: .recurrent)
        let layer = Sampler.random(inputSize: 2, width: 7, activation: .tanh, scale: 1, seed: 1)
        let norm = Normalisation.identity(variables: 2, inputs: 1)
        func sums(_ bs: [RowBlock]) throws -> GramSums {
            let backend = CPUBackend()
            try backend.beginPass(layer: layer, layout: layout)
            for c in chunks(bs, norm: norm, delays: 1, chunkRows: 64) { try backend.accumulate(c) }
            return try backend.endGramPass()
        }
        let whole = try sums(blocks)
        let parts = try sums([blocks[0]]) + sums([blocks[1], blocks[2]])
        #expect(parts.pairs == whole.pairs)
        #expect(maxAbsDiff(parts.gram, whole.gram) <= 1e-12 * maxAbs(whole.gram))
    }

    /// A hand-solved problem: G = [[2, 1], [1, 2]], R = [[3], [3]] has Θ = [1, 1] without a ridge.
    @Test func solversOnAHandSolvedProblem() throws {
        var sums = GramSums(layout: DictionaryLayout(variables: 1, delays: 1, width: 0, inputs: 0, form: .recurrent))
        sums.gram = [2, 1, 1, 2]
        sums.rightHandSide = [3, 3]
        let eigh = try Solver.solve(sums, solver: .eigh, ridge: 0)
        #expect(maxAbsDiff(eigh.theta, [1, 1]) < 1e-14)
        #expect(abs(eigh.condition - 3) < 1e-12)   // eigenvalues 3 and 1
        // With a ridge α: λ = α·trace/2 = 2α, Θ = 3/(3 + λ) each.
        let chol = try Solver.solve(sums, solver: .cholesky, ridge: 0.5)
        #expect(maxAbsDiff(chol.theta, [0.75, 0.75]) < 1e-14)
        #expect(throws: EddyError.self) { try Solver.solve(sums, solver: .cholesky, ridge: 0) }
    }

    /// The three solvers solve the same ridge problem; on a well-conditioned one they agree to 1e-9 relative.
    @Test func solversAgreeOnAWellConditionedProblem() throws {
        var rng = SeededGenerator(seed: 5)
        let n = 200, f = 12, r = 3
        let s = (0..<(n * f)).map { _ in rng.normal() }
        let t = (0..<(n * r)).map { _ in rng.normal() }
        var sums = GramSums(layout: DictionaryLayout(variables: 3, delays: 1, width: 8, inputs: 0, form: .recurrent))
        for k in 0..<n {
            for i in 0..<f {
                for j in 0..<f { sums.gram[i * f + j] += s[k * f + i] * s[k * f + j] }
                for j in 0..<r { sums.rightHandSide[i * r + j] += s[k * f + i] * t[k * r + j] }
            }
        }
        for alpha in [1e-3, 1e-8] {
            let a = try Solver.solve(sums, solver: .cholesky, ridge: alpha)
            let b = try Solver.solve(sums, solver: .eigh, ridge: alpha)
            let c = try Solver.lstsq(rows: s, targets: t, count: n, features: f, targetCount: r, ridge: alpha, rcond: nil)
            #expect(maxAbsDiff(a.theta, b.theta) <= 1e-9 * maxAbs(a.theta))
            #expect(maxAbsDiff(a.theta, c.theta) <= 1e-9 * maxAbs(a.theta))
            #expect(abs(a.lambda - c.lambda) <= 1e-12 * a.lambda)
        }
    }

    @Test func nearSingularGramWarns() throws {
        var sums = GramSums(layout: DictionaryLayout(variables: 1, delays: 1, width: 0, inputs: 0, form: .recurrent))
        sums.gram = [1, 1, 1, 1]   // two identical columns
        sums.rightHandSide = [1, 1]
        let s = try Solver.solve(sums, solver: .cholesky, ridge: 1e-15)
        #expect(s.warnings.contains { $0.contains("singular to double precision") })
        let e = try Solver.solve(sums, solver: .eigh, ridge: 0, rcond: 1e-8)
        #expect(e.dropped == 1)
        #expect(maxAbsDiff(e.theta, [0.5, 0.5]) < 1e-12)   // the pseudo-inverse solution
    }

    /// SWIM's tanh neuron reads −½ at z_i and +½ at z_j: check every neuron hits ±½ at some pair of pool windows.
    @Test(arguments: [Activation.tanh, .relu])
    func swimNeuronsInterpolateTheirPair(activation: Activation) throws {
        var pool = PairReservoir(capacity: 1000, windowSize: 2, targetSize: 2, seed: 0)
        let blocks = [RowBlock(episode: "", values: (0..<80).map { sin(Double($0) * 0.3) + 0.01 * Double($0) }, rowCount: 40, startsSegment: true, firstLine: 0)]
        for c in chunks(blocks, norm: .identity(variables: 2, inputs: 0), delays: 1, chunkRows: 64) { pool.offer(c) }
        let layer = try Sampler.swim(pool: pool, width: 25, activation: activation, seed: 9)
        let lo = activation == .tanh ? -0.5 : 0.0, hi = activation == .tanh ? 0.5 : 1.0
        for m in 0..<layer.width {
            let values = (0..<pool.count).map { i -> Double in
                let a = layer.biases[m] + pool.windows[i * 2] * layer.weights[m] + pool.windows[i * 2 + 1] * layer.weights[layer.width + m]
                return activation == .tanh ? tanh(a) : a
            }
            #expect(values.contains { abs($0 - lo) < 1e-12 }, "neuron \(m) reads \(lo) at its first point")
            #expect(values.contains { abs($0 - hi) < 1e-12 }, "neuron \(m) reads \(hi) at its second point")
        }
        // Seeded: the same seed gives the same layer.
        #expect(try Sampler.swim(pool: pool, width: 25, activation: activation, seed: 9) == layer)
        #expect(try Sampler.swim(pool: pool, width: 25, activation: activation, seed: 10) != layer)
    }

    @Test func reservoirDoesNotDependOnChunking() {
        let blocks = [RowBlock(episode: "", values: (0..<600).map { Double($0) }, rowCount: 300, startsSegment: true, firstLine: 0)]
        func pool(_ chunk: Int) -> [Double] {
            var p = PairReservoir(capacity: 50, windowSize: 2, targetSize: 2, seed: 4)
            for c in chunks(blocks, norm: .identity(variables: 2, inputs: 0), delays: 1, chunkRows: chunk) { p.offer(c) }
            p.prune()
            return p.windows
        }
        #expect(pool(7) == pool(4096))
        #expect(pool(7).count == 100)
    }

    /// The vectorisable tanh against the C library's over many magnitudes: within 4 ulp, exact at 0 and ±large.
    @Test func liftTanhMatchesTheLibrary() {
        var rng = SeededGenerator(seed: 2)
        var worst = 0.0
        for i in 0..<200_000 {
            let x = (2 * rng.uniform() - 1) * pow(10, Double(i % 9) - 6)
            let exact = Foundation.tanh(x)
            worst = max(worst, abs(Lift.tanh(x) - exact) / max(abs(exact), Double.leastNormalMagnitude))
        }
        #expect(worst <= 4 * Double.ulpOfOne, "worst relative error \(worst)")
        #expect(Lift.tanh(0) == 0 && Lift.tanh(-0.0).sign == .minus)
        #expect(Lift.tanh(40) == 1 && Lift.tanh(-1e300) == -1 && Lift.tanh(.infinity) == 1)
        #expect(Lift.tanh(.nan).isNaN)
    }

    @Test func randomFeaturesHaveTheStatedDistribution() {
        let l = Sampler.random(inputSize: 4, width: 5000, activation: .tanh, scale: 2, seed: 1)
        let mean = l.weights.reduce(0, +) / Double(l.weights.count)
        let sd = (l.weights.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(l.weights.count)).squareRoot()
        #expect(abs(mean) < 0.05 && abs(sd - 2) < 0.05)
        #expect(l.biases.allSatisfy { abs($0) <= Double.pi })
        // Neurons are drawn one after another: a narrower layer is the prefix of a wider one.
        #expect(Sampler.random(inputSize: 4, width: 10, activation: .tanh, scale: 2, seed: 1) == l.prefix(10))
    }
}
