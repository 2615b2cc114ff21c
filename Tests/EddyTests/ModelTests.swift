import EddyTestSupport
import Foundation
import Testing
@testable import Eddy

/// Van der Pol data shared by the accuracy tests (generated once).
let vanDerPol: (train: String, test: String) = {
    let dir = try! scratch("eddy-vdp")
    var train = GenerateOptions(system: .vanderpol, trajectories: 100, steps: 200)
    train.seed = 0
    var test = GenerateOptions(system: .vanderpol, trajectories: 20, steps: 201)
    test.seed = 1
    test.initialRange = (-2, 2)
    _ = try! generateTrajectories(train, to: dir + "/train.csv")
    _ = try! generateTrajectories(test, to: dir + "/test.csv")
    return (dir + "/train.csv", dir + "/test.csv")
}()

func trainVanDerPol(form: Form, ridge: Double = 1e-12, solver: SolverKind = .cholesky, width: Int = 400) throws -> Model {
    var config = TrainingConfig(data: DataSpec(path: vanDerPol.train, episodeColumn: "episode"))
    config.width = width
    config.form = form
    config.ridge = ridge
    config.solver = solver
    return try Trainer(config: config, backend: CPUBackend()).train().0
}

func freeRunMSE(_ model: Model, horizon: Int = 200) throws -> Double {
    let (_, segments) = try DataSource.loadSegments(DataSpec(path: vanDerPol.test, episodeColumn: "episode"))
    let cases = try Forecaster.cases(model: model, segments: segments, origins: .rows([0]), horizon: horizon, path: "test")
    let forecasts = Forecaster.run(model: model, cases: cases, horizon: horizon)
    return Evaluator.evaluate(model: model, cases: cases, forecasts: forecasts, horizon: horizon, lyapunov: nil).mse
}

@Suite("Models: accuracy, spectrum, file format", .serialized)
struct ModelTests {
    /// ISSUE 2: 200-step free runs from 20 unseen initial conditions, width 400.
    @Test func vanDerPolRecurrentFormIsAccurate() throws {
        let model = try trainVanDerPol(form: .recurrent)
        #expect(model.metadata.training.pairs == 100 * 199)
        #expect(model.metadata.dt == 0.05)
        let mse = try freeRunMSE(model)
        #expect(mse <= 1e-6, "recurrent 200-step MSE \(mse)")
    }

    @Test func vanDerPolKoopmanFormIsAccurate() throws {
        let mse = try freeRunMSE(try trainVanDerPol(form: .koopman))
        #expect(mse <= 5e-2, "Koopman 200-step MSE \(mse)")
    }

    /// Koopman eigenvalues of Van der Pol. The constant 1 in the dictionary is reproduced exactly by K (its target
    /// column is the constant itself), so λ = 1 must appear; the attracting limit cycle gives eigenvalues on the unit
    /// circle (its harmonics) and everything else decays, so no eigenvalue may lie clearly outside it. "Clearly": by
    /// more than 1e-3 in modulus, the size of the regression error on the cycle's harmonics at this width.
    @Test func vanDerPolKoopmanSpectrum() throws {
        let spectrum = try Spectrum.of(try trainVanDerPol(form: .koopman))
        let closest = spectrum.eigenvalues.min { abs($0.real - 1) + abs($0.imaginary) < abs($1.real - 1) + abs($1.imaginary) }!
        #expect(abs(closest.real - 1) < 1e-4 && abs(closest.imaginary) < 1e-9, "eigenvalue nearest 1: \(closest)")
        let largest = spectrum.eigenvalues.map(\.modulus).max()!
        #expect(largest <= 1 + 1e-3, "largest modulus \(largest)")
        // The limit cycle's base frequency (period ≈ 6.66 for μ = 1) is among the leading eigenvalues.
        #expect(spectrum.eigenvalues.prefix(12).contains { abs(abs($0.frequency) - 1 / 6.663) < 0.01 })
    }

    /// ISSUE 2: the three solvers give the same forecasts on a well-conditioned problem (ridge 1e-6, width 100):
    /// within 1e-8 relative to the data's scale.
    @Test func solversGiveTheSameForecasts() throws {
        let runs = try [SolverKind.cholesky, .eigh, .lstsq].map { solver -> [Double] in
            let model = try trainVanDerPol(form: .recurrent, ridge: 1e-6, solver: solver, width: 100)
            let (_, segments) = try DataSource.loadSegments(DataSpec(path: vanDerPol.test, episodeColumn: "episode"))
            let cases = try Forecaster.cases(model: model, segments: segments, origins: .rows([0]), horizon: 50, path: "test")
            return Forecaster.run(model: model, cases: cases, horizon: 50)
        }
        #expect(maxAbsDiff(runs[0], runs[1]) <= 1e-8 * maxAbs(runs[0]))
        #expect(maxAbsDiff(runs[0], runs[2]) <= 1e-8 * maxAbs(runs[0]))
    }

    @Test func modelFileRoundTripsExactly() throws {
        let dir = try scratch()
        try rotationCSV(dir + "/rot.csv", withInput: true)
        for form in Form.allCases {
            var config = TrainingConfig(data: DataSpec(path: dir + "/rot.csv", inputs: ["u"], episodeColumn: "episode"))
            config.width = 6
            config.delays = 2
            config.form = form
            config.sampler = .random
            let (model, _) = try Trainer(config: config, backend: CPUBackend()).train()
            try ModelFile.write(model, to: dir + "/m.safetensors")
            let back = try ModelFile.read(dir + "/m.safetensors")
            #expect(back.metadata == model.metadata)
            #expect(back.layer == model.layer)
            #expect(back.normalisation == model.normalisation)
            #expect(back.theta == model.theta)
            #expect(back.metadata.inputs == ["u"] && back.metadata.variables == ["a", "b"])
            #expect(back.metadata.dt == 0.1)
        }
        // No temporary files are left beside the model.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["m.safetensors", "rot.csv"])
    }

    @Test func trainingIsReproducibleAndIndependentOfChunking() throws {
        func train(_ chunk: Int) throws -> Model {
            var config = TrainingConfig(data: DataSpec(path: vanDerPol.train, episodeColumn: "episode"))
            config.width = 50
            config.chunkRows = chunk
            config.swimPool = 5000
            config.ridge = 1e-4   // well conditioned, so summation order changes Θ only at round-off level
            return try Trainer(config: config, backend: CPUBackend()).train().0
        }
        let a = try train(4096), b = try train(37)
        #expect(a.layer == b.layer)
        #expect(a.metadata.training.fingerprint == b.metadata.training.fingerprint)
        #expect(maxAbsDiff(a.theta, b.theta) <= 1e-9 * maxAbs(a.theta))
    }
}
