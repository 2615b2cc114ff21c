import ArgumentParser
import Eddy

struct ControlCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "control",
        abstract: "Close the loop on a simulated system with a controller built on the learned model, and compare it with LQR on the true linearisation.",
        discussion: """
        At each step the measured state is lifted, the learned lifted linear model (the Koopman form's K and B, exactly; a recurrent model linearised at the reference's centre) gives the input, and the true system is integrated over dt with that input held (RK4, as eddy generate). Controllers: none (no input), true-lqr (LQR on the true system's linearisation at the target, the benchmark), eddy-lqr (infinite-horizon LQR on the lifted model, Riccati equation in double) and eddy-mpc (receding-horizon MPC with the input bounds). All use the cost Σ q_i (x_i − r_i)² + Σ r_j (u_j − u*_j)² in data units, and every input is saturated to --umin/--umax before it reaches the system; a demand outside them counts as a violation.
        References: setpoint:v1,v2 (a state) or sine:AMPLITUDE,PERIOD[,OFFSET] on the first variable (the second, its rate, follows the derivative).
        Example: eddy control --model pendulum.safetensors --system pendulum --reference setpoint:3.14159,0 --initial 2.6,0 --steps 200 --umin=-2 --umax 2
        """
    )

    @Option(help: "A model with inputs trained on the system (Koopman form; a recurrent model is linearised at the reference's centre).") var model: String
    @Option(help: "The true system in the loop: forced-vanderpol or pendulum.") var system: String
    @Option(help: "setpoint:v1,v2 or sine:AMPLITUDE,PERIOD[,OFFSET].") var reference: String
    @Option(parsing: .unconditional, help: "Control steps of the model's dt.") var steps: Int
    @Option(help: "Controllers, comma-separated: none, true-lqr, eddy-lqr, eddy-mpc, or all.") var controller = "all"
    @Option(help: "Lower input bounds, one per input (values starting with '-' need =, as --umin=-2).") var umin: String?
    @Option(help: "Upper input bounds, one per input.") var umax: String?
    @Option(parsing: .unconditional, help: "Steps eddy-mpc looks ahead (its receding horizon).") var mpcHorizon = 40
    @Option(name: .customLong("horizon"), parsing: .unconditional, help: ArgumentHelp("Old name of --mpc-horizon (--horizon is forecast steps in the other commands).", visibility: .hidden))
    var oldHorizon: Int?
    /// The MPC horizon, under its name or the old one.
    var horizon: Int { oldHorizon ?? mpcHorizon }
    @Option(help: "Lifted modes eddy-lqr keeps: auto (stable for a Koopman model with features, else all), stable (the invariant subspace of |λ| < 1) or all. eddy-mpc keeps all.") var liftedModes = "auto"
    @Option(help: "State weights q, one per variable (data units).") var q: String?
    @Option(help: "Input weights r, one per input (data units).") var r: String?
    @Option(help: "Initial state, one value per variable (default: random in the system's box, from --seed).") var initial: String?
    @Option(help: "Seed of the random initial state.") var seed = SeedOption(0)
    @Option(parsing: .unconditional, help: "RK4 sub-steps per dt when integrating the true system.") var substeps = 10
    @Option(help: "Write the closed-loop trajectories and inputs of every controller as CSV here (- for standard output, instead of the table).") var out: String?
    @Option(help: "Draw the closed-loop trajectories and inputs as SVG here.") var plot: String?
    @Flag(help: "Print JSON.") var json = false

    func numbers(_ text: String, _ option: String, infinite: Bool = false) throws -> [Double] {
        let parts = splitList(text)
        let values = parts.compactMap(Double.init)
        guard !parts.isEmpty, values.count == parts.count else {
            throw EddyError("\(option): expected comma-separated numbers, got '\(text)'")
        }
        if let bad = values.first(where: { $0.isNaN || (!infinite && $0.isInfinite) }) {
            throw EddyError("\(option): expected \(infinite ? "numbers (or ±inf)" : "finite numbers"), got \(Format.general(bad)) in '\(text)'")
        }
        return values
    }

    /// The most RK4 sub-steps per dt.
    static let maxSubsteps = 100_000

    /// Option ranges, before any file is read.
    func checkOptions(variables n: Int, inputs m: Int, controllers: Int) throws {
        if steps < 1 { throw EddyError("--steps must be at least 1, got \(steps)") }
        if horizon < 1 { throw EddyError("\(oldHorizon == nil ? "--mpc-horizon" : "--horizon") must be at least 1, got \(horizon)") }
        if !(1...Self.maxSubsteps).contains(substeps) {
            throw EddyError("--substeps must be in 1…\(Self.maxSubsteps), got \(substeps)")
        }
        // Each controller's run holds states and references (n each) and applied and demanded inputs (m each) per step.
        let values = SizeGuard.product([steps, 2 * (n + m), max(1, controllers)])
        try SizeGuard.check(values: values, what: "--steps \(steps): \(plural(controllers, "closed-loop run")) of \(plural(steps, "step"))",
                            advice: "use fewer --steps")
    }

    func run() throws {
        try reportingErrors {
            if oldHorizon != nil { printError("eddy: note: control's --horizon is now --mpc-horizon (the old name still works)") }
            guard let name = SystemName(rawValue: system), [.forcedVanderpol, .pendulum].contains(name) else {
                throw EddyError("--system: unknown or uncontrollable system '\(system)'; expected forced-vanderpol or pendulum")
            }
            let sys = DynamicalSystem(name)
            let n = sys.dimension, m = sys.inputCount
            let kinds: [ControllerKind] = controller == "all" ? ControllerKind.allCases
                : try splitList(controller).map { try parseChoice($0, "--controller") }
            if kinds.isEmpty { throw EddyError("--controller: name at least one controller") }
            try checkOptions(variables: n, inputs: m, controllers: kinds.count)
            let seed = try self.seed.value()
            try OutputPath.checkStdout([("--out", out)], json: json)
            try OutputGuard.check(outputs: OutputPath.files([("--out", out), ("--plot", plot)]), inputs: [("--model", model)])
            try OutputPath.check(out, option: "--out", [".csv"], stdout: true)
            try OutputPath.check(plot, option: "--plot", [".svg"])
            let file = try readModel(model)
            let ref = try TrackingReference.parse(reference, variables: sys.variableNames)
            let lower = try umin.map { try numbers($0, "--umin", infinite: true) } ?? .init(repeating: -.infinity, count: m)
            let upper = try umax.map { try numbers($0, "--umax", infinite: true) } ?? .init(repeating: .infinity, count: m)
            let bounds = try InputBounds(lower: lower, upper: upper)
            let weights = ControlWeights(state: try q.map { try numbers($0, "--q") } ?? .init(repeating: 1, count: n),
                                         input: try r.map { try numbers($0, "--r") } ?? .init(repeating: 0.1, count: m))
            let start: [Double]
            if let initial {
                start = try numbers(initial, "--initial")
            } else {
                var rng = SeededGenerator(seed: seed, stream: "control.initial")
                start = sys.initialCondition(using: &rng, range: nil)
            }
            var task = ControlTask(system: sys, reference: ref, initial: start, steps: steps, dt: file.metadata.dt,
                                   weights: weights, bounds: bounds)
            task.substeps = substeps
            task.horizon = horizon
            task.modes = try parseChoice(liftedModes, "--lifted-modes")
            try task.validate()
            try task.check(model: file, path: model)
            if abs(task.dt - sys.defaultDt) > 1e-12 * sys.defaultDt {
                printError("eddy: warning: the model's dt (\(Format.general(task.dt))) is not \(name.rawValue)'s usual \(Format.general(sys.defaultDt)); the loop runs at the model's dt")
            }
            let lifted = kinds.contains(where: { $0 == .eddyLQR || $0 == .eddyMPC }) ? try task.liftedModel(file) : nil
            if kinds.contains(.eddyMPC), let lifted {
                // The condensed MPC holds A^i·B (H·k·m), Γ and the weighted Γ (H·k × H·m each) and the Hessian (H·m)².
                let k = lifted.stateSize
                let values = SizeGuard.sum(ofProducts: [[horizon, k, m], [2, horizon, k, horizon, m], [horizon, m, horizon, m]])
                try SizeGuard.check(values: values, what: "--mpc-horizon \(horizon): the MPC over \(horizon) steps of a \(k)-dimensional lifted state",
                                    advice: "use fewer --mpc-horizon steps")
            }
            var clock = Stopwatch()
            var runs: [(ClosedLoopRun, Double)] = []
            // A design that does not exist for this model (no stabilising Riccati solution) is a result, not bad
            // input: it is reported and the other controllers still run.
            var failures: [(ControllerKind, String)] = []
            for kind in kinds {
                do {
                    let run = try task.run(kind, model: lifted)
                    runs.append((run, clock.lap()))
                } catch let error as EddyError {
                    _ = clock.lap()
                    failures.append((kind, error.message))
                    printError("eddy: warning: \(kind.rawValue): \(error.message)")
                }
            }
            // Everything is computed; now write the outputs (each atomically).
            if let out { try OutputPath.write(controlCSV(runs.map(\.0), system: sys), to: out) }
            if let plot { try AtomicFile.write(controlPlot(runs.map(\.0), system: sys, task: task), to: plot) }
            if json {
                print(controlJSON(runs, failures: failures, task: task, model: file, path: model, referenceSpec: reference).text)
                return
            }
            if out == "-" { return }
            let meta = file.metadata
            print("\(name.rawValue) with \(model) (\(meta.form.rawValue), width \(meta.width), delays \(meta.delays)): reference \(reference), \(steps) steps of dt = \(Format.general(task.dt)) from x0 = (\(start.map { Format.general($0) }.joined(separator: ", ")))")
            print("weights q = \(weights.state.map { Format.general($0) }.joined(separator: ",")), r = \(weights.input.map { Format.general($0) }.joined(separator: ","))"
                  + (bounds.isBounded ? "; inputs in [\(lower.map { Format.general($0) }.joined(separator: ","))] … [\(upper.map { Format.general($0) }.joined(separator: ","))]" : "; inputs unbounded")
                  + (kinds.contains(.eddyMPC) ? "; MPC horizon \(horizon)" : ""))
            print("")
            print("controller  tracking RMSE  late RMSE   final error  effort      max |u|     violations  seconds")
            for (run, seconds) in runs {
                let mt = run.metrics
                print(pad(run.controller, 12) + pad(Format.scientific(mt.trackingRMSE), 15) + pad(Format.scientific(mt.lateRMSE), 12)
                      + pad(Format.scientific(mt.finalError), 13) + pad(Format.scientific(mt.effort), 12) + pad(Format.scientific(mt.maxAbsInput), 12)
                      + pad("\(mt.violations)", 12) + Format.fixed(seconds, 3)
                      + (mt.divergedAt.map { "  diverged at step \($0)" } ?? ""))
            }
            for (kind, message) in failures { print(pad(kind.rawValue, 12) + "no design: " + message) }
            print("(RMSE over all variables in data units; late: second half of the run; effort: Σ‖u‖²·dt of the applied input; violations: steps whose demanded input left the bounds)")
            if let out { print("wrote \(out)") }
            if let plot { print("wrote \(plot)") }
        }
    }
}

