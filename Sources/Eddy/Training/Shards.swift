#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// A row's place in the dataset, independent of how many processes read it: whether this process owns it (a shard's
/// history rows belong to the shard before) and the global block its statistics go to.
public struct RowTag: Sendable, Equatable {
    public var owned: Bool
    public var block: BlockID
    /// The first row of a segment (the statistics count segments and mark them in the fingerprint).
    public var startsSegment: Bool
}

/// A global block of the statistics pass: `rows` consecutive raw rows (`DataSpec.rawRows`) of one file of the dataset.
/// Blocks are ordered by file, then by position; partial statistics are folded in that order (Chan's merge), so the
/// result is the same bits for any number of processes.
public struct BlockID: Sendable, Hashable, Comparable {
    public var file: Int
    public var index: Int
    public static func < (a: BlockID, b: BlockID) -> Bool { (a.file, a.index) < (b.file, b.index) }
}

/// Tags the rows of a stream (see `RowTag`). A row's source is the raw row whose reading emitted it (a filled row
/// comes with the row after its gap, so it belongs to that row's shard); where a reader gives none, rows are counted
/// (only where every process reads everything).
struct RowTagger {
    let blockRows: Int
    /// The raw rows this process owns (nil: all).
    let owned: Range<Int>?
    private var file = -1
    private var counter = 0

    init(blockRows: Int, owned: Range<Int>?) {
        self.blockRows = max(1, blockRows)
        self.owned = owned
    }

    /// 64-bit mixing (SplitMix64's finaliser).
    @inline(__always) static func mix(_ v: UInt64) -> UInt64 {
        var z = v &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func tag(_ block: RowBlock) -> [RowTag] {
        if block.file != file { file = block.file; counter = 0 }
        let hasSources = block.sources.count == block.rowCount
        var out: [RowTag] = []
        out.reserveCapacity(block.rowCount)
        for r in 0..<block.rowCount {
            let source = hasSources ? block.sources[r] : counter
            counter += 1
            out.append(RowTag(owned: owned.map { $0.contains(source) } ?? true, block: BlockID(file: file, index: source / blockRows),
                              startsSegment: r == 0 && block.startsSegment))
        }
        return out
    }
}

/// The moments of the rows of one global block (Welford within the block) and what else the statistics pass counts.
struct BlockMoments: Sendable {
    var block: BlockID
    var rows = 0
    var segments = 0
    var mean: [Double]
    var m2: [Double]
    var minimum: [Double]
    var maximum: [Double]
    var fingerprint: UInt64 = 0xCBF2_9CE4_8422_2325
    var phaseSums: [Double] = []
    var phaseCounts: [Int] = []

    init(block: BlockID, width: Int) {
        self.block = block
        mean = .init(repeating: 0, count: width)
        m2 = .init(repeating: 0, count: width)
        minimum = .init(repeating: .infinity, count: width)
        maximum = .init(repeating: -.infinity, count: width)
    }

    @inline(__always) mutating func mix(_ v: UInt64) {
        var x = v
        for _ in 0..<8 {
            fingerprint = (fingerprint ^ (x & 0xFF)) &* 0x0000_0100_0000_01B3
            x >>= 8
        }
    }

    /// One row: `values[base ..< base + width]`.
    mutating func add(_ v: UnsafeBufferPointer<Double>, base: Int, startsSegment: Bool, phase: Int?, period: Int?) {
        let width = mean.count
        if startsSegment { segments += 1; mix(0x5E6) }
        if let p = period, let k = phase {
            if phaseCounts.isEmpty { phaseSums = .init(repeating: 0, count: p * width); phaseCounts = .init(repeating: 0, count: p) }
            phaseCounts[k] += 1
            for c in 0..<width { phaseSums[k * width + c] += v[base + c] }
        }
        rows += 1
        let inv = 1 / Double(rows)
        for c in 0..<width {
            let x = v[base + c]
            mix(x.bitPattern)
            minimum[c] = min(minimum[c], x)
            maximum[c] = max(maximum[c], x)
            let d = x - mean[c]
            mean[c] += d * inv
            m2[c] += d * (x - mean[c])
        }
    }

