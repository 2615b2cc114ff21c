import EddyTestSupport
import Foundation
import Testing
@testable import Eddy
@testable import EddyOpenCL

/// G and R from the OpenCL backend on PoCL against the CPU backend (OpenBLAS), which EddyTests checks against
/// explicit loops: both forms, both activations, inputs, several runs per chunk, chunk sizes that do not divide
/// the data, and chunks longer than the device's slice (cut into slices).
@Suite("OpenCL sums match the CPU backend", .serialized, .enabled(if: PoCL.available, PoCL.skipNote))
struct ParityTests {
    /// Four segments (lengths 9, 1, 300, 157) of 2 variables and 1 input.
    static let blocks: [RowBlock] = {
        var rng = SeededGenerator(seed: 3)
        return [9, 1, 300, 157].enumerated().map { (e, len) in
            var x = [rng.normal(), rng.normal()]
            var values: [Double] = []
            for t in 0..<len {
                // A smooth trajectory with noise, so features are not all saturated.
                x = [0.95 * x[0] - 0.2 * x[1] + 0.1 * rng.normal(), 0.2 * x[0] + 0.95 * x[1] + 0.1 * rng.normal()]
                values += x + [sin(0.3 * Double(t))]
            }
            return RowBlock(episode: "e\(e)", values: values, rowCount: len, startsSegment: true, firstLine: 0)
        }
    }()
    static let norm = Normalisation(variableMean: [0.1, -0.2], variableStd: [1.5, 0.5], inputMean: [0.3], inputStd: [2])
    /// 1 + 6 + 70 + 1 = 78 features (padded to 128 on the device); 70 neurons span two column tiles of the lift.
    static func layout(_ form: Form) -> DictionaryLayout { DictionaryLayout(variables: 2, delays: 3, width: 70, inputs: 1, form: form) }
    static func layer(_ activation: Activation) -> HiddenLayer {
        Sampler.random(inputSize: 6, width: 70, activation: activation, scale: 0.7, seed: 11)
    }
    static let chunkSizes = [2, 5, 97, 128, 300, 4096]

    func compare(form: Form, activation: Activation, precision: Precision, hostSums: Bool = false) throws -> (gram: Double, rhs: Double) {
        let layout = Self.layout(form), layer = Self.layer(activation)
        let whole = try sums(CPUBackend(), chunks(Self.blocks, norm: Self.norm, delays: 3, chunkRows: 4096), layer: layer, layout: layout)
        #expect(whole.pairs == 6 + 0 + 297 + 154)   // Σ max(0, L − k) over the segments
        // 128 rows per slice: the 300- and 4096-row chunks are cut into slices on the device.
        let backend = try OpenCLBackend(device: PoCL.device!, precision: precision, rows: 128, liftSource: KernelSources.lift, hostSums: hostSums)
        var worst = (gram: 0.0, rhs: 0.0)
        for size in Self.chunkSizes {
            let cs = chunks(Self.blocks, norm: Self.norm, delays: 3, chunkRows: size)
            let cpu = try sums(CPUBackend(), cs, layer: layer, layout: layout)
            let gpu = try sums(backend, cs, layer: layer, layout: layout)
            #expect(gpu.pairs == whole.pairs, "pairs, chunk \(size)")
            let g = max(relative(gpu.gram, cpu.gram), relative(gpu.gram, whole.gram))
            let r = max(relative(gpu.rightHandSide, cpu.rightHandSide), relative(gpu.rightHandSide, whole.rightHandSide))
            worst = (max(worst.gram, g), max(worst.rhs, r))
            // G must come back full and symmetric.
            let f = layout.featureCount
            #expect((0..<f).allSatisfy { i in (0..<i).allSatisfy { j in gpu.gram[i * f + j] == gpu.gram[j * f + i] } })
        }
        print("parity \(precision.rawValue)\(hostSums ? " (host sums)" : "") \(form.rawValue) \(activation.rawValue): max relative difference G \(Format.scientific(worst.gram)), R \(Format.scientific(worst.rhs))")
        return worst
    }

    @Test(arguments: [Form.koopman, .recurrent], [Activation.tanh, .relu])
    func doublePrecisionMatchesTo1e10(form: Form, activation: Activation) throws {
        let d = try compare(form: form, activation: activation, precision: .double)
        #expect(d.gram <= 1e-10 && d.rhs <= 1e-10, "G \(d.gram), R \(d.rhs)")
    }

    /// Mixed precision: float lift and float chunk products cost about seven digits; G and R stay within 1e-5.
    @Test(arguments: [Form.koopman, .recurrent])
    func mixedPrecisionMatchesTo1e5(form: Form) throws {
        let d = try compare(form: form, activation: .tanh, precision: .mixed)
        #expect(d.gram <= 1e-5 && d.rhs <= 1e-5, "G \(d.gram), R \(d.rhs)")
        #expect(d.gram > 1e-12, "mixed precision should not be exact: is the float path running?")
    }

    /// The host path of mixed precision (devices without FP64) gives the same sums as the device path.
    @Test func mixedPrecisionWithHostSums() throws {
        let d = try compare(form: .koopman, activation: .tanh, precision: .mixed, hostSums: true)
        #expect(d.gram <= 1e-5 && d.rhs <= 1e-5, "G \(d.gram), R \(d.rhs)")
    }

