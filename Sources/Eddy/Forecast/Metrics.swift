#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Forecast skill and climate-statistics measures: valid prediction time, normalised errors, histogram KL
/// divergence, power spectra and the Hellinger distance between them, and the median used to summarise them.
public enum Metrics {

    // MARK: - Short-term skill

    /// Valid prediction time in steps: the number of leading steps whose error stays ≤ threshold
    /// (errors[h] is the error at forecast step h+1). If none exceeds, returns errors.count (censored).
    /// A NaN error counts as exceeding the threshold.
    public static func validPredictionSteps(errors: [Double], threshold: Double) -> Int {
        for (h, e) in errors.enumerated() where !(e <= threshold) { return h }
        return errors.count
    }

    /// Normalised error per step for one forecast: e_h = sqrt(mean_i ((f[h,i] − t[h,i]) / scale[i])²),
    /// forecast and truth row-major (steps × n), n = scale.count. Non-finite forecast values give +infinity
    /// for that step. A scale that is not finite and positive is taken as 1. Extra trailing values that do not
    /// fill a whole row (in either array) are ignored; the result has min(forecast, truth) rows.
    public static func normalisedErrors(forecast: [Double], truth: [Double], scale: [Double]) -> [Double] {
        let n = scale.count
        guard n > 0 else { return [] }
        let steps = min(forecast.count, truth.count) / n
        let inverse = scale.map { s in (s.isFinite && s > 0) ? 1 / s : 1 }
        var out = [Double](repeating: 0, count: steps)
        for h in 0..<steps {
            var sum = 0.0
            var finite = true
            for i in 0..<n {
                let f = forecast[h * n + i]
                if !f.isFinite { finite = false; break }
                let d = (f - truth[h * n + i]) * inverse[i]
                sum += d * d
            }
            out[h] = finite ? (sum / Double(n)).squareRoot() : .infinity
            if finite && !out[h].isFinite { out[h] = .infinity }   // NaN truth or overflow
        }
        return out
    }

    // MARK: - Climate statistics

    /// KL(truth ‖ model) between histograms of two samples of one variable: `bins` equal bins over the truth's
    /// range widened by 10% each side (a constant truth gets a half-width of 10% of its magnitude, or 1 if zero);
    /// model values outside are counted in the edge bins, and non-finite model values are treated as outside
    /// (−∞ in the first bin, +∞ and NaN in the last). Non-finite truth values are ignored.
    ///
    /// Smoothing: each histogram gets a pseudo-count of 1e-6 × its sample size added to every bin before
    /// normalising, i.e. p_b = (c_b / N + 1e-6) / (1 + bins · 1e-6), so the result is always finite.
    /// Returns 0 when either sample is empty (nothing to compare).
    public static func histogramKL(truth: [Double], model: [Double], bins: Int = 50) -> Double {
        let finiteTruth = truth.filter { $0.isFinite }
        guard let lo0 = finiteTruth.min(), let hi0 = finiteTruth.max(), !model.isEmpty else { return 0 }
        let bins = max(bins, 1)
        let span = hi0 - lo0
        let pad = span > 0 ? 0.1 * span : (lo0 != 0 ? 0.1 * abs(lo0) : 1)
        let lo = lo0 - pad
        let width = (hi0 + pad) - lo

        func histogram(_ values: [Double]) -> [Double] {
            var counts = [Double](repeating: 0, count: bins)
            for v in values {
                let b: Int
                if v.isNaN {
                    b = bins - 1
                } else {
                    let t = (v - lo) / width * Double(bins)
                    b = t <= 0 ? 0 : (t >= Double(bins) ? bins - 1 : Int(t))
                }
                counts[b] += 1
            }
            let eps = 1e-6
            let total = Double(values.count)
            let norm = 1 + Double(bins) * eps
            return counts.map { ($0 / total + eps) / norm }
        }

        let p = histogram(finiteTruth)
        let q = histogram(model)
        var kl = 0.0
        for b in 0..<bins { kl += p[b] * log(p[b] / q[b]) }
        return max(kl, 0)
    }

