/// Heat maps of gridded fields as SVG: rows of panels (e.g. truth, forecast and their difference at one lead time),
/// each panel a raster of cells with a colour bar. Sequential fields share a colour scale within a row; a
/// difference uses a diverging scale symmetric about zero.
public struct MapPlot: Sendable {
    public struct Panel: Sendable {
        public var title: String
        /// `rows × columns` values, row-major; row 0 is drawn at the top.
        public var values: [Double]
        public var rows: Int
        public var columns: Int
        public var lo: Double
        public var hi: Double
        public var diverging: Bool

        public init(title: String, values: [Double], rows: Int, columns: Int, lo: Double, hi: Double, diverging: Bool = false) {
            self.title = title
            self.values = values
            self.rows = rows
            self.columns = columns
            self.lo = lo
            self.hi = hi
            self.diverging = diverging
        }
    }

    public var title: String
    public var rows: [[Panel]]
    public var panelWidth = 300.0

    public init(title: String, rows: [[Panel]]) {
        self.title = title
        self.rows = rows
    }

    public func render() -> String {
        let columns = rows.map(\.count).max() ?? 1
        let cellAspect = rows.first?.first.map { Double($0.rows) / Double(max(1, $0.columns)) } ?? 0.5
        let mapHeight = panelWidth * cellAspect
        let rowHeight = mapHeight + 70
        let width = 20 + Double(columns) * (panelWidth + 30)
        let height = 50 + Double(rows.count) * rowHeight
        var s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"sans-serif\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(Int(width / 2))\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">\(LinePlot.xmlEscape(title))</text>\n"
        for (r, row) in rows.enumerated() {
            for (c, panel) in row.enumerated() {
                let x0 = 20 + Double(c) * (panelWidth + 30), y0 = 50 + Double(r) * rowHeight
                s += "<text x=\"\(LinePlot.fmt(x0))\" y=\"\(LinePlot.fmt(y0 + 14))\" font-size=\"12\">\(LinePlot.xmlEscape(panel.title))</text>\n"
                let cw = panelWidth / Double(panel.columns), ch = mapHeight / Double(panel.rows)
                s += "<g shape-rendering=\"crispEdges\">\n"
                for i in 0..<panel.rows {
                    for j in 0..<panel.columns {
                        let v = panel.values[i * panel.columns + j]
                        let colour = v.isFinite ? MapPlot.colour(v, lo: panel.lo, hi: panel.hi, diverging: panel.diverging) : "#999999"
                        s += "<rect x=\"\(LinePlot.fmt(x0 + Double(j) * cw))\" y=\"\(LinePlot.fmt(y0 + 20 + Double(i) * ch))\" width=\"\(LinePlot.fmt(cw + 0.3))\" height=\"\(LinePlot.fmt(ch + 0.3))\" fill=\"\(colour)\"/>\n"
                    }
                }
                s += "</g>\n"
                // Colour bar with its ends.
                let barY = y0 + 28 + mapHeight
                for k in 0..<50 {
                    let v = panel.lo + (panel.hi - panel.lo) * (Double(k) + 0.5) / 50
                    s += "<rect x=\"\(LinePlot.fmt(x0 + Double(k) * panelWidth / 50))\" y=\"\(LinePlot.fmt(barY))\" width=\"\(LinePlot.fmt(panelWidth / 50 + 0.3))\" height=\"8\" fill=\"\(MapPlot.colour(v, lo: panel.lo, hi: panel.hi, diverging: panel.diverging))\"/>\n"
                }
                s += "<text x=\"\(LinePlot.fmt(x0))\" y=\"\(LinePlot.fmt(barY + 22))\" font-size=\"11\">\(Format.general(panel.lo, 4))</text>\n"
                s += "<text x=\"\(LinePlot.fmt(x0 + panelWidth))\" y=\"\(LinePlot.fmt(barY + 22))\" font-size=\"11\" text-anchor=\"end\">\(Format.general(panel.hi, 4))</text>\n"
            }
        }
        s += "</svg>\n"
        return s
    }

