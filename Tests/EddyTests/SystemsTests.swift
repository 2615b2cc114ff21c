import Foundation
import Testing
@testable import Eddy

@Suite("Systems and trajectory generation")
struct SystemsTests {
    /// A fresh scratch directory per call.
    private func scratchDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("eddy-systems-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    private func parseCSV(_ path: String) throws -> (header: [String], rows: [[Double]]) {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: true)
        let header = lines.removeFirst().split(separator: ",").map(String.init)
        let rows = try lines.map { line in
            try line.split(separator: ",").map { field -> Double in
                guard let v = Double(field) else { throw EddyError("bad number \(field)") }
                return v
            }
        }
        return (header, rows)
    }

    // MARK: Right-hand sides

    @Test func derivativesMatchTheEquations() {
        var dx = [0.0, 0.0]
        DynamicalSystem(.vanderpol).derivative([2, 3], input: [], into: &dx)
        #expect(dx == [3.0, -11.0])
        DynamicalSystem(.forcedVanderpol).derivative([2, 3], input: [0.5], into: &dx)
        #expect(dx == [3.0, -10.5])
        DynamicalSystem(.pendulum).derivative([1, 2], input: [0.25], into: &dx)
        #expect(dx[0] == 2)
        #expect(abs(dx[1] - (-sin(1.0) - 0.2 + 0.25)) < 1e-15)

        var d3 = [0.0, 0.0, 0.0]
        DynamicalSystem(.lorenz63).derivative([1, 2, 3], input: [], into: &d3)
        #expect(d3[0] == 10 * (2 - 1))
        #expect(d3[1] == 1 * (28 - 3) - 2)
        #expect(abs(d3[2] - (1 * 2 - 8.0 / 3.0 * 3)) < 1e-14)
        DynamicalSystem(.rossler).derivative([1, 2, 3], input: [], into: &d3)
        #expect(d3[0] == -2 - 3)
        #expect(abs(d3[1] - (1 + 0.2 * 2)) < 1e-15)
        #expect(abs(d3[2] - (0.2 + 3 * (1 - 5.7))) < 1e-14)

        let l96 = DynamicalSystem(.lorenz96, dimension: 5)
        #expect(l96.dimension == 5)
        #expect(l96.variableNames == ["x1", "x2", "x3", "x4", "x5"])
        let x: [Double] = [1, 2, 3, 4, 5]
        var d5 = [Double](repeating: 0, count: 5)
        l96.derivative(x, input: [], into: &d5)
        for i in 0..<5 {
            let expected = (x[(i + 1) % 5] - x[(i + 3) % 5]) * x[(i + 4) % 5] - x[i] + 8
            #expect(d5[i] == expected)
        }
    }

    @Test func systemMetadata() {
        for name in SystemName.allCases {
            let s = DynamicalSystem(name)
            #expect(s.variableNames.count == s.dimension)
            #expect(s.inputNames.count == s.inputCount)
            #expect(s.defaultDt > 0)
        }
        #expect(DynamicalSystem(.pendulum).variableNames == ["theta", "omega"])
        #expect(DynamicalSystem(.forcedVanderpol).inputNames == ["u"])
        #expect(DynamicalSystem(.lorenz63).lyapunovExponent == 0.906)
        #expect(DynamicalSystem(.vanderpol).lyapunovExponent == nil)
        #expect(SystemName(rawValue: "forced-vanderpol") == .forcedVanderpol)
    }

    // MARK: Integration

    @Test func rk4ConvergesAtFourthOrder() {
        let system = DynamicalSystem(.vanderpol)
        let x0 = [2.0, 0.0], span = 2.0
        func solve(_ substeps: Int) -> [Double] {
            var x = x0
            system.step(&x, input: [], dt: span, substeps: substeps)
            return x
        }
        let reference = solve(4000)
        func error(_ substeps: Int) -> Double {
            let x = solve(substeps)
            return ((x[0] - reference[0]) * (x[0] - reference[0]) + (x[1] - reference[1]) * (x[1] - reference[1])).squareRoot()
        }
        let e1 = error(20), e2 = error(40), e3 = error(80)
        #expect(e1 > 1e-9)
        #expect(e1 / e2 > 13 && e1 / e2 < 19, "ratio \(e1 / e2)")
        #expect(e2 / e3 > 14 && e2 / e3 < 18, "ratio \(e2 / e3)")
    }

