import EddyTestSupport
import Foundation
import Testing
@testable import Eddy

private typealias B = ClassicNetCDFBuilder
private func write(_ b: B, _ path: String) throws { try Data(b.bytes()).write(to: URL(fileURLWithPath: path)) }

/// A field `v(T, y, x)` on a 2 × 3 grid with `steps` times: `v = 100·step + 10·i + j`; the time dimension and variable
/// are named and attributed as each case needs (`timeVar` nil: no time variable; `record`: the time is unlimited).
private func field(timeDim: String = "time", timeVar: String? = "time", times: [Double] = [0, 1, 2, 3],
                   timeAttributes: [(String, String)] = [("units", "hours since 2000-01-01 00:00:00")], record: Bool = true,
                   dims: (String, String) = ("lat", "lon"), coordinates: [B.Variable]? = nil, fieldAttributes: [(String, String)] = []) -> B {
    let steps = times.count
    var v: [Double] = []
    for n in 0..<steps { for i in 0..<2 { for j in 0..<3 { v.append(Double(100 * n + 10 * i + j)) } } }
    var vars = coordinates ?? [
        B.Variable(dims.0, [1], values: [10, 20], attributes: [("units", "degrees_north")]),
        B.Variable(dims.1, [2], values: [0, 5, 10], attributes: [("units", "degrees_east")]),
    ]
    if let timeVar { vars.append(B.Variable(timeVar, [0], values: times, attributes: timeAttributes)) }
    vars.append(B.Variable("v", [0, 1, 2], values: v, attributes: fieldAttributes))
    return B(records: record ? steps : 0, dimensions: [(timeDim, record ? 0 : steps), (dims.0, 2), (dims.1, 3)], variables: vars)
}

private func reader(_ path: String, _ configure: (inout DataSpec) -> Void = { _ in }) throws -> NetCDFReader {
    var s = DataSpec(path: path)
    configure(&s)
    return try NetCDFReader(spec: s)
}

/// Real-world time and coordinate conventions (issue #14): each case read as documented, or refused by name.
@Suite("NetCDF conventions: time axes, non-CF units, irregular steps, coordinates by attribute")
struct NetCDFConventionTests {
    @Test func timeIsFoundByNameByCFAttributesOrByOption() throws {
        let dir = try scratch("eddy-nc-time")
        // ERA5's current name.
        try write(field(timeDim: "valid_time", timeVar: "valid_time", record: false), dir + "/valid.nc")
        let valid = try reader(dir + "/valid.nc")
        #expect(valid.steps == 4 && valid.timesAreDates && valid.warnings.isEmpty)
        // A fixed dimension 't' whose variable says CF axis T (and one with standard_name time).
        for attribute in [("axis", "T"), ("standard_name", "time")] {
            try write(field(timeDim: "t", timeVar: "date", timeAttributes: [attribute, ("units", "days since 2000-01-01")], record: false), dir + "/cf.nc")
            let cf = try reader(dir + "/cf.nc")
            #expect(cf.steps == 4 && cf.timesAreDates && cf.variableNames.first == "v[lat=10:lon=0]", "\(cf.variableNames)")
            let blocks = try readAll(DataSpec(path: dir + "/cf.nc"))
            #expect(blocks.flatMap(\.times) == [0, 1, 2, 3].map { 946_684_800 + 86_400 * $0 })
        }
        // No convention: refused, naming --nc-time; with it, read.
        try write(field(timeDim: "step", timeVar: nil, record: false), dir + "/plain.nc")
        let m = refusal("no time") { _ = try reader(dir + "/plain.nc") }
        #expect(m.contains("no time dimension") && m.contains("--nc-time") && m.contains("step, lat, lon"), "\(m)")
        let named = try reader(dir + "/plain.nc") { $0.ncTime = "step" }
        #expect(named.steps == 4 && !named.timesAreDates)
        let wrong = refusal("bad --nc-time") { _ = try reader(dir + "/plain.nc") { $0.ncTime = "when" } }
        #expect(wrong.contains("--nc-time when: no dimension or variable of that name"), "\(wrong)")
    }