    /// Flat words for an all-gather: file, index, rows, segments, fingerprint, then the arrays.
    func words() -> [UInt64] {
        var w: [UInt64] = [UInt64(bitPattern: Int64(block.file)), UInt64(bitPattern: Int64(block.index)), UInt64(rows), UInt64(segments),
                           fingerprint, UInt64(phaseCounts.count)]
        for a in [mean, m2, minimum, maximum] { w += a.map(\.bitPattern) }
        w += phaseSums.map(\.bitPattern)
        w += phaseCounts.map { UInt64($0) }
        return w
    }

    static func read(_ w: [UInt64], at i: inout Int, width: Int) throws -> BlockMoments {
        func take(_ n: Int) throws -> ArraySlice<UInt64> {
            guard n >= 0, i + n <= w.count else { throw EddyError("internal: a process sent truncated statistics") }
            defer { i += n }
            return w[i..<(i + n)]
        }
        let head = Array(try take(6))
        var b = BlockMoments(block: BlockID(file: Int(Int64(bitPattern: head[0])), index: Int(Int64(bitPattern: head[1]))), width: width)
        b.rows = Int(head[2])
        b.segments = Int(head[3])
        b.fingerprint = head[4]
        let p = Int(head[5])
        b.mean = try take(width).map(Double.init(bitPattern:))
        b.m2 = try take(width).map(Double.init(bitPattern:))
        b.minimum = try take(width).map(Double.init(bitPattern:))
        b.maximum = try take(width).map(Double.init(bitPattern:))
        b.phaseSums = try take(p * width).map(Double.init(bitPattern:))
        b.phaseCounts = try take(p).map { Int($0) }
        return b
    }
}

extension DataStatistics {
    /// The statistics of the whole dataset from its blocks' moments, folded in block order by Chan's pairwise update
    /// (`n = a + b`, `δ = μ_b − μ_a`, `μ = μ_a + δ·b/n`, `M₂ = M₂a + M₂b + δ²·a·b/n`); sums (phases) are added in the
    /// same order and the fingerprint chains the blocks' FNV-1a hashes. The same blocks give the same bits however
    /// they were spread over processes.
    static func folded(_ blocks: [BlockMoments], width: Int, pairs: Int) -> DataStatistics {
        var s = DataStatistics(width: width)
        s.pairs = pairs
        for b in blocks.sorted(by: { $0.block < $1.block }) where b.rows > 0 {
            let na = Double(s.rows), nb = Double(b.rows), n = na + nb
            if s.rows == 0 {
                // The first block as it is (an overflowing M₂ stays infinite; δ²·0 would make it NaN).
                (s.mean, s.m2, s.minimum, s.maximum) = (b.mean, b.m2, b.minimum, b.maximum)
            } else {
                for c in 0..<width {
                    let delta = b.mean[c] - s.mean[c]
                    s.mean[c] += delta * (nb / n)
                    s.m2[c] += b.m2[c] + delta * delta * (na * nb / n)
                    s.minimum[c] = min(s.minimum[c], b.minimum[c])
                    s.maximum[c] = max(s.maximum[c], b.maximum[c])
                }
            }
            s.rows += b.rows
            s.segments += b.segments
            s.mix(b.fingerprint)
            if !b.phaseCounts.isEmpty {
                if s.period == nil {
                    s.period = b.phaseCounts.count
                    s.phaseSums = .init(repeating: 0, count: b.phaseSums.count)
                    s.phaseCounts = .init(repeating: 0, count: b.phaseCounts.count)
                }
                for i in 0..<s.phaseSums.count { s.phaseSums[i] += b.phaseSums[i] }
                for i in 0..<s.phaseCounts.count { s.phaseCounts[i] += b.phaseCounts[i] }
            }
        }
        return s
    }
}

/// What one process's statistics pass found, to be merged with the others': its blocks' moments, its pairs, which
/// columns it saw a valid value in (an all-NA column is judged over the whole dataset) and what it filled.
struct StatisticsPartial {
    let width: Int
    let period: Int?
    let dt: Double?
    var blocks: [BlockMoments] = []
    var pairs = 0
    var valid: [Bool]
    var fill = FillReport()
    var rowsSeen = 0

