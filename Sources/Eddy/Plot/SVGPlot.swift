#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// A small SVG line-plot writer: stacked panels (one per variable), readable axes with "nice" 1-2-5 ticks and tick labels,
/// axis labels, a title, and a legend per panel. Non-finite y values break the line (no NaN in the SVG text).
///
/// The y axis is widened to whole ticks; the x axis spans the data exactly. With `logY`, values ≤ 0 are skipped
/// (they break the line) and ticks sit at powers of ten. Coordinates are written with at most 2 decimals.
public struct LinePlot: Sendable {
    public struct Series: Sendable {
        public var name: String
        public var x: [Double]
        public var y: [Double]
        public var dashed: Bool = false
        /// Any SVG colour; nil → a fixed colour-blind-safe palette (Okabe–Ito) by the series' index in its panel.
        public var color: String? = nil

        public init(name: String, x: [Double], y: [Double], dashed: Bool = false, color: String? = nil) {
            self.name = name
            self.x = x
            self.y = y
            self.dashed = dashed
            self.color = color
        }
    }

    public struct Panel: Sendable {
        public var title: String
        public var xLabel: String
        public var yLabel: String
        public var series: [Series]
        public var logY: Bool = false
        /// Draw small circles at the points too (for sparse sweeps).
        public var markers: Bool = false
        /// A log10 x axis (positive x only), ticks at powers of ten and 2×, 5× between.
        public var logX: Bool = false
        /// The y range to show instead of the data's (e.g. the finite part of a forecast that diverged); lines
        /// outside it are clipped at the frame.
        public var yRange: ClosedRange<Double>? = nil
        /// Extra room around the data on the y axis, as a fraction of its span (keeps lines off the frame).
        public var yPadding: Double = 0
        /// Vertical marks (e.g. "diverged" at the step where a forecast did), drawn across the plot and labelled.
        public var marks: [Mark] = []
        /// Points drawn large and labelled (e.g. the model a sweep chose).
        public var highlights: [Highlight] = []
        /// Tick positions for the x axis instead of the automatic ones (e.g. the widths a sweep tried).
        public var xTicks: [Double]? = nil

        public init(title: String, xLabel: String, yLabel: String, series: [Series], logY: Bool = false, markers: Bool = false) {
            self.title = title
            self.xLabel = xLabel
            self.yLabel = yLabel
            self.series = series
            self.logY = logY
            self.markers = markers
        }
    }

    public struct Mark: Sendable {
        public var x: Double
        public var label: String
        public init(x: Double, label: String) { self.x = x; self.label = label }
    }

    public struct Highlight: Sendable {
        public var x: Double
        public var y: Double
        public var label: String
        public init(x: Double, y: Double, label: String) { self.x = x; self.y = y; self.label = label }
    }

    public var title: String
    public var panels: [Panel]
    public var width: Int = 900
    /// Height of each panel including its title, tick labels and x-axis label.
    public var panelHeight: Int = 260

    public init(title: String, panels: [Panel]) {
        self.title = title
        self.panels = panels
    }