    @Test func referenceLessUnitsAreStepsWithAWarningNeverDates() throws {
        let dir = try scratch("eddy-nc-units")
        for units in ["Month", "days", "months since 1900-01-01"] {
            try write(field(timeAttributes: [("units", units)]), dir + "/u.nc")
            let r = try reader(dir + "/u.nc")
            #expect(!r.timesAreDates)
            #expect(r.warnings.count == 1 && r.warnings[0].contains("'time'") && r.warnings[0].contains(units) && r.warnings[0].contains("plain numbers"), "\(r.warnings)")
            let blocks = try readAll(DataSpec(path: dir + "/u.nc"))
            #expect(blocks.flatMap(\.times) == [0, 1, 2, 3])
            // Calendar inputs need dates: refused, naming the variable, its units and what to do.
            let m = refusal(units) { _ = try reader(dir + "/u.nc") { $0.calendar = [.doy] } }
            #expect(m.contains("calendar inputs need dates") && m.contains("'time'") && m.contains(units) && m.contains("--nc-time"), "\(m)")
        }
        // A non-standard calendar is not converted either.
        try write(field(timeAttributes: [("units", "days since 2000-01-01"), ("calendar", "360_day")]), dir + "/c.nc")
        let c = try reader(dir + "/c.nc")
        #expect(!c.timesAreDates && c.warnings.first?.contains("360_day") == true)
        // Units that say 'since' but cannot be read: refused with the variable and its units.
        try write(field(timeAttributes: [("units", "hours since yesterday")]), dir + "/bad.nc")
        let m = refusal("bad units") { _ = try reader(dir + "/bad.nc") }
        #expect(m.contains("cannot read the units 'hours since yesterday' of the time variable 'time'"), "\(m)")
    }

    @Test func irregularStepsAreReportedWithTheFirstJump() throws {
        let dir = try scratch("eddy-nc-steps")
        try write(field(times: [0, 1, 13, 25, 37], timeAttributes: [("units", "Month")]), dir + "/m.nc")
        let r = try reader(dir + "/m.nc")
        let w = r.warnings.first { $0.contains("are irregular") } ?? ""
        #expect(w.contains("3 of 4 steps differ from the step 1"), "\(r.warnings)")
        #expect(w.contains("3 of 4 steps differ from the step 1") && w.contains("3 skip whole steps") && w.contains("from 1 to 13"), "\(r.warnings)")
        // Off the grid: 0, 1, 2.5, 3.5.
        try write(field(times: [0, 1, 2.5, 3.5]), dir + "/o.nc")
        let o = try reader(dir + "/o.nc")
        #expect(o.warnings.count == 1 && o.warnings[0].contains("1 are not a whole number of steps"), "\(o.warnings)")
        // Regular: no warning.
        try write(field(), dir + "/r.nc")
        #expect(try reader(dir + "/r.nc").warnings.isEmpty)
    }

    /// Monthly means stamped on the 1st (28–31 days apart): irregular in seconds, with a hint; `ncMonths` steps by
    /// calendar month, also across one-month files, and a missing month is a gap.
    @Test func monthlyDatesStepByCalendarMonthWhenAsked() throws {
        let dir = try scratch("eddy-nc-months")
        // 2000-01-01 … 2000-06-01 as days since 2000-01-01.
        let days: [Double] = [0, 31, 60, 91, 121, 152]
        try write(field(times: days, timeAttributes: [("units", "days since 2000-01-01")]), dir + "/m.nc")
        let plain = try reader(dir + "/m.nc")
        #expect(plain.warnings.count == 1 && plain.warnings[0].contains("for monthly data pass --nc-months"), "\(plain.warnings)")
        let monthly = try reader(dir + "/m.nc") { $0.ncMonths = true }
        #expect(monthly.warnings.isEmpty && !monthly.timesAreDates, "\(monthly.warnings)")
        var spec = DataSpec(path: dir + "/m.nc")
        spec.ncMonths = true
        let blocks = try readAll(spec)
        #expect(blocks.count == 1 && blocks[0].times == [360, 361, 362, 363, 364, 365])
        // One file per month, March missing: two segments, in month order whatever the names.
        try FileManager.default.createDirectory(atPath: dir + "/archive", withIntermediateDirectories: true)
        for (k, d) in days.enumerated() where k != 2 {
            try write(field(times: [d], timeAttributes: [("units", "days since 2000-01-01")]), dir + "/archive/f\(5 - k).nc")
        }
        spec.path = dir + "/archive"
        let parts = try readAll(spec)
        #expect(parts.flatMap(\.times) == [360, 361, 363, 364, 365] && parts.filter(\.startsSegment).count == 2)
        // Two steps in one month, and times that are not dates: refused.
        try write(field(times: [0, 15, 31, 60], timeAttributes: [("units", "days since 2000-01-01")]), dir + "/twice.nc")
        let t = refusal("same month") { _ = try reader(dir + "/twice.nc") { $0.ncMonths = true } }
        #expect(t.contains("time steps 0 and 1 of 'time' (2000-01-01T00:00:00Z, 2000-01-16T00:00:00Z) are not in successive months"), "\(t)")
        try write(field(timeAttributes: [("units", "Month")]), dir + "/steps.nc")
        let n = refusal("not dates") { _ = try reader(dir + "/steps.nc") { $0.ncMonths = true } }
        #expect(n.contains("--nc-months steps by calendar month and needs CF dates") && n.contains("units 'Month'"), "\(n)")
    }

