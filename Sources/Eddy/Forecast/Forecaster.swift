/// Where forecasts start in each trajectory segment. An origin `t` is the newest row of the delay window; the
/// forecast predicts rows `t+1 … t+H`.
public enum OriginChoice: Sendable, Equatable {
    /// The last `k` rows of each trajectory (its last segment): forecasts past the end of the data.
    case last
    /// Every `stride` rows from the first full window, as long as the whole horizon has truth.
    case every(stride: Int)
    /// The given row indices within each segment (0-based), where the window fits.
    case rows([Int])
}

/// One forecast to make: a standardised window, the standardised future inputs, and the truth when known.
public struct ForecastCase: Sendable {
    public var episode: String
    public var origin: Int
    public var window: [Double]
    public var inputs: [Double]
    /// Up to `H × n` values in data units (fewer when the data end first).
    public var truth: [Double]
    /// The window's rows in data units, oldest first (for plots).
    public var history: [Double]
    /// Time of the origin row, when the data have a time column.
    public var time: Double?
    /// Index of the segment it came from.
    public var segment: Int
}

/// Free runs of a model, many origins at once (METHOD.md, "Two recurrent forms"; forecasts in both forms).
public enum Forecaster {
    /// Picks origins and builds the cases. `futureInputs` (episode → H × m rows in data units) supplies inputs
    /// past the end of the data.
    public static func cases(model: Model, segments: [Segment], origins: OriginChoice, horizon: Int,
                             futureInputs: [String: [Double]] = [:], path: String) throws -> [ForecastCase] {
        let picks = try Forecaster.origins(model: model, segments: segments, choice: origins, horizon: horizon, path: path)
        return try cases(model: model, segments: segments, picks: picks, horizon: horizon, futureInputs: futureInputs, path: path)
    }

    /// The origins a choice gives, as (segment, row) pairs in order; an error when none fits.
    public static func origins(model: Model, segments: [Segment], choice origins: OriginChoice, horizon: Int,
                               path: String) throws -> [(segment: Int, row: Int)] {
        let k = model.layout.delays
        var picks: [(segment: Int, row: Int)] = []
        switch origins {
        case .last:
            var lastOf: [String: Int] = [:]
            for (i, s) in segments.enumerated() where s.rowCount >= k { lastOf[s.episode] = i }
            var seen = Set<String>()
            for s in segments where !seen.contains(s.episode) {
                seen.insert(s.episode)
                if let i = lastOf[s.episode] { picks.append((i, segments[i].rowCount - 1)) }
            }
        case .every(let stride):
            for (i, s) in segments.enumerated() {
                var t = k - 1
                while t + horizon <= s.rowCount - 1 {
                    picks.append((i, t))
                    t += max(1, stride)
                }
            }
        case .rows(let list):
            for (i, s) in segments.enumerated() {
                for t in list where t >= k - 1 && t < s.rowCount { picks.append((i, t)) }
            }
        }
        if picks.isEmpty, case .rows(let list) = origins {
            // Row origins need the row to exist (and k − 1 rows before it); the horizon does not matter here.
            let longest = segments.map(\.rowCount).max() ?? 0
            throw EddyError("\(path): no origin among --origins \(list.map { "\($0)" }.joined(separator: ",")) is a row of the data: "
                            + "an origin row must be at least \(k - 1) (the model's \(k) delay row\(k == 1 ? "" : "s")) and below its trajectory segment's length "
                            + "(the longest segment has \(longest) row\(longest == 1 ? "" : "s"): rows 0…\(max(0, longest - 1)))")
        }
        if picks.isEmpty {
            throw EddyError("\(path): no forecast origin fits: every segment is shorter than the \(k) delay rows plus the horizon \(horizon) (longest segment: \(segments.map(\.rowCount).max() ?? 0) rows)")
        }
        return picks
    }

