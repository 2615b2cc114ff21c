import EddyTestSupport
import Foundation
import Testing
@testable import Eddy

@Suite("Real-data shaping: time, gaps, angles, calendar, pivot")
struct ShapingTests {
    @Test func isoTimes() {
        #expect(TimeParser.seconds("1970-01-01") == 0)
        #expect(TimeParser.seconds("2013-01-01T06:00:00Z") == 1_357_020_000)
        #expect(TimeParser.seconds("2013-01-01 06:00") == 1_357_020_000)
        #expect(TimeParser.seconds("2013-01-01T07:00:00+01:00") == 1_357_020_000)
        #expect(TimeParser.seconds("2000-03-01T00:00:00.5Z") == 951_868_800.5)
        #expect(TimeParser.seconds("12.5") == 12.5)
        #expect(TimeParser.seconds("2013-13-01") == nil)
        #expect(TimeParser.seconds("yesterday") == nil)
        for text in ["1970-01-01T00:00:00Z", "2013-01-01T06:00:00Z", "2000-02-29T23:59:59Z", "1969-12-31T23:00:00Z", "2100-03-01T12:34:56Z"] {
            #expect(TimeParser.iso(TimeParser.seconds(text)!) == text)
        }
    }

    @Test func calendarPairs() {
        let (s, c) = CalendarFeature.hour.values(at: TimeParser.seconds("2013-01-01T06:00:00Z")!)
        #expect(abs(s - 1) < 1e-12 && abs(c) < 1e-12)   // a quarter of the day
        let (s2, c2) = CalendarFeature.hour.values(at: TimeParser.seconds("2013-06-30T00:00:00Z")!)
        #expect(abs(s2) < 1e-12 && abs(c2 - 1) < 1e-12)
    }

    func csv(_ body: String) throws -> String {
        let path = try scratch() + "/w.csv"
        try writeText(body, path)
        return path
    }

    @Test func timeJumpsSplitAndShortGapsAreFilled() throws {
        // Hourly rows with 02:00 absent and a missing value at 05:00.
        let path = try csv("""
        time,x,u
        2013-01-01T00:00:00Z,0,1
        2013-01-01T01:00:00Z,1,1
        2013-01-01T03:00:00Z,3,1
        2013-01-01T04:00:00Z,4,1
        2013-01-01T05:00:00Z,NA,1
        2013-01-01T06:00:00Z,6,1

        """)
        var spec = DataSpec(path: path, inputs: ["u"])
        spec.timeColumn = "time"
        let split = try readAll(spec)
        #expect(split.map(\.rowCount) == [2, 2, 1])
        #expect(split.allSatisfy { $0.startsSegment })
        spec.fillGaps = 1
        let reader = try DataSource.open(spec) as! CSVReader
        var filled: [RowBlock] = []
        while let b = try reader.next() { filled.append(b) }
        #expect(filled.count == 1)
        #expect(filled[0].values == [0, 1, 1, 1, 2, 1, 3, 1, 4, 1, 5, 1, 6, 1])
        #expect(filled[0].times == (0...6).map { 1_356_998_400 + Double($0) * 3600 })
        #expect(reader.filledRows == 2 && reader.filledGaps == 2)
        #expect(reader.inferredDt == 3600)
        // A time window.
        spec.from = TimeParser.seconds("2013-01-01T03:00:00Z")
        spec.until = TimeParser.seconds("2013-01-01T06:00:00Z")
        // 05:00 is missing and 06:00 lies outside the window: nothing to interpolate towards.
        #expect(try readAll(spec).flatMap(\.values) == [3, 1, 4, 1])
    }

    @Test func timeMustIncrease() throws {
        let path = try csv("time,x\n2013-01-01T01:00:00Z,1\n2013-01-01T00:00:00Z,2\n")
        var spec = DataSpec(path: path)
        spec.timeColumn = "time"
        #expect { try readAll(spec) } throws: { ($0 as? EddyError)?.message.contains("w.csv:3: time") == true }
    }

    @Test func anglesAndCalendarInputs() throws {
        let path = try csv("time,dir,x\n2013-01-01T06:00:00Z,90,1\n2013-01-01T07:00:00Z,180,2\n")
        var spec = DataSpec(path: path)
        spec.timeColumn = "time"
        spec.angles = ["dir"]
        spec.calendar = [.hour]
        let reader = try DataSource.open(spec)
        #expect(reader.variableNames == ["dir_sin", "dir_cos", "x"])
        #expect(reader.inputNames == ["hour_sin", "hour_cos"])
        let b = try reader.next()!
        #expect(abs(b.values[0] - 1) < 1e-15 && abs(b.values[1]) < 1e-15 && b.values[2] == 1)
        #expect(abs(b.values[3] - 1) < 1e-12)   // 06:00 → sin = 1
        let bad = try csv("time,dir,x\n2013-01-01T06:00:00Z,90,1\n2013-01-01T07:00:00Z,361,2\n")
        spec.path = bad
        #expect { try readAll(spec) } throws: { ($0 as? EddyError)?.message.contains("w.csv:3:2: angle 361") == true }
    }

