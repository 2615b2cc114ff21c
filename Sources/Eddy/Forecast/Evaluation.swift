/// Forecast skill on held-out trajectories (METHOD.md, "Evaluation").
public struct Evaluation: Codable, Sendable {
    public struct Step: Codable, Sendable {
        public var step: Int
        /// Mean squared error in the data's units, over origins and variables.
        public var mse: Double
        /// The same on standardised variables (training statistics).
        public var mseStandardised: Double
        /// Root of the standardised MSE: RMSE in units of each variable's training standard deviation.
        public var nrmse: Double
    }
    public struct ValidPredictionTime: Codable, Sendable {
        public var threshold: Double
        public var medianSteps: Double
        public var medianTime: Double
        /// In Lyapunov times, when an exponent was given.
        public var medianLyapunovTimes: Double?
        public var lyapunovExponent: Double?
        /// Origins whose error never crossed the threshold within the horizon (their VPT is the horizon).
        public var censored: Int
    }
    public struct Climate: Codable, Sendable {
        public var steps: Int
        /// Mean over variables of KL(truth ‖ free run) between histograms.
        public var histogramKL: Double
        /// Mean over variables of the Hellinger distance between power spectra.
        public var spectrumDistance: Double
        public var perVariableKL: [Double]
        public var perVariableSpectrum: [Double]
    }

    public var variables: [String]
    public var horizon: Int
    public var dt: Double
    public var origins: Int
    public var mse: Double
    public var mseStandardised: Double
    public var perVariableMSE: [Double]
    public var nonFiniteForecasts: Int
    public var steps: [Step]
    public var validPredictionTime: ValidPredictionTime
    public var climate: Climate?
}

public enum Evaluator {
    public static func evaluate(model: Model, cases: [ForecastCase], forecasts: [Double], horizon: Int,
                                threshold: Double = 0.5, lyapunov: Double?) -> Evaluation {
        var sums = EvaluationSums(model: model, horizon: horizon, threshold: threshold)
        sums.add(cases: cases, forecasts: forecasts)
        return sums.evaluation(lyapunov: lyapunov)
    }

    /// Long free runs against the truth: one run per segment from its first window, over the whole segment.
    public static func climate(model: Model, segments: [Segment], maxSteps: Int, path: String) throws -> Evaluation.Climate {
        let n = model.outputCount, k = model.layout.delays
        let usable = segments.filter { $0.rowCount > k + 16 }
        guard !usable.isEmpty else { throw EddyError("\(path): no segment is long enough for a free run (need more than \(k + 16) rows)") }
        let horizon = min(maxSteps, usable.map { $0.rowCount - k }.min()!)
        let cases = try Forecaster.cases(model: model, segments: usable, origins: .rows([k - 1]), horizon: horizon, path: path)
        let runs = Forecaster.run(model: model, cases: cases, horizon: horizon)
        var kl = [Double](repeating: 0, count: n), spec = [Double](repeating: 0, count: n)
        for i in 0..<n {
            var truthAll: [Double] = [], modelAll: [Double] = []
            var s = 0.0
            for (c, fc) in cases.enumerated() {
                let t = stride(from: i, to: fc.truth.count, by: n).map { fc.truth[$0] }
                let f = (0..<(t.count)).map { runs[(c * horizon + $0) * n + i] }
                truthAll += t; modelAll += f
                s += Metrics.spectrumDistance(truth: t, model: f)
            }
            kl[i] = Metrics.histogramKL(truth: truthAll, model: modelAll)
            spec[i] = s / Double(cases.count)
        }
        return .init(steps: horizon, histogramKL: kl.reduce(0, +) / Double(n), spectrumDistance: spec.reduce(0, +) / Double(n),
                     perVariableKL: kl, perVariableSpectrum: spec)
    }
}

/// Eigenvalues of the Koopman matrix `K` (METHOD.md: stability, frequencies, growth rates).
public struct Spectrum: Codable, Sendable {
    public struct Eigenvalue: Codable, Sendable {
        public var real: Double
        public var imaginary: Double
        public var modulus: Double
        /// Cycles per time unit: arg(λ) / (2π dt).
        public var frequency: Double
        /// Continuous-time growth rate ln|λ| / dt (negative: decaying).
        public var growthRate: Double
    }
    public var dt: Double
    public var eigenvalues: [Eigenvalue]