    /// Okabe–Ito colours, ordered for contrast on white (yellow last).
    public static let palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]

    // Layout (pixels).
    private static let titleBand = 36.0
    private static let leftMargin = 78.0
    private static let rightMargin = 24.0
    private static let panelTop = 28.0      // panel title band above the plot area
    private static let panelBottom = 48.0   // tick labels and x-axis label below it
    private static let bottomMargin = 8.0

    /// The width of the legend column right of the plots: legends sit outside the data.
    var legendWidth: Double {
        let longest = panels.flatMap { $0.series.map { Double($0.name.unicodeScalars.count) } }.max() ?? 0
        return longest == 0 ? 0 : min(8 + 22 + 6 + longest * 6.3 + 10, 320)
    }

    /// A complete standalone SVG document.
    public func render() -> String {
        let w = Double(max(width, 300)) + legendWidth
        let ph = Double(max(panelHeight, 140))
        let h = Self.titleBand + ph * Double(panels.count) + Self.bottomMargin
        var s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Self.fmt(w))\" height=\"\(Self.fmt(h))\" viewBox=\"0 0 \(Self.fmt(w)) \(Self.fmt(h))\" "
        s += "font-family=\"Helvetica, Arial, sans-serif\">\n"
        s += "<rect x=\"0\" y=\"0\" width=\"\(Self.fmt(w))\" height=\"\(Self.fmt(h))\" fill=\"white\"/>\n"
        s += "<text x=\"\(Self.fmt(w / 2))\" y=\"24\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">\(Self.xmlEscape(title))</text>\n"
        for (k, panel) in panels.enumerated() {
            renderPanel(panel, index: k, top: Self.titleBand + Double(k) * ph, width: w, height: ph, into: &s)
        }
        s += "</svg>\n"
        return s
    }

    // MARK: - Panel

    private func renderPanel(_ panel: Panel, index: Int, top: Double, width: Double, height: Double, into s: inout String) {
        let legend = legendWidth
        let x0 = Self.leftMargin, x1 = width - Self.rightMargin - legend
        let y0 = top + Self.panelTop, y1 = top + height - Self.panelBottom
        let logY = panel.logY, logX = panel.logX

        // Data ranges over usable points (both coordinates finite; y > 0 on a log axis).
        var xmin = Double.infinity, xmax = -Double.infinity
        var ymin = Double.infinity, ymax = -Double.infinity
        for series in panel.series {
            for i in 0..<min(series.x.count, series.y.count) {
                guard let (x, y) = usable(series.x[i], series.y[i], logY: logY, logX: logX) else { continue }
                xmin = min(xmin, x); xmax = max(xmax, x)
                if let range = panel.yRange, !range.contains(y) { continue }
                ymin = min(ymin, y); ymax = max(ymax, y)
            }
        }
        if let range = panel.yRange { ymin = range.lowerBound; ymax = range.upperBound }
        if panel.yPadding > 0, ymin < ymax, !logY {
            let pad = (ymax - ymin) * panel.yPadding
            ymin -= pad; ymax += pad
        }
        var xAxis = logX ? Axis.logarithmic(lo: xmin, hi: xmax, exact: true) : Axis.linear(lo: xmin, hi: xmax, target: 8, widen: false)
        if let given = panel.xTicks {
            xAxis.ticks = given.filter { $0.isFinite && (!logX || $0 > 0) }
                .map { Axis.Tick(value: logX ? log10($0) : $0, label: Axis.tickLabel($0, step: abs($0) >= 1 ? 1 : abs($0))) }
                .filter { $0.value >= xAxis.lo - 1e-12 && $0.value <= xAxis.hi + 1e-12 }
        }
        let yAxis = logY ? Axis.logarithmic(lo: ymin, hi: ymax) : Axis.linear(lo: ymin, hi: ymax, target: 5, widen: true)

        func px(_ x: Double) -> Double {
            let v = logX ? log10(x) : x
            return x0 + (v - xAxis.lo) / (xAxis.hi - xAxis.lo) * (x1 - x0)
        }
        func py(_ y: Double) -> Double {
            let v = logY ? log10(y) : y
            return y1 - (v - yAxis.lo) / (yAxis.hi - yAxis.lo) * (y1 - y0)
        }

        s += "<g>\n"
        s += "<defs><clipPath id=\"clip\(index)\"><rect x=\"\(Self.fmt(x0))\" y=\"\(Self.fmt(y0))\" width=\"\(Self.fmt(x1 - x0))\" height=\"\(Self.fmt(y1 - y0))\"/></clipPath></defs>\n"
        s += "<text x=\"\(Self.fmt((x0 + x1) / 2))\" y=\"\(Self.fmt(top + 19))\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">\(Self.xmlEscape(panel.title))</text>\n"

        // Grid, ticks and tick labels.
        s += "<g font-size=\"11\" fill=\"#333\">\n"
        for t in xAxis.ticks {
            let x = Self.fmt(x0 + (t.value - xAxis.lo) / (xAxis.hi - xAxis.lo) * (x1 - x0))
            s += "<line x1=\"\(x)\" y1=\"\(Self.fmt(y0))\" x2=\"\(x)\" y2=\"\(Self.fmt(y1))\" stroke=\"#e6e6e6\"/>"
            s += "<line x1=\"\(x)\" y1=\"\(Self.fmt(y1))\" x2=\"\(x)\" y2=\"\(Self.fmt(y1 + 4))\" stroke=\"#333\"/>"
            s += "<text x=\"\(x)\" y=\"\(Self.fmt(y1 + 16))\" text-anchor=\"middle\">\(Self.xmlEscape(t.label))</text>\n"
        }
        for t in yAxis.ticks {
            let y = Self.fmt(y1 - (t.value - yAxis.lo) / (yAxis.hi - yAxis.lo) * (y1 - y0))
            s += "<line x1=\"\(Self.fmt(x0))\" y1=\"\(y)\" x2=\"\(Self.fmt(x1))\" y2=\"\(y)\" stroke=\"#e6e6e6\"/>"
            s += "<line x1=\"\(Self.fmt(x0 - 4))\" y1=\"\(y)\" x2=\"\(Self.fmt(x0))\" y2=\"\(y)\" stroke=\"#333\"/>"
            s += "<text x=\"\(Self.fmt(x0 - 7))\" y=\"\(y)\" text-anchor=\"end\" dominant-baseline=\"middle\">\(Self.xmlEscape(t.label))</text>\n"
        }
        s += "</g>\n"
        s += "<rect x=\"\(Self.fmt(x0))\" y=\"\(Self.fmt(y0))\" width=\"\(Self.fmt(x1 - x0))\" height=\"\(Self.fmt(y1 - y0))\" fill=\"none\" stroke=\"#333\"/>\n"

        // Axis labels.
        s += "<text x=\"\(Self.fmt((x0 + x1) / 2))\" y=\"\(Self.fmt(y1 + 36))\" text-anchor=\"middle\" font-size=\"12\">\(Self.xmlEscape(panel.xLabel))</text>\n"
        let ly = Self.fmt((y0 + y1) / 2)
        s += "<text x=\"16\" y=\"\(ly)\" transform=\"rotate(-90 16 \(ly))\" text-anchor=\"middle\" dominant-baseline=\"middle\" font-size=\"12\">\(Self.xmlEscape(panel.yLabel))</text>\n"

        // Lines (and markers), clipped to the plot area.
        s += "<g clip-path=\"url(#clip\(index))\" fill=\"none\" stroke-width=\"1.5\" stroke-linejoin=\"round\" stroke-linecap=\"round\">\n"
        var markerGroups = ""
        for (j, series) in panel.series.enumerated() {
            let colour = Self.xmlEscape(colourOf(series, index: j))
            var d = ""
            var circles = ""
            var penDown = false
            var last = ""
            for i in 0..<min(series.x.count, series.y.count) {
                guard let (x, y) = usable(series.x[i], series.y[i], logY: logY, logX: logX) else { penDown = false; continue }
                let point = Self.fmt(px(x)) + "," + Self.fmt(py(y))
                if panel.markers, panel.yRange?.contains(y) ?? true { circles += "<circle cx=\"\(Self.fmt(px(x)))\" cy=\"\(Self.fmt(py(y)))\" r=\"2.5\"/>" }
                if penDown {
                    if point == last { continue }
                    d += "L" + point
                } else {
                    d += "M" + point + "L" + point   // a zero-length segment shows an isolated point as a dot
                    penDown = true
                }
                last = point
            }
            if !d.isEmpty {
                let dash = series.dashed ? " stroke-dasharray=\"6 4\"" : ""
                s += "<path d=\"\(d)\" stroke=\"\(colour)\"\(dash)/>\n"
            }
            if !circles.isEmpty { markerGroups += "<g fill=\"\(colour)\" stroke=\"none\">\(circles)</g>\n" }
        }
        s += "</g>\n"
        s += markerGroups   // unclipped: every point lies within the axes, and edge markers stay whole

        // Vertical marks, labelled at the top inside the frame.
        for m in panel.marks where m.x.isFinite && (!logX || m.x > 0) {
            let x = px(m.x)
            guard x >= x0 - 0.5 && x <= x1 + 0.5 else { continue }
            s += "<g class=\"mark\"><line x1=\"\(Self.fmt(x))\" y1=\"\(Self.fmt(y0))\" x2=\"\(Self.fmt(x))\" y2=\"\(Self.fmt(y1))\" stroke=\"#B00020\" stroke-width=\"1.2\" stroke-dasharray=\"3 3\"/>"
            let anchor = x > (x0 + x1) / 2 ? "end" : "start"
            s += "<text x=\"\(Self.fmt(x + (anchor == "end" ? -4 : 4)))\" y=\"\(Self.fmt(y0 + 13))\" text-anchor=\"\(anchor)\" font-size=\"11\" fill=\"#B00020\">\(Self.xmlEscape(m.label))</text></g>\n"
        }
        // Highlighted points: a ring and a label.
        for h in panel.highlights {
            guard let (x, y) = usable(h.x, h.y, logY: logY, logX: logX) else { continue }
            let cx = px(x), cy = py(y)
            let anchor = cx > (x0 + x1) / 2 ? "end" : "start"
            s += "<g class=\"highlight\"><circle cx=\"\(Self.fmt(cx))\" cy=\"\(Self.fmt(cy))\" r=\"7\" fill=\"none\" stroke=\"#000\" stroke-width=\"2\"/>"
            s += "<text x=\"\(Self.fmt(cx + (anchor == "end" ? -10 : 10)))\" y=\"\(Self.fmt(cy - 10))\" text-anchor=\"\(anchor)\" font-size=\"11\" font-weight=\"bold\">\(Self.xmlEscape(h.label))</text></g>\n"
        }

        // Legend: right of the plot area (outside the data), small font, light box.
        if !panel.series.isEmpty {
            let rowHeight = 15.0
            let boxWidth = legend - 8
            let shown = min(panel.series.count, max(1, Int((y1 - y0 - 6) / rowHeight)))
            let boxHeight = 6 + rowHeight * Double(shown)
            let bx = x1 + 8, by = y0
            s += "<g font-size=\"11\">\n"
            s += "<rect x=\"\(Self.fmt(bx))\" y=\"\(Self.fmt(by))\" width=\"\(Self.fmt(boxWidth))\" height=\"\(Self.fmt(boxHeight))\" fill=\"white\" fill-opacity=\"0.85\" stroke=\"#bbbbbb\" rx=\"3\"/>\n"
            for (j, series) in panel.series.prefix(shown).enumerated() {
                let colour = Self.xmlEscape(colourOf(series, index: j))
                let cy = by + 3 + rowHeight * (Double(j) + 0.5)
                let dash = series.dashed ? " stroke-dasharray=\"6 4\"" : ""
                s += "<line x1=\"\(Self.fmt(bx + 8))\" y1=\"\(Self.fmt(cy))\" x2=\"\(Self.fmt(bx + 30))\" y2=\"\(Self.fmt(cy))\" stroke=\"\(colour)\" stroke-width=\"1.5\"\(dash)/>"
                if panel.markers { s += "<circle cx=\"\(Self.fmt(bx + 19))\" cy=\"\(Self.fmt(cy))\" r=\"2.5\" fill=\"\(colour)\"/>" }
                s += "<text x=\"\(Self.fmt(bx + 36))\" y=\"\(Self.fmt(cy))\" dominant-baseline=\"middle\" fill=\"#222\">\(Self.xmlEscape(series.name))</text>\n"
            }
            s += "</g>\n"
        }
        s += "</g>\n"
    }

    private func colourOf(_ series: Series, index: Int) -> String {
        series.color ?? Self.palette[index % Self.palette.count]
    }

    /// The point if it can be drawn: finite, not absurdly large, and positive on a log axis.
    /// A log axis for values of which some blew up: when the largest positive finite value is more than
    /// `spread` decades above the smallest, the range from half the smallest to `keep` decades above it, and how many
    /// values lie above that; nil when the values fit (then the axis spans them all). A sweep's choice is decided
    /// among scores within a factor of a few of the best; one diverged candidate must not squash them flat.
    public static func cappedLogRange(_ values: [Double], spread: Double = 2, keep: Double = 1) -> (range: ClosedRange<Double>, above: Int)? {
        let v = values.filter { $0.isFinite && $0 > 0 }
        guard let low = v.min(), let high = v.max(), log10(high / low) > spread else { return nil }
        let cap = low * pow(10, keep)
        return ((low / 2)...cap, v.filter { $0 > cap }.count)
    }

    private func usable(_ x: Double, _ y: Double, logY: Bool, logX: Bool = false) -> (Double, Double)? {
        let limit = 1e300
        guard x.isFinite, y.isFinite, abs(x) <= limit, abs(y) <= limit else { return nil }
        if logY && !(y > 0) { return nil }
        if logX && !(x > 0) { return nil }
        return (x, y)
    }
}