    /// Windows longer than the lift's 16-value step (p = 37: three steps, the last partial) and a width that
    /// leaves the last of three column tiles mostly empty (130 = 64 + 64 + 2), over rows that fill two slices.
    @Test(arguments: [Activation.tanh, .relu])
    func longWindowsAndRaggedTiles(activation: Activation) throws {
        var rng = SeededGenerator(seed: 8)
        let rows = 300, p = 37, m = 2
        let chunk = WindowChunk(windows: (0..<(rows * p)).map { _ in rng.normal() }, inputs: (0..<(rows * m)).map { _ in rng.normal() },
                                linked: (0..<rows).map { $0 % 50 != 49 && $0 < rows - 1 })
        let layer = Sampler.random(inputSize: p, width: 130, activation: activation, scale: 0.3, seed: 2)
        for form in [Form.koopman, .recurrent] {
            let layout = DictionaryLayout(variables: 37, delays: 1, width: 130, inputs: m, form: form)
            let gpu = try sums(OpenCLBackend(device: PoCL.device!, precision: .double, rows: 256), [chunk], layer: layer, layout: layout)
            let cpu = try sums(CPUBackend(), [chunk], layer: layer, layout: layout)
            #expect(gpu.pairs == cpu.pairs)
            #expect(relative(gpu.gram, cpu.gram) <= 1e-10 && relative(gpu.rightHandSide, cpu.rightHandSide) <= 1e-10,
                    "\(form): G \(relative(gpu.gram, cpu.gram)), R \(relative(gpu.rightHandSide, cpu.rightHandSide))")
        }
    }

    /// A linear model (width 0: no hidden block to lift) and a pass with no pair at all.
    @Test func edgeShapes() throws {
        let layout = DictionaryLayout(variables: 2, delays: 1, width: 0, inputs: 1, form: .koopman)
        let layer = HiddenLayer(inputSize: 2, width: 0, weights: [], biases: [], activation: .tanh)
        let cs = chunks(Self.blocks, norm: Self.norm, delays: 1, chunkRows: 50)
        let backend = try OpenCLBackend(device: PoCL.device!, precision: .double, rows: 128)
        let gpu = try sums(backend, cs, layer: layer, layout: layout)
        let cpu = try sums(CPUBackend(), cs, layer: layer, layout: layout)
        #expect(relative(gpu.gram, cpu.gram) <= 1e-12 && relative(gpu.rightHandSide, cpu.rightHandSide) <= 1e-12)
        let empty = try sums(backend, [], layer: layer, layout: layout)
        #expect(empty.pairs == 0 && empty.gram.allSatisfy { $0 == 0 })
    }

    /// Every file of Kernels/ is embedded in the binary and builds in both precisions.
    @Test func everyEmbeddedKernelBuilds() throws {
        #expect(Set(KernelSources.all.map(\.file)) == ["accumulate.cl", "lift.cl"])
        let context = try CLContext(device: PoCL.device!)
        for (file, source) in KernelSources.all {
            for options in ["-cl-std=CL1.2", "-cl-std=CL1.2 -DEDDY_DOUBLE"] {
                _ = try CLProgram(context, source: source, options: options, name: file)
            }
        }
    }

    /// The self-test `auto` runs before it trusts a device.
    @Test(arguments: [Precision.double, .mixed])
    func selfTestPasses(precision: Precision) throws {
        let backend = try OpenCLBackend(device: PoCL.device!, precision: precision, rows: 256)
        let diff = try BackendSelection.selfTest(backend)
        #expect(diff <= (precision == .double ? 1e-12 : 1e-5))
    }

    /// ISSUE 11: a QR pass on the device (lift on the device, factor on the host) gives the CPU's factor: the same
    /// `RᵀR` and the same least-squares weights, across chunkings that cut chunks into device slices.
    @Test(arguments: [Form.koopman, .recurrent])
    func qrFactorMatchesTheCPU(form: Form) throws {
        let layout = Self.layout(form), layer = Self.layer(.tanh)
        func factor(_ backend: Backend, _ cs: [WindowChunk]) throws -> QRFactor {
            try backend.beginPass(layer: layer, layout: layout, statistic: .qr)
            for c in cs { try backend.accumulate(c) }
            return try backend.endPass().factor()
        }
        func weights(_ f: QRFactor) throws -> [Double] {
            try Solver.factorPath(f, width: layout.width, targets: Array(0..<layout.targetCount), ridges: [0], rconds: [1e-12])[0][0].theta
        }
        let reference = try factor(CPUBackend(), chunks(Self.blocks, norm: Self.norm, delays: 3, chunkRows: 4096))
        let backend = try OpenCLBackend(device: PoCL.device!, precision: .double, rows: 128)
        #expect(backend.unsupported(.qr) == nil)
        var worst = (gram: 0.0, theta: 0.0)
        for size in [5, 300, 4096] {
            let gpu = try factor(backend, chunks(Self.blocks, norm: Self.norm, delays: 3, chunkRows: size))
            #expect(gpu.pairs == reference.pairs)
            worst.gram = max(worst.gram, relative(gpu.gramOfRows, reference.gramOfRows))
            worst.theta = max(worst.theta, relative(try weights(gpu), try weights(reference)))
        }
        print("parity qr \(form.rawValue): max relative difference RᵀR \(Format.scientific(worst.gram)), weights \(Format.scientific(worst.theta))")
        #expect(worst.gram <= 1e-12 && worst.theta <= 1e-9, "RᵀR \(worst.gram), weights \(worst.theta)")
        // Mixed precision declines the QR pass with a reason (training then runs the pass on the CPU).
        let mixed = try OpenCLBackend(device: PoCL.device!, precision: .mixed, rows: 128)
        #expect(mixed.unsupported(.qr) != nil)
    }
}