    @Test func coordinatesAreFoundByAttributeOrUnits() throws {
        let dir = try scratch("eddy-nc-coords")
        // lat(latitude), lon(longitude): names differ from the dimensions.
        let renamed = [B.Variable("lat", [1], values: [10, 20], attributes: [("units", "degrees_north")]),
                       B.Variable("lon", [2], values: [0, 5, 10], attributes: [("units", "degrees_east")])]
        try write(field(dims: ("latitude", "longitude"), coordinates: renamed), dir + "/a.nc")
        let a = try reader(dir + "/a.nc") { $0.ncBox = (15, 25, 4, 11) }
        #expect(a.variableNames == ["v[latitude=20:longitude=5]", "v[latitude=20:longitude=10]"], "\(a.variableNames)")
        // Dimensions y, x with auxiliary coordinates named by the field's `coordinates` attribute (no units).
        let aux = [B.Variable("nav_lat", [1], values: [10, 20]), B.Variable("nav_lon", [2], values: [0, 5, 10])]
        try write(field(dims: ("y", "x"), coordinates: aux, fieldAttributes: [("coordinates", "nav_lat nav_lon")]), dir + "/b.nc")
        let b = try reader(dir + "/b.nc")
        #expect(b.variableNames.prefix(2) == ["v[y=10:x=0]", "v[y=10:x=5]"], "\(b.variableNames)")
        // … and by units: a latitude and longitude, named lat/lon so boxes, area weights and scores find them.
        let units = [B.Variable("gphit", [1], values: [10, 20], attributes: [("units", "degrees_north")]),
                     B.Variable("glamt", [2], values: [0, 5, 10], attributes: [("units", "degrees_east")])]
        try write(field(dims: ("y", "x"), coordinates: units), dir + "/c.nc")
        let c = try reader(dir + "/c.nc") { $0.ncBox = (15, 25, 4, 11) }
        #expect(c.variableNames == ["v[lat=20:lon=5]", "v[lat=20:lon=10]"], "\(c.variableNames)")
        #expect(EOFBasis.latitude(of: c.variableNames[0]) == 20)
        #expect(c.attributes.coordinates["lat"]?["units"] == "degrees_north")
    }

    /// Several files are one dataset: joined in time order (not name order), gaps between files like any other.
    @Test func filesJoinAlongTimeInTimeOrder() throws {
        let dir = try scratch("eddy-nc-multi")
        try FileManager.default.createDirectory(atPath: dir + "/parts", withIntermediateDirectories: true)
        // Times 0…3, 4…7, 9…11 (a one-step gap before the last), named so that name order is not time order.
        let parts: [(String, [Double])] = [("c.nc", [0, 1, 2, 3]), ("a.nc", [4, 5, 6, 7]), ("b.nc", [9, 10, 11])]
        for (name, times) in parts { try write(field(times: times), dir + "/parts/" + name) }
        let all = try readAll(DataSpec(path: dir + "/parts"))
        #expect(all.flatMap(\.times) == ([0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11] as [Double]).map { 946_684_800 + 3600 * $0 })
        #expect(all.filter(\.startsSegment).count == 2)
        var filled = DataSpec(path: dir + "/parts")
        filled.fillGaps = 1
        let f = try readAll(filled)
        #expect(f.filter(\.startsSegment).count == 1 && f.reduce(0) { $0 + $1.rowCount } == 12)
        // A glob and a list read the same.
        for path in [dir + "/parts/*.nc", "\(dir)/parts/b.nc,\(dir)/parts/c.nc,\(dir)/parts/a.nc"] {
            #expect(try readAll(DataSpec(path: path)).flatMap(\.times) == all.flatMap(\.times))
        }
        let r = try reader(dir + "/parts")
        #expect(r.files.map { AtomicFile.basename(of: $0.path) } == ["c.nc", "a.nc", "b.nc"] && r.steps == 11)
        #expect(r.position(ofRow: 5)! == (1, 1) && r.position(ofRow: 11) == nil)
        // Overlapping times, a missing file, an empty glob: refused by name.
        try write(field(times: [3, 4]), dir + "/overlap.nc")
        let o = refusal("overlap") { _ = try readAll(DataSpec(path: "\(dir)/parts/c.nc,\(dir)/overlap.nc")) }
        #expect(o.hasPrefix(dir + "/overlap.nc: its times") && o.contains("overlap those of \(dir)/parts/c.nc"), "\(o)")
        let missing = refusal("missing") { _ = try readAll(DataSpec(path: "\(dir)/parts/c.nc,\(dir)/nope.nc")) }
        #expect(missing.hasPrefix("\(dir)/nope.nc: no such file"), "\(missing)")
        let none = refusal("no match") { _ = try readAll(DataSpec(path: "\(dir)/parts/z*.nc")) }
        #expect(none == "\(dir)/parts/z*.nc: no file matches", "\(none)")
    }

