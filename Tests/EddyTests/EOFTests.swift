import EddyTestSupport
import Foundation
import Testing
@testable import Eddy

/// The EOF reduction (`--pca K`): the streamed basis against a covariance formed directly in the test, the
/// round trip through the components, and models that run on components but forecast the variables.
@Suite struct EOFTests {
    static let names = ["a[x=0]", "a[x=1]", "a[x=2]", "a[x=3]", "b@EWR", "b@JFK", "c"]

    /// Rows of three fields in different units (a: a travelling wave around 1e4, b: two stations, c: a lone column),
    /// correlated, with noise; an episode column splits them into two trajectories.
    static func data(rows: Int = 400) -> [[Double]] {
        var g = SeededGenerator(seed: 7)
        func noise() -> Double { Double.random(in: -1...1, using: &g) }
        return (0..<rows).map { t in
            let s = Double(t) * 0.07
            let a = (0..<4).map { 1e4 + 30 * sin(s - 0.8 * Double($0)) + 3 * noise() }
            let b = [0.02 * cos(s) + 0.004 * noise(), 0.015 * cos(s + 0.3) + 0.004 * noise()]
            return a + b + [5 * sin(2.1 * s) + noise()]
        }
    }

    static func csv(_ rows: [[Double]]) throws -> String {
        let path = try scratch("eddy-eof") + "/fields.csv"
        var text = "episode," + names.joined(separator: ",") + "\n"
        for (t, r) in rows.enumerated() { text += (t < rows.count / 2 ? "e0," : "e1,") + r.map { "\($0)" }.joined(separator: ",") + "\n" }
        try writeText(text, path)
        return path
    }

    /// Mean and covariance (two-pass, about the mean) formed directly from the rows.
    static func covariance(_ rows: [[Double]]) -> (mean: [Double], cov: [[Double]]) {
        let n = rows[0].count, count = Double(rows.count)
        let mean = (0..<n).map { i in rows.map { $0[i] }.reduce(0, +) / count }
        var cov = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
        for r in rows { for i in 0..<n { for j in 0..<n { cov[i][j] += (r[i] - mean[i]) * (r[j] - mean[j]) / (count - 1) } } }
        return (mean, cov)
    }

    func fit(_ path: String, components: Int, blockRows: Int = 4096) throws -> Reduction {
        var spec = DataSpec(path: path)
        spec.blockRows = blockRows
        return try EOFAnalysis.fit({ try DataSource.open(spec) }, components: components, path: path)
    }