    init(width: Int, dt: Double?, hasTimes: Bool) {
        self.width = width
        self.dt = dt
        period = hasTimes ? DataStatistics.period(dt: dt) : nil
        valid = .init(repeating: false, count: width)
    }

    mutating func add(_ block: RowBlock, tags: [RowTag]) {
        let phased = period != nil && block.times.count == block.rowCount
        block.values.withUnsafeBufferPointer { v in
            for r in 0..<block.rowCount where tags[r].owned {
                if blocks.last?.block != tags[r].block { blocks.append(BlockMoments(block: tags[r].block, width: width)) }
                let phase = phased ? DataStatistics.phase(block.times[r], dt: dt!, period: period!) : nil
                blocks[blocks.count - 1].add(v, base: r * width, startsSegment: tags[r].startsSegment, phase: phase, period: period)
                rowsSeen += 1
            }
        }
    }

    /// Every process's partial, merged (the same on every process). `gather`: false when every process read everything.
    func merged(gather: Bool, in group: ProcessGroup) throws -> (statistics: DataStatistics, valid: [Bool], fill: FillReport) {
        guard gather && group.size > 1 else {
            return (DataStatistics.folded(blocks, width: width, pairs: pairs), valid, fill)
        }
        var words: [UInt64] = [UInt64(pairs), UInt64(blocks.count)] + valid.map { $0 ? 1 : 0 }
        for b in blocks { words += b.words() }
        // The fill report travels as words: rows, gaps, longest, ends-at, time, whether there is one, then the path.
        let fillWords: [UInt64] = [UInt64(fill.rows), UInt64(fill.gaps), UInt64(fill.longest), UInt64(bitPattern: Int64(fill.longestEndsAt)),
                                   fill.longestTime.map { $0.bitPattern } ?? Double.nan.bitPattern, fill.longestTime == nil ? 0 : 1]
        words += fillWords + WordText.words(fill.longestPath)
        var blocks: [BlockMoments] = []
        var pairs = 0
        var valid = [Bool](repeating: false, count: width)
        var fill = FillReport()
        for w in try group.allGather(words: words) {
            var i = 0
            guard w.count >= 2 + width else { throw EddyError("internal: a process sent truncated statistics") }
            pairs += Int(w[0])
            let n = Int(w[1])
            i = 2
            for c in 0..<width where w[i + c] != 0 { valid[c] = true }
            i += width
            for _ in 0..<n { blocks.append(try BlockMoments.read(w, at: &i, width: width)) }
            guard i + 6 <= w.count else { throw EddyError("internal: a process sent truncated statistics") }
            var f = FillReport()
            f.rows = Int(w[i]); f.gaps = Int(w[i + 1]); f.longest = Int(w[i + 2]); f.longestEndsAt = Int(Int64(bitPattern: w[i + 3]))
            f.longestTime = w[i + 5] == 1 ? Double(bitPattern: w[i + 4]) : nil
            i += 6
            f.longestPath = try WordText.read(w, at: &i)
            fill.add(f)
        }
        return (DataStatistics.folded(blocks, width: width, pairs: pairs), valid, fill)
    }
}

/// How a dataset is cut among the processes (METHOD.md has no say; README "MPI" does): global blocks that do not
/// depend on the number of processes K, and for every process a contiguous run of them, which it alone reads.
/// - One file (CSV, `.npy`, NetCDF) or a NetCDF archive (files joined along time): blocks of `blockRows` raw rows
///   (`--shard-rows`; data lines, array rows with the trajectories one after another, time steps counted across the
///   files). Process r of K owns blocks `[r·B/K, (r+1)·B/K)` and reads
///   `history` raw rows before them (`delays + 2·(fill-gaps + 1) + 1`), so the row shaper (time grid, gaps, fills)
///   and the delay windows of its first pairs see what one process would; a pair belongs to the process that owns
///   its target row. The total comes from the header (`.npy`, NetCDF) or, for CSV, from a newline count on rank 0.
/// - A directory of CSV or `.npy` files: every file is a block (files start their own segments: no history); process r reads files
///   `[r·F/K, (r+1)·F/K)`.
/// With one process the plan is every row, read as `eddy` always read it.
public struct ShardPlan: Sendable {
    public enum Unit: String, Sendable { case rows, files }
    /// The spec this process reads with (its `rawRows`, `rawHistory`; `dt` fixed for every process).
    public var spec: DataSpec
    public var unit: Unit
    /// Raw rows (rows) or files (files) in the dataset; nil with one process, which does not need it.
    public var total: Int?
    public var blockRows: Int
    /// The blocks this process owns, and of how many.
    public var blocks: Range<Int>
    public var blockCount: Int
    /// A sweep's validation fraction: which part of every trajectory this plan reads (nil: all of it).
    public var split: ShardSplit?
    /// The raw rows whose pairs and statistics are this process's (rows; all for files).
    public var owned: Range<Int>? {
        guard unit == .rows, let r = spec.rawRows else { return nil }
        return r
    }

