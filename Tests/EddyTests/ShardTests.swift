import EddyTestSupport
import Foundation
import Testing
@testable import Eddy

/// The pieces that make a sharded read give the results of one process (the end-to-end comparison under mpirun is in
/// MPITests): per-block moments folded by Chan's merge, the keyed pool, readers that start and stop at raw rows.
@Suite("Shards: block statistics, keyed pool, raw-row windows")
struct ShardTests {
    static func rows(_ count: Int, width: Int, seed: UInt64) -> [Double] {
        var rng = SeededGenerator(seed: seed)
        return (0..<(count * width)).map { i in 1e3 + 5 * rng.normal() + Double(i % width) }
    }

    /// Blocks of `per` rows of one segment, their sources the row numbers.
    static func blocks(_ values: [Double], width: Int, per: Int) -> [RowBlock] {
        let n = values.count / width
        return stride(from: 0, to: n, by: per).map { s in
            let e = min(n, s + per)
            var b = RowBlock(episode: "", values: Array(values[(s * width)..<(e * width)]), rowCount: e - s, startsSegment: s == 0, firstLine: s)
            b.sources = Array(s..<e)
            return b
        }
    }

    static func partial(_ blocks: [RowBlock], width: Int, blockRows: Int, owned: Range<Int>?) -> StatisticsPartial {
        var p = StatisticsPartial(width: width, dt: nil, hasTimes: false)
        var tagger = RowTagger(blockRows: blockRows, owned: owned)
        for b in blocks { p.add(b, tags: tagger.tag(b)) }
        return p
    }

    /// Against a two-pass reference (mean, then the sum of squared deviations) written without Welford or Chan, and
    /// bitwise the same however the rows come in blocks and however the blocks are split among "processes".
    @Test func chanFoldMatchesATwoPassReference() {
        let w = 3, n = 1000
        let values = Self.rows(n, width: w, seed: 8)
        var mean = [Double](repeating: 0, count: w), m2 = [Double](repeating: 0, count: w)
        for r in 0..<n { for c in 0..<w { mean[c] += values[r * w + c] } }
        for c in 0..<w { mean[c] /= Double(n) }
        for r in 0..<n { for c in 0..<w { let d = values[r * w + c] - mean[c]; m2[c] += d * d } }
        let whole = Self.partial(Self.blocks(values, width: w, per: 64), width: w, blockRows: 100, owned: nil)
        let s = DataStatistics.folded(whole.blocks, width: w, pairs: 0)
        #expect(whole.blocks.count == 10 && s.rows == n && s.segments == 1)
        #expect(relative(s.mean, mean) < 1e-14 && relative(s.m2, m2) < 1e-10, "\(s.mean) \(mean) \(s.m2) \(m2)")
        for c in 0..<w {
            #expect(s.minimum[c] == (0..<n).map { values[$0 * w + c] }.min()! && s.maximum[c] == (0..<n).map { values[$0 * w + c] }.max()!)
        }
        // Other input blocks, and three "processes" owning blocks [0, 3), [3, 4) and [4, 10) (each reading a few rows of
        // history it does not own): the same bits.
        let rechunked = Self.partial(Self.blocks(values, width: w, per: 7), width: w, blockRows: 100, owned: nil)
        var split: [BlockMoments] = []
        for (lo, hi) in [(0, 300), (300, 400), (400, 1000)] {
            let from = max(0, lo - 9)
            let part = Self.blocks(Array(values[(from * w)..<(hi * w)]), width: w, per: 50).map { b -> RowBlock in
                var b = b
                b.sources = b.sources.map { $0 + from }
                b.startsSegment = b.startsSegment && from == 0
                return b
            }
            split += Self.partial(part, width: w, blockRows: 100, owned: lo..<hi).blocks
        }
        for other in [rechunked.blocks, split.reversed()] {
            let t = DataStatistics.folded(other, width: w, pairs: 0)
            #expect(t.mean == s.mean && t.m2 == s.m2 && t.rows == s.rows && t.fingerprint == s.fingerprint && t.segments == s.segments)
        }
        // Another block size moves the last bits only.
        let coarse = DataStatistics.folded(Self.partial(Self.blocks(values, width: w, per: 64), width: w, blockRows: 333, owned: nil).blocks, width: w, pairs: 0)
        #expect(relative(coarse.mean, s.mean) < 1e-14 && relative(coarse.m2, s.m2) < 1e-10)
    }

