import Foundation
import Testing
@testable import Eddy
#if canImport(FoundationXML)
import FoundationXML
#endif

/// Collects element names and text, and whether parsing succeeded.
private final class PlotSVGCollector: NSObject, XMLParserDelegate {
    var elements: [String] = []
    var text = ""
    func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
                qualifiedName qName: String?, attributes attributeDict: [String: String] = [:]) {
        elements.append(elementName)
    }
    func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }
}

/// Whether the text has a "nan" or "inf" word (as a formatted non-finite number would), ignoring e.g. "dominant".
private func plotSVGHasNonFiniteWord(_ svg: String) -> Bool {
    svg.lowercased().split { !$0.isLetter }.contains { $0 == "nan" || $0 == "inf" || $0 == "infinity" }
}

private func parsePlotSVG(_ svg: String) -> (ok: Bool, collector: PlotSVGCollector) {
    let parser = XMLParser(data: Data(svg.utf8))
    let collector = PlotSVGCollector()
    parser.delegate = collector
    let ok = parser.parse()
    return (ok, collector)
}

@Suite("SVG line plot")
struct PlotTests {
    private func samplePlot() -> LinePlot {
        let t = (0..<200).map { Double($0) * 0.05 }
        var y = t.map { sin($0) }
        y[50] = .nan
        y[51] = .infinity
        return LinePlot(title: "Lorenz <x & y> forecast", panels: [
            LinePlot.Panel(title: "x", xLabel: "time", yLabel: "x", series: [
                .init(name: "truth", x: t, y: t.map { sin($0) }),
                .init(name: "model \"A\" <rnn>", x: t, y: y, dashed: true),
            ]),
            LinePlot.Panel(title: "error", xLabel: "step", yLabel: "error", series: [
                .init(name: "normalised error", x: t, y: t.map { exp($0) * 1e-6 }, color: "#123456"),
                .init(name: "with zeros", x: [0, 1, 2, 3], y: [0, -1, 1e-3, 1e-2]),
            ], logY: true, markers: true),
        ])
    }

    @Test func rendersWellFormedSVG() {
        let svg = samplePlot().render()
        let (ok, collector) = parsePlotSVG(svg)
        #expect(ok)
        #expect(collector.elements.first == "svg")
        #expect(collector.elements.contains("path"))
        #expect(collector.elements.contains("circle"))
        #expect(collector.text.contains("Lorenz <x & y> forecast"))
        #expect(collector.text.contains("truth"))
        #expect(collector.text.contains("model \"A\" <rnn>"))
        #expect(collector.text.contains("normalised error"))
    }

