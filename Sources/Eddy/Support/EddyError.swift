/// Every failure the user can cause or meet: a message that names the file, the place and what was expected.
public struct EddyError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }

    /// `FILE:LINE:COLUMN: message` (line and column 1-based; omitted when unknown).
    public static func at(_ file: String, line: Int? = nil, column: Int? = nil, _ message: String) -> EddyError {
        var place = file
        if let line { place += ":\(line)" }
        if let column { place += ":\(column)" }
        return EddyError("\(place): \(message)")
    }
}