func controlJSON(_ runs: [(ClosedLoopRun, Double)], failures: [(ControllerKind, String)], task: ControlTask, model: Model,
                 path: String, referenceSpec: String) -> JSON {
    let meta = model.metadata
    return .object([
        "system": .string(task.system.name.rawValue), "model": .string(path), "form": .string(meta.form.rawValue),
        "width": .int(meta.width), "delays": .int(meta.delays), "dt": .number(task.dt), "steps": .int(task.steps),
        "substeps": .int(task.substeps), "reference": .string(referenceSpec), "initial": .numbers(task.initial),
        "umin": .numbers(task.bounds.lower), "umax": .numbers(task.bounds.upper), "q": .numbers(task.weights.state),
        "r": .numbers(task.weights.input), "lifted_weight": .number(task.weights.liftedWeight), "mpc_horizon": .int(task.horizon),
        "lifted_modes": .string(task.modes.rawValue),
        "controllers": .array(runs.map { run, seconds in
            let mt = run.metrics
            return .object([
                "controller": .string(run.controller), "tracking_rmse": .number(mt.trackingRMSE),
                "tracking_rmse_per_variable": .numbers(mt.perVariableRMSE), "late_rmse": .number(mt.lateRMSE),
                "final_error": .number(mt.finalError), "effort": .number(mt.effort), "max_abs_input": .number(mt.maxAbsInput),
                "violations": .int(mt.violations), "max_violation": .number(mt.maxViolation),
                "diverged_at": mt.divergedAt.map { .int($0) } ?? .null, "seconds": .seconds(seconds),
                "final_state": .numbers(Array(run.states[(task.steps * run.variables)...])),
                "design": .object(run.report.map { ($0.0, JSON.number($0.1)) }),
            ])
        } + failures.map { kind, message in .object(["controller": .string(kind.rawValue), "error": .string(message)]) }),
    ])
}

