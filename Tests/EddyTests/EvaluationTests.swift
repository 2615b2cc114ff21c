import EddyTestSupport
import Foundation
import Testing
@testable import Eddy

@Suite("Comparisons with baselines")
struct EvaluationTests {
    /// A model's non-finite forecast is never excused: its MSE becomes infinite instead of the origin being dropped,
    /// while origins a baseline cannot forecast are left out for every method alike.
    @Test func divergedModelForecastsCountAgainstTheModel() throws {
        let dir = try scratch()
        try rotationCSV(dir + "/r.csv", episodes: 1, steps: 30)
        var config = TrainingConfig(data: DataSpec(path: dir + "/r.csv", episodeColumn: "episode"))
        config.width = 3
        let (model, _) = try Trainer(config: config, backend: CPUBackend()).train()
        let (_, segments) = try DataSource.loadSegments(DataSpec(path: dir + "/r.csv", episodeColumn: "episode"))
        let cases = try Forecaster.cases(model: model, segments: segments, origins: .rows([5, 10, 15]), horizon: 2, path: "r")
        var forecasts = Forecaster.run(model: model, cases: cases, horizon: 2)
        let persistence = try Evaluator.baseline(.persistence, model: model, segments: segments, cases: cases, horizon: 2)
        let clean = Evaluator.compare(model: model, cases: cases, horizon: 2, steps: [1], methods: [("eddy", forecasts), ("persistence", persistence)])
        #expect(clean.origins == 3 && clean.mse[0].values[0].allSatisfy(\.isFinite))
        forecasts[0] = .nan   // case 0, step 1, first variable
        let bad = Evaluator.compare(model: model, cases: cases, horizon: 2, steps: [1], methods: [("eddy", forecasts), ("persistence", persistence)])
        #expect(bad.origins == 3)
        #expect(bad.mse[0].values[0][0] == .infinity)
        #expect(bad.mse[1].values[0] == clean.mse[1].values[0])
        // A baseline without a forecast at an origin removes that origin for everyone.
        var partial = persistence
        partial[0] = .nan
        let fewer = Evaluator.compare(model: model, cases: cases, horizon: 2, steps: [1], methods: [("eddy", forecasts), ("persistence", partial)])
        #expect(fewer.origins == 2 && fewer.mse[0].values[0].allSatisfy(\.isFinite))
        #expect(Evaluator.diverged(model: model, forecasts: forecasts, cases: 3, horizon: 2).map(\.case) == [0])
    }