// MARK: - Axes

extension LinePlot {
    /// An axis range with its ticks; for a log axis, `lo`, `hi` and tick values are log10 of the data.
    struct Axis {
        struct Tick { var value: Double; var label: String }
        var lo: Double
        var hi: Double
        var ticks: [Tick]

        /// A linear axis with 1-2-5 ticks, about `target` of them. `widen` extends the range to whole ticks.
        /// An empty range gives 0…1; a constant one is padded by 10% of its magnitude (or 1 at zero).
        static func linear(lo dataLo: Double, hi dataHi: Double, target: Int, widen: Bool) -> Axis {
            var lo = dataLo, hi = dataHi
            if !(lo <= hi) { lo = 0; hi = 1 }
            if hi == lo {
                let pad = lo != 0 ? abs(lo) * 0.1 : 1
                lo -= pad; hi += pad
            }
            let step = niceStep((hi - lo) / Double(max(target, 1)))
            if widen {
                lo = (lo / step).rounded(.down) * step
                hi = (hi / step).rounded(.up) * step
            }
            var ticks: [Tick] = []
            let first = (lo / step - 1e-9).rounded(.up)
            let last = (hi / step + 1e-9).rounded(.down)
            if first.isFinite && last.isFinite && last - first <= 100 {
                var k = first
                while k <= last {
                    let v = k * step
                    ticks.append(Tick(value: v, label: tickLabel(v, step: step)))
                    k += 1
                }
            }
            return Axis(lo: lo, hi: hi, ticks: ticks)
        }

