import EddyTestSupport
import Foundation
import Testing
@testable import Eddy

@Suite("Reading data: CSV, .npy, directories, errors")
struct DataTests {
    @Test func csvSelectsColumnsAndSplitsOnEpisodesAndGaps() throws {
        let dir = try scratch()
        let path = dir + "/d.csv"
        try writeText("""
        site,t,a,b,u
        A,0,1,10,0.5
        A,1,2,20,0.5
        A,2,NA,30,0.5
        A,3,4,40,0.5
        B,0,5,,0.1
        B,1,6,60,NaN
        B,2,7,70,0.2
        B,3,8,80,0.3

        """, path)
        let blocks = try readAll(DataSpec(path: path, columns: ["b", "a"], inputs: ["u"], episodeColumn: "site"))
        #expect(blocks.map(\.episode) == ["A", "A", "B"])
        #expect(blocks.map(\.rowCount) == [2, 1, 2])
        #expect(blocks.allSatisfy { $0.startsSegment })
        #expect(blocks[0].values == [10, 1, 0.5, 20, 2, 0.5])
        #expect(blocks[2].values == [70, 7, 0.2, 80, 8, 0.3])
        let reader = try DataSource.open(DataSpec(path: path, inputs: ["u"], episodeColumn: "site"))
        while try reader.next() != nil {}
        #expect(reader.variableNames == ["a", "b"])   // default: all but episode, inputs and the time column
        #expect(reader.inferredDt == 1)
    }

    @Test func blocksContinueSegmentsWhenFull() throws {
        let dir = try scratch()
        let path = dir + "/d.csv"
        try writeText("x\n" + (0..<10).map { "\($0)" }.joined(separator: "\n") + "\n", path)
        let blocks = try readAll(DataSpec(path: path, blockRows: 4))
        #expect(blocks.map(\.rowCount) == [4, 4, 2])
        #expect(blocks.map(\.startsSegment) == [true, false, false])
        #expect(blocks.map(\.firstLine) == [2, 6, 10])
    }

    @Test(arguments: [
        ("", "empty file"),
        ("a,b\n", "header only"),
        ("a,b\n1,2\n3\n", "d.csv:3: expected 2 fields"),
        ("a,b\n1,2\n3,x1\n", "d.csv:3:2: cannot read 'x1' in column 'b'"),
        ("a,b\n1,2\n3,inf\n", "d.csv:3:2: infinite value 'inf'"),
        ("a,b\n1,-Infinity\n", "d.csv:2:2: infinite value"),
    ])
    func csvErrorsNameFileLineAndColumn(text: String, expected: String) throws {
        let dir = try scratch()
        let path = dir + "/d.csv"
        try writeText(text, path)
        do {
            _ = try readAll(DataSpec(path: path))
            Issue.record("expected an error for \(text.debugDescription)")
        } catch let e as EddyError {
            #expect(e.message.contains(expected), "\(e.message)")
            #expect(e.message.contains(path))
        }
    }

    @Test func unknownColumnListsTheColumns() throws {
        let dir = try scratch()
        let path = dir + "/d.csv"
        try writeText("a,b\n1,2\n", path)
        #expect(throws: EddyError.self) { try DataSource.open(DataSpec(path: path, columns: ["c"])) }
        do { _ = try DataSource.open(DataSpec(path: path, columns: ["c"])) } catch let e as EddyError {
            #expect(e.message.contains("no variable column named 'c'") && e.message.contains("a, b"))
        }
    }