    /// With K = n the basis is a full eigendecomposition of the field-scaled covariance: orthonormal vectors with
    /// `C v = λ v`, eigenvalues summing to its trace; each field shares one scale (the root of its mean variance);
    /// any block size gives the same basis; K < n keeps the leading part.
    @Test func basisIsTheEigenbasisOfTheScaledCovariance() throws {
        let rows = EOFTests.data()
        let path = try EOFTests.csv(rows)
        let (mean, cov) = EOFTests.covariance(rows)
        let n = mean.count
        let full = try fit(path, components: n).basis
        #expect(maxAbsDiff(full.mean, mean) < 1e-9)
        let fieldOf = [0, 0, 0, 0, 1, 1, 2]
        let expectedScale = (0..<n).map { i -> Double in
            let members = (0..<n).filter { fieldOf[$0] == fieldOf[i] }
            return (members.map { cov[$0][$0] }.reduce(0, +) / Double(members.count)).squareRoot()
        }
        #expect(relative(full.scale, expectedScale) < 1e-9, "\(full.scale) vs \(expectedScale)")
        let scaled = (0..<n).map { i in (0..<n).map { j in cov[i][j] / (expectedScale[i] * expectedScale[j]) } }
        let trace = (0..<n).map { scaled[$0][$0] }.reduce(0, +)
        #expect(abs(full.totalVariance - trace) < 1e-9 * trace)
        #expect(abs(full.variance.reduce(0, +) - trace) < 1e-9 * trace)
        #expect(zip(full.variance, full.variance.dropFirst()).allSatisfy { $0 >= $1 })
        for a in 0..<n {
            let v = (0..<n).map { full.vectors[$0 * n + a] }
            let cv = (0..<n).map { i in (0..<n).map { scaled[i][$0] * v[$0] }.reduce(0, +) }
            #expect(maxAbsDiff(cv, v.map { $0 * full.variance[a] }) < 1e-9 * full.variance[0], "component \(a)")
            for b in 0..<n {
                let dot = (0..<n).map { full.vectors[$0 * n + a] * full.vectors[$0 * n + b] }.reduce(0, +)
                #expect(abs(dot - (a == b ? 1 : 0)) < 1e-10)
            }
        }
        // Block size does not matter; K < n is the leading part of the same basis.
        let small = try fit(path, components: 3, blockRows: 7).basis
        #expect(maxAbsDiff(small.variance, Array(full.variance.prefix(3))) < 1e-9 * full.variance[0])
        for i in 0..<n { for j in 0..<3 { #expect(abs(small.vectors[i * 3 + j] - full.vectors[i * n + j]) < 1e-8) } }
        #expect(abs(small.explained - full.variance.prefix(3).reduce(0, +) / trace) < 1e-12)
    }

    /// Grid points with a latitude are weighted by √cos φ (at least 0.01) — folded into the scale — and the basis is the
    /// eigenbasis of the weighted covariance; `--no-area-weights` leaves the field scales alone.
    @Test func areaWeights() throws {
        let rows = EOFTests.data()
        let names = ["a[lat=0:lon=0]", "a[lat=60:lon=0]", "a[lat=80:lon=0]", "a[lat=90:lon=0]", "b@EWR", "b@JFK", "c"]
        let path = try scratch("eddy-eof-area") + "/grid.csv"
        var text = names.joined(separator: ",") + "\n"
        for r in rows { text += r.map { "\($0)" }.joined(separator: ",") + "\n" }
        try writeText(text, path)
        let open: ReaderFactory = { try DataSource.open(DataSpec(path: path)) }
        let n = names.count
        let weighted = try EOFAnalysis.fit(open, components: n, path: path)
        let plain = try EOFAnalysis.fit(open, components: n, path: path, areaWeights: false)
        #expect(weighted.areaWeighted && !plain.areaWeighted)
        // Relative to the field's root mean square weight: the field weighs as much as without weights.
        let raw = [1, 0.5.squareRoot(), cos(80 * Double.pi / 180).squareRoot(), 0.01]
        let rms = (raw.map { $0 * $0 }.reduce(0, +) / 4).squareRoot()
        let w = raw.map { $0 / rms } + [1, 1, 1]
        #expect(relative(weighted.basis.scale, zip(plain.basis.scale, w).map { $0 / $1 }) < 1e-12)
        #expect(EOFBasis.latitude(of: "q[lat=#3:lon=#0]") == nil && EOFBasis.latitude(of: "q[lat=120:lon=0]") == nil)
        #expect(EOFBasis.latitude(of: "q[level=500:latitude=-30.5:lon=0]") == -30.5)
        let (_, cov) = EOFTests.covariance(rows)
        let s = weighted.basis.scale
        let scaled = (0..<n).map { i in (0..<n).map { j in cov[i][j] / (s[i] * s[j]) } }
        let b = weighted.basis
        for a in 0..<n {
            let v = (0..<n).map { b.vectors[$0 * n + a] }
            let cv = (0..<n).map { i in (0..<n).map { scaled[i][$0] * v[$0] }.reduce(0, +) }
            #expect(maxAbsDiff(cv, v.map { $0 * b.variance[a] }) < 1e-9 * b.variance[0], "component \(a)")
        }
        // Still an exact round trip with every component.
        let pcs = try { () -> [Double] in
            let r = try weighted.wrap(open)()
            var out: [Double] = []
            while let block = try r.next() { out += block.values }
            return out
        }()
        #expect(relative(b.reconstruct(pcs, count: rows.count), rows.flatMap { $0 }) < 1e-12)
    }

    /// Projecting and reconstructing: exact with every component; with K, the mean squared reconstruction error in
    /// scaled units equals the dropped variance times (N − 1)/N (the identity behind PCA).
    @Test func roundTripThroughTheComponents() throws {
        let rows = EOFTests.data()
        let path = try EOFTests.csv(rows)
        let n = EOFTests.names.count
        for k in [n, 4, 2] {
            let reduction = try fit(path, components: k, blockRows: 50)
            let reader = reduction.wrap { try DataSource.open(DataSpec(path: path)) }
            let projected = try reader()
            #expect(projected.variableNames == (1...k).map { "pc\($0)" })
            var pcs: [Double] = []
            while let b = try projected.next() { pcs += b.values }
            #expect(pcs.count == rows.count * k)
            let back = reduction.basis.reconstruct(pcs, count: rows.count)
            let flat = rows.flatMap { $0 }
            if k == n {
                #expect(relative(back, flat) < 1e-12)
            } else {
                let b = reduction.basis
                var sq = 0.0
                for idx in 0..<flat.count {
                    let e = (back[idx] - flat[idx]) / b.scale[idx % n]
                    sq += e * e
                }
                let dropped = b.totalVariance - b.variance.reduce(0, +)
                let expected = dropped * Double(rows.count - 1) / Double(rows.count)
                #expect(abs(sq / Double(rows.count) - expected) < 1e-8 * b.totalVariance, "K = \(k): \(sq / Double(rows.count)) vs \(expected)")
            }
        }
    }

    /// A model on K components of a gridded NetCDF field: it reads and forecasts the grid's variables, its forecasts
    /// are the reconstruction of its component forecasts, they follow the field, and the model file keeps all of it.
    @Test func modelOnComponentsForecastsTheGrid() throws {
        let path = try scratch("eddy-eof-nc") + "/field.nc"
        try GriddedFile.write(path, steps: 80)
        var spec = DataSpec(path: path)
        spec.ncVariables = ["t"]
        var config = TrainingConfig(data: spec)
        config.width = 40
        config.delays = 2
        config.ridge = 1e-8
        config.pca = 5
        let (model, _) = try Trainer(config: config, backend: CPUBackend()).train()
        #expect(model.metadata.variables.count == 40 && model.metadata.variables[0] == "t[level=500:lat=30:lon=0]")
        #expect(model.layout.variables == 5 && model.metadata.reduction?.components == 5)
        #expect(model.metadata.trainingRange?.count == 40)
        #expect((model.metadata.reduction?.explained ?? 0) > 0.99)
        #expect(model.metadata.shaping?.ncVariables == ["t"])
        let (_, segments) = try DataSource.loadSegments(spec)
        let cases = try Forecaster.cases(model: model, segments: segments, origins: .rows([40, 60]), horizon: 3, path: path)
        let f = Forecaster.run(model: model, cases: cases, horizon: 3)
        #expect(f.count == 2 * 3 * 40)
        // The same forecast by hand: run in components, then x = mean + scale ⊙ V pc.
        let z = Forecaster.runStandardised(model: model, cases: cases, horizon: 3)
        let norm = model.normalisation, eof = model.eof!
        for r in 0..<6 {
            for i in 0..<40 {
                var x = 0.0
                for j in 0..<5 { x += eof.vectors[i * 5 + j] * (z[r * 5 + j] * norm.variableStd[j] + norm.variableMean[j]) }
                #expect(abs(eof.mean[i] + eof.scale[i] * x - f[r * 40 + i]) < 1e-9 * abs(f[r * 40 + i]))
            }
        }
        // Anomalies (the bump) are followed: error well below persistence.
        var mse = 0.0, persistence = 0.0
        for (c, fc) in cases.enumerated() {
            let last = fc.history.suffix(40)
            for idx in 0..<(3 * 40) {
                mse += pow(f[c * 120 + idx] - fc.truth[idx], 2)
                persistence += pow(last[last.startIndex + idx % 40] - fc.truth[idx], 2)
            }
        }
        #expect(mse < 0.1 * persistence, "mse \(mse) persistence \(persistence)")
        // The file keeps the EOFs: same forecasts after a round trip; format version 2.
        let file = try scratch("eddy-eof-model") + "/m.safetensors"
        try ModelFile.write(model, to: file)
        let read = try ModelFile.read(file)
        #expect(read.eof == model.eof)
        #expect(read.metadata.formatVersion == ModelMetadata.currentFormatVersion)
        #expect(Forecaster.run(model: read, cases: cases, horizon: 3) == f)
        let evaluation = Evaluator.evaluate(model: read, cases: cases, forecasts: f, horizon: 3, lyapunov: nil)
        #expect(evaluation.perVariableMSE.count == 40)
    }

    /// A sweep with `--pca 2,3` gives the same models as training each candidate directly with its `--pca`: the
    /// 2-component basis is the leading part of the 3-component one, fitted once.
    @Test func sweepCandidatesEqualDirectTraining() throws {
        let rows = EOFTests.data(rows: 600)
        let path = try EOFTests.csv(rows)
        var config = SweepConfig(data: DataSpec(path: path), validation: .fraction(0.25), widths: [10, 30], ridges: [1e-8, 1e-4], horizon: 5)
        config.pca = [2, 3]
        config.delays = [2]
        var sweep = Sweep(config: config, backend: CPUBackend())
        nonisolated(unsafe) var seen: [(SweepCandidate, Model)] = []
        sweep.observer = { seen.append(($0, $1)) }
        let result = try sweep.run()
        #expect(seen.count == 8 && result.passes == 2)
        #expect(Set(seen.map { $0.0.pca }) == [2, 3])
        #expect(result.best.eof != nil && result.best.metadata.variables == EOFTests.names)
        let lengths = try SplitReader.segmentLengths(try DataSource.open(DataSpec(path: path)))
        let head = SplitReader(try DataSource.open(DataSpec(path: path)), lengths: lengths, fraction: 0.25, part: .head)
        let headPath = try scratch("eddy-eof-head") + "/head.csv"
        var text = "episode," + EOFTests.names.joined(separator: ",") + "\n"
        while let b = try head.next() {
            for r in 0..<b.rowCount { text += b.episode + "," + b.values[(r * 7)..<((r + 1) * 7)].map { "\($0)" }.joined(separator: ",") + "\n" }
        }
        try writeText(text, headPath)
        let (_, segments) = try DataSource.loadSegments(DataSpec(path: path))
        for (candidate, model) in seen {
            var direct = TrainingConfig(data: DataSpec(path: headPath))
            direct.width = candidate.width
            direct.ridge = candidate.ridge
            direct.delays = 2
            direct.pca = candidate.pca
            let (trained, _) = try Trainer(config: direct, backend: CPUBackend()).train()
            #expect(model.eof!.components == candidate.pca)
            #expect(maxAbsDiff(trained.eof!.vectors, model.eof!.vectors) < 1e-12)
            let cases = try Forecaster.cases(model: trained, segments: segments, origins: .rows([5]), horizon: 10, path: "test")
            let a = Forecaster.run(model: trained, cases: cases, horizon: 10)
            let b = Forecaster.run(model: model, cases: cases, horizon: 10)
            #expect(relative(b, a) <= 1e-8, "width \(candidate.width) ridge \(candidate.ridge)")
        }
    }

    /// The randomized path (for states too wide for their covariance) finds the same leading EOFs as the exact one on
    /// a generated field of 288 grid points: variances to 1e-6, directions to 1e-6 (|cos| of the angle), and the same
    /// total variance; wider than `maximumColumns`, `auto` takes it.
    @Test func randomizedMatchesExact() throws {
        let dir = try scratch("eddy-eof-randomized")
        var options = TracerOptions(steps: 1500)
        options.latitudes = 12
        options.longitudes = 24
        _ = try generateTracerField(options, to: dir + "/f.nc")
        let open: ReaderFactory = { try DataSource.open(DataSpec(path: dir + "/f.nc")) }
        let exact = try EOFAnalysis.fit(open, components: 6, path: "f.nc", method: .exact).basis
        let fast = try EOFAnalysis.fit(open, components: 6, path: "f.nc", method: .randomized).basis
        #expect(abs(fast.totalVariance - exact.totalVariance) < 1e-9 * exact.totalVariance)
        #expect(relative(fast.scale, exact.scale) < 1e-9 && relative(fast.mean, exact.mean) < 1e-12)
        let n = exact.columns
        for j in 0..<6 {
            #expect(abs(fast.variance[j] - exact.variance[j]) < 1e-6 * exact.variance[0], "component \(j): \(fast.variance[j]) vs \(exact.variance[j])")
            let dot = (0..<n).map { fast.vectors[$0 * 6 + j] * exact.vectors[$0 * 6 + j] }.reduce(0, +)
            #expect(abs(abs(dot) - 1) < 1e-6, "component \(j): cos \(dot)")
        }
        let worstVariance = (0..<6).map { abs(fast.variance[$0] - exact.variance[$0]) / exact.variance[0] }.max()!
        var worstCos = 1.0
        for j in 0..<6 {
            var dot = 0.0
            for i in 0..<n { dot += fast.vectors[i * 6 + j] * exact.vectors[i * 6 + j] }
            worstCos = min(worstCos, abs(dot))
        }
        print("randomized EOFs vs exact (288 columns, K = 6): variance error \(Format.scientific(worstVariance)) of λ1, smallest |cos| 1 − \(Format.scientific(1 - worstCos))")
        // A state wider than the exact fit allows: auto takes the randomized path (same result as asking for it).
        options.latitudes = 64
        options.longitudes = 130
        options.steps = 60
        _ = try generateTracerField(options, to: dir + "/wide.nc")
        let wide: ReaderFactory = { try DataSource.open(DataSpec(path: dir + "/wide.nc")) }
        let auto = try EOFAnalysis.fit(wide, components: 3, path: "wide.nc").basis
        #expect(auto.columns == 64 * 130 && auto.columns > EOFAnalysis.maximumColumns)
        #expect(auto == (try EOFAnalysis.fit(wide, components: 3, path: "wide.nc", method: .randomized).basis))
        do { _ = try EOFAnalysis.fit(wide, components: 3, path: "wide.nc", method: .exact); Issue.record("exact accepted 8320 columns") } catch {
            #expect("\(error)".contains("randomized"), "\(error)")
        }
    }

    /// A constant column is kept (centred, scale 1) and never makes standardised errors or sweep scores undefined.
    @Test func constantColumn() throws {
        let rows = EOFTests.data(rows: 300).map { $0 + [4.0] }
        let dir = try scratch("eddy-eof-constant")
        var text = "episode," + (EOFTests.names + ["k"]).joined(separator: ",") + "\n"
        for r in rows { text += "e0," + r.map { "\($0)" }.joined(separator: ",") + "\n" }
        try writeText(text, dir + "/c.csv")
        var config = TrainingConfig(data: DataSpec(path: dir + "/c.csv"))
        config.width = 20
        config.pca = 3
        let (model, _) = try Trainer(config: config, backend: CPUBackend()).train()
        #expect(model.outputStd.last == 1 && model.eof!.scale.last == 1)
        let (_, segments) = try DataSource.loadSegments(DataSpec(path: dir + "/c.csv"))
        let cases = try Forecaster.cases(model: model, segments: segments, origins: .every(stride: 20), horizon: 5, path: "c.csv")
        let f = Forecaster.run(model: model, cases: cases, horizon: 5)
        #expect(stride(from: 7, to: f.count, by: 8).allSatisfy { abs(f[$0] - 4) < 1e-9 })
        let ev = Evaluator.evaluate(model: model, cases: cases, forecasts: f, horizon: 5, lyapunov: nil)
        #expect(ev.mseStandardised.isFinite)
        var sweep = SweepConfig(data: DataSpec(path: dir + "/c.csv"), validation: .fraction(0.3), widths: [10], ridges: [1e-6], horizon: 5)
        sweep.pca = [2, 3]
        #expect(try Sweep(config: sweep, backend: CPUBackend()).run().candidates.allSatisfy { $0.score.isFinite })
    }

    @Test func badRequests() throws {
        let path = try EOFTests.csv(EOFTests.data(rows: 20))
        var config = TrainingConfig(data: DataSpec(path: path))
        config.width = 4
        config.pca = 8
        #expect(throws: EddyError.self) { try Trainer(config: config, backend: CPUBackend()).train() }
        do { _ = try Trainer(config: config, backend: CPUBackend()).train() } catch {
            #expect("\(error)".contains(path) && "\(error)".contains("--pca 8") && "\(error)".contains("(7)"), "\(error)")
        }
        config.pca = 0
        do { _ = try Trainer(config: config, backend: CPUBackend()).train(); Issue.record("--pca 0 accepted") } catch {
            #expect("\(error)".contains("--pca must be at least 1"), "\(error)")
        }
        // Control needs the system's own variables.
        config.pca = 2
        config.data.inputs = ["c"]
        let (model, _) = try Trainer(config: config, backend: CPUBackend()).train()
        do { _ = try LiftedLinearModel(model); Issue.record("control accepted a --pca model") } catch {
            #expect("\(error)".contains("principal components"), "\(error)")
        }
    }
}