        /// A log10 axis spanning whole decades, ticks at powers of ten (every few decades when there are many).
        /// With fewer than three decades, ticks at 2× and 5× too, so the differences that matter are read off.
        /// `exact` spans the data (padded by a few percent) instead of whole decades, for an x axis.
        static func logarithmic(lo dataLo: Double, hi dataHi: Double, exact: Bool = false) -> Axis {
            var lo = 0.0, hi = 1.0
            if dataLo > 0 && dataLo <= dataHi {
                if exact {
                    let pad = max(0.03, (log10(dataHi) - log10(dataLo)) * 0.04)
                    lo = log10(dataLo) - pad; hi = log10(dataHi) + pad
                } else {
                    lo = log10(dataLo).rounded(.down)
                    hi = log10(dataHi).rounded(.up)
                    if hi == lo { hi = lo + 1 }
                }
            }
            let decades = Int((hi - lo).rounded(.up))
            let every = max(1, Int((Double(decades) / 8).rounded(.up)))
            let multiples: [Double] = decades < 3 ? [1, 2, 5] : [1]
            var ticks: [Tick] = []
            var k = Int(lo.rounded(.down))
            while Double(k) <= hi {
                if k % every == 0 || every == 1 {
                    for m in multiples {
                        let v = m * pow(10, Double(k))
                        let lv = log10(v)
                        if lv >= lo - 1e-9 && lv <= hi + 1e-9 { ticks.append(Tick(value: lv, label: tickLabel(v, step: v))) }
                    }
                }
                k += 1
            }
            return Axis(lo: lo, hi: hi, ticks: ticks)
        }