    @Test func stepsCompose() {
        // One step of 2·dt with 2k sub-steps equals two steps of dt with k sub-steps (same sub-step size).
        let system = DynamicalSystem(.forcedVanderpol)
        var a = [0.5, -1.0], b = a
        system.step(&a, input: [0.3], dt: 0.2, substeps: 8)
        system.step(&b, input: [0.3], dt: 0.1, substeps: 4)
        system.step(&b, input: [0.3], dt: 0.1, substeps: 4)
        #expect(abs(a[0] - b[0]) < 1e-13 && abs(a[1] - b[1]) < 1e-13)
    }

    @Test func lorenz63StaysOnTheAttractor() {
        let system = DynamicalSystem(.lorenz63)
        var rng = SeededGenerator(seed: 7)
        var x = system.initialCondition(using: &rng, range: nil)
        for _ in 0..<500 { system.step(&x, input: [], dt: 0.01, substeps: 2) }
        var positive = 0, negative = 0
        for _ in 0..<4000 {
            system.step(&x, input: [], dt: 0.01, substeps: 2)
            #expect(abs(x[0]) < 25 && abs(x[1]) < 35 && x[2] > 0 && x[2] < 55)
            if x[0] > 0 { positive += 1 } else { negative += 1 }
        }
        #expect(positive > 200 && negative > 200)   // visits both wings
    }

    @Test func initialConditionsRespectBoxes() {
        var rng = SeededGenerator(seed: 3)
        let lorenz = DynamicalSystem(.lorenz63)
        let pendulum = DynamicalSystem(.pendulum)
        for _ in 0..<200 {
            let l = lorenz.initialCondition(using: &rng, range: nil)
            #expect(abs(l[0]) <= 15 && abs(l[1]) <= 15 && l[2] >= 5 && l[2] <= 40)
            let p = pendulum.initialCondition(using: &rng, range: nil)
            #expect(abs(p[0]) <= Double.pi && abs(p[1]) <= 1)
            let r = lorenz.initialCondition(using: &rng, range: (-0.5, 0.25))
            #expect(r.allSatisfy { $0 >= -0.5 && $0 <= 0.25 })
        }
    }

    // MARK: Files

    @Test func csvLayoutAndReproducibility() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var options = GenerateOptions(system: .lorenz63, trajectories: 2, steps: 50)
        options.seed = 11
        options.transient = 20
        let a = dir.appendingPathComponent("a.csv").path
        let b = dir.appendingPathComponent("b.csv").path
        let c = dir.appendingPathComponent("c.csv").path
        var reports: [Double] = []
        let summary = try generateTrajectories(options, to: a) { reports.append($0) }
        #expect(summary.trajectories == 2 && summary.steps == 50 && summary.dt == 0.01)
        #expect(summary.variableNames == ["x", "y", "z"] && summary.inputNames.isEmpty)
        #expect(reports.last == 1)
        _ = try generateTrajectories(options, to: b)
        options.seed = 12
        _ = try generateTrajectories(options, to: c)
        let bytesA = try Data(contentsOf: URL(fileURLWithPath: a))
        #expect(bytesA == (try Data(contentsOf: URL(fileURLWithPath: b))))
        #expect(bytesA != (try Data(contentsOf: URL(fileURLWithPath: c))))

