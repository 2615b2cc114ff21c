import ArgumentParser
import Eddy
import EddyOpenCL

struct Tune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tune CLBlast's GEMM/SYRK kernel (Xgemm) for an OpenCL device and cache the result for later runs.",
        discussion: """
        CLBlast 1.5.3 has no tuned parameters for newer GPUs (H100, H200) and runs generic defaults there. eddy tune times CLBlast's defaults and a sample of Xgemm parameter sets at the pass's shape — a SYRK (n = ld) and the Koopman cross product as the pass calls it (m = n = ld, k = --rows, no copies) — checks both products against OpenBLAS, and keeps the best if it is at least 3% faster, in a cache file per device and driver under $XDG_CACHE_HOME/eddy (~/.cache/eddy). Every later eddy run on that device applies it (CLBlastOverrideParameters); eddy devices and train's backend line say so.
        --set stores parameters found elsewhere, e.g. by CLBlast's own tuner (clblast_tuner_xgemm in Debian's clblast-utils):
          eddy tune --device 0 --set "Xgemm single GEMMK=0 KREG=1 KWG=32 KWI=2 MDIMA=16 MDIMC=16 MWG=64 NDIMB=8 NDIMC=8 NWG=64 SA=1 SB=1 STRM=0 STRN=0 VWM=4 VWN=4"
        """
    )

    @Option(help: "OpenCL device: an index or part of a name, as eddy devices lists them (default: auto's GPU).") var device: String?
    @Option(name: [.customLong("precisions"), .customLong("precision")], help: "Precisions to tune, comma-separated, as --precision elsewhere: mixed (the float kernels mixed precision runs) and double ('single' is the old name of mixed).") var precision = "mixed,double"
    @Option(help: "Features of the timed pass: ld, the dictionary size D padded to a multiple of 64 (4160 for D = 4129 at the benchmark shape).") var size = 2048
    @Option(help: "Rows per slice of the timed pass (eddy train/bench --chunk-rows; a multiple of 128).") var rows = 4096
    @Option(help: "Parameter sets to try besides CLBlast's defaults.") var trials = 12
    @Option(help: "Seconds per precision after which no further parameter set is started (the best so far is kept).") var budget: Double?
    @Option(help: "Store this line in the cache instead of searching: KERNEL single|double NAME=VALUE …") var set: String?
    @Flag(help: "Print the cached parameters for the device.") var show = false
    @Flag(help: "Delete the device's cache file.") var clear = false
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try reportingErrors {
            let devices = try OpenCLDevices.all()
            let chosen: OpenCLDevice?
            if let q = device { chosen = devices.first { $0.matches(q) } } else { chosen = BackendSelection.autoCandidate(devices, precision: .mixed) }
            guard let d = chosen else {
                throw EddyError(device.map { "--device \($0): no such OpenCL device" } ?? "no OpenCL GPU to tune (name one with --device; eddy devices lists them)")
            }
            let file = TuningCache.path(for: d)
            if clear {
                print(TuningCache.clear(for: d) ? "removed \(file)" : "no cache file \(file)")
                return
            }
            if let budget, !(budget > 0) { throw EddyError("--budget must be a positive number of seconds, got \(budget)") }
            if let set {
                guard let entry = KernelParameters(line: set) else { throw EddyError("--set: expected 'KERNEL single|double NAME=VALUE …', got '\(set)'") }
                try TuningCache.save([entry], for: d)
                print("wrote \(file)")
                return
            }
            if show {
                let entries = TuningCache.load(for: d)
                if json {
                    print(JSON.object(["device": .string(d.name), "file": .string(file), "entries": .array(entries.map { .string($0.line) })]).text)
                } else {
                    print(entries.isEmpty ? "no tuned parameters for \(d.name) (\(file))" : "\(file):\n" + entries.map { "  " + $0.line }.joined(separator: "\n"))
                }
                return
            }
            var found: [KernelParameters] = []
            var reports: [JSON] = []
            let wanted = splitList(precision)
            if wanted.contains("single") { printError("eddy: note: tune's --precision single is now --precision mixed (the float kernels; the old name still works)") }
            for given in wanted {
                guard ["mixed", "single", "double"].contains(given) else { throw EddyError("--precision: unknown value '\(given)'; expected mixed, double") }
                // CLBlast's kernels are single or double; mixed precision runs the single ones.
                let p = given == "double" ? "double" : "single"
                if p == "double" && !d.fp64 { printError("eddy: \(d.name) has no FP64; skipping double"); continue }
                printError("tuning Xgemm \(p) on \(d.name): CLBlast defaults and \(trials) parameter sets, ld = \(size), \(rows) rows")
                // Progress goes to stderr with --json too: a run cut short by a timeout still shows how far it got.
                let r = try Tuner.run(device: d, single: p == "single", size: size, rows: rows, trials: trials, budget: budget) { line in
                    printError("  " + line)
                }
                // Saved as each precision ends: a later precision that runs out of time loses nothing of this one.
                if let best = r.best {
                    found.append(best)
                    try TuningCache.save(found, for: d)
                }
                reports.append(.object([
                    "precision": .string(given), "kernel_precision": .string(p), "size": .int(r.size), "rows": .int(r.rows), "fresh_contexts": .int(r.freshContexts), "default_gflops": .number(r.defaultRate), "best_gflops": .number(r.bestRate),
                    "best": r.best.map { .string($0.line) } ?? .null, "tried": .int(r.trials.count - 1),
                    "failed": .int(r.trials.filter { $0.error != nil }.count), "skipped": .int(r.skipped),
                ]))
                if !json {
                    print("\(p): defaults \(Format.fixed(r.defaultRate, 1)) GFLOP/s; " + (r.best.map { "best \(Format.fixed(r.bestRate, 1)) GFLOP/s with \($0.line)" } ?? "no set beat them by 3%"))
                }
            }
            if json {
                print(JSON.object(["device": .string(d.name), "driver": .string(d.driver), "file": found.isEmpty ? .null : .string(file), "results": .array(reports)]).text)
            } else {
                print(found.isEmpty ? "nothing to cache" : "wrote \(file)")
            }
        }
    }
}