    /// The cases of the given origins (see `origins`), in their order.
    public static func cases(model: Model, segments: [Segment], picks: some Collection<(segment: Int, row: Int)>, horizon: Int,
                             futureInputs: [String: [Double]] = [:], path: String) throws -> [ForecastCase] {
        let l = model.layout
        // Rows hold the model's variables (data units) then its inputs; the window holds the standardised state
        // (the variables, or their leading components with --pca).
        let n = model.outputCount, state = l.variables, m = l.inputs, k = l.delays
        let norm = model.normalisation
        var out: [ForecastCase] = []
        out.reserveCapacity(picks.count)
        for (si, t) in picks {
            let s = segments[si]
            var window: [Double] = []
            window.reserveCapacity(state * k)
            var history: [Double] = []
            for lag in 0..<k { window += model.standardisedState(s.row(t - lag)) }
            for r in (t - k + 1)...t { history += s.row(r).prefix(n) }
            let available = min(horizon, s.rowCount - 1 - t)
            var truth: [Double] = []
            for h in 0..<available { truth += s.row(t + 1 + h).prefix(n) }
            var inputs = [Double](repeating: 0, count: horizon * m)
            if m > 0 {
                // u_h for h = 0…H−1 drives the step from row t+h to t+h+1.
                let fromData = min(horizon, s.rowCount - t)
                for h in 0..<fromData {
                    let row = s.row(t + h)
                    for j in 0..<m { inputs[h * m + j] = row[row.startIndex + n + j] }
                }
                if fromData < horizon {
                    // Past the data: calendar inputs from the time, the others from the future-inputs file.
                    let external = m - 2 * model.calendar.count
                    if external > 0 {
                        guard let future = futureInputs[s.episode], future.count >= (horizon - fromData) * external else {
                            throw EddyError("\(path): the model has inputs (\(model.externalInputs.joined(separator: ", "))) and trajectory '\(s.episode)' ends \(fromData) step(s) after the origin; give the remaining \(horizon - fromData) future input rows with --future-inputs FILE")
                        }
                        for h in fromData..<horizon {
                            for j in 0..<external { inputs[h * m + j] = future[(h - fromData) * external + j] }
                        }
                    }
                    if !model.calendar.isEmpty {
                        guard s.times.count == s.rowCount else {
                            throw EddyError("\(path): the model's calendar inputs need the time column in the data")
                        }
                        for h in fromData..<horizon {
                            let time = s.times[t] + Double(h) * model.metadata.dt
                            for (q, feature) in model.calendar.enumerated() {
                                let (sv, cv) = feature.values(at: time)
                                inputs[h * m + external + 2 * q] = sv
                                inputs[h * m + external + 2 * q + 1] = cv
                            }
                        }
                    }
                }
                for h in 0..<horizon {
                    for j in 0..<m { inputs[h * m + j] = (inputs[h * m + j] - norm.inputMean[j]) / norm.inputStd[j] }
                }
            }
            out.append(ForecastCase(episode: s.episode, origin: t, window: window, inputs: inputs, truth: truth, history: history,
                                    time: s.times.count == s.rowCount ? s.times[t] : nil, segment: si))
        }
        return out
    }

    /// Runs all cases together; returns `B × H × n` forecasts in data units (n: the model's variables).
    public static func run(model: Model, cases: [ForecastCase], horizon: Int) -> [Double] {
        model.dataUnits(runStandardised(model: model, cases: cases, horizon: horizon), count: cases.count * horizon)
    }