        /// The 1-2-5 step nearest above a raw step.
        static func niceStep(_ raw: Double) -> Double {
            guard raw.isFinite, raw > 0 else { return 1 }
            let magnitude = pow(10, log10(raw).rounded(.down))
            let f = raw / magnitude
            let nice: Double = f < 1.5 ? 1 : (f < 3 ? 2 : (f < 7 ? 5 : 10))
            return nice * magnitude
        }

        /// A compact tick label: as many decimals as the step needs ("0.5", "2", "0.25"), and exponential form
        /// ("1e-06", "2.5e+07") for magnitudes below 1e-3 or from 1e6 up. Float noise never shows.
        static func tickLabel(_ v: Double, step: Double) -> String {
            guard v.isFinite, step.isFinite, step > 0 else { return "0" }
            let a = abs(v)
            if a < step * 1e-6 { return "0" }
            if a >= 1e-3 && a < 1e6 {
                let decimals = min(12, max(0, Int((-log10(step) - 1e-9).rounded(.up))))
                return fixed(v, decimals: decimals)
            }
            var e = Int(log10(a).rounded(.down))
            let significant = min(15, max(1, e - Int(log10(step).rounded(.down)) + 1))
            var m = v / pow(10, Double(e))
            let scale = pow(10, Double(significant - 1))
            m = (m * scale).rounded() / scale
            if abs(m) >= 10 { m /= 10; e += 1 }
            if abs(m) < 1 { m *= 10; e -= 1 }
            let exponent = (e < 0 ? "-" : "+") + (abs(e) < 10 ? "0" : "") + String(abs(e))
            return fixed(m, decimals: significant - 1) + "e" + exponent
        }