    /// Raw rows per block unless `--shard-rows` says otherwise.
    public static let defaultBlockRows = 4096

    /// Rows of history a shard reads before its first own row.
    public static func history(delays: Int, fillGaps: Int) -> Int { delays + 2 * (fillGaps + 1) + 1 }

    /// The plan for this process of `group`. A pivot reads the whole file into memory, so it cannot be sharded.
    public static func make(_ spec: DataSpec, delays: Int, blockRows: Int, group: ProcessGroup = Processes.group) throws -> ShardPlan {
        // A NetCDF dataset (one file, or several joined along time) is one series of time steps; any other directory
        // is a set of files, each its own trajectories.
        let isDirectory = FileSystem.isDirectory(spec.path) && !NetCDFReader.names(spec.path)
        let unit: Unit = isDirectory ? .files : .rows
        var plan = ShardPlan(spec: spec, unit: unit, total: nil, blockRows: max(1, blockRows), blocks: 0..<1, blockCount: 1)
        guard group.size > 1 else { return plan }
        if spec.pivot != nil {
            throw EddyError("--pivot joins every row of the file in memory, in one process; under MPI, pivot the data once with eddy (or a script) and train on the result")
        }
        // Rank 0 finds the size; every process gets it, or the error (so none waits for a size that never comes).
        var message = [Double](repeating: 0, count: 2)
        var failure: Error?
        if group.rank == 0 {
            do { message[0] = Double(try rawCount(spec, directory: isDirectory)) } catch { failure = error; message[1] = 1 }
        }
        try group.broadcast(&message, root: 0)
        if let failure { throw failure }
        if message[1] != 0 { throw EddyError("rank 0 could not read \(spec.path); see its message") }
        let total = Int(message[0])
        let count = unit == .files ? total : (total + plan.blockRows - 1) / plan.blockRows
        let k = group.size, r = group.rank
        let blocks = (r * count / k)..<((r + 1) * count / k)
        plan.total = total
        plan.blockCount = count
        plan.blocks = blocks
        switch unit {
        case .files:
            plan.spec.rawRows = blocks
        case .rows:
            plan.spec.rawRows = min(total, blocks.lowerBound * plan.blockRows)..<min(total, blocks.upperBound * plan.blockRows)
            plan.spec.rawHistory = history(delays: delays, fillGaps: spec.fillGaps)
        }
        return plan
    }

