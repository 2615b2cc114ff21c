import EddyTestSupport
import Foundation
import Testing
@testable import Eddy

/// A smaller Van der Pol set for the sweep tests (many direct trainings).
let smallVanDerPol: String = {
    let dir = try! scratch("eddy-vdp-small")
    var options = GenerateOptions(system: .vanderpol, trajectories: 15, steps: 80)
    options.seed = 3
    _ = try! generateTrajectories(options, to: dir + "/train.csv")
    return dir + "/train.csv"
}()

@Suite("Sweeps from one pass", .serialized)
struct SweepTests {
    /// A sweep of both forms (delays 2) on the small Van der Pol set, scored on the test set, with every candidate seen.
    func observedSweep(widths: [Int], ridges: [Double], sampler: SamplerKind, solver: SweepSolver,
                       rconds: [Double?] = [nil]) throws -> (SweepResult, [(SweepCandidate, Model)]) {
        var config = SweepConfig(data: DataSpec(path: smallVanDerPol, episodeColumn: "episode"),
                                 validation: .data(DataSpec(path: vanDerPol.test, episodeColumn: "episode")),
                                 widths: widths, ridges: ridges, horizon: 20)
        config.forms = [.recurrent, .koopman]
        config.samplers = [sampler]
        config.solver = solver
        config.rconds = rconds
        config.delays = [2]
        config.randomScale = 0.5
        var sweep = Sweep(config: config, backend: CPUBackend())
        nonisolated(unsafe) var seen: [(SweepCandidate, Model)] = []
        sweep.observer = { seen.append(($0, $1)) }
        return (try sweep.run(), seen)
    }

    /// ISSUE 4: every candidate of a sweep equals a direct `Trainer` run at the same width, ridge, form and seed:
    /// forecasts equal to 1e-8 relative (the sweep solves sub-blocks of the widest model's sums).
    @Test(arguments: [SamplerKind.swim, .random], [SweepSolver.cholesky, .eigh])
    func everyCandidateEqualsDirectTraining(sampler: SamplerKind, solver: SweepSolver) throws {
        let (result, seen) = try observedSweep(widths: [10, 30, 60], ridges: [1e-6, 1e-4], sampler: sampler, solver: solver)
        #expect(result.passes == 1)
        #expect(seen.count == 3 * 2 * 2)
        let (_, segments) = try DataSource.loadSegments(DataSpec(path: vanDerPol.test, episodeColumn: "episode"))
        for (candidate, model) in seen {
            var direct = TrainingConfig(data: DataSpec(path: smallVanDerPol, episodeColumn: "episode"))
            direct.width = candidate.width
            direct.ridge = candidate.ridge
            direct.form = candidate.form
            direct.sampler = sampler
            direct.delays = 2
            direct.randomScale = 0.5
            let (trained, _) = try Trainer(config: direct, backend: CPUBackend()).train()
            #expect(trained.layer == model.layer)
            let cases = try Forecaster.cases(model: trained, segments: segments, origins: .rows([1]), horizon: 30, path: "test")
            let a = Forecaster.run(model: trained, cases: cases, horizon: 30)
            let b = Forecaster.run(model: model, cases: cases, horizon: 30)
            #expect(maxAbsDiff(a, b) <= 1e-8 * maxAbs(a), "width \(candidate.width) ridge \(candidate.ridge) \(candidate.form)")
        }
        // Sorted best first, and the written model is the best candidate, with the choice recorded.
        #expect(zip(result.candidates, result.candidates.dropFirst()).allSatisfy { $0.score <= $1.score })
        let best = result.candidates[0]
        #expect(result.best.metadata.width == best.width && result.best.metadata.ridge == best.ridge && result.best.metadata.form == best.form)
        #expect(result.best.metadata.sweep?.candidates == 12)
    }

