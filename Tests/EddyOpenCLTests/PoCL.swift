import Foundation
import Testing
@testable import Eddy
@testable import EddyOpenCL

/// The PoCL device (OpenCL on this machine's CPU), found once. PoCL's kernel cache goes inside the build folder:
/// Scripts/test.sh exports POCL_CACHE_DIR; a test run on its own gets `<scratch>/pocl-cache` before OpenCL starts.
enum PoCL {
    /// The folder holding the test binary (`<scratch>/<triple>/debug`), where `eddy` is built too.
    static let binaryFolder: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().path
    }()

    static let device: OpenCLDevice? = {
        if getenv("POCL_CACHE_DIR") == nil {
            let dir = URL(fileURLWithPath: binaryFolder).deletingLastPathComponent().deletingLastPathComponent().path + "/pocl-cache"
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            setenv("POCL_CACHE_DIR", dir, 1)
        }
        return (try? OpenCLDevices.all())?.first { $0.isPoCL }
    }()

    static var available: Bool { device != nil }
    static let skipNote: Comment = "PoCL is not installed (apt-get install pocl-opencl-icd, or bash Scripts/setup.sh): OpenCL parity tests skipped"

    /// Scripts/test.sh installs PoCL and sets EDDY_REQUIRE_POCL=1: there, a missing PoCL is a failure, not a skip.
    static var required: Bool { getenv("EDDY_REQUIRE_POCL").map { String(cString: $0) == "1" } ?? false }
}

@Suite("PoCL presence")
struct PoCLPresence {
    @Test func poclIsPresentWhereRequired() {
        if PoCL.required { #expect(PoCL.available, "EDDY_REQUIRE_POCL=1 but no PoCL device: the OpenCL tests would be skipped") }
        if !PoCL.available { print("note: \(PoCL.skipNote)") }
    }
}

// MARK: Helpers

func maxAbsDiff(_ a: [Double], _ b: [Double]) -> Double {
    precondition(a.count == b.count)
    return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

func relative(_ a: [Double], _ b: [Double]) -> Double { maxAbsDiff(a, b) / max(b.map(abs).max() ?? 0, .leastNormalMagnitude) }

func chunks(_ blocks: [RowBlock], norm: Normalisation, delays: Int, chunkRows: Int) -> [WindowChunk] {
    var b = WindowBuilder(normalisation: norm, delays: delays, chunkRows: chunkRows)
    var out: [WindowChunk] = []
    for block in blocks { b.add(block); while let c = b.take() { out.append(c) } }
    b.finish()
    while let c = b.take() { out.append(c) }
    return out
}

func sums(_ backend: Backend, _ chunks: [WindowChunk], layer: HiddenLayer, layout: DictionaryLayout) throws -> GramSums {
    try backend.beginPass(layer: layer, layout: layout)
    for c in chunks { try backend.accumulate(c) }
    return try backend.endPass()
}

struct Run {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// The `eddy` built beside the test binary (`swift build` builds it with the tests).
let eddyBinary: String = {
    let beside = PoCL.binaryFolder + "/eddy"
    if FileManager.default.isExecutableFile(atPath: beside) { return beside }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    return root + "/.build/debug/eddy"
}()

/// Runs `eddy` with extra environment variables.
func eddy(_ arguments: [String], environment extra: [String: String] = [:], in directory: String? = nil) throws -> Run {
    guard FileManager.default.isExecutableFile(atPath: eddyBinary) else {
        throw CocoaError(.fileNoSuchFile, userInfo: [NSLocalizedDescriptionKey: "build eddy first: swift build --product eddy (looked for \(eddyBinary))"])
    }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: eddyBinary)
    p.arguments = arguments
    p.environment = ProcessInfo.processInfo.environment.merging(extra) { $1 }
    if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return Run(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
}

func scratch() throws -> String {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("eddy-ocl-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url.path
}

/// The value columns (after episode and step) of a forecast CSV.
func forecastValues(_ path: String) throws -> [Double] {
    try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").dropFirst()
        .flatMap { $0.split(separator: ",").dropFirst(2).compactMap { Double($0) } }
}
