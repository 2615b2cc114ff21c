import Foundation
import Eddy

// Helpers shared by every test target: scratch folders, comparisons, chunking, and running the `eddy` binary.

/// The package root, found from this file's path.
public let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

/// A fresh scratch directory.
public func scratch(_ tag: String = "eddy") throws -> String {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(tag)-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url.path
}

public func writeText(_ text: String, _ path: String) throws {
    try text.write(toFile: path, atomically: true, encoding: .utf8)
}

public func maxAbsDiff(_ a: [Double], _ b: [Double]) -> Double {
    precondition(a.count == b.count)
    return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

public func maxAbs(_ a: [Double]) -> Double { a.map(abs).max() ?? 0 }

/// Largest difference relative to the largest magnitude of `b`.
public func relative(_ a: [Double], _ b: [Double]) -> Double { maxAbsDiff(a, b) / max(maxAbs(b), .leastNormalMagnitude) }

/// The chunks a training pass would see for these blocks.
public func chunks(_ blocks: [RowBlock], norm: Normalisation, delays: Int, chunkRows: Int) -> [WindowChunk] {
    var b = WindowBuilder(normalisation: norm, delays: delays, chunkRows: chunkRows)
    var out: [WindowChunk] = []
    for block in blocks { b.add(block); while let c = b.take() { out.append(c) } }
    b.finish()
    while let c = b.take() { out.append(c) }
    return out
}

/// One pass of a backend over chunks.
public func sums(_ backend: Backend, _ chunks: [WindowChunk], layer: HiddenLayer, layout: DictionaryLayout) throws -> GramSums {
    try backend.beginPass(layer: layer, layout: layout)
    for c in chunks { try backend.accumulate(c) }
    return try backend.endGramPass()
}

public struct Run: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs a program to completion, with extra environment variables.
@discardableResult
public func runProcess(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:], in directory: String? = nil) throws -> Run {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    p.environment = ProcessInfo.processInfo.environment.merging(extra) { $1 }
    if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    // Read before waiting so a full pipe cannot block the child.
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return Run(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
}

/// The folder holding the test binary (`<scratch>/<triple>/debug`), where `swift build` puts `eddy` too.
public let testBinaryFolder: String = {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    return URL(fileURLWithPath: exe).deletingLastPathComponent().path
}()

/// The `eddy` binary built beside the tests (Scripts/test.sh builds it before running them).
public let eddyBinary: String = {
    let beside = testBinaryFolder + "/eddy"
    if FileManager.default.isExecutableFile(atPath: beside) { return beside }
    return packageRoot + "/.build/debug/eddy"
}()

/// Runs `eddy`.
public func eddy(_ arguments: [String], environment: [String: String] = [:], in directory: String? = nil) throws -> Run {
    guard FileManager.default.isExecutableFile(atPath: eddyBinary) else {
        throw CocoaError(.fileNoSuchFile, userInfo: [NSLocalizedDescriptionKey: "build eddy first: swift build --product eddy (looked for \(eddyBinary))"])
    }
    return try runProcess(eddyBinary, arguments, environment: environment, in: directory)
}

/// The value columns (after episode and step) of a forecast CSV.
public func forecastValues(_ path: String) throws -> [Double] {
    try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").dropFirst()
        .flatMap { $0.split(separator: ",").dropFirst(2).compactMap { Double($0) } }
}