    /// ISSUE 11: every `qr` candidate (width × ridge × cut-off × form, from one QR pass whose factor holds every
    /// width as its leading block) equals direct `train --solver qr` with the same settings.
    @Test(arguments: [SamplerKind.swim, .random])
    func everyQRCandidateEqualsDirectTraining(sampler: SamplerKind) throws {
        let (result, seen) = try observedSweep(widths: [10, 40], ridges: [0, 1e-6], sampler: sampler, solver: .qr, rconds: [nil, 1e-8])
        #expect(result.passes == 1)
        #expect(seen.count == 2 * 2 * 2 * 2)
        let (_, segments) = try DataSource.loadSegments(DataSpec(path: vanDerPol.test, episodeColumn: "episode"))
        for (candidate, model) in seen {
            #expect(candidate.solver == .qr && model.metadata.solver == .qr)
            var direct = TrainingConfig(data: DataSpec(path: smallVanDerPol, episodeColumn: "episode"))
            direct.width = candidate.width
            direct.ridge = candidate.ridge
            direct.rcond = candidate.rcond == Solver.defaultQRCutoff ? nil : candidate.rcond
            direct.form = candidate.form
            direct.sampler = sampler
            direct.solver = .qr
            direct.delays = 2
            direct.randomScale = 0.5
            let (trained, _) = try Trainer(config: direct, backend: CPUBackend()).train()
            #expect(trained.layer == model.layer)
            #expect(trained.metadata.dropped == model.metadata.dropped, "width \(candidate.width) rcond \(candidate.rcond ?? 0)")
            let cases = try Forecaster.cases(model: trained, segments: segments, origins: .rows([1]), horizon: 30, path: "test")
            let a = Forecaster.run(model: trained, cases: cases, horizon: 30)
            let b = Forecaster.run(model: model, cases: cases, horizon: 30)
            #expect(maxAbsDiff(a, b) <= 1e-8 * maxAbs(a), "width \(candidate.width) ridge \(candidate.ridge) \(candidate.form)")
        }
    }

    /// ISSUE 11: with a held-out fraction, the written model is refitted on both parts: its weights are those of one
    /// pass over the training part's and the validation part's pairs (same layer and normalisation), here with `qr`.
    @Test func heldOutFractionIsRefittedIntoTheWrittenModel() throws {
        var config = SweepConfig(data: DataSpec(path: smallVanDerPol, episodeColumn: "episode"), validation: .fraction(0.25),
                                 widths: [10, 30], ridges: [0], horizon: 10)
        config.solver = .qr
        config.rconds = [1e-10]
        let result = try Sweep(config: config, backend: CPUBackend()).run()
        let best = result.best
        #expect(best.metadata.sweep?.weightsFrom == "training and validation parts")
        let spec = DataSpec(path: smallVanDerPol, episodeColumn: "episode")
        let lengths = try SplitReader.segmentLengths(try DataSource.open(spec))
        var all: [WindowChunk] = []
        for part in [SplitReader.Part.head, .tail] {
            let reader = SplitReader(try DataSource.open(spec), lengths: lengths, fraction: 0.25, part: part)
            var blocks: [RowBlock] = []
            while let b = try reader.next() { blocks.append(b) }
            all += chunks(blocks, norm: best.normalisation, delays: 1, chunkRows: 64)
        }
        let backend = CPUBackend()
        try backend.beginPass(layer: best.layer, layout: best.layout, statistic: .qr)
        for c in all { try backend.accumulate(c) }
        let state = try backend.endPass().factor()
        #expect(state.pairs == best.metadata.training.pairs)
        let solution = try Solver.factorPath(state, width: best.metadata.width, targets: Array(0..<best.layout.targetCount),
                                             ridges: [0], rconds: [1e-10])[0][0]
        #expect(relative(best.theta, solution.theta) < 1e-9)
        // Without refitting, the weights are the training part's only and the record says so.
        config.refit = false
        let plain = try Sweep(config: config, backend: CPUBackend()).run().best
        #expect(plain.metadata.sweep?.weightsFrom == "training part")
        #expect(plain.metadata.training.pairs < best.metadata.training.pairs)
    }

