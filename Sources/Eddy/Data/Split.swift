/// Splits every segment into a head (training) and a tail (validation): the last `fraction` of each segment's
/// rows is held out. Segment lengths come from a counting pass, so both parts stream.
public final class SplitReader: RowReader {
    public enum Part: Sendable { case head, tail }

    private let inner: RowReader
    private let lengths: [Int]
    private let fraction: Double
    private let part: Part
    private var segment = -1
    private var position = 0
    /// Where this stream sits in the dataset (a shard's, see `ShardSplit`): its segment `localFirst` is the dataset's
    /// segment `globalFirst` and starts at that segment's row `offset`; segments before it are history only (skipped).
    private let localFirst: Int
    private let globalFirst: Int
    private let offset: Int

    public var path: String { inner.path }
    public var variableNames: [String] { inner.variableNames }
    public var inputNames: [String] { inner.inputNames }
    public var inferredDt: Double? { inner.inferredDt }
    public var validCounts: [Int] { inner.validCounts }
    public var timesAreDates: Bool { inner.timesAreDates }
    public var fill: FillReport { inner.fill }

    public init(_ inner: RowReader, lengths: [Int], fraction: Double, part: Part) {
        self.inner = inner
        self.lengths = lengths
        self.fraction = fraction
        self.part = part
        (localFirst, globalFirst, offset) = (0, 0, 0)
    }

    /// One shard's part (`ShardSplit`: the dataset's segment lengths and where this shard's stream sits among them).
    public init(_ inner: RowReader, split: ShardSplit) {
        self.inner = inner
        lengths = split.lengths
        fraction = split.fraction
        part = split.part
        (localFirst, globalFirst, offset) = (split.localFirst, split.globalFirst, split.offset)
    }

    /// Rows of each segment, in stream order.
    public static func segmentLengths(_ reader: RowReader) throws -> [Int] {
        var out: [Int] = []
        while let b = try reader.next() {
            if b.startsSegment || out.isEmpty { out.append(0) }
            out[out.count - 1] += b.rowCount
        }
        return out
    }

    /// Rows held out at the end of a segment of `length` rows.
    public static func heldOut(_ length: Int, fraction: Double) -> Int { Int((Double(length) * fraction).rounded(.down)) }

    public func next() throws -> RowBlock? {
        while let block = try inner.next() {
            if block.startsSegment || segment < 0 {
                segment += 1
                position = segment == localFirst ? offset : 0
            }
            if segment < localFirst { continue }
            let global = globalFirst + (segment - localFirst)
            let length = global < lengths.count ? lengths[global] : position + block.rowCount
            let cut = length - SplitReader.heldOut(length, fraction: fraction)
            let lo = position, hi = position + block.rowCount
            position = hi
            let (from, to) = part == .head ? (lo, min(hi, cut)) : (max(lo, cut), hi)
            guard to > from else { continue }
            let width = inner.width
            var out = block
            out.values = Array(block.values[((from - lo) * width)..<((to - lo) * width)])
            out.rowCount = to - from
            if block.times.count == block.rowCount { out.times = Array(block.times[(from - lo)..<(to - lo)]) }
            if block.sources.count == block.rowCount { out.sources = Array(block.sources[(from - lo)..<(to - lo)]) }
            out.firstLine = block.firstLine + (from - lo)
            out.startsSegment = part == .head ? block.startsSegment : (from == cut)
            return out
        }
        return nil
    }
}