    public static func of(_ model: Model) throws -> Spectrum {
        guard let k = model.koopmanMatrix else {
            throw EddyError("the spectrum needs a Koopman-form model (train with --form koopman); this one is \(model.metadata.form.rawValue)")
        }
        let d = model.layout.dictionarySize
        // K acts on row vectors (g K); its eigenvalues equal those of Kᵀ, so the row-major array serves as is.
        let (wr, wi, info) = LAPACK.geev(k, n: d)
        if info != 0 { throw EddyError("eigenvalue computation failed (LAPACK dgeev info \(info))") }
        let dt = model.metadata.dt
        var values: [Eigenvalue] = []
        for i in 0..<d {
            let mod = (wr[i] * wr[i] + wi[i] * wi[i]).squareRoot()
            let arg = atan2(wi[i], wr[i])
            values.append(.init(real: wr[i], imaginary: wi[i], modulus: mod, frequency: arg / (2 * Double.pi * dt),
                                growthRate: mod > 0 ? log(mod) / dt : -.infinity))
        }
        values.sort { $0.modulus > $1.modulus }
        return Spectrum(dt: dt, eigenvalues: values)
    }
}

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Reference forecasts every skill score needs (METHOD.md, "Evaluation"), on the same origins as the model.
public enum Baseline: String, CaseIterable, Sendable {
    /// The last observed value, held.
    case persistence
    /// The last observed cycle repeated: for hourly data the same hour on the previous day (period from `dt`).
    case seasonal
    /// The training mean at the same phase of the daily cycle (hour of day for hourly data).
    case climatology
    /// The causal trailing climatology: the mean of the last N days' values at the valid time's hour, observed up to
    /// the origin (`TrailingClimatology`).
    case trailing
}

/// The rows of the data by trajectory and time, for the trailing-climatology baseline: for a forecast from origin
/// time `t₀` valid at `v`, the mean over the `days` latest times `τ, τ − day, …` with `τ ≤ t₀` and `τ ≡ v` modulo a
/// day (`day = period · dt`), of the rows observed there — a forecaster's "same hour over the last N days", using
/// nothing after the origin. Rows are found by time, not position, so gaps and segment breaks between the days do not
/// matter (a missing day is left out of the mean; with none of the N days observed there is no forecast). The
/// segments may start before the evaluated window (`eddy evaluate` reads N days more for it).
public struct TrailingClimatology: Sendable {
    public let days: Int
    let day: Double
    let period: Int
    let dt: Double
    let segments: [Segment]
    /// episode → time step index (`time / dt`, rounded) → (segment, row).
    let index: [String: [Int64: (Int, Int)]]

    public init(segments: [Segment], days: Int, period: Int, dt: Double) {
        self.days = days
        self.period = period
        self.dt = dt
        day = Double(period) * dt
        self.segments = segments
        var index: [String: [Int64: (Int, Int)]] = [:]
        for (si, s) in segments.enumerated() where s.times.count == s.rowCount {
            for r in 0..<s.rowCount { index[s.episode, default: [:]][Int64((s.times[r] / dt).rounded())] = (si, r) }
        }
        self.index = index
    }

    /// The baseline of one forecast (`horizon × n`, NaN at steps where none of the days was observed).
    public func forecast(episode: String, origin t0: Double, horizon: Int, n: Int) -> [Double] {
        var out = [Double](repeating: .nan, count: horizon * n)
        guard let rows = index[episode] else { return out }
        let origin = Int64((t0 / dt).rounded()), p = Int64(period)
        var sum = [Double](repeating: 0, count: n)
        for h in 0..<horizon {
            let valid = origin + Int64(h + 1)
            // The latest step at the valid time's phase that is not after the origin.
            let latest = valid - p * ((valid - origin + p - 1) / p)
            for i in 0..<n { sum[i] = 0 }
            var count = 0
            for d in 0..<Int64(days) {
                guard let (si, r) = rows[latest - d * p] else { continue }
                let row = segments[si].row(r)
                for i in 0..<n { sum[i] += row[row.startIndex + i] }
                count += 1
            }
            if count > 0 { for i in 0..<n { out[h * n + i] = sum[i] / Double(count) } }
        }
        return out
    }
}

/// The sums behind an `Evaluation`, added batch by batch of cases, so that evaluating many origins of a wide state
/// never holds all their forecasts at once (`Evaluator.evaluate` is one batch).
public struct EvaluationSums: Sendable {
    let model: Model
    let horizon: Int
    let threshold: Double
    var sum: [Double], sumStd: [Double], counts: [Int]
    var perVariable: [Double], perVariableCount = 0
    var vpts: [Double] = []
    var censored = 0, nonFinite = 0, origins = 0

    public init(model: Model, horizon: Int, threshold: Double = 0.5) {
        self.model = model
        self.horizon = horizon
        self.threshold = threshold
        sum = .init(repeating: 0, count: horizon)
        sumStd = .init(repeating: 0, count: horizon)
        counts = .init(repeating: 0, count: horizon)
        perVariable = .init(repeating: 0, count: model.outputCount)
    }