    /// One-sided power spectrum of a real series: length truncated to the largest power of two n ≤ count
    /// (the first n values), mean removed, periodic Hann window, radix-2 FFT (iterative, in place).
    /// Returns n/2+1 powers |X_k|² / Σw², with bins 1…n/2−1 doubled (one-sided). Empty input gives [];
    /// non-finite input gives non-finite powers.
    public static func powerSpectrum(_ x: [Double]) -> [Double] {
        guard !x.isEmpty else { return [] }
        var n = 1
        while n * 2 <= x.count { n *= 2 }
        if n == 1 { return [0] }

        var mean = 0.0
        for i in 0..<n { mean += x[i] }
        mean /= Double(n)

        var re = [Double](repeating: 0, count: n)
        var im = [Double](repeating: 0, count: n)
        var windowPower = 0.0
        for i in 0..<n {
            let w = 0.5 * (1 - cos(2 * Double.pi * Double(i) / Double(n)))
            re[i] = (x[i] - mean) * w
            windowPower += w * w
        }
        fft(re: &re, im: &im)

        let half = n / 2
        var power = [Double](repeating: 0, count: half + 1)
        for k in 0...half {
            var p = (re[k] * re[k] + im[k] * im[k]) / windowPower
            if k != 0 && k != half { p *= 2 }
            power[k] = p
        }
        return power
    }

    /// Hellinger distance (0…1) between the two power spectra normalised to unit sum. Both series are cut to
    /// the shorter one's length first, so the spectra have the same length. A spectrum with non-finite values
    /// (a diverged model) gives 1; two all-zero spectra (constant series) give 0, one all-zero spectrum gives 1.
    public static func spectrumDistance(truth: [Double], model: [Double]) -> Double {
        let m = min(truth.count, model.count)
        let p = powerSpectrum(Array(truth.prefix(m)))
        let q = powerSpectrum(Array(model.prefix(m)))
        guard !p.isEmpty else { return 0 }
        if p.contains(where: { !$0.isFinite }) || q.contains(where: { !$0.isFinite }) { return 1 }
        let sp = p.reduce(0, +)
        let sq = q.reduce(0, +)
        if !(sp > 0) && !(sq > 0) { return 0 }
        if !(sp > 0) || !(sq > 0) { return 1 }
        // H² = ½ Σ (√p̂ − √q̂)² (equal to 1 − Σ √(p̂ q̂), but exactly 0 for identical spectra).
        var sum = 0.0
        for k in 0..<p.count {
            let d = (p[k] / sp).squareRoot() - (q[k] / sq).squareRoot()
            sum += d * d
        }
        return min(1, (0.5 * sum).squareRoot())
    }

    // MARK: - Summaries

    /// Median (average of the two middle values for even counts); nil when empty. NaNs sort last.
    public static func median(_ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let s = values.sorted { a, b in a.isNaN ? false : (b.isNaN ? true : a < b) }
        let mid = s.count / 2
        return s.count % 2 == 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2
    }

    // MARK: - FFT

    /// In-place iterative radix-2 Cooley–Tukey FFT (forward, no scaling); the count must be a power of two.
    private static func fft(re: inout [Double], im: inout [Double]) {
        let n = re.count
        guard n > 1 else { return }
        // Bit-reversal permutation.
        var j = 0
        for i in 1..<n {
            var bit = n >> 1
            while j & bit != 0 { j ^= bit; bit >>= 1 }
            j |= bit
            if i < j { re.swapAt(i, j); im.swapAt(i, j) }
        }
        // Twiddles exp(−2πik/n), k < n/2, computed directly (no accumulated rounding).
        let half = n / 2
        var wr = [Double](repeating: 0, count: half)
        var wi = [Double](repeating: 0, count: half)
        for k in 0..<half {
            let a = -2 * Double.pi * Double(k) / Double(n)
            wr[k] = cos(a)
            wi[k] = sin(a)
        }
        var len = 2
        while len <= n {
            let h = len / 2
            let stride = n / len
            var start = 0
            while start < n {
                for k in 0..<h {
                    let a = start + k, b = a + h
                    let tr = wr[k * stride], ti = wi[k * stride]
                    let xr = re[b] * tr - im[b] * ti
                    let xi = re[b] * ti + im[b] * tr
                    re[b] = re[a] - xr; im[b] = im[a] - xi
                    re[a] += xr; im[a] += xi
                }
                start += len
            }
            len *= 2
        }
    }
}
