import Eddy

/// Output paths as every command treats them: `-` is standard output for text outputs (CSV, JSON), and any other
/// name must end in an extension the output is written as (never CSV silently written into `f.txt`).
enum OutputPath {
    /// Refuses a name whose extension is not one of `extensions` (".csv", …), naming the option; `-` passes where
    /// the output can go to standard output (`stdout`).
    static func check(_ path: String?, option: String, _ extensions: [String], stdout: Bool = false) throws {
        guard let path else { return }
        let listed = extensions.joined(separator: ", ")
        if path == "-" {
            if stdout { return }
            throw EddyError("\(option) -: this output is written as \(listed) to a file (standard output takes only CSV and JSON); give a file name")
        }
        let lower = path.lowercased()
        guard extensions.contains(where: { lower.hasSuffix($0) }) else {
            throw EddyError("\(option) \(path): unknown extension; expected a name ending in \(listed)" + (stdout ? ", or - for standard output" : ""))
        }
    }

    /// At most one output to standard output, and none beside `--json` (both would share stdout).
    static func checkStdout(_ outputs: [(option: String, path: String?)], json: Bool) throws {
        let dashes = outputs.filter { $0.path == "-" }.map(\.option)
        if dashes.count > 1 { throw EddyError("\(dashes.joined(separator: " and ")) are both -: only one output can go to standard output") }
        if json, let o = dashes.first { throw EddyError("\(o) - and --json both write to standard output; give \(o) a file name") }
    }

    /// The outputs `OutputGuard` checks: those that go to a file (`-` is standard output, nothing to check).
    static func files(_ outputs: [(option: String, path: String?)]) -> [(option: String, path: String?)] {
        outputs.map { ($0.option, $0.path == "-" ? nil : $0.path) }
    }

    /// Writes a text output: to standard output for `-`, else atomically to the file.
    static func write(_ text: String, to path: String) throws {
        if path == "-" { print(text, terminator: "") } else { try AtomicFile.write(text, to: path) }
    }
}

/// "1 forecast", "3 forecasts" (Format.count).
func plural(_ n: Int, _ noun: String, _ pluralForm: String? = nil) -> String { Format.count(n, noun, plural: pluralForm) }

/// Where a model's dt came from: read off a time column or given as `train --dt` (stored), or assumed to be 1.
enum ModelTime {
    /// Whether the model's dt was set by its training data or options rather than assumed (dt = 1 with neither).
    static func dtIsStored(_ model: Model) -> Bool {
        let s = model.metadata.shaping
        return model.metadata.dt != 1 || s?.dt != nil || s?.timeColumn != nil || s?.timesAreDates == true
    }

    /// Applies a command's `--dt` (evaluate, spectrum) to a model whose dt was assumed; refuses one that clashes with
    /// a stored dt. With neither, warns (once, when `reports` names what the dt scales) that dt = 1 was assumed.
    static func apply(_ dt: Double?, to model: inout Model, path: String, reports: String?) throws {
        if let dt {
            if !(dt > 0 && dt.isFinite) { throw EddyError("--dt must be a finite number > 0, got \(dt)") }
            if dtIsStored(model), dt != model.metadata.dt {
                throw EddyError("--dt \(Format.general(dt)) clashes with the dt = \(Format.general(model.metadata.dt)) stored in the model \(path) (set when it was trained, from its time column or train's --dt); leave --dt out")
            }
            model.metadata.dt = dt
        } else if !dtIsStored(model), let reports {
            printError("eddy: warning: the model \(path) has dt = 1 (trained without a time column or --dt), so \(reports) count steps as time units; give --dt (here, or to train) for real units")
        }
    }

    /// A time span in the data's units: hours or days when the model's times are dates (seconds), else the number.
    static func span(_ t: Double, model: Model, bare: Bool = false) -> String {
        guard model.metadata.shaping?.timesAreDates == true, t.isFinite else { return Format.short(t) + (bare ? "" : " time units") }
        if abs(t) >= 2 * 86_400 { return Format.short(t / 86_400) + " d" }
        if abs(t) >= 3600 { return Format.short(t / 3600) + " h" }
        if abs(t) >= 60 { return Format.short(t / 60) + " min" }
        return Format.short(t) + " s"
    }
}
