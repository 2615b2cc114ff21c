import Eddy
import EddyTestSupport
import Foundation
import Testing

/// A PNG's width and height from its IHDR chunk (nil for anything that is not a PNG).
func pngSize(_ data: Data) -> (width: Int, height: Int)? {
    let b = [UInt8](data.prefix(24))
    guard b.count == 24, b[0..<8] == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], b[12..<16] == [0x49, 0x48, 0x44, 0x52] else { return nil }
    func be(_ i: Int) -> Int { Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3]) }
    return (be(16), be(20))
}

/// The numbers of the y-axis tick labels (right-aligned labels left of the axis) in the first panel of a LinePlot SVG.
func firstPanelYTicks(_ svg: String) -> [Double] {
    let panels = svg.components(separatedBy: "<clipPath id=\"clip")
    guard panels.count > 1 else { return [] }
    let first = panels[1]
    var out: [Double] = []
    for piece in first.components(separatedBy: "text-anchor=\"end\" dominant-baseline=\"middle\">").dropFirst() {
        if let end = piece.firstIndex(of: "<"), let v = Double(piece[..<end]) { out.append(v) }
    }
    return out
}

/// Every demo plot rendered to PNG by rsvg-convert (librsvg2-bin, installed by Scripts/setup.sh) and checked: a PNG of
/// a sensible size, and content — the axis range that excludes a diverged part, the mark at the step it diverged,
/// the sweep's chosen model, the unit circle, the bounds inside the frame, map ticks and units. Nothing is kept.
@Suite("plots rendered to PNG", .serialized)
struct PlotRenderTests {
    static let rsvg = ["/usr/bin/rsvg-convert", "/usr/local/bin/rsvg-convert"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Renders an SVG file to PNG; returns the PNG's size.
    func render(_ svg: String, minWidth: Int = 500, minHeight: Int = 300, sourceLocation: SourceLocation = #_sourceLocation) throws -> (width: Int, height: Int)? {
        guard let rsvg = Self.rsvg else {
            Issue.record("rsvg-convert is missing: run Scripts/setup.sh (Debian package librsvg2-bin)", sourceLocation: sourceLocation)
            return nil
        }
        let png = svg + ".png"
        let r = try runProcess(rsvg, [svg, "-o", png])
        #expect(r.status == 0, "rsvg-convert \(svg): \(r.stderr)", sourceLocation: sourceLocation)
        #expect(!r.stderr.lowercased().contains("error"), "\(r.stderr)", sourceLocation: sourceLocation)
        let data = try Data(contentsOf: URL(fileURLWithPath: png))
        let size = pngSize(data)
        #expect(size != nil, "\(png) is not a PNG", sourceLocation: sourceLocation)
        if let size { #expect(size.width >= minWidth && size.height >= minHeight, "\(png): \(size)", sourceLocation: sourceLocation) }
        #expect(data.count > 10_000, "\(png): \(data.count) bytes (a blank image?)", sourceLocation: sourceLocation)
        try FileManager.default.removeItem(atPath: png)
        return size
    }

    @Test func forecastSweepSpectrumAndControlPlots() throws {
        let dir = try scratch("plots")
        #expect(try eddy(["generate", "vanderpol", "--trajectories", "30", "--steps", "150", "--out", dir + "/d.csv"]).status == 0)
        // Forecast: truth, forecast and persistence, a legend beside the panels.
        #expect(try eddy(["train", "--data", dir + "/d.csv", "--width", "40", "--form", "koopman", "--out", dir + "/k.st"]).status == 0)
        let f = try eddy(["forecast", "--model", dir + "/k.st", "--data", dir + "/d.csv", "--horizon", "60", "--origins", "20",
                          "--out", dir + "/f.csv", "--plot", dir + "/f.svg", "--plot-index", "2", "--units", "x=m,y=m/s"])
        #expect(f.status == 0, "\(f.stderr)")
        let fsvg = try String(contentsOfFile: dir + "/f.svg", encoding: .utf8)
        #expect(fsvg.contains("persistence") && fsvg.contains("x (m)") && fsvg.contains("y (m/s)") && fsvg.contains("trajectory 1"))
        _ = try render(dir + "/f.svg")
        // Units stored by train --units label the axes without forecast --units; an unknown name is refused.
        #expect(try eddy(["train", "--data", dir + "/d.csv", "--width", "20", "--units", "x=m", "--out", dir + "/u.st"]).status == 0)
        #expect(try ModelFile.read(dir + "/u.st").metadata.units == ["x": "m"])
        let u = try eddy(["forecast", "--model", dir + "/u.st", "--data", dir + "/d.csv", "--horizon", "5", "--out", dir + "/u.csv", "--plot", dir + "/u.svg"])
        #expect(u.status == 0, "\(u.stderr)")
        let usvg = try String(contentsOfFile: dir + "/u.svg", encoding: .utf8)
        #expect(usvg.contains("x (m)") && usvg.contains("y (data units)"))
        let badUnit = try eddy(["train", "--data", dir + "/d.csv", "--width", "20", "--units", "z=m", "--out", dir + "/v.st"])
        #expect(badUnit.status == 1 && badUnit.stderr.contains("--units: 'z'") && !FileManager.default.fileExists(atPath: dir + "/v.st"))
        // Sweep: log width axis at the widths tried, the chosen model ringed.
        let s = try eddy(["sweep", "--data", dir + "/d.csv", "--validation-fraction", "0.25", "--widths", "10,20,40,80", "--ridges", "1e-10,1e-6",
                          "--solver", "auto", "--horizon", "20", "--plot", dir + "/s.svg", "--json"])
        #expect(s.status == 0, "\(s.stderr)")
        let ssvg = try String(contentsOfFile: dir + "/s.svg", encoding: .utf8)
        #expect(ssvg.contains("chosen:") && ssvg.contains("class=\"highlight\"") && ssvg.contains("log scale"))
        for w in ["10", "20", "40", "80"] { #expect(ssvg.contains(">\(w)</text>"), "width tick \(w)") }
        _ = try render(dir + "/s.svg")
        // Spectrum: the unit circle and every eigenvalue.
        let sp = try eddy(["spectrum", "--model", dir + "/k.st", "--plot", dir + "/e.svg", "--json"])
        #expect(sp.status == 0, "\(sp.stderr)")
        let esvg = try String(contentsOfFile: dir + "/e.svg", encoding: .utf8)
        #expect(esvg.contains("class=\"unit-circle\""))
        let count = try (JSONSerialization.jsonObject(with: Data(sp.stdout.utf8)) as? [String: Any])?["eigenvalues"] as? [Any]
        #expect(esvg.components(separatedBy: "class=\"eigenvalue\"").count + esvg.components(separatedBy: "class=\"growing\"").count - 2 == count?.count)
        _ = try render(dir + "/e.svg", minWidth: 400, minHeight: 400)
        // Control: the bound lines sit inside the frame (the axis reaches past ±2).
        #expect(try eddy(["generate", "forced-vanderpol", "--trajectories", "100", "--steps", "40", "--out", dir + "/c.csv"]).status == 0)
        #expect(try eddy(["train", "--data", dir + "/c.csv", "--inputs", "u", "--width", "40", "--form", "koopman", "--out", dir + "/c.st"]).status == 0)
        let c = try eddy(["control", "--model", dir + "/c.st", "--system", "forced-vanderpol", "--reference", "sine:1,5", "--steps", "100",
                          "--umin=-2", "--umax", "2", "--controller", "eddy-lqr,eddy-mpc", "--plot", dir + "/c.svg"])
        #expect(c.status == 0, "\(c.stderr)")
        let csvg = try String(contentsOfFile: dir + "/c.svg", encoding: .utf8)
        let inputPanel = csvg.components(separatedBy: "<clipPath id=\"clip").last ?? ""
        let ticks = inputPanel.components(separatedBy: "text-anchor=\"end\" dominant-baseline=\"middle\">").dropFirst()
            .compactMap { p in p.firstIndex(of: "<").flatMap { Double(p[..<$0]) } }
        #expect((ticks.max() ?? 0) > 2 && (ticks.min() ?? 0) < -2, "input axis \(ticks): the bounds ±2 would sit on the frame")
        _ = try render(dir + "/c.svg")
    }

    /// A forecast that diverges (noisy weather data, too small a ridge): the mark at its step, and the y axis kept
    /// to the finite part (the values it reached afterwards are orders of magnitude outside).
    @Test func divergedForecastKeepsTheAxisToTheFinitePart() throws {
        let dir = try scratch("plots")
        try trainWeatherModel(ridge: "1e-6", to: dir + "/w.st")
        let args = ["forecast", "--model", dir + "/w.st", "--data", weatherData, "--from", "2013-11-01", "--horizon", "168", "--origins", "every:168"]
        let j = try eddy(args + ["--out", dir + "/f.csv", "--json"])
        #expect(j.status == 0, "\(j.stderr)")
        let diverged = try (JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as? [String: Any])?["diverged"] as? [[String: Any]] ?? []
        try #require(!diverged.isEmpty, "the fixture no longer diverges")
        // The number of the first diverged forecast among those written (rows of the CSV, 168 per forecast).
        let rows = try String(contentsOfFile: dir + "/f.csv", encoding: .utf8).split(separator: "\n").dropFirst()
        let firstBad = try #require(rows.firstIndex { $0.hasSuffix(",diverged") }) - 1
        let index = firstBad / 168 + 1
        let p = try eddy(args + ["--out", dir + "/g.csv", "--plot", dir + "/w.svg", "--plot-index", "\(index)", "--units", "temp=°F,humid=%,wind_speed=mph,pressure=mbar"])
        #expect(p.status == 0, "\(p.stderr)")
        let svg = try String(contentsOfFile: dir + "/w.svg", encoding: .utf8)
        #expect(svg.contains("diverged at step") && svg.contains("class=\"mark\""))
        #expect(svg.contains("temp (°F)") && svg.contains("pressure (mbar)") && svg.contains("origin 2013-"))
        // The forecast's values in the CSV after the divergence are far outside what the axis shows.
        let values = rows.dropFirst((index - 1) * 168).prefix(168).compactMap { $0.split(separator: ",").dropFirst(4).first.flatMap { Double($0) } }
        let ticks = firstPanelYTicks(svg)
        #expect(ticks.count >= 3)
        let shown = (ticks.min() ?? 0)...(ticks.max() ?? 0)
        #expect(values.contains { !shown.contains($0) }, "the diverged part should be outside the axis \(shown)")
        #expect(shown.upperBound - shown.lowerBound < 1000, "temperature axis \(shown) is not kept to the finite part")
        _ = try render(dir + "/w.svg", minWidth: 600, minHeight: 1000)
    }

    /// Maps: latitude and longitude ticks, colour bars with units, a level other than the first.
    @Test func mapsHaveCoordinatesUnitsAndLevels() throws {
        let dir = try scratch("plots")
        #expect(try eddy(["generate", "tracer", "--steps", "300", "--lat", "8", "--lon", "16", "--out", dir + "/q.nc"]).status == 0)
        #expect(try eddy(["train", "--data", dir + "/q.nc", "--width", "20", "--pca", "5", "--out", dir + "/g.st"]).status == 0)
        let f = try eddy(["forecast", "--model", dir + "/g.st", "--data", dir + "/q.nc", "--horizon", "6", "--origins", "200",
                          "--out", dir + "/f.nc", "--plot", dir + "/m.svg", "--units", "q=g/kg"])
        #expect(f.status == 0, "\(f.stderr)")
        let svg = try String(contentsOfFile: dir + "/m.svg", encoding: .utf8)
        #expect(svg.contains("class=\"row-tick\"") && svg.contains("°N") && svg.contains("°S") && svg.contains("°E"))
        #expect(svg.contains("q (g/kg)") && svg.contains("Δq (g/kg)") && svg.contains("2000-01-"))
        _ = try render(dir + "/m.svg")
        // This field has no level dimension: --plot-level is refused before anything is written.
        let bad = try eddy(["forecast", "--model", dir + "/g.st", "--data", dir + "/q.nc", "--horizon", "6", "--origins", "200",
                            "--out", dir + "/h.nc", "--plot", dir + "/h.svg", "--plot-level", "1"])
        #expect(bad.status == 1 && bad.stderr.contains("no level dimension"), "\(bad.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/h.nc") && !FileManager.default.fileExists(atPath: dir + "/h.svg"))
    }
}
