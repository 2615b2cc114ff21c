import Foundation

// KernelEmbedder OUTPUT.swift KERNEL.cl…
// Writes `enum KernelSources` with one raw string literal per kernel file (named after the file) and `all`.
let arguments = CommandLine.arguments.dropFirst()
guard let output = arguments.first else {
    FileHandle.standardError.write(Data("usage: KernelEmbedder OUTPUT.swift KERNEL.cl…\n".utf8))
    exit(2)
}

/// `lift.cl` → `lift`; anything that is not a letter, digit or underscore becomes `_`.
func identifier(_ path: String) -> String {
    let stem = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
    var name = String(stem.map { $0.isLetter || $0.isNumber || $0 == "_" ? $0 : "_" })
    if name.first?.isNumber ?? true { name = "_" + name }
    return name
}

/// A raw string delimiter longer than any run of `#` in the text, so no content can close the literal early.
func hashes(for text: String) -> String {
    var longest = 0, run = 0
    for c in text {
        run = c == "#" ? run + 1 : 0
        longest = max(longest, run)
    }
    return String(repeating: "#", count: longest + 1)
}

var swift = "// Generated at build time by the EmbedKernels plugin from Kernels/*.cl. Do not edit.\n\n"
swift += "enum KernelSources {\n"
var names: [(String, String)] = []
for path in arguments.dropFirst() {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    // Some vendors' OpenCL C compilers reject non-ASCII bytes even in comments: fail the build here instead.
    for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
    where line.unicodeScalars.contains(where: { $0.value > 127 }) {
        FileHandle.standardError.write(Data("\(path):\(n + 1): error: non-ASCII character in an OpenCL kernel file\n".utf8))
        exit(1)
    }
    let name = identifier(path)
    let h = hashes(for: text)
    let file = URL(fileURLWithPath: path).lastPathComponent
    swift += "    /// Kernels/\(file)\n"
    swift += "    static let \(name) = \(h)\"\"\"\n\(text)\(text.hasSuffix("\n") ? "" : "\n")\"\"\"\(h)\n\n"
    names.append((name, file))
}
swift += "    /// Every kernel file: (file name, source).\n"
swift += "    static let all: [(file: String, source: String)] = [\n"
for (name, file) in names { swift += "        (\"\(file)\", \(name)),\n" }
swift += "    ]\n}\n"

try swift.write(toFile: output, atomically: true, encoding: .utf8)