    @Test func npyTwoAndThreeDimensionsFloat32AndFloat64() throws {
        let dir = try scratch()
        // (E=2, T=3, n=2) float64, one NaN row in the second trajectory.
        var values: [Double] = [1, 2, 3, 4, 5, 6, 7, 8, .nan, 0, 11, 12]
        var bytes = NPY.header(shape: [2, 3, 2])
        bytes += values.withUnsafeBytes { Array($0) }
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/a.npy"))
        let blocks = try readAll(DataSpec(path: dir + "/a.npy"))
        #expect(blocks.map(\.episode) == ["0", "1", "1"])
        #expect(blocks.map(\.rowCount) == [3, 1, 1])
        #expect(blocks[2].values == [11, 12])
        // float32 (T=2, n=3), written by hand in NumPy's format.
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
        var header = Array(dict.utf8) + [UInt8](repeating: 0x20, count: 128 - 10 - dict.utf8.count - 1) + [0x0A]
        header = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.count), 0] + header
        let floats: [Float] = [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]
        try Data(header + floats.withUnsafeBytes { Array($0) }).write(to: URL(fileURLWithPath: dir + "/b.npy"))
        let b = try readAll(DataSpec(path: dir + "/b.npy", columns: ["c2", "c0"]))
        #expect(b.count == 1 && b[0].values == [2.5, 0.5, 5.5, 3.5])
        // Truncated data is caught before any row is used.
        values.removeLast(3)
        try Data(NPY.header(shape: [2, 3, 2]) + values.withUnsafeBytes { Array($0) }).write(to: URL(fileURLWithPath: dir + "/c.npy"))
        #expect { try DataSource.open(DataSpec(path: dir + "/c.npy")) } throws: { ($0 as? EddyError)?.message.contains("truncated") == true }
    }

    @Test func directoryReadsEachFileAsATrajectory() throws {
        let dir = try scratch()
        try writeText("x,y\n1,2\n3,4\n", dir + "/one.csv")
        try writeText("x,y\n5,6\n7,8\n9,10\n", dir + "/two.csv")
        let blocks = try readAll(DataSpec(path: dir))
        #expect(blocks.map(\.episode) == ["one.csv", "two.csv"])
        #expect(blocks.map(\.rowCount) == [2, 3])
        #expect(blocks.allSatisfy { $0.startsSegment })
        try writeText("x,z\n1,2\n", dir + "/three.csv")
        #expect(throws: EddyError.self) { _ = try readAll(DataSpec(path: dir)) }
    }
}

@Suite("Delay embedding and chunking")
struct EmbeddingTests {
    /// Pairs from a builder: (window, next window's newest row) for every linked row.
    func pairs(_ blocks: [RowBlock], delays: Int, chunk: Int, n: Int) -> [([Double], [Double])] {
        var b = WindowBuilder(normalisation: .identity(variables: n, inputs: 0), delays: delays, chunkRows: chunk)
        var chunks: [WindowChunk] = []
        for block in blocks { b.add(block); while let c = b.take() { chunks.append(c) } }
        b.finish()
        while let c = b.take() { chunks.append(c) }
        var out: [([Double], [Double])] = []
        let p = n * delays
        for c in chunks {
            for i in 0..<c.count where c.linked[i] {
                out.append((Array(c.windows[(i * p)..<((i + 1) * p)]), Array(c.windows[((i + 1) * p)..<((i + 1) * p + n)])))
            }
        }
        return out
    }

    @Test func windowsAreNewestFirstAndPairsNeverCrossSegments() {
        // Segment 1: rows 1…5 (one variable), split over two blocks; segment 2: rows 10…12.
        let blocks = [
            RowBlock(episode: "a", values: [1, 2, 3], rowCount: 3, startsSegment: true, firstLine: 0),
            RowBlock(episode: "a", values: [4, 5], rowCount: 2, startsSegment: false, firstLine: 3),
            RowBlock(episode: "b", values: [10, 11, 12], rowCount: 3, startsSegment: true, firstLine: 0),
        ]
        let expected: [([Double], [Double])] = [([2, 1], [3]), ([3, 2], [4]), ([4, 3], [5]), ([11, 10], [12])]
        for chunk in [2, 3, 4, 100] {
            let got = pairs(blocks, delays: 2, chunk: chunk, n: 1)
            #expect(got.map(\.0) == expected.map(\.0), "chunk \(chunk)")
            #expect(got.map(\.1) == expected.map(\.1), "chunk \(chunk)")
        }
    }
}