    /// Raw rows (or files) of the dataset, without reading its values: the header of an `.npy` or NetCDF file, the
    /// newlines of a CSV file (the data lines after the header, blank ones included, as the reader numbers them).
    static func rawCount(_ spec: DataSpec, directory: Bool) throws -> Int {
        var s = spec
        s.rawRows = nil
        if directory { return try DirectoryReader(spec: s).fileCount }
        if NetCDFReader.names(spec.path) { return try NetCDFReader(spec: s).steps }
        if spec.path.lowercased().hasSuffix(".npy") { let r = try NPYReader(spec: s); return r.episodes * r.steps }
        _ = try CSVReader(spec: s)   // the header and the column selection, with their messages
        let file = try InputFile(path: spec.path)
        var newlines = 0, last: UInt8 = 0x0A, size = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { file.read(into: $0.baseAddress!, count: $0.count) }
            if n <= 0 { break }
            size += n
            buffer.withUnsafeBufferPointer { p in
                var at = p.baseAddress!
                let end = p.baseAddress! + n
                while at < end, let hit = memchr(at, 0x0A, end - at) {
                    newlines += 1
                    at = UnsafePointer(hit.assumingMemoryBound(to: UInt8.self)) + 1
                }
            }
            last = buffer[n - 1]
        }
        let lines = newlines + (size > 0 && last != 0x0A ? 1 : 0)
        return max(0, lines - 1)
    }

    /// A reader of the first rows of the whole dataset, a few at a time (for the time step every process must agree on).
    func probe() throws -> RowReader {
        var s = spec
        s.rawRows = nil
        s.rawHistory = 0
        s.blockRows = 8
        return try DataSource.open(s)
    }

    /// The time step, whether the rows have times, and whether those are dates, from the first rows of `reader`.
    static func timing(_ reader: RowReader) throws -> (dt: Double?, hasTimes: Bool, dates: Bool) {
        var hasTimes = false
        for index in 0..<64 {
            guard let b = try reader.next() else { break }
            if index == 0 { hasTimes = b.times.count == b.rowCount && b.rowCount > 0 }
            if !hasTimes || reader.inferredDt != nil { break }
        }
        return (reader.inferredDt, hasTimes, reader.timesAreDates)
    }

    /// This process's reader (its part of every trajectory, with a split; the components, with a reduction).
    public func open(reduction: Reduction?) throws -> RowReader {
        var reader = try DataSource.open(spec)
        if let split { reader = SplitReader(reader, split: split) }
        return reduction.map { ProjectedReader(reader, basis: $0.basis) } ?? reader
    }

    /// The plan for the head (`part`) of a validation-fraction split: every trajectory's last `fraction` of rows is held
    /// out, so every process needs every trajectory's length, which no shard sees whole. A counting pass over each
    /// shard finds the runs of rows it owns (whether each run starts a trajectory, and its length); the runs are
    /// gathered in process order (shards are in stream order), which gives the dataset's segment lengths and, for
    /// each process, where its stream sits among them. The time step is fixed first, as `Trainer.prepare` would, so
    /// every shard cuts its trajectories where one process does. One process takes the same path (its one run list).
    public func splitting(fraction: Double, part: SplitReader.Part, group: ProcessGroup = Processes.group) throws -> ShardPlan {
        var plan = self
        let timing = try ShardPlan.timing(try probe())
        if timing.hasTimes, plan.spec.dt == nil { plan.spec.dt = timing.dt }
        let reader = try DataSource.open(plan.spec)
        var tagger = RowTagger(blockRows: blockRows, owned: owned)
        var runs: [UInt64] = []   // pairs: starts a trajectory (1/0), rows
        var local = -1, position = 0
        var first: (segment: Int, position: Int)?
        while let block = try reader.next() {
            if block.startsSegment || local < 0 { local += 1; position = 0 }
            let tags = tagger.tag(block)
            for r in 0..<block.rowCount {
                defer { position += 1 }
                guard tags[r].owned else { continue }
                if first == nil {
                    first = (local, position)
                    runs += [position == 0 ? 1 : 0, 0]
                } else if tags[r].startsSegment {
                    runs += [1, 0]
                }
                runs[runs.count - 1] += 1
            }
        }
        let all = group.size > 1 ? try group.allGather(words: runs) : [runs]
        var lengths: [Int] = []
        var mine: (segment: Int, position: Int)?
        for (rank, words) in all.enumerated() {
            guard words.count % 2 == 0 else { throw EddyError("internal: a process sent a truncated run list") }
            for i in stride(from: 0, to: words.count, by: 2) {
                if words[i] == 1 || lengths.isEmpty { lengths.append(0) }
                if rank == (group.size > 1 ? group.rank : 0) && i == 0 { mine = (lengths.count - 1, lengths[lengths.count - 1]) }
                lengths[lengths.count - 1] += Int(words[i + 1])
            }
        }
        if let first, let mine {
            plan.split = ShardSplit(lengths: lengths, fraction: fraction, part: part, localFirst: first.segment,
                                    globalFirst: mine.segment, offset: mine.position - first.position)
        } else {
            plan.split = ShardSplit(lengths: lengths, fraction: fraction, part: part, localFirst: .max, globalFirst: 0, offset: 0)
        }
        return plan
    }