    @Test func escapesAndHasNoNonFiniteNumbers() {
        let svg = samplePlot().render()
        #expect(svg.contains("Lorenz &lt;x &amp; y&gt; forecast"))
        #expect(!svg.contains("<x & y>"))
        #expect(!plotSVGHasNonFiniteWord(svg))
        #expect(svg.contains("stroke-dasharray"))
        #expect(svg.contains("#123456"))
        #expect(svg.contains("#0072B2"))   // palette by index
        // The NaN breaks the dashed model line into two subpaths.
        let paths = svg.components(separatedBy: "<path d=\"").dropFirst().map { $0.prefix { $0 != "\"" } }
        #expect(paths.contains { $0.filter { $0 == "M" }.count == 2 })
        // Coordinates carry at most 2 decimals.
        for d in paths {
            for number in d.split(whereSeparator: { "ML,".contains($0) }) {
                if let dot = number.firstIndex(of: ".") { #expect(number.distance(from: dot, to: number.endIndex) <= 3) }
            }
        }
    }

    /// Blown-up candidates (40 and 1e15 beside scores near 0.5) must not flatten the rest: the axis stops a decade
    /// above the best, and the count of scores above it is given; scores within two decades keep the whole span.
    @Test func blownUpScoresAreCutFromTheLogAxis() {
        let capped = LinePlot.cappedLogRange([0.52, 0.5, 0.61, 1e15, 40, .infinity, .nan, 0])
        #expect(capped?.range == 0.25...5 && capped?.above == 2)
        #expect(LinePlot.cappedLogRange([0.5, 0.6, 30]) == nil)
        #expect(LinePlot.cappedLogRange([]) == nil)
        var panel = LinePlot.Panel(title: "t", xLabel: "x", yLabel: "y", series: [LinePlot.Series(name: "s", x: [1, 2, 3], y: [0.5, 0.6, 1e15])], logY: true)
        panel.yRange = capped!.range
        let svg = LinePlot(title: "p", panels: [panel]).render()
        #expect(!svg.contains(">1e+15<") && !svg.contains(">100<") && svg.contains(">1<"), "the axis labels run to the cap, not to the blown-up score")
    }

    @Test func tickLabels() {
        let svg = samplePlot().render()
        let (_, collector) = parsePlotSVG(svg)
        // Linear y axis for sin: −1 … 1 in steps of 0.5; log axis: decades from 1e-06 up.
        for label in ["-1", "-0.5", "0", "0.5", "1", "2", "4", "1e-06", "0.01"] {
            #expect(collector.text.contains(label), "missing tick label \(label)")
        }
        #expect(!svg.contains("0000000"))
        #expect(LinePlot.Axis.tickLabel(0.1 + 0.2, step: 0.1) == "0.3")
        #expect(LinePlot.Axis.tickLabel(3 * 0.1, step: 0.1) == "0.3")
        #expect(LinePlot.Axis.tickLabel(2, step: 1) == "2")
        #expect(LinePlot.Axis.tickLabel(1e-6, step: 1e-6) == "1e-06")
        #expect(LinePlot.Axis.tickLabel(2.5e7, step: 5e6) == "2.5e+07")
        #expect(LinePlot.Axis.tickLabel(-0.25, step: 0.05) == "-0.25")
        #expect(LinePlot.Axis.tickLabel(1e-17, step: 0.2) == "0")
        #expect(LinePlot.Axis.niceStep(0.37) == 0.5)
        #expect(LinePlot.Axis.niceStep(130) == 100)
        #expect(LinePlot.Axis.niceStep(2.4) == 2)
    }

    @Test func constantAndEmptyPanels() {
        let plot = LinePlot(title: "edge cases", panels: [
            .init(title: "constant", xLabel: "t", yLabel: "y", series: [.init(name: "c", x: [0, 1, 2], y: [5, 5, 5])]),
            .init(title: "zero", xLabel: "t", yLabel: "y", series: [.init(name: "z", x: [1, 1], y: [0, 0])]),
            .init(title: "empty", xLabel: "t", yLabel: "y", series: []),
            .init(title: "all missing", xLabel: "t", yLabel: "y", series: [.init(name: "n", x: [0, 1], y: [.nan, .nan])], logY: true),
            .init(title: "log nonpositive", xLabel: "t", yLabel: "y", series: [.init(name: "z", x: [0, 1], y: [0, -2])], logY: true),
        ])
        let svg = plot.render()
        let (ok, collector) = parsePlotSVG(svg)
        #expect(ok)
        #expect(!plotSVGHasNonFiniteWord(svg))
        #expect(collector.text.contains("5"))   // the constant gets an axis around it
        #expect(collector.text.contains("4.6") || collector.text.contains("4.5"))
        #expect(collector.text.contains("empty"))
        // Empty plot with no panels is still a document.
        #expect(parsePlotSVG(LinePlot(title: "", panels: []).render()).ok)
    }
}

@Suite("map levels and coordinate labels")
struct MapLevelTests {
    @Test func levelsAreFoundByValueOrIndex() throws {
        var names: [String] = []
        for level in ["500", "850"] { for lat in ["-45", "45"] { for lon in ["0", "90", "270"] { names.append("q[level=\(level):lat=\(lat):lon=\(lon)]") } } }
        let layout = try #require(GridLayout.parse(names))
        let v = try #require(layout.variables.first)
        #expect(try MapPlot.levelBlock(of: v, level: nil).block == 0)
        #expect(try MapPlot.levelBlock(of: v, level: "850").block == 1)
        #expect(try MapPlot.levelBlock(of: v, level: "level=500").block == 0)
        #expect(try MapPlot.levelBlock(of: v, level: "1").block == 1)
        #expect(throws: EddyError.self) { try MapPlot.levelBlock(of: v, level: "700") }
        #expect(MapPlot.degrees("45", "lat") == "45°N" && MapPlot.degrees("-45", "latitude") == "45°S")
        #expect(MapPlot.degrees("270", "lon") == "90°W" && MapPlot.degrees("90", "lon") == "90°E" && MapPlot.degrees("0", "lon") == "0°")
        #expect(MapPlot.degrees("500", "level") == "500")
    }

    /// A log x axis over less than three decades has 1-2-5 ticks; a fixed y range clips the line, never the axis.
    @Test func logAxesAndRanges() {
        let axis = LinePlot.Axis.logarithmic(lo: 10, hi: 400, exact: true)
        #expect(axis.ticks.map(\.label) == ["10", "20", "50", "100", "200"])
        var panel = LinePlot.Panel(title: "p", xLabel: "x", yLabel: "y", series: [.init(name: "s", x: [1, 2, 3, 4], y: [1, 2, 1e200, -1e200])])
        panel.yRange = 0...3
        let svg = LinePlot(title: "t", panels: [panel]).render()
        #expect(!svg.contains("e+200") && svg.contains(">3</text>"))
    }
}
