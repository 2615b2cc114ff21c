import EddyTestSupport
import Foundation
import Testing
@testable import Eddy

/// Reads a whole dataset through the streaming reader.
func readAll(_ spec: DataSpec) throws -> [RowBlock] {
    let r = try DataSource.open(spec)
    var out: [RowBlock] = []
    while let b = try r.next() { out.append(b) }
    return out
}

/// A small CSV of several noisy-free trajectories of a linear rotation (known dynamics), with an episode column.
func rotationCSV(_ path: String, episodes: Int = 3, steps: Int = 60, withInput: Bool = false) throws {
    var text = withInput ? "episode,t,a,b,u\n" : "episode,t,a,b\n"
    let c = cos(0.1), s = sin(0.1)
    for e in 0..<episodes {
        var x = 1.0 + Double(e) * 0.3, y = -0.5 + 0.2 * Double(e)
        for t in 0..<steps {
            let u = withInput ? sin(0.37 * Double(t + 5 * e)) : 0
            text += "ep\(e),\(Double(t) * 0.1),\(x),\(y)" + (withInput ? ",\(u)" : "") + "\n"
            (x, y) = (c * x - s * y + 0.1 * u, s * x + c * y)
        }
    }
    try writeText(text, path)
}

/// Runs `body` and returns the EddyError it throws; records an issue when it succeeds or throws anything else.
@discardableResult
func refusal(_ what: String, _ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> String {
    do {
        try body()
        Issue.record("\(what): accepted", sourceLocation: sourceLocation)
    } catch let e as EddyError {
        return e.message
    } catch {
        Issue.record("\(what): threw \(type(of: error)) \(error), not EddyError", sourceLocation: sourceLocation)
    }
    return ""
}