    @Test func randomFeatureScalesAreSearched() throws {
        var config = SweepConfig(data: DataSpec(path: smallVanDerPol, episodeColumn: "episode"),
                                 validation: .data(DataSpec(path: vanDerPol.test, episodeColumn: "episode")),
                                 widths: [20], ridges: [1e-8], horizon: 10)
        config.samplers = [.swim, .random]
        config.scales = [0.3, 0.6]
        let result = try Sweep(config: config, backend: CPUBackend()).run()
        #expect(result.passes == 3)   // swim once, random once per scale
        #expect(Set(result.candidates.compactMap(\.scale)) == [0.3, 0.6])
        #expect(result.candidates.filter { $0.sampler == .swim }.allSatisfy { $0.scale == nil })
        let best = result.candidates[0]
        #expect(result.best.metadata.randomScale == best.scale)
        config.scales = [0.6, 0.3]
        #expect(throws: EddyError.self) { try config.validate() }
    }

    @Test func fewValidationOriginsOverlap() throws {
        var segment = Segment(episode: "a", width: 2, firstLine: 0)
        segment.rowCount = 4000
        #expect(Sweep.automaticStride([segment], delays: 1, horizon: 100) == 100)     // 39 origins at the horizon
        #expect(Sweep.automaticStride([segment], delays: 1, horizon: 3000) == 31)    // 1000 positions / 32
        segment.rowCount = 3010
        #expect(Sweep.automaticStride([segment], delays: 1, horizon: 3000) == 1)
    }

    @Test func holdOutSplitCoversEveryRowOnce() throws {
        let dir = try scratch()
        try rotationCSV(dir + "/r.csv", episodes: 3, steps: 41)
        let spec = DataSpec(path: dir + "/r.csv", episodeColumn: "episode", blockRows: 7)
        let lengths = try SplitReader.segmentLengths(try DataSource.open(spec))
        #expect(lengths == [41, 41, 41])
        func rows(_ part: SplitReader.Part) throws -> [RowBlock] {
            let r = SplitReader(try DataSource.open(spec), lengths: lengths, fraction: 0.25, part: part)
            var out: [RowBlock] = []
            while let b = try r.next() { out.append(b) }
            return out
        }
        let head = try rows(.head), tail = try rows(.tail)
        #expect(head.map(\.rowCount).reduce(0, +) == 3 * 31)
        #expect(tail.map(\.rowCount).reduce(0, +) == 3 * 10)
        #expect(tail.filter(\.startsSegment).count == 3)
        let whole = try readAll(spec).flatMap(\.values)
        // Per trajectory, head then tail reproduces the data.
        var rebuilt: [Double] = []
        for e in ["ep0", "ep1", "ep2"] {
            rebuilt += head.filter { $0.episode == e }.flatMap(\.values) + tail.filter { $0.episode == e }.flatMap(\.values)
        }
        #expect(rebuilt == whole)
    }

    @Test func badSweepConfigurations() throws {
        func config(_ w: [Int], _ r: [Double]) -> SweepConfig {
            SweepConfig(data: DataSpec(path: vanDerPol.train), validation: .fraction(0.2), widths: w, ridges: r, horizon: 5)
        }
        #expect(throws: EddyError.self) { try config([64, 32], [1e-8]).validate() }
        #expect(throws: EddyError.self) { try config([32, 32], [1e-8]).validate() }
        #expect(throws: EddyError.self) { try config([32], [1e-6, 1e-8]).validate() }
        var c = config([32, 64], [1e-8])
        c.sampleWidth = 48
        #expect { try c.validate() } throws: { ($0 as? EddyError)?.message.contains("above the sampled maximum") == true }
        c = config([32], [1e-8])
        c.validation = .fraction(1.5)
        #expect(throws: EddyError.self) { try c.validate() }
    }
}