func controlCSV(_ runs: [ClosedLoopRun], system: DynamicalSystem) -> String {
    let names = system.variableNames, inputs = system.inputNames
    var text = (["controller", "step", "t"] + names + names.map { "reference_\($0)" } + inputs + inputs.map { "\($0)_demanded" })
        .joined(separator: ",") + "\n"
    func field(_ v: Double) -> String { v.isFinite ? "\(v)" : "nan" }
    for run in runs {
        let n = run.variables, m = run.inputs, steps = run.times.count - 1
        for t in 0...steps {
            var row = [run.controller, "\(t)", "\(run.times[t])"]
            row += (0..<n).map { field(run.states[t * n + $0]) }
            row += (0..<n).map { field(run.references[t * n + $0]) }
            // The input held from step t to t + 1; none after the last step.
            row += (0..<m).map { t < steps ? field(run.applied[t * m + $0]) : "nan" }
            row += (0..<m).map { t < steps ? field(run.demanded[t * m + $0]) : "nan" }
            text += row.joined(separator: ",") + "\n"
        }
    }
    return text
}

/// One panel per variable (each controller's trajectory and the reference) and one per input (the applied inputs
/// and the bounds).
func controlPlot(_ runs: [ClosedLoopRun], system: DynamicalSystem, task: ControlTask) -> String {
    guard let first = runs.first else { return LinePlot(title: "eddy control", panels: []).render() }
    let n = first.variables, m = first.inputs, steps = first.times.count - 1
    var panels: [LinePlot.Panel] = []
    for i in 0..<n {
        var series = runs.map { run in
            LinePlot.Series(name: run.controller, x: run.times, y: (0...steps).map { run.states[$0 * n + i] })
        }
        series.append(LinePlot.Series(name: "reference", x: first.times, y: (0...steps).map { first.references[$0 * n + i] },
                                      dashed: true, color: "#000000"))
        var panel = LinePlot.Panel(title: system.variableNames[i], xLabel: "time (the model's time units)", yLabel: system.variableNames[i], series: series)
        panel.yPadding = 0.05
        panels.append(panel)
    }
    let times = Array(first.times.dropLast())
    for j in 0..<m {
        var series = runs.map { run in
            LinePlot.Series(name: run.controller, x: times, y: (0..<steps).map { run.applied[$0 * m + j] })
        }
        for (label, bound) in [("umin", task.bounds.lower[j]), ("umax", task.bounds.upper[j])] where bound.isFinite {
            series.append(LinePlot.Series(name: label, x: [times.first ?? 0, times.last ?? 0], y: [bound, bound], dashed: true, color: "#888888"))
        }
        // Padding keeps the bound lines inside the frame, not on it.
        var panel = LinePlot.Panel(title: "input \(system.inputNames[j]) (applied)", xLabel: "time (the model's time units)", yLabel: system.inputNames[j], series: series)
        panel.yPadding = 0.08
        panels.append(panel)
    }
    return LinePlot(title: "eddy control: \(system.name.rawValue), closed loop", panels: panels).render()
}
