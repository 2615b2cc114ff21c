/// A JSON value for machine-readable output (`--json`). Non-finite numbers are written as `null`, so every
/// output parses with any JSON reader. Objects keep their keys in the order they are built (never a dictionary's
/// order), so a report's layout is the same on every run; report keys are snake_case (README, "JSON reports").
/// Numbers are written shortest round-trip (Swift's `description`); times are rounded to microseconds first
/// (`seconds`), since their sums carry arithmetic noise digits (0.0019640210000000003).
public indirect enum JSON: Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    public static func object(_ pairs: KeyValuePairs<String, JSON>) -> JSON { .object(pairs.map { ($0.key, $0.value) }) }
    public static func numbers(_ values: [Double]) -> JSON { .array(values.map { .number($0) }) }
    public static func int(_ v: Int) -> JSON { .number(Double(v)) }
    public static func optional(_ v: Double?) -> JSON { v.map { .number($0) } ?? .null }
    /// A time in seconds, rounded to microseconds (what a clock resolves; the digits below are arithmetic noise).
    public static func seconds(_ v: Double) -> JSON { .number(v.isFinite ? (v * 1e6).rounded() / 1e6 : v) }

    /// The keys of an object, in order (empty for anything else).
    public var keys: [String] {
        if case .object(let pairs) = self { return pairs.map(\.0) }
        return []
    }

    public var text: String {
        var out = ""
        write(into: &out)
        return out
    }

    func write(into out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let x):
            if !x.isFinite { out += "null" }
            else if x == x.rounded(), abs(x) < 1e15 { out += String(Int64(x)) }
            else { out += "\(x)" }
        case .string(let s): JSON.escape(s, into: &out)
        case .array(let items):
            out += "["
            for (i, v) in items.enumerated() {
                if i > 0 { out += "," }
                v.write(into: &out)
            }
            out += "]"
        case .object(let pairs):
            out += "{"
            for (i, (k, v)) in pairs.enumerated() {
                if i > 0 { out += "," }
                JSON.escape(k, into: &out)
                out += ":"
                v.write(into: &out)
            }
            out += "}"
        }
    }

    static func escape(_ s: String, into out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let h = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }
}