    /// Adds the cases and their forecasts (`cases.count × H × n`, data units).
    public mutating func add(cases: [ForecastCase], forecasts: [Double]) {
        let n = model.outputCount
        let std = model.outputStd
        for (c, fc) in cases.enumerated() {
            let available = fc.truth.count / n
            let slice = Array(forecasts[(c * horizon * n)..<(c * horizon * n + available * n)])
            if slice.contains(where: { !$0.isFinite }) { nonFinite += 1 }
            for h in 0..<available {
                for i in 0..<n {
                    let e = slice[h * n + i] - fc.truth[h * n + i]
                    let e2 = e.isFinite ? e * e : .infinity
                    sum[h] += e2
                    sumStd[h] += e2 / (std[i] * std[i])
                    perVariable[i] += e2
                }
                counts[h] += n
                perVariableCount += 1
            }
            let errors = Metrics.normalisedErrors(forecast: slice, truth: fc.truth, scale: std)
            let v = Metrics.validPredictionSteps(errors: errors, threshold: threshold)
            if v == errors.count { censored += 1 }
            vpts.append(Double(v))
        }
        origins += cases.count
    }

    public func evaluation(lyapunov: Double?) -> Evaluation {
        var steps: [Evaluation.Step] = []
        var total = 0.0, totalStd = 0.0, totalCount = 0
        for h in 0..<horizon where counts[h] > 0 {
            let mse = sum[h] / Double(counts[h]), ms = sumStd[h] / Double(counts[h])
            steps.append(.init(step: h + 1, mse: mse, mseStandardised: ms, nrmse: ms.squareRoot()))
            total += sum[h]; totalStd += sumStd[h]; totalCount += counts[h]
        }
        let median = Metrics.median(vpts) ?? 0
        let dt = model.metadata.dt
        let vpt = Evaluation.ValidPredictionTime(threshold: threshold, medianSteps: median, medianTime: median * dt,
                                                 medianLyapunovTimes: lyapunov.map { median * dt * $0 }, lyapunovExponent: lyapunov,
                                                 censored: censored)
        return Evaluation(variables: model.metadata.variables, horizon: horizon, dt: dt, origins: origins,
                          mse: totalCount > 0 ? total / Double(totalCount) : .nan,
                          mseStandardised: totalCount > 0 ? totalStd / Double(totalCount) : .nan,
                          perVariableMSE: perVariable.map { perVariableCount > 0 ? $0 / Double(perVariableCount) : .nan },
                          nonFiniteForecasts: nonFinite, steps: steps, validPredictionTime: vpt, climate: nil)
    }
}

/// The sums behind a `Comparison`, added batch by batch of cases (`Evaluator.compare` is one batch).
public struct ComparisonSums: Sendable {
    let model: Model
    let horizon: Int
    let steps: [Int]
    let methods: [String]
    /// [step][method][variable] sums of squared errors, and the origins counted at each step.
    var sums: [[[Double]]]
    var counts: [Int]

    public init(model: Model, horizon: Int, steps: [Int], methods: [String]) {
        self.model = model
        self.horizon = horizon
        self.steps = steps
        self.methods = methods
        sums = .init(repeating: .init(repeating: .init(repeating: 0, count: model.outputCount), count: methods.count), count: steps.count)
        counts = .init(repeating: 0, count: steps.count)
    }

    /// Adds the cases with each method's forecasts (`cases.count × H × n`, in `methods` order). The first method (the
    /// model) is never excused: a non-finite forecast of it makes its MSE infinite rather than dropping the origin.
    public mutating func add(cases: [ForecastCase], forecasts: [[Double]]) {
        precondition(forecasts.count == methods.count, "one forecast array per method")
        let n = model.outputCount
        for (si, step) in steps.enumerated() {
            let h = step - 1
            for (c, fc) in cases.enumerated() where fc.truth.count >= (h + 1) * n {
                let usable = forecasts.dropFirst().allSatisfy { f in (0..<n).allSatisfy { f[(c * horizon + h) * n + $0].isFinite } }
                guard usable else { continue }
                counts[si] += 1
                for (k, f) in forecasts.enumerated() {
                    for i in 0..<n {
                        let e = f[(c * horizon + h) * n + i] - fc.truth[h * n + i]
                        sums[si][k][i] += e.isFinite ? e * e : .infinity
                    }
                }
            }
        }
    }

    public var comparison: Comparison {
        let table = methods.indices.map { k in
            (method: methods[k], values: steps.indices.map { si in sums[si][k].map { counts[si] > 0 ? $0 / Double(counts[si]) : .nan } })
        }
        return Comparison(variables: model.metadata.variables, steps: steps, mse: table, origins: counts.max() ?? 0)
    }
}

/// Errors per variable at chosen steps, for the model and its baselines.
public struct Comparison: Sendable {
    public var variables: [String]
    public var steps: [Int]
    /// Method name → [step index][variable] mean squared error in data units (NaN where no truth).
    public var mse: [(method: String, values: [[Double]])]
    public var origins: Int

