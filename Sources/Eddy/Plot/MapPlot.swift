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
        /// Coordinate labels of the rows (top to bottom) and columns, e.g. latitudes and longitudes; a few are drawn
        /// as ticks beside and below the map.
        public var rowLabels: [String]? = nil
        public var columnLabels: [String]? = nil
        /// What the colour bar measures, e.g. "q (data units)".
        public var unit: String? = nil

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
        let rowHeight = mapHeight + 96
        let left = 58.0, gap = 64.0
        let width = left + Double(columns) * (panelWidth + gap)
        let height = 50 + Double(rows.count) * rowHeight
        var s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"sans-serif\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(Int(width / 2))\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">\(LinePlot.xmlEscape(title))</text>\n"
        for (r, row) in rows.enumerated() {
            for (c, panel) in row.enumerated() {
                let x0 = left + Double(c) * (panelWidth + gap), y0 = 50 + Double(r) * rowHeight
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
                s += "<rect x=\"\(LinePlot.fmt(x0))\" y=\"\(LinePlot.fmt(y0 + 20))\" width=\"\(LinePlot.fmt(panelWidth))\" height=\"\(LinePlot.fmt(mapHeight))\" fill=\"none\" stroke=\"#333\" stroke-width=\"0.8\"/>\n"
                // Coordinate ticks: about five of each, at cell centres.
                func picks(_ count: Int) -> [Int] {
                    let k = min(count, 5)
                    return k <= 1 ? [0] : (0..<k).map { Int((Double($0) * Double(count - 1) / Double(k - 1)).rounded()) }
                }
                s += "<g font-size=\"10\" fill=\"#333\">\n"
                if let labels = panel.rowLabels, labels.count == panel.rows {
                    for i in picks(panel.rows) {
                        let y = y0 + 20 + (Double(i) + 0.5) * ch
                        s += "<line x1=\"\(LinePlot.fmt(x0 - 4))\" y1=\"\(LinePlot.fmt(y))\" x2=\"\(LinePlot.fmt(x0))\" y2=\"\(LinePlot.fmt(y))\" stroke=\"#333\"/>"
                        s += "<text class=\"row-tick\" x=\"\(LinePlot.fmt(x0 - 6))\" y=\"\(LinePlot.fmt(y))\" text-anchor=\"end\" dominant-baseline=\"middle\">\(LinePlot.xmlEscape(labels[i]))</text>\n"
                    }
                }
                if let labels = panel.columnLabels, labels.count == panel.columns {
                    for j in picks(panel.columns) {
                        let x = x0 + (Double(j) + 0.5) * cw
                        s += "<line x1=\"\(LinePlot.fmt(x))\" y1=\"\(LinePlot.fmt(y0 + 20 + mapHeight))\" x2=\"\(LinePlot.fmt(x))\" y2=\"\(LinePlot.fmt(y0 + 24 + mapHeight))\" stroke=\"#333\"/>"
                        s += "<text class=\"column-tick\" x=\"\(LinePlot.fmt(x))\" y=\"\(LinePlot.fmt(y0 + 35 + mapHeight))\" text-anchor=\"middle\">\(LinePlot.xmlEscape(labels[j]))</text>\n"
                    }
                }
                s += "</g>\n"
                // Colour bar with its ends and what it measures.
                let barY = y0 + 44 + mapHeight
                for k in 0..<50 {
                    let v = panel.lo + (panel.hi - panel.lo) * (Double(k) + 0.5) / 50
                    s += "<rect x=\"\(LinePlot.fmt(x0 + Double(k) * panelWidth / 50))\" y=\"\(LinePlot.fmt(barY))\" width=\"\(LinePlot.fmt(panelWidth / 50 + 0.3))\" height=\"8\" fill=\"\(MapPlot.colour(v, lo: panel.lo, hi: panel.hi, diverging: panel.diverging))\"/>\n"
                }
                s += "<text x=\"\(LinePlot.fmt(x0))\" y=\"\(LinePlot.fmt(barY + 22))\" font-size=\"11\">\(Format.general(panel.lo, 4))</text>\n"
                s += "<text x=\"\(LinePlot.fmt(x0 + panelWidth))\" y=\"\(LinePlot.fmt(barY + 22))\" font-size=\"11\" text-anchor=\"end\">\(Format.general(panel.hi, 4))</text>\n"
                if let unit = panel.unit {
                    s += "<text class=\"unit\" x=\"\(LinePlot.fmt(x0 + panelWidth / 2))\" y=\"\(LinePlot.fmt(barY + 22))\" font-size=\"11\" text-anchor=\"middle\">\(LinePlot.xmlEscape(unit))</text>\n"
                }
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
    /// `level` picks the leading dimensions' entry (e.g. a pressure level) by its label or its index (default: the
    /// first); `unit` labels the colour bars.
    public static func forecast(model: Model, case fc: ForecastCase, forecast: [Double], horizon: Int, level: String? = nil,
                                unit: String? = nil) throws -> MapPlot? {
        guard let layout = GridLayout.parse(model.metadata.variables),
              let v = layout.variables.first(where: { $0.dimensions.count >= 2 }) else {
            try checkLevel(level, model: model)
            return nil
        }
        let n = model.outputCount
        let yDim = v.dimensions[v.dimensions.count - 2], xDim = v.dimensions[v.dimensions.count - 1]
        let ny = yDim.labels.count, nx = xDim.labels.count
        let flip = (yDim.values.map { $0.count > 1 && $0[1] > $0[0] }) ?? false
        let (block, entries) = try levelBlock(of: v, level: level)
        func field(_ row: ArraySlice<Double>) -> [Double] {
            var out = [Double](repeating: .nan, count: ny * nx)
            for i in 0..<ny {
                for j in 0..<nx { out[(flip ? ny - 1 - i : i) * nx + j] = row[row.startIndex + v.columns[block * ny * nx + i * nx + j]] }
            }
            return out
        }
        let rowLabels = (flip ? Array(yDim.labels.reversed()) : yDim.labels).map { degrees($0, yDim.name) }
        let columnLabels = xDim.labels.map { degrees($0, xDim.name) }
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
            let measured = "\(v.name) (\(unit ?? "data units"))"
            func panel(_ title: String, _ values: [Double], _ lo: Double, _ hi: Double, diverging: Bool = false, unit: String) -> Panel {
                var p = Panel(title: title, values: values, rows: ny, columns: nx, lo: lo, hi: hi, diverging: diverging)
                (p.rowLabels, p.columnLabels, p.unit) = (rowLabels, columnLabels, unit)
                return p
            }
            if let t = x.truth { row.append(panel("truth, \(lead(x.step))", t, lo, hi, unit: measured)) }
            row.append(panel("forecast, \(lead(x.step)) ahead", x.forecast, lo, hi, unit: measured))
            if x.truth != nil {
                let d = differences[fields[..<k].filter { $0.truth != nil }.count]
                row.append(panel("forecast − truth", d, -bound, bound, diverging: true, unit: "Δ\(measured)"))
            }
            rows.append(row)
        }
        let name = v.name + (entries[block].isEmpty ? "" : " at " + entries[block]) + " (\(yDim.name) × \(xDim.name))"
        let origin = model.metadata.shaping?.timesAreDates == true && fc.time != nil ? TimeParser.iso(fc.time!) : "row \(fc.origin)"
        return MapPlot(title: "\(name): forecast from \(origin) of trajectory \(fc.episode)", rows: rows)
    }

    /// Refuses a `--plot-level` the model's first gridded field does not have (before any output is written).
    public static func checkLevel(_ level: String?, model: Model) throws {
        guard let level else { return }
        guard let v = GridLayout.parse(model.metadata.variables)?.variables.first(where: { $0.dimensions.count >= 2 }) else {
            throw EddyError("--plot-level applies to gridded fields (variables VAR[DIM=VALUE:…]); this model has none")
        }
        _ = try levelBlock(of: v, level: level)
    }

    /// The leading dimensions (levels) flattened: the chosen entry's index (its block of rows × columns), and every
    /// entry's name ("level=500").
    static func levelBlock(of v: GridLayout.Variable, level: String?) throws -> (block: Int, entries: [String]) {
        let leadingDims = Array(v.dimensions.dropLast(2))
        var entries: [String] = [""]
        for d in leadingDims { entries = entries.flatMap { e in d.labels.map { e.isEmpty ? "\(d.name)=\($0)" : e + ", \(d.name)=\($0)" } } }
        guard let level else { return (0, entries) }
        let grid = v.dimensions.suffix(2).map(\.name).joined(separator: " × ")
        if leadingDims.isEmpty { throw EddyError("--plot-level \(level): \(v.name) has no level dimension (only \(grid))") }
        let values = entries.map { $0.split(separator: "=").last.map(String.init) ?? $0 }
        if let i = values.firstIndex(of: level) ?? entries.firstIndex(of: level) { return (i, entries) }
        if let i = Int(level), (0..<entries.count).contains(i) { return (i, entries) }
        throw EddyError("--plot-level \(level): not a level of \(v.name); its levels are \(entries.prefix(12).joined(separator: "; "))\(entries.count > 12 ? "; …" : "") (or an index 0…\(entries.count - 1))")
    }

    /// A latitude or longitude label with its hemisphere (45°N, 120°W); other coordinates as they are.
    static func degrees(_ label: String, _ dimension: String) -> String {
        guard let v = Double(label) else { return label }
        let d = dimension.lowercased()
        let shown = LinePlot.Axis.fixed(abs(v), decimals: 1)
        if d.hasPrefix("lat") { return v == 0 ? "0°" : "\(shown)°\(v > 0 ? "N" : "S")" }
        if d.hasPrefix("lon") {
            let w = v > 180 ? v - 360 : v
            return w == 0 || abs(w) == 180 ? "\(LinePlot.Axis.fixed(abs(w), decimals: 1))°" : "\(LinePlot.Axis.fixed(abs(w), decimals: 1))°\(w > 0 ? "E" : "W")"
        }
        return label
    }
}