    /// The free runs in the model's own state: `B × H × state`, standardised.
    static func runStandardised(model: Model, cases: [ForecastCase], horizon: Int) -> [Double] {
        let l = model.layout
        let b = cases.count, n = l.variables, m = l.inputs, p = l.windowSize, d = l.dictionarySize, f = l.featureCount
        var out = [Double](repeating: 0, count: b * horizon * n)
        var windows = cases.flatMap(\.window)
        var features = [Double](repeating: 0, count: b * f)
        let noInputs = [Double](repeating: 0, count: b * m)
        func inputs(at h: Int) -> [Double] {
            guard m > 0 else { return noInputs }
            var u = [Double](repeating: 0, count: b * m)
            for c in 0..<b { for j in 0..<m { u[c * m + j] = cases[c].inputs[h * m + j] } }
            return u
        }
        switch l.form {
        case .koopman where b > 2 * n:
            // Many origins: propagate the readout instead of every origin's dictionary row (METHOD.md, "Two recurrent
            // forms"). g_{h+1} = g_0 K^{h+1} + Σ_{j≤h} u_j B K^{h−j}, so x̂_h = g_0 V_{h+1} + Σ_{j≤h} u_j W_{h−j} with
            // V_k = K^k S (S selects the state columns 1…n) and W_k = B V_k: per step one d×d by d×n product for all
            // origins instead of a b×(d+m) by (d+m)×d one — the Koopman form scores as fast as the recurrent one.
            features = Lift.rows(windows: windows, inputs: inputs(at: 0), count: b, layer: model.layer, layout: l)
            var g0 = [Double](repeating: 0, count: b * d)
            for c in 0..<b { for j in 0..<d { g0[c * d + j] = features[c * f + j] } }
            let k = Array(model.theta[0..<(d * d)])
            let bm = m > 0 ? Array(model.theta[(d * d)...]) : []
            var v = [Double](repeating: 0, count: d * n)            // V_0 = S
            for i in 0..<n { v[(1 + i) * n + i] = 1 }
            var next = [Double](repeating: 0, count: d * n)
            var x = [Double](repeating: 0, count: b * n)
            var w: [[Double]] = []                                   // W_0 … W_h, m × n each
            var allInputs: [[Double]] = []                           // u_0 … u_h, b × m each
            for h in 0..<horizon {
                if m > 0 {
                    var wk = [Double](repeating: 0, count: m * n)
                    BLAS.multiply(bm, rows: m, inner: d, v, columns: n, into: &wk)
                    w.append(wk)
                    allInputs.append(inputs(at: h))
                }
                BLAS.multiply(k, rows: d, inner: d, v, columns: n, into: &next)
                swap(&v, &next)                                      // V_{h+1}
                BLAS.multiply(g0, rows: b, inner: d, v, columns: n, into: &x)
                if m > 0 {
                    for j in 0...h {
                        let wk = w[h - j], u = allInputs[j]
                        for c in 0..<b {
                            for q in 0..<m {
                                let uq = u[c * m + q]
                                if uq == 0 { continue }
                                for i in 0..<n { x[c * n + i] += uq * wk[q * n + i] }
                            }
                        }
                    }
                }
                for c in 0..<b { for i in 0..<n { out[(c * horizon + h) * n + i] = x[c * n + i] } }
            }
        case .koopman:
            // g_0 = Ψ(z_0); g_{h+1} = [g_h, u_h] Θ; x̂_h = g_h C (the state columns of g_h).
            features = Lift.rows(windows: windows, inputs: inputs(at: 0), count: b, layer: model.layer, layout: l)
            var next = [Double](repeating: 0, count: b * d)
            for h in 0..<horizon {
                if h > 0 {
                    let u = inputs(at: h)
                    for c in 0..<b {
                        for j in 0..<d { features[c * f + j] = next[c * d + j] }
                        for j in 0..<m { features[c * f + d + j] = u[c * m + j] }
                    }
                }
                BLAS.multiply(features, rows: b, inner: f, model.theta, columns: d, into: &next)
                for c in 0..<b { for i in 0..<n { out[(c * horizon + h) * n + i] = next[c * d + 1 + i] } }
            }
        case .recurrent:
            var x = [Double](repeating: 0, count: b * n)
            for h in 0..<horizon {
                features = Lift.rows(windows: windows, inputs: inputs(at: h), count: b, layer: model.layer, layout: l)
                BLAS.multiply(features, rows: b, inner: f, model.theta, columns: n, into: &x)
                for c in 0..<b {
                    // Shift the prediction into the window: newest first.
                    let base = c * p
                    if p > n { for j in stride(from: p - 1, through: n, by: -1) { windows[base + j] = windows[base + j - n] } }
                    for i in 0..<n {
                        windows[base + i] = x[c * n + i]
                        out[(c * horizon + h) * n + i] = x[c * n + i]
                    }
                }
            }
        }
        return out
    }
}