    /// The grid points of each gridded field (`VAR[DIM=VALUE:…]`) averaged into one row `VAR (N points)`; the other
    /// variables (station columns, `NAME@STATION`) stay as they are. A table of thousands of grid points says less.
    public func byField() -> Comparison {
        var rows: [(name: String, members: [Int])] = []
        for (i, v) in variables.enumerated() {
            guard let open = v.firstIndex(of: "[") else { rows.append((v, [i])); continue }
            let field = String(v[..<open])
            if let r = rows.firstIndex(where: { $0.name == field && variables[$0.members[0]].contains("[") }) {
                rows[r].members.append(i)
            } else {
                rows.append((field, [i]))
            }
        }
        guard rows.count < variables.count else { return self }
        let names = rows.map { variables[$0.members[0]].contains("[") ? "\($0.name) (\($0.members.count) points)" : $0.name }
        let averaged = mse.map { m in
            (method: m.method, values: m.values.map { step in rows.map { r in r.members.map { step[$0] }.reduce(0, +) / Double(r.members.count) } })
        }
        return Comparison(variables: names, steps: steps, mse: averaged, origins: origins)
    }
}

extension Evaluator {
    /// Baseline forecasts (`B × H × n`, data units) for the cases, from the segments they came from.
    /// `trailing` serves `.trailing` (required for it).
    public static func baseline(_ kind: Baseline, model: Model, segments: [Segment], cases: [ForecastCase], horizon: Int,
                                trailing: TrailingClimatology? = nil) throws -> [Double] {
        let n = model.outputCount
        var out = [Double](repeating: .nan, count: cases.count * horizon * n)
        let period = model.metadata.climatologyPeriod
        for (c, fc) in cases.enumerated() {
            switch kind {
            case .persistence:
                let last = Array(fc.history.suffix(n))
                for h in 0..<horizon { for i in 0..<n { out[(c * horizon + h) * n + i] = last[i] } }
            case .seasonal:
                guard let p = period else { throw EddyError("the seasonal baseline needs a daily cycle: train on data with a time column whose step divides a day") }
                let s = segments[fc.segment]
                guard fc.origin >= p - 1 else { continue }
                for h in 0..<horizon {
                    let row = s.row(fc.origin - p + 1 + h % p)
                    for i in 0..<n { out[(c * horizon + h) * n + i] = row[row.startIndex + i] }
                }
            case .climatology:
                guard let p = period, let clim = model.climatology, let t0 = fc.time else {
                    throw EddyError("the climatology baseline needs a daily cycle: train on data with a time column whose step divides a day")
                }
                for h in 0..<horizon {
                    let k = DataStatistics.phase(t0 + Double(h + 1) * model.metadata.dt, dt: model.metadata.dt, period: p)
                    for i in 0..<n { out[(c * horizon + h) * n + i] = clim[k * n + i] }
                }
            case .trailing:
                guard let trailing, let t0 = fc.time else {
                    throw EddyError("the trailing-climatology baseline needs a daily cycle: train on data with a time column whose step divides a day")
                }
                let f = trailing.forecast(episode: fc.episode, origin: t0, horizon: horizon, n: n)
                for j in 0..<(horizon * n) { out[c * horizon * n + j] = f[j] }
            }
        }
        return out
    }

    /// Mean squared error per variable at each step (1-based), over the cases that have truth there and a forecast from
    /// every baseline (so all methods are scored on the same origins); see `ComparisonSums`.
    public static func compare(model: Model, cases: [ForecastCase], horizon: Int, steps: [Int], methods: [(String, [Double])]) -> Comparison {
        var sums = ComparisonSums(model: model, horizon: horizon, steps: steps, methods: methods.map(\.0))
        sums.add(cases: cases, forecasts: methods.map(\.1))
        return sums.comparison
    }

    /// Forecasts that left the training range by more than its own width, or turned non-finite: (case, first step).
    public static func diverged(model: Model, forecasts: [Double], cases: Int, horizon: Int) -> [(case: Int, step: Int)] {
        let n = model.outputCount
        guard let range = model.metadata.trainingRange, range.count == n else {
            return (0..<cases).compactMap { c in
                (0..<horizon).first { h in (0..<n).contains { !forecasts[(c * horizon + h) * n + $0].isFinite } }.map { (c, $0 + 1) }
            }
        }
        var out: [(Int, Int)] = []
        for c in 0..<cases {
            for h in 0..<horizon {
                let bad = (0..<n).contains { i in
                    let v = forecasts[(c * horizon + h) * n + i]
                    let width = range[i][1] - range[i][0]
                    return !v.isFinite || v < range[i][0] - width || v > range[i][1] + width
                }
                if bad { out.append((c, h + 1)); break }
            }
        }
        return out
    }
}
