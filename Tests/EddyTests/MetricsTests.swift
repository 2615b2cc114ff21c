import Testing
@testable import Eddy

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

@Suite("Metrics")
struct MetricsTests {
    @Test func validPredictionStepsStopsAtFirstExceedance() {
        let errors = [0.1, 0.2, 0.35, 0.5, 0.41, 0.2]
        #expect(Metrics.validPredictionSteps(errors: errors, threshold: 0.4) == 3)
        #expect(Metrics.validPredictionSteps(errors: errors, threshold: 0.35) == 3)   // ≤ threshold is still valid
        #expect(Metrics.validPredictionSteps(errors: errors, threshold: 0.05) == 0)
        #expect(Metrics.validPredictionSteps(errors: [0.1, .nan, 0.1], threshold: 1) == 1)
    }

    @Test func validPredictionStepsCensoredWhenNeverExceeds() {
        #expect(Metrics.validPredictionSteps(errors: [0.1, 0.2, 0.3], threshold: 1) == 3)
        #expect(Metrics.validPredictionSteps(errors: [], threshold: 1) == 0)
    }

    @Test func normalisedErrorsByHand() {
        // 2 steps × 2 variables, scales 2 and 4.
        let truth = [1.0, 2.0, 3.0, 4.0]
        let forecast = [3.0, 2.0, 3.0, 12.0]
        let e = Metrics.normalisedErrors(forecast: forecast, truth: truth, scale: [2, 4])
        // step 1: ((2/2)² + 0²)/2 = 0.5 → √0.5; step 2: (0 + (8/4)²)/2 = 2 → √2
        #expect(e.count == 2)
        #expect(abs(e[0] - 0.5.squareRoot()) < 1e-12)
        #expect(abs(e[1] - 2.0.squareRoot()) < 1e-12)
    }

    @Test func normalisedErrorsNonFiniteForecastIsInfinite() {
        let e = Metrics.normalisedErrors(forecast: [0, .nan, 1, 1, .infinity, 0], truth: [0, 0, 1, 1, 0, 0], scale: [1, 1])
        #expect(e == [.infinity, 0, .infinity])
    }

    @Test func histogramKLIdenticalIsZero() {
        let x = (0..<1000).map { sin(Double($0) * 0.37) }
        #expect(abs(Metrics.histogramKL(truth: x, model: x)) < 1e-12)
    }

    @Test func histogramKLShiftedIsPositive() {
        let x = (0..<1000).map { sin(Double($0) * 0.37) }
        let shifted = x.map { $0 + 0.5 }
        let kl = Metrics.histogramKL(truth: x, model: shifted)
        #expect(kl > 0.1)
        #expect(kl.isFinite)
        // A diverged model (all NaN or infinite) is finite too, and worse.
        let diverged = Metrics.histogramKL(truth: x, model: x.map { _ in Double.nan })
        #expect(diverged.isFinite && diverged > kl)
    }

    @Test func histogramKLTwoBinsByHand() {
        // Truth range [0, 1] widened to [−0.1, 1.1]; bins [−0.1, 0.5) and [0.5, 1.1].
        // Truth counts (1, 1); model counts (3, 1), with −7 outside the range counted in the first bin.
        let truth = [0.0, 1.0]
        let model = [0.2, -7.0, 0.1, 0.9]
        let eps = 1e-6
        let p = [(0.5 + eps) / (1 + 2 * eps), (0.5 + eps) / (1 + 2 * eps)]
        let q = [(0.75 + eps) / (1 + 2 * eps), (0.25 + eps) / (1 + 2 * eps)]
        let expected = p[0] * log(p[0] / q[0]) + p[1] * log(p[1] / q[1])
        let kl = Metrics.histogramKL(truth: truth, model: model, bins: 2)
        #expect(abs(kl - expected) < 1e-12)
        #expect(abs(kl - (0.5 * log(0.5 / 0.75) + 0.5 * log(0.5 / 0.25))) < 1e-5)
    }

    @Test func powerSpectrumPeaksAtSinusoidBin() {
        // 300 samples → truncated to 256; 10 cycles per 256 samples → bin 10.
        let x = (0..<300).map { 3 + sin(2 * Double.pi * 10 * Double($0) / 256) }
        let p = Metrics.powerSpectrum(x)
        #expect(p.count == 129)
        let peak = p.indices.max { p[$0] < p[$1] }
        #expect(peak == 10)
        #expect(p[0] < 1e-20 * p[10] + 1e-12)   // mean removed
    }

    @Test func powerSpectrumMatchesDirectDFT() {
        let n = 64
        let x: [Double] = (0..<n).map { i in
            let t = Double(i)
            let a: Double = sin(t * 0.3)
            let b: Double = 0.5 * cos(t * 1.1)
            return a + b + Double(i % 7) * 0.1
        }
        let p = Metrics.powerSpectrum(x)
        let mean = x.reduce(0, +) / Double(n)
        var wsum = 0.0
        let xw = (0..<n).map { i -> Double in
            let w = 0.5 * (1 - cos(2 * Double.pi * Double(i) / Double(n)))
            wsum += w * w
            return (x[i] - mean) * w
        }
        for k in 0...(n / 2) {
            var re = 0.0, im = 0.0
            for i in 0..<n {
                let a = -2 * Double.pi * Double(k * i) / Double(n)
                re += xw[i] * cos(a); im += xw[i] * sin(a)
            }
            let expected = (re * re + im * im) / wsum * ((k == 0 || k == n / 2) ? 1 : 2)
            #expect(abs(p[k] - expected) < 1e-9 * max(1, expected))
        }
    }

    @Test func spectrumDistance() {
        let a = (0..<512).map { sin(2 * Double.pi * 8 * Double($0) / 512) }
        let b = (0..<600).map { sin(2 * Double.pi * 60 * Double($0) / 512) }
        #expect(Metrics.spectrumDistance(truth: a, model: a) == 0)
        let d = Metrics.spectrumDistance(truth: a, model: b)
        #expect(d > 0.5 && d <= 1)
        #expect(Metrics.spectrumDistance(truth: a, model: a.map { _ in Double.nan }) == 1)
    }

    @Test func median() {
        #expect(Metrics.median([3, 1, 2]) == 2)
        #expect(Metrics.median([4, 1, 3, 2]) == 2.5)
        #expect(Metrics.median([]) == nil)
        #expect(Metrics.median([5]) == 5)
        #expect(Metrics.median([1, .infinity, 2]) == 2)
    }
}