    /// `eddy evaluate` sums its scores batch by batch of origins: any batching gives the one-batch evaluation and
    /// comparison (the same sums in another order: to 1e-12).
    /// (On noisy data: the rotation's exact model has errors of pure round-off, whose MSE any change of BLAS
    /// blocking between batch sizes moves by 1e-9 relative on some processors.)
    @Test func batchesGiveTheSameScores() throws {
        let dir = try scratch()
        try noisyCSV(dir + "/r.csv", episodes: 3, steps: 60)
        let spec = DataSpec(path: dir + "/r.csv", episodeColumn: "episode")
        var config = TrainingConfig(data: spec)
        config.width = 8
        config.delays = 2
        let (model, _) = try Trainer(config: config, backend: CPUBackend()).train()
        let (_, segments) = try DataSource.loadSegments(spec)
        let picks = try Forecaster.origins(model: model, segments: segments, choice: .every(stride: 4), horizon: 6, path: "r")
        let all = try Forecaster.cases(model: model, segments: segments, picks: picks, horizon: 6, path: "r")
        let f = Forecaster.run(model: model, cases: all, horizon: 6)
        let p = try Evaluator.baseline(.persistence, model: model, segments: segments, cases: all, horizon: 6)
        let whole = Evaluator.evaluate(model: model, cases: all, forecasts: f, horizon: 6, lyapunov: 0.5)
        let wholeComparison = Evaluator.compare(model: model, cases: all, horizon: 6, steps: [1, 6], methods: [("eddy", f), ("persistence", p)])
        var sums = EvaluationSums(model: model, horizon: 6)
        var comparison = ComparisonSums(model: model, horizon: 6, steps: [1, 6], methods: ["eddy", "persistence"])
        for start in stride(from: 0, to: picks.count, by: 5) {
            let part = try Forecaster.cases(model: model, segments: segments, picks: picks[start..<min(picks.count, start + 5)], horizon: 6, path: "r")
            let pf = Forecaster.run(model: model, cases: part, horizon: 6)
            sums.add(cases: part, forecasts: pf)
            comparison.add(cases: part, forecasts: [pf, try Evaluator.baseline(.persistence, model: model, segments: segments, cases: part, horizon: 6)])
        }
        let batched = sums.evaluation(lyapunov: 0.5)
        #expect(picks.count > 10 && batched.origins == whole.origins)
        #expect(abs(batched.mse - whole.mse) <= 1e-12 * whole.mse && relative(batched.perVariableMSE, whole.perVariableMSE) < 1e-12)
        #expect(relative(batched.steps.map(\.mseStandardised), whole.steps.map(\.mseStandardised)) < 1e-12)
        #expect(batched.validPredictionTime.medianSteps == whole.validPredictionTime.medianSteps)
        let c = comparison.comparison
        #expect(c.origins == wholeComparison.origins)
        for k in 0..<2 { for si in 0..<2 { #expect(relative(c.mse[k].values[si], wholeComparison.mse[k].values[si]) < 1e-12) } }
    }
}

@Suite("Number formatting")
struct FormatTests {
    /// Tables print whatever a model produces: a diverging Koopman model's eigenvalue of modulus 1e11 once overflowed
    /// the integer conversion in `fixed`; such magnitudes now print in scientific notation.
    @Test func hugeValuesDoNotOverflow() {
        #expect(Format.fixed(1.25, 2) == "1.25")
        #expect(Format.fixed(1e11, 8) == Format.scientific(1e11, 8))
        #expect(Format.fixed(-3e300, 2).hasSuffix("e+300"))
        #expect(Format.general(2.5e12) == "2.500e+12")
    }

    /// Many origins of a Koopman model take the propagated-readout path (x̂_h = g_0 K^{h+1} S + Σ u_j B K^{h−j} S);
    /// one origin the row iteration g_{h+1} = [g_h, u_h] Θ. Both give the same forecasts, with inputs too.
    @Test(arguments: [0, 1])
    func koopmanForecastsOfManyOriginsEqualOneByOne(inputs: Int) throws {
        let dir = try scratch()
        try noisyCSV(dir + "/k.csv", episodes: 2, steps: 150)
        var spec = DataSpec(path: dir + "/k.csv", episodeColumn: "episode")
        if inputs > 0 { spec.inputs = ["u"] }
        var config = TrainingConfig(data: spec)
        config.width = 30
        config.delays = 2
        config.form = .koopman
        config.ridge = 1e-6
        let (model, _) = try Trainer(config: config, backend: CPUBackend()).train()
        let (_, segments) = try DataSource.loadSegments(spec)
        let cases = try Forecaster.cases(model: model, segments: segments, origins: .every(stride: 7), horizon: 40, path: "k")
        #expect(cases.count > 2 * model.outputCount)
        let together = Forecaster.run(model: model, cases: cases, horizon: 40)
        let alone = cases.flatMap { Forecaster.run(model: model, cases: [$0], horizon: 40) }
        #expect(relative(together, alone) < 1e-10, "\(relative(together, alone))")
    }
}

@Suite("Gridded scores and the trailing climatology")
struct GriddedScoreTests {
    /// Grid points group by field and level (every label but latitude and longitude), weighted by cos φ of mean 1;
    /// columns without a latitude get no gridded score.
    @Test func groupsByFieldAndLevel() {
        let names = ["t[level=850:lat=0:lon=0]", "t[level=850:lat=60:lon=0]", "t[level=500:lat=0:lon=0]", "t[level=500:lat=60:lon=0]",
                     "temp@EWR", "z[lat=-60:lon=10]"]
        let g = GriddedScores.groups(of: names)
        #expect(g.map(\.name) == ["t[level=850]", "t[level=500]", "z"])
        #expect(g[0].columns == [0, 1] && g[2].columns == [5])
        // cos 0 = 1 and cos 60° = 0.5, normalised to mean 1: 4/3 and 2/3.
        #expect(abs(g[0].weights[0] - 4.0 / 3) < 1e-15 && abs(g[0].weights[1] - 2.0 / 3) < 1e-12)
        #expect(abs(g[2].weights[0] - 1) < 1e-12)
    }

    /// The RMSE weights each forecast's MSE over the grid and roots the mean over forecasts; the ACC correlates
    /// anomalies per forecast and averages; a perfect forecast scores RMSE 0 and ACC 1.
    @Test func scoresOfASmallField() {
        let names = ["q[lat=0:lon=0]", "q[lat=60:lon=0]"]
        var s = GriddedScores(groups: GriddedScores.groups(of: names), methods: ["eddy", "truth"], horizon: 1)
        let cases = [ForecastCase(episode: "", origin: 0, window: [], inputs: [], truth: [1, 2], history: [], time: 0, segment: 0),
                     ForecastCase(episode: "", origin: 1, window: [], inputs: [], truth: [3, 1], history: [], time: 0, segment: 0)]
        let eddy = [2.0, 2, 3, 3], truth = [1.0, 2, 3, 1]
        s.add(cases: cases, forecasts: [eddy, truth], n: 2) { _, _ in [0, 0] }
        // Weighted MSE per forecast: (4/3·1 + 2/3·0)/2 = 2/3 and (0 + 2/3·4)/2 = 4/3; RMSE = √1 = 1.
        #expect(abs(s.rmse(method: 0, group: 0, step: 1) - 1) < 1e-14)
        #expect(s.rmse(method: 1, group: 0, step: 1) == 0 && abs(s.acc(method: 1, group: 0, step: 1) - 1) < 1e-14)
        let acc1 = (4.0 / 3 * 2 * 1 + 2.0 / 3 * 2 * 2) / ((4.0 / 3 * 4 + 2.0 / 3 * 4) * (4.0 / 3 * 1 + 2.0 / 3 * 4)).squareRoot()
        let acc2 = (4.0 / 3 * 9 + 2.0 / 3 * 3) / ((4.0 / 3 * 9 + 2.0 / 3 * 9) * (4.0 / 3 * 9 + 2.0 / 3 * 1)).squareRoot()
        #expect(abs(s.acc(method: 0, group: 0, step: 1) - (acc1 + acc2) / 2) < 1e-14)
    }

    /// The trailing climatology averages the same hour of the last N days up to the origin, found by time across a
    /// gap, and never looks past the origin.
    @Test func trailingClimatologyIsCausal() {
        // Period 4 (dt 1): values = time; one segment of times 0…9, another of 12…19 after a gap.
        var a = Segment(episode: "e", width: 1, firstLine: 0), b = Segment(episode: "e", width: 1, firstLine: 0)
        for t in 0..<10 { a.values.append(Double(t)); a.times.append(Double(t)); a.rowCount += 1 }
        for t in 12..<20 { b.values.append(Double(t)); b.times.append(Double(t)); b.rowCount += 1 }
        let trailing = TrailingClimatology(segments: [a, b], days: 3, period: 4, dt: 1)
        // From origin 13, valid 14: the latest time ≡ 14 (mod 4) not after 13 is 10 (missing, in the gap), then 6 and 2.
        let f = trailing.forecast(episode: "e", origin: 13, horizon: 5, n: 1)
        #expect(f[0] == (6 + 2) / 2)
        // valid 15 → 11 (missing), 7, 3; valid 16 → 12, 8, 4; valid 17 → 13, 9, 5; valid 18 (a day ahead) → 10, 6, 2.
        #expect(f[1] == 5 && f[2] == 8 && f[3] == 9 && f[4] == 4)
        #expect(trailing.forecast(episode: "other", origin: 13, horizon: 1, n: 1)[0].isNaN)
    }
}