    @Test func pivotJoinsStationsOnTime() throws {
        let path = try csv("""
        station,time,x
        A,2013-01-01T00:00:00Z,1
        A,2013-01-01T01:00:00Z,2
        A,2013-01-01T02:00:00Z,3
        B,2013-01-01T00:00:00Z,10
        B,2013-01-01T02:00:00Z,30

        """)
        var spec = DataSpec(path: path)
        spec.timeColumn = "time"
        spec.pivot = "station"
        let reader = try DataSource.open(spec)
        #expect(reader.variableNames == ["x@A", "x@B"])
        var blocks: [RowBlock] = []
        while let b = try reader.next() { blocks.append(b) }
        #expect(blocks.map(\.values) == [[1, 10], [3, 30]])   // 01:00 lacks B: a gap
        spec.fillGaps = 1
        #expect(try readAll(spec).flatMap(\.values) == [1, 10, 2, 20, 3, 30])
        let dup = try csv("station,time,x\nA,2013-01-01T00:00:00Z,1\nA,2013-01-01T00:00:00Z,2\n")
        spec.path = dup
        #expect { try DataSource.open(spec) } throws: { ($0 as? EddyError)?.message.contains("two rows for 'A'") == true }
    }

    /// A model with calendar inputs forecasts past the end of its data: the inputs come from the clock.
    @Test func calendarInputsPastTheData() throws {
        var text = "time,x\n"
        for h in 0..<(24 * 20) {
            let t = 1_356_998_400 + Double(h) * 3600
            text += "\(t),\(sin(2 * Double.pi * Double(h) / 24) + 0.001 * Double(h % 7))\n"
        }
        let path = try csv(text)
        var spec = DataSpec(path: path)
        spec.timeColumn = "time"
        spec.calendar = [.hour]
        var config = TrainingConfig(data: spec)
        config.width = 20
        config.delays = 2
        config.ridge = 1e-8
        let (model, _) = try Trainer(config: config, backend: CPUBackend()).train()
        #expect(model.metadata.inputs == ["hour_sin", "hour_cos"])
        #expect(model.metadata.climatologyPeriod == 24)
        #expect(model.climatology?.count == 24)
        let (_, segments) = try DataSource.loadSegments(spec)
        let cases = try Forecaster.cases(model: model, segments: segments, origins: .last, horizon: 30, path: path)
        let f = Forecaster.run(model: model, cases: cases, horizon: 30)
        // The daily sine continues past the end: within a few percent of the truth a day later.
        for h in 0..<30 {
            let truth = sin(2 * Double.pi * Double(24 * 20 + h) / 24)
            #expect(abs(f[h] - truth) < 0.05, "step \(h + 1): \(f[h]) vs \(truth)")
        }
    }

    /// ISSUE 12: `--fill-gaps` synthesised 10⁷ rows silently. The fills are counted (rows, gaps, the longest and
    /// where it ends) and capped: at most as many rows filled as read, refused before a huge gap is interpolated.
    @Test func gapFillingIsReportedAndCapped() throws {
        let dir = try scratch("eddy-fill")
        let path = dir + "/gaps.csv"
        try writeText("t,x\n0,0\n1,1\n4,4\n5,5\n6,6\n8,8\n9,9\n", path)
        var spec = DataSpec(path: path)
        spec.fillGaps = 3
        let reader = try DataSource.open(spec)
        var rows = 0
        while let b = try reader.next() { rows += b.rowCount }
        #expect(rows == 10)
        var expected = FillReport()
        expected.rows = 3; expected.gaps = 2; expected.longest = 2; expected.longestEndsAt = 4; expected.longestTime = 4; expected.longestPath = path
        #expect(reader.fill == expected)
        #expect(reader.fill.summary == "3 rows in 2 gaps (the longest, 2 rows, before \(path):4 (time 4))")

        // A gap of 10⁷ steps is refused at once, naming the line that ends it.
        let huge = dir + "/huge.csv"
        try writeText("t,x\n0,0\n1,1\n2,2\n10000003,3\n10000004,4\n", huge)
        spec = DataSpec(path: huge)
        spec.fillGaps = 100_000_000
        let start = Date()
        do {
            _ = try readAll(spec)
            Issue.record("a 10⁷-row gap was filled")
        } catch let e as EddyError {
            #expect(e.message == "\(huge):5: --fill-gaps 100000000 would fill 10000000 rows in 1 gap, more than the 4 rows read so far (at most as many rows are filled as read); the longest gap, 10000000 rows, ends here (time 10000003); use a smaller --fill-gaps (longer gaps then split the trajectory)", "\(e.message)")
        }
        #expect(Date().timeIntervalSince(start) < 2, "refused before the rows are made")

        // Under the running allowance but more than the data at the end: refused when the data end.
        let late = dir + "/late.csv"
        try writeText("t,x\n0,0\n1,1\n40,40\n41,41\n", late)
        spec = DataSpec(path: late)
        spec.fillGaps = 100
        do {
            _ = try readAll(spec)
            Issue.record("38 filled rows for 4 read were accepted")
        } catch let e as EddyError {
            #expect(e.message.hasPrefix("\(late):4: --fill-gaps 100 would fill 38 rows in 1 gap, more than the 4 rows read so far"), "\(e.message)")
        }
    }
}