        /// `v` rounded to `decimals` places, trailing zeros (and a bare point) dropped; never "-0".
        static func fixed(_ v: Double, decimals: Int) -> String {
            let scale = pow(10, Double(decimals))
            let r = (v * scale).rounded()
            guard r.isFinite, abs(r) < 9e18 else { return decimals > 0 && v.isFinite ? fixed(v, decimals: decimals - 1) : "0" }
            let n = Int64(r)
            if n == 0 { return "0" }
            let digits = String(n.magnitude)
            var intPart: Substring, frac: Substring
            if decimals == 0 {
                intPart = Substring(digits); frac = ""
            } else {
                let padded = String(repeating: "0", count: max(0, decimals + 1 - digits.count)) + digits
                let cut = padded.index(padded.endIndex, offsetBy: -decimals)
                intPart = padded[..<cut]; frac = padded[cut...]
                while frac.last == "0" { frac = frac.dropLast() }
            }
            return (n < 0 ? "-" : "") + intPart + (frac.isEmpty ? "" : "." + frac)
        }
    }

    /// A coordinate with at most 2 decimals.
    static func fmt(_ v: Double) -> String {
        guard v.isFinite else { return "0" }
        return Axis.fixed(max(-1e9, min(1e9, v)), decimals: 2)
    }

    /// Text safe inside XML content and attribute values: &, <, >, " and ' escaped; control characters that
    /// XML 1.0 forbids become spaces.
    static func xmlEscape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for ch in text.unicodeScalars {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\t", "\n", "\r": out.unicodeScalars.append(ch)
            default:
                if ch.value < 0x20 || ch.value == 0xFFFE || ch.value == 0xFFFF {
                    out += " "
                } else {
                    out.unicodeScalars.append(ch)
                }
            }
        }
        return out
    }
}