    /// Every trajectory of this plan's part in memory, on every process: each process reads the rows it owns, and the
    /// pieces are gathered in process order and joined where a piece continues the one before.
    public func segments(group: ProcessGroup = Processes.group) throws -> [Segment] {
        let reader = try open(reduction: nil)
        let width = reader.width
        var tagger = RowTagger(blockRows: blockRows, owned: owned)
        var pieces: [Segment] = []
        var starts: [Bool] = []
        while let block = try reader.next() {
            let tags = tagger.tag(block)
            let timed = block.times.count == block.rowCount
            for r in 0..<block.rowCount where tags[r].owned {
                if pieces.isEmpty || tags[r].startsSegment || block.episode != pieces[pieces.count - 1].episode {
                    pieces.append(Segment(episode: block.episode, width: width, firstLine: block.firstLine + r))
                    starts.append(tags[r].startsSegment || pieces.count > 1)
                }
                pieces[pieces.count - 1].values += block.values[(r * width)..<((r + 1) * width)]
                pieces[pieces.count - 1].rowCount += 1
                if timed { pieces[pieces.count - 1].times.append(block.times[r]) }
            }
        }
        guard group.size > 1 else { return pieces }
        // Words: pieces, then per piece: starts, rows, times?, first line, values, times, episode.
        var words: [UInt64] = [UInt64(pieces.count)]
        for (p, s) in zip(pieces, starts) {
            words += [s ? 1 : 0, UInt64(p.rowCount), p.times.isEmpty ? 0 : 1, UInt64(bitPattern: Int64(p.firstLine))]
            words += p.values.map(\.bitPattern) + p.times.map(\.bitPattern) + WordText.words(p.episode)
        }
        var out: [Segment] = []
        for w in try group.allGather(words: words) {
            var i = 0
            func take(_ n: Int) throws -> ArraySlice<UInt64> {
                guard n >= 0, i + n <= w.count else { throw EddyError("internal: a process sent a truncated validation part") }
                defer { i += n }
                return w[i..<(i + n)]
            }
            let count = Int(try take(1).first!)
            for _ in 0..<count {
                let head = Array(try take(4))
                let rows = Int(head[1])
                let values = try take(rows * width).map(Double.init(bitPattern:))
                let times = head[2] == 1 ? try take(rows).map(Double.init(bitPattern:)) : []
                let episode = try WordText.read(w, at: &i)
                if head[0] == 1 || out.isEmpty || out[out.count - 1].episode != episode {
                    out.append(Segment(episode: episode, width: width, firstLine: Int(Int64(bitPattern: head[3]))))
                }
                out[out.count - 1].values += values
                out[out.count - 1].rowCount += rows
                out[out.count - 1].times += times
            }
        }
        return out
    }
}

/// Where one process's stream sits in a validation-fraction split (`ShardPlan.splitting`): every trajectory's
/// length over the whole dataset, the part read, and the first trajectory of the stream that holds a row this process
/// owns (`localFirst`, counted in the stream, history included), which trajectory of the dataset it is (`globalFirst`)
/// and the dataset position of its first row in the stream (`offset`). `localFirst` is `Int.max` for a process that
/// owns no row.
public struct ShardSplit: Sendable {
    public var lengths: [Int]
    public var fraction: Double
    public var part: SplitReader.Part
    public var localFirst: Int
    public var globalFirst: Int
    public var offset: Int
}
