/// Number formatting shared by tables, CSV output and messages.
public enum Format {
    /// `1.2e-05` style.
    public static func scientific(_ x: Double, _ digits: Int = 3) -> String {
        if x == 0 { return "0" }
        if !x.isFinite { return x.isNaN ? "nan" : (x > 0 ? "inf" : "-inf") }
        var e = Int((abs(x)).log10Floor)
        var m = x / pow10(e)
        if abs(m) >= 10 - 0.5 * pow10(-digits) { m /= 10; e += 1 }
        let mant = fixed(m, digits)
        return "\(mant)e\(e < 0 ? "-" : "+")\(abs(e) < 10 ? "0" : "")\(abs(e))"
    }

    /// Fixed-point with `digits` decimals (scientific where the digits would not fit a 64-bit integer).
    public static func fixed(_ x: Double, _ digits: Int) -> String {
        if !x.isFinite { return x.isNaN ? "nan" : (x > 0 ? "inf" : "-inf") }
        let scale = pow10(digits)
        if abs(x) * scale >= 9e15 { return scientific(x, max(digits, 3)) }
        let r = (abs(x) * scale).rounded()
        let whole = Int(r / scale)
        let fraction = Int(r - Double(whole) * scale)
        let sign = x < 0 && r != 0 ? "-" : ""
        if digits == 0 { return "\(sign)\(whole)" }
        let f = String(fraction)
        return "\(sign)\(whole).\(String(repeating: "0", count: digits - f.count))\(f)"
    }

    /// Short general format: fixed for moderate magnitudes, scientific otherwise.
    public static func general(_ x: Double, _ significant: Int = 4) -> String {
        if x == 0 { return "0" }
        if !x.isFinite { return x.isNaN ? "nan" : (x > 0 ? "inf" : "-inf") }
        let mag = abs(x)
        if mag >= 1e-3 && mag < 1e6 {
            let e = Int(mag.log10Floor)
            return fixed(x, max(0, significant - 1 - e))
        }
        return scientific(x, significant - 1)
    }

    /// `general` without trailing zeros ("1 h", not "1.000 h"; "0.05", "2.5e-07").
    public static func short(_ x: Double, _ significant: Int = 4) -> String {
        let g = general(x, significant)
        guard g.contains("."), !g.contains("e") else { return g }
        var t = Substring(g)
        while t.last == "0" { t = t.dropLast() }
        if t.last == "." { t = t.dropLast() }
        return String(t)
    }

    /// "1 forecast", "2 forecasts": a count with its noun in the right number (`plural` for irregular nouns).
    public static func count(_ n: Int, _ noun: String, plural: String? = nil) -> String {
        "\(n) " + (n == 1 ? noun : plural ?? noun + "s")
    }

    static func pow10(_ e: Int) -> Double {
        var r = 1.0
        if e >= 0 { for _ in 0..<e { r *= 10 } } else { for _ in 0..<(-e) { r /= 10 } }
        return r
    }
}

extension Double {
    var log10Floor: Double {
        var e = 0.0
        var v = self
        if v >= 1 { while v >= 10 { v /= 10; e += 1 } } else { while v < 1 { v *= 10; e -= 1 } }
        return e
    }
}