    @Test func filesThatDoNotMatchAreRefusedByName() throws {
        let dir = try scratch("eddy-nc-mismatch")
        try write(field(times: [0, 1, 2, 3]), dir + "/a.nc")
        var shifted = field(times: [4, 5, 6, 7])
        shifted.variables[0].values = [10.5, 20.5]
        try write(shifted, dir + "/shifted.nc")
        let s = refusal("shifted grid") { _ = try readAll(DataSpec(path: "\(dir)/a.nc,\(dir)/shifted.nc")) }
        #expect(s.hasPrefix(dir + "/shifted.nc: its grid differs from that of \(dir)/a.nc: 'lat' point 0 is 10.5, there 10"), "\(s)")
        try write(field(times: [4, 5, 6, 7], fieldAttributes: [("units", "K")]), dir + "/units.nc")
        let u = refusal("units") { _ = try readAll(DataSpec(path: "\(dir)/a.nc,\(dir)/units.nc")) }
        #expect(u.hasPrefix(dir + "/units.nc: variable 'v' has units 'K', but '' in \(dir)/a.nc"), "\(u)")
        var other = field(times: [4, 5, 6, 7])
        other.variables[3].name = "w"
        try write(other, dir + "/other.nc")
        let o = refusal("variables") { _ = try readAll(DataSpec(path: "\(dir)/a.nc,\(dir)/other.nc")) }
        #expect(o.hasPrefix(dir + "/other.nc: its variables (w) differ from those of \(dir)/a.nc (v)"), "\(o)")
    }

    /// ERA5 as the Copernicus store ships it: `valid_time`, `pressure_level`, latitude descending, int16 packed with
    /// `scale_factor`, `add_offset` and `_FillValue`.
    @Test func era5ShapedFilesUnpack() throws {
        let dir = try scratch("eddy-nc-era5")
        try writeERA5(dir + "/era5.nc", steps: 6, fillAt: 2)
        let r = try reader(dir + "/era5.nc")
        #expect(r.timesAreDates && r.steps == 6 && r.warnings.isEmpty, "\(r.warnings)")
        #expect(r.variableNames.first == "t[pressure_level=850:latitude=50:longitude=0]", "\(r.variableNames.prefix(2))")
        let blocks = try readAll(DataSpec(path: dir + "/era5.nc"))
        // The fill value at step 2 splits the trajectory; values are raw × 0.01 + 270.
        #expect(blocks.map(\.rowCount) == [2, 3])
        #expect(abs(blocks[0].values[0] - (era5Raw(step: 0, level: 0, lat: 0, lon: 0) * 0.01 + 270)) < 1e-12)
        #expect(r.attributes.variables["t"]?["units"] == "K" && r.attributes.coordinates["pressure_level"]?["units"] == "hPa")
        let box = try reader(dir + "/era5.nc") { $0.ncBox = (44, 46, 0, 360); $0.ncLevels = [1] }
        #expect(box.variableNames.allSatisfy { $0.hasPrefix("t[pressure_level=500:latitude=45:") } && box.variableNames.count == 4)
    }
}

