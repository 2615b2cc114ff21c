#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// What Eddy may plan to allocate: large allocations are estimated first and refused with their sizes and a way out,
/// so a too-wide model gets a message instead of the kernel's OOM killer.
public enum MemoryBudget {
    /// `EDDY_MEMORY_LIMIT` (bytes, or with a K/M/G/T suffix, powers of 1024) when set; else 80 % of the smaller of the
    /// physical memory and the cgroup's limit.
    public static var limit: Double {
        if let text = getenv("EDDY_MEMORY_LIMIT").map({ String(cString: $0) }), let bytes = parseBytes(text) { return bytes }
        var total = Double(sysconf(Int32(_SC_PHYS_PAGES))) * Double(sysconf(Int32(_SC_PAGESIZE)))
        if let cgroup = readCgroupLimit(), cgroup < total { total = cgroup }
        return total > 0 ? 0.8 * total : .infinity
    }

    /// Throws when `bytes` exceed the budget: "`what` needs N GB (…) but … allows M GB; `advice`".
    public static func check(_ bytes: Double, _ what: String, breakdown: String, advice: String) throws {
        let allowed = limit
        guard bytes.isFinite, bytes <= allowed else {
            throw EddyError("\(what) needs \(format(bytes)) (\(breakdown)), more than the \(format(allowed)) this machine can give (80 % of its memory, or EDDY_MEMORY_LIMIT); \(advice)")
        }
    }

    /// Bytes in the largest fitting unit: "512 MiB", "80.0 GiB".
    public static func format(_ bytes: Double) -> String {
        guard bytes.isFinite else { return "more than can be counted" }
        let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var v = bytes, i = 0
        while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
        return i == 0 ? "\(Int(v)) bytes" : v >= 1e15 ? "\(Format.scientific(v, 1)) \(units[i])" : "\(Format.fixed(v, v < 10 ? 1 : 0)) \(units[i])"
    }

    /// "123", "4G", "512M", "1.5T".
    static func parseBytes(_ text: String) -> Double? {
        let t = String(text.filter { $0 != " " }).uppercased()
        guard let last = t.last else { return nil }
        let scale: Double
        var number = t
        switch last {
        case "K": scale = 1024
        case "M": scale = 1024 * 1024
        case "G": scale = 1024 * 1024 * 1024
        case "T": scale = 1024 * 1024 * 1024 * 1024
        default: scale = 1
        }
        if scale != 1 { number.removeLast() }
        guard let v = Double(number), v > 0, v.isFinite else { return nil }
        return v * scale
    }

    /// cgroup v2 `memory.max` (or v1 `memory.limit_in_bytes`), when it is a number.
    static func readCgroupLimit() -> Double? {
        for path in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
            guard let f = fopen(path, "r") else { continue }
            defer { fclose(f) }
            var buffer = [CChar](repeating: 0, count: 64)
            guard fgets(&buffer, 64, f) != nil else { continue }
            let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if let v = Double(String(text.filter { !$0.isWhitespace })), v > 0 { return v }
        }
        return nil
    }
}

extension MemoryBudget {
    /// The peak of a training pass and solve, estimated from the shapes before anything large is allocated: the hidden
    /// layer, one chunk of lifted rows, the pass state (Gram or factor, with its block), the solve's copies, and for
    /// `lstsq` every row. Doubles throughout, counted in Double so absurd widths cannot overflow.
    public static func checkTraining(variables n: Int, delays k: Int, width: Int, inputs m: Int, form: Form, solver: SolverKind,
                                     chunkRows: Int, pairs: Int, advice: String = "use --pca, a smaller --width or fewer --delays") throws {
        let p = Double(n) * Double(k), w = Double(width)
        let d = 1 + p + w, f = d + Double(m), t = form == .koopman ? d : Double(n)
        let layer = p * w + w
        let chunk = Double(chunkRows) * (f + p + Double(m))
        let state: Double, solve: Double
        switch solver {
        case .cholesky, .eigh:
            state = f * f + f * t
            solve = solver == .cholesky ? f * f + f * t : 2 * f * f + 2 * f * t
        case .qr:
            // The factor and one block; the block's rows as `QRBlockBuilder` chooses them (bounded, so Int is safe here).
            let blockRows = Double(QRBlockBuilder.defaultBlockRows(columns: f + t < 1e15 ? Int(f + t) : Int.max))
            state = (f + t) * (f + t) + blockRows * (f + t)
            solve = 5 * f * f + 3 * f * t           // R₁₁ and its row-major copy, U, Vᵀ, LAPACK's copies
        case .lstsq:
            state = 2 * Double(pairs) * (f + t)      // the rows and dgelsd's copy
            solve = f * f
        }
        let bytes = 8 * (layer + chunk + state + solve)
        let count = { (x: Double) in x < 1e15 ? "\(Int(x))" : Format.scientific(x, 1) }   // an absurd width must not trap here
        let breakdown = "\(count(f)) features × \(count(t)) targets: pass state \(format(8 * state)), solve \(format(8 * solve)), hidden layer \(format(8 * layer)), one chunk \(format(8 * chunk))"
        try check(bytes, "training with \(solver.rawValue)", breakdown: breakdown, advice: advice)
    }
}
