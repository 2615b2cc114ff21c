import EddyTestSupport
import Foundation
import Testing
@testable import Eddy

@Suite("Memory budget")
struct MemoryBudgetTests {
    @Test func sizesParse() {
        #expect(MemoryBudget.parseBytes("123") == 123)
        #expect(MemoryBudget.parseBytes("4G") == 4.0 * 1024 * 1024 * 1024)
        #expect(MemoryBudget.parseBytes("1.5m") == 1.5 * 1024 * 1024)
        #expect(MemoryBudget.parseBytes("-1") == nil && MemoryBudget.parseBytes("G") == nil && MemoryBudget.parseBytes("") == nil)
        #expect(MemoryBudget.format(80.0 * 1024 * 1024 * 1024) == "80 GiB")
    }

    /// ISSUE 12: `train --width 1000000000` grew to 24 GB before the OOM killer; a 100,000-column state asks for an 80 GB
    /// Gram. Both are refused up front with the sizes, whatever the machine (the estimate exceeds any budget here).
    @Test(arguments: [SolverKind.cholesky, .qr, .lstsq])
    func absurdShapesAreRefusedBeforeAllocating(solver: SolverKind) throws {
        #expect(throws: EddyError.self) {
            try MemoryBudget.checkTraining(variables: 3, delays: 1, width: 1_000_000_000, inputs: 0, form: .recurrent, solver: solver,
                                           chunkRows: 4096, pairs: 1000)
        }
        #expect(throws: EddyError.self) {
            try MemoryBudget.checkTraining(variables: 100_000, delays: 1, width: 256, inputs: 0, form: .recurrent, solver: solver,
                                           chunkRows: 4096, pairs: 10)
        }
        #expect(throws: EddyError.self) {
            try MemoryBudget.checkTraining(variables: 3, delays: 1, width: 1 << 61, inputs: 0, form: .koopman, solver: solver,
                                           chunkRows: 4096, pairs: 10)
        }
        // Sizes whose products pass Int.max (a fuzzer finding: the message itself trapped converting them to Int).
        #expect(throws: EddyError.self) {
            try MemoryBudget.checkTraining(variables: Int.max / 2, delays: 4, width: Int.max, inputs: Int.max, form: .koopman,
                                           solver: solver, chunkRows: Int.max, pairs: Int.max)
        }
        // An ordinary model fits.
        try MemoryBudget.checkTraining(variables: 3, delays: 2, width: 500, inputs: 1, form: .koopman, solver: solver,
                                       chunkRows: 4096, pairs: 20_000)
    }

    @Test func theMessageGivesSizesAndAWayOut() throws {
        do {
            try MemoryBudget.checkTraining(variables: 100_000, delays: 1, width: 256, inputs: 0, form: .recurrent, solver: .cholesky,
                                           chunkRows: 4096, pairs: 10)
            Issue.record("expected a refusal")
        } catch let e as EddyError {
            #expect(e.message.contains("needs") && e.message.contains("GiB") && e.message.contains("--pca"))
        }
    }
}

@Suite("Climatology size")
struct ClimatologySizeTests {
    /// ISSUE 12: an integer `t` column (dt = 1, read as seconds) made an 86,400-phase "daily climatology"; the cap is one
    /// phase a minute, so such a column keeps none, while hourly times keep their 24 phases.
    @Test func stepNumbersMakeNoDailyClimatology() throws {
        let dir = try scratch("clim")
        func model(step: Int) throws -> Model {
            var text = "t,x\n"
            for i in 0..<300 { text += "\(i * step),\(sin(Double(i) * 0.2))\n" }
            try writeText(text, dir + "/s\(step).csv")
            var config = TrainingConfig(data: DataSpec(path: dir + "/s\(step).csv"))
            config.width = 5
            return try Trainer(config: config, backend: CPUBackend()).train().0
        }
        #expect(try model(step: 1).metadata.climatologyPeriod == nil)
        #expect(try model(step: 3600).metadata.climatologyPeriod == 24)
    }
}
