/// Eigenvalues of a Koopman matrix in the complex plane with the unit circle (`eddy spectrum --plot`): decaying
/// modes inside, growing ones outside (drawn in red), the constant's λ = 1 on it. The axes are square (equal units
/// both ways), so the circle is round; they span the unit circle and every eigenvalue up to `maxRadius`, beyond which
/// the count of the eigenvalues left out is written on the plot.
public struct SpectrumPlot: Sendable {
    public var title: String
    public var eigenvalues: [(real: Double, imaginary: Double)]
    public var size: Int = 560
    /// The largest modulus shown (an eigenvalue far outside would shrink the circle to a dot).
    public var maxRadius: Double = 4

    public init(title: String, eigenvalues: [(real: Double, imaginary: Double)]) {
        self.title = title
        self.eigenvalues = eigenvalues
    }

    static func modulus(_ e: (real: Double, imaginary: Double)) -> Double { (e.real * e.real + e.imaginary * e.imaginary).squareRoot() }

    public func render() -> String {
        let finite = eigenvalues.filter { $0.real.isFinite && $0.imaginary.isFinite }
        let shown = finite.filter { Self.modulus($0) <= maxRadius }
        let radius = max(1.1, (shown.map(Self.modulus).max() ?? 1) * 1.05)
        let axis = LinePlot.Axis.linear(lo: -radius, hi: radius, target: 6, widen: true)
        let side = Double(max(size, 300))
        let left = 70.0, top = 44.0, plot = side - left - 24
        let w = side, h = top + plot + 56
        func px(_ x: Double) -> Double { left + (x - axis.lo) / (axis.hi - axis.lo) * plot }
        func py(_ y: Double) -> Double { top + plot - (y - axis.lo) / (axis.hi - axis.lo) * plot }
        let f = LinePlot.fmt
        var s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(f(w))\" height=\"\(f(h))\" viewBox=\"0 0 \(f(w)) \(f(h))\" font-family=\"Helvetica, Arial, sans-serif\">\n"
        s += "<rect x=\"0\" y=\"0\" width=\"\(f(w))\" height=\"\(f(h))\" fill=\"white\"/>\n"
        s += "<text x=\"\(f(w / 2))\" y=\"24\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">\(LinePlot.xmlEscape(title))</text>\n"
        s += "<defs><clipPath id=\"frame\"><rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plot))\" height=\"\(f(plot))\"/></clipPath></defs>\n"
        s += "<g font-size=\"11\" fill=\"#333\">\n"
        for t in axis.ticks {
            let x = f(px(t.value)), y = f(py(t.value))
            s += "<line x1=\"\(x)\" y1=\"\(f(top))\" x2=\"\(x)\" y2=\"\(f(top + plot))\" stroke=\"#eeeeee\"/>"
            s += "<line x1=\"\(f(left))\" y1=\"\(y)\" x2=\"\(f(left + plot))\" y2=\"\(y)\" stroke=\"#eeeeee\"/>"
            s += "<text x=\"\(x)\" y=\"\(f(top + plot + 16))\" text-anchor=\"middle\">\(LinePlot.xmlEscape(t.label))</text>"
            s += "<text x=\"\(f(left - 7))\" y=\"\(y)\" text-anchor=\"end\" dominant-baseline=\"middle\">\(LinePlot.xmlEscape(t.label))</text>\n"
        }
        s += "</g>\n"
        s += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plot))\" height=\"\(f(plot))\" fill=\"none\" stroke=\"#333\"/>\n"
        s += "<text x=\"\(f(left + plot / 2))\" y=\"\(f(top + plot + 36))\" text-anchor=\"middle\" font-size=\"12\">Re λ</text>\n"
        let ly = f(top + plot / 2)
        s += "<text x=\"18\" y=\"\(ly)\" transform=\"rotate(-90 18 \(ly))\" text-anchor=\"middle\" font-size=\"12\">Im λ</text>\n"
        s += "<g clip-path=\"url(#frame)\">\n"
        s += "<line x1=\"\(f(px(axis.lo)))\" y1=\"\(f(py(0)))\" x2=\"\(f(px(axis.hi)))\" y2=\"\(f(py(0)))\" stroke=\"#999\"/>"
        s += "<line x1=\"\(f(px(0)))\" y1=\"\(f(py(axis.lo)))\" x2=\"\(f(px(0)))\" y2=\"\(f(py(axis.hi)))\" stroke=\"#999\"/>\n"
        let r = (px(1) - px(0))
        s += "<circle class=\"unit-circle\" cx=\"\(f(px(0)))\" cy=\"\(f(py(0)))\" r=\"\(f(r))\" fill=\"none\" stroke=\"#0072B2\" stroke-width=\"1.5\"/>\n"
        var outside = 0
        for e in shown {
            let grows = Self.modulus(e) > 1 + 1e-6
            if grows { outside += 1 }
            s += "<circle class=\"\(grows ? "growing" : "eigenvalue")\" cx=\"\(f(px(e.real)))\" cy=\"\(f(py(e.imaginary)))\" r=\"3\" fill=\"\(grows ? "#D55E00" : "#000000")\" fill-opacity=\"0.75\"/>\n"
        }
        s += "</g>\n"
        outside += finite.count - shown.count
        let left_out = finite.count - shown.count
        var note = "\(eigenvalues.count) eigenvalues; \(outside) outside the unit circle (|λ| > 1, growing; red)"
        if left_out > 0 { note += "; \(left_out) beyond |λ| = \(LinePlot.Axis.tickLabel(maxRadius, step: 1)) not drawn" }
        s += "<text x=\"\(f(left))\" y=\"\(f(top - 8))\" font-size=\"11\" fill=\"#333\">\(LinePlot.xmlEscape(note))</text>\n"
        s += "</svg>\n"
        return s
    }
}