    /// Sequential: dark blue → teal → yellow; diverging: blue → white → red.
    static func colour(_ v: Double, lo: Double, hi: Double, diverging: Bool) -> String {
        let t = hi > lo ? min(1, max(0, (v - lo) / (hi - lo))) : 0.5
        let stops: [(Double, Double, Double)] = diverging
            ? [(33, 102, 172), (247, 247, 247), (178, 24, 43)]
            : [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]
        let x = t * Double(stops.count - 1)
        let i = min(stops.count - 2, Int(x.rounded(.down)))
        let f = x - Double(i)
        func mix(_ a: Double, _ b: Double) -> Int { Int((a + (b - a) * f).rounded()) }
        let (r, g, b) = (mix(stops[i].0, stops[i + 1].0), mix(stops[i].1, stops[i + 1].1), mix(stops[i].2, stops[i + 1].2))
        return "#" + [r, g, b].map { let h = String($0, radix: 16); return h.count == 1 ? "0" + h : h }.joined()
    }
}

extension MapPlot {
    /// Maps of the first gridded variable (the last two dimensions of `VAR[…]` as rows and columns, north up when
    /// the first of them ascends; any leading dimension such as a level at its first value) for one forecast: truth,
    /// forecast and their difference at the first, middle and last step. Nil when no variable has two grid dimensions.
    public static func forecast(model: Model, case fc: ForecastCase, forecast: [Double], horizon: Int) -> MapPlot? {
        guard let layout = GridLayout.parse(model.metadata.variables),
              let v = layout.variables.first(where: { $0.dimensions.count >= 2 }) else { return nil }
        let n = model.outputCount
        let yDim = v.dimensions[v.dimensions.count - 2], xDim = v.dimensions[v.dimensions.count - 1]
        let ny = yDim.labels.count, nx = xDim.labels.count
        let flip = (yDim.values.map { $0.count > 1 && $0[1] > $0[0] }) ?? false
        func field(_ row: ArraySlice<Double>) -> [Double] {
            var out = [Double](repeating: .nan, count: ny * nx)
            for i in 0..<ny {
                for j in 0..<nx { out[(flip ? ny - 1 - i : i) * nx + j] = row[row.startIndex + v.columns[i * nx + j]] }
            }
            return out
        }
        var steps = [1]
        if horizon >= 6 { steps.append(horizon / 2) }
        if horizon > 1 { steps.append(horizon) }
        let dt = model.metadata.dt
        let lead: (Int) -> String = { s in dt >= 3600 && (Double(s) * dt).truncatingRemainder(dividingBy: 3600) == 0 ? "\(Int(Double(s) * dt / 3600)) h" : "step \(s)" }
        var fields: [(step: Int, truth: [Double]?, forecast: [Double])] = []
        for s in steps {
            let f = field(forecast[((s - 1) * n)..<(s * n)])
            let t = fc.truth.count >= s * n ? field(fc.truth[((s - 1) * n)..<(s * n)]) : nil
            fields.append((s, t, f))
        }
        let all = fields.flatMap { ($0.truth ?? []) + $0.forecast }.filter(\.isFinite)
        let lo = all.min() ?? 0, hi = all.max() ?? 1
        let differences = fields.compactMap { x in x.truth.map { t in zip(x.forecast, t).map { $0 - $1 } } }
        let bound = differences.joined().filter(\.isFinite).map(abs).max() ?? 1
        var rows: [[Panel]] = []
        for (k, x) in fields.enumerated() {
            var row: [Panel] = []
            if let t = x.truth { row.append(Panel(title: "truth, \(lead(x.step))", values: t, rows: ny, columns: nx, lo: lo, hi: hi)) }
            row.append(Panel(title: "forecast, \(lead(x.step)) ahead", values: x.forecast, rows: ny, columns: nx, lo: lo, hi: hi))
            if x.truth != nil {
                let d = differences[fields[..<k].filter { $0.truth != nil }.count]
                row.append(Panel(title: "forecast − truth", values: d, rows: ny, columns: nx, lo: -bound, hi: bound, diverging: true))
            }
            rows.append(row)
        }
        let leading = v.dimensions.dropLast(2).map { "\($0.name)=\($0.labels[0])" }
        let name = v.name + (leading.isEmpty ? "" : " at " + leading.joined(separator: ", ")) + " (\(yDim.name) × \(xDim.name))"
        return MapPlot(title: "\(name): forecast from origin row \(fc.origin) of trajectory \(fc.episode)", rows: rows)
    }
}