    /// The pool is the `capacity` pairs of smallest key (checked by brute force over every pair's key), in key order,
    /// whatever order the pairs are offered in.
    @Test func keyedPoolIsTheSmallestKeysInAnyOrder() {
        let w = 2
        let values = Self.rows(700, width: w, seed: 4)
        let norm = Normalisation.identity(variables: w, inputs: 0)
        let all = chunks(Self.blocks(values, width: w, per: 700), norm: norm, delays: 2, chunkRows: 50)
        func pool(_ cs: [WindowChunk]) -> PairReservoir {
            var p = PairReservoir(capacity: 40, windowSize: 2 * w, targetSize: w, seed: 6)
            for c in cs { p.offer(c) }
            p.prune()
            return p
        }
        let forward = pool(all), backward = pool(all.reversed())
        #expect(forward.count == 40 && forward.seen == 698)
        #expect(forward.windows == backward.windows && forward.targets == backward.targets && forward.keys == backward.keys)
        // Brute force: every pair's key, the 40 smallest.
        let p = 2 * w
        var keyed: [(UInt64, UInt64, [Double])] = []
        for c in all {
            for i in 0..<c.count where c.linked[i] {
                let z = c.windows[(i * p)..<((i + 1) * p)], y = c.windows[((i + 1) * p)..<((i + 1) * p + w)]
                let (k, t) = forward.key(z, y)
                keyed.append((k, t, Array(z)))
            }
        }
        keyed.sort { ($0.0, $0.1) < ($1.0, $1.1) }
        #expect(keyed.count == 698)
        #expect(forward.windows == keyed.prefix(40).flatMap(\.2))
        // Another seed, another sample.
        var other = PairReservoir(capacity: 40, windowSize: p, targetSize: w, seed: 7)
        for c in all { other.offer(c) }
        other.prune()
        #expect(other.windows != forward.windows)
    }

    /// A CSV file and a 3-D `.npy` read through windows of raw rows: the rows a window owns are exactly those of the
    /// whole read with those sources, and its history rows come before them.
    @Test func readersStartAndStopAtRawRows() throws {
        let dir = try scratch("eddy-shards")
        var text = "a,b\n"
        for i in 0..<120 { text += i == 40 ? "\n" : (i == 77 ? "NA,1\n" : "\(Double(i) * 0.5),\(Double(i % 7))\n") }
        try writeText(text, dir + "/s.csv")
        var values: [Double] = []
        for e in 0..<3 { for s in 0..<50 { values += [Double(e * 100 + s), Double(s) * 0.25] } }
        var npy = Data(NPY.header(shape: [3, 50, 2]))
        values.withUnsafeBytes { npy.append(contentsOf: $0) }
        try npy.write(to: URL(fileURLWithPath: dir + "/t.npy"))
        for path in [dir + "/s.csv", dir + "/t.npy"] {
            func read(_ window: Range<Int>?, history: Int) throws -> [(source: Int, values: [Double])] {
                var spec = DataSpec(path: path, blockRows: 16)
                spec.rawRows = window
                spec.rawHistory = history
                let r = try DataSource.open(spec)
                var out: [(Int, [Double])] = []
                while let b = try r.next() {
                    #expect(b.sources.count == b.rowCount)
                    for i in 0..<b.rowCount { out.append((b.sources[i], Array(b.values[(i * 2)..<((i + 1) * 2)]))) }
                }
                return out
            }
            let whole = try read(nil, history: 0)
            #expect(whole.count == (path.hasSuffix(".csv") ? 118 : 150))
            for (lo, hi, h) in [(0, 30, 0), (30, 75, 5), (41, 41, 3), (99, 200, 12), (140, 150, 4)] {
                let part = try read(lo..<hi, history: h)
                let own = part.filter { (lo..<hi).contains($0.source) }
                let expected = whole.filter { (lo..<hi).contains($0.source) }
                #expect(own.map(\.source) == expected.map(\.source) && own.map(\.values) == expected.map(\.values), "\(path) \(lo)..<\(hi)")
                #expect(part.allSatisfy { $0.source >= lo - h && $0.source < hi }, "\(path) \(lo)..<\(hi) read outside its window")
            }
        }
    }
}