        let (header, rows) = try parseCSV(a)
        #expect(header == ["episode", "t", "x", "y", "z"])
        #expect(rows.count == 100)
        #expect(rows[0][0] == 0 && rows[49][0] == 0 && rows[50][0] == 1)
        #expect(rows[0][1] == 0 && rows[3][1] == 3 * 0.01 && rows[50][1] == 0)
        // Consecutive rows are one integrator step apart.
        var x = Array(rows[10][2...4])
        DynamicalSystem(.lorenz63).step(&x, input: [], dt: 0.01, substeps: 10)
        #expect(x == Array(rows[11][2...4]))
        // No temporary files left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["a.csv", "b.csv", "c.csv"])
    }

    @Test func npyHeaderAndDataMatchCSV() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var options = GenerateOptions(system: .forcedVanderpol, trajectories: 3, steps: 40)
        options.seed = 5
        options.inputSignal = .steps
        options.inputAmplitude = 0.7
        let csv = dir.appendingPathComponent("d.csv").path
        let npy = dir.appendingPathComponent("d.npy").path
        _ = try generateTrajectories(options, to: csv)
        _ = try generateTrajectories(options, to: npy)

        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: npy)))
        #expect(Array(bytes[0..<6]) == [0x93] + Array("NUMPY".utf8))
        #expect(bytes[6] == 1 && bytes[7] == 0)
        let headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        let dataStart = 10 + headerLength
        #expect(dataStart % 64 == 0)
        #expect(bytes[dataStart - 1] == 0x0A)
        let dict = String(decoding: bytes[10..<dataStart], as: UTF8.self)
        #expect(dict.hasPrefix("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 40, 3), }"))
        #expect(bytes.count == dataStart + 3 * 40 * 3 * 8)

        var values: [Double] = []
        for offset in stride(from: dataStart, to: bytes.count, by: 8) {
            var bits: UInt64 = 0
            for j in 0..<8 { bits |= UInt64(bytes[offset + j]) << (8 * UInt64(j)) }
            values.append(Double(bitPattern: bits))
        }
        let (header, rows) = try parseCSV(csv)
        #expect(header == ["episode", "t", "x", "y", "u"])
        #expect(values == rows.flatMap { $0[2...] })
        // The steps signal is piecewise constant within ±amplitude and not all zero.
        let u = rows.map { $0[4] }
        #expect(u.allSatisfy { abs($0) <= 0.7 })
        #expect(u.contains { $0 != 0 })
        #expect(Set(u[0..<10]).count == 1)   // held at least 0.5 time units = 10 steps
    }

    @Test func npyHeaderMatchesNumPyLayout() {
        // numpy.save(np.zeros((3, 100, 5))) writes a 128-byte header ending in '\n'.
        let h = NPY.header(shape: [3, 100, 5])
        #expect(h.count == 128)
        #expect(h[8] == 118 && h[9] == 0)
        #expect(h.last == 0x0A)
    }

    @Test func inputSignalsAreWritten() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for signal in InputSignal.allCases {
            var options = GenerateOptions(system: .pendulum, trajectories: 1, steps: 400)
            options.inputSignal = signal
            options.inputAmplitude = 0.5
            let path = dir.appendingPathComponent("\(signal.rawValue).csv").path
            _ = try generateTrajectories(options, to: path)
            let (header, rows) = try parseCSV(path)
            #expect(header == ["episode", "t", "theta", "omega", "u"])
            let u = rows.map { $0[4] }
            switch signal {
            case .zero:
                #expect(u.allSatisfy { $0 == 0 })
            case .chirp:
                #expect(u.allSatisfy { abs($0) <= 0.5 })
                #expect(u[0] == 0 && u.contains { $0 > 0.45 })
            case .steps:
                #expect(u.allSatisfy { abs($0) <= 0.5 })
                #expect(Set(u).count > 1)
            case .noise:
                let mean = u.reduce(0, +) / Double(u.count)
                let std = (u.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(u.count)).squareRoot()
                #expect(std > 0.1 && std < 1.5)
                // Smooth: successive differences much smaller than the spread.
                let jumps = zip(u, u.dropFirst()).map { abs($1 - $0) }.max()!
                #expect(jumps < 0.5)
            }
        }
    }

    @Test func badOptionsThrow() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("x.csv").path
        func message(_ change: (inout GenerateOptions) -> Void, to target: String? = nil) -> String? {
            var o = GenerateOptions(system: .lorenz96, trajectories: 1, steps: 5)
            o.dimension = 6
            change(&o)
            do {
                _ = try generateTrajectories(o, to: target ?? path)
                return nil
            } catch let error as EddyError {
                return error.message
            } catch {
                return "\(error)"
            }
        }
        #expect(message { $0.steps = 0 } == "--steps must be at least 1, got 0")
        #expect(message { $0.trajectories = 0 }?.contains("--trajectories") == true)
        #expect(message { $0.dt = 0 }?.contains("--dt") == true)
        #expect(message { $0.dt = -0.1 }?.contains("--dt") == true)
        #expect(message { $0.substeps = 0 }?.contains("--substeps") == true)
        #expect(message { $0.dimension = 3 }?.contains("--dim") == true)
        #expect(message { $0.transient = -1 }?.contains("--transient") == true)
        #expect(message { $0.initialRange = (1, 0) }?.contains("--initial-range") == true)
        let txt = dir.appendingPathComponent("x.txt").path
        #expect(message({ _ in }, to: txt) == "\(txt): unknown output format; use .csv or .npy")
        #expect(message { $0.dt = 1e6; $0.transient = 0; $0.substeps = 1 }?.contains("diverged") == true)
        // Nothing was left behind by the failures.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
        #expect(message { _ in } == nil)
    }
}
