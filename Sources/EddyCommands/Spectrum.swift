import ArgumentParser
import Eddy

struct SpectrumCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spectrum",
        abstract: "Eigenvalues of a Koopman-form model's matrix K: modulus, frequency and growth rate.",
        discussion: """
        |λ| > 1 marks a growing mode, |λ| < 1 a decaying one; the constant in the dictionary gives λ = 1. Frequency is arg(λ)/(2π·dt) cycles per time unit, growth rate ln|λ|/dt per time unit.
        """
    )

    @Option(help: "A Koopman-form model file.") var model: String
    @Option(parsing: .unconditional, help: "Show the N eigenvalues of largest modulus (all are in --json).") var top = 20
    @Option(parsing: .unconditional, help: "Time step, for frequencies and growth rates (default: the model's dt; only where the model's dt was not read off a time column).") var dt: Double?
    @Option(help: "Draw the eigenvalues in the complex plane with the unit circle as SVG here.") var plot: String?
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try reportingErrors {
            if top < 0 { throw EddyError("--top must be at least 0 (the number of eigenvalues shown), got \(top)") }
            try OutputGuard.check(outputs: [("--plot", plot)], inputs: [("--model", model)])
            try OutputPath.check(plot, option: "--plot", [".svg"])
            var file = try readModel(model)
            try ModelTime.apply(dt, to: &file, path: model, reports: "frequencies and growth rates")
            let s = try Spectrum.of(file)
            if let plot {
                let chart = SpectrumPlot(title: "Eigenvalues of K: \(model) (width \(file.metadata.width), dt = \(Format.general(s.dt)))",
                                         eigenvalues: s.eigenvalues.map { ($0.real, $0.imaginary) })
                try AtomicFile.write(chart.render(), to: plot)
            }
            if json {
                print(JSON.object([
                    "dt": .number(s.dt),
                    "eigenvalues": .array(s.eigenvalues.map { .object(["real": .number($0.real), "imaginary": .number($0.imaginary), "modulus": .number($0.modulus), "frequency": .number($0.frequency), "growth_rate": .number($0.growthRate)]) }),
                ]).text)
                return
            }
            print("\(s.eigenvalues.count) eigenvalues of K (dt = \(Format.general(s.dt))); largest modulus first")
            print("  #   real          imag          modulus       frequency     growth rate")
            for (i, e) in s.eigenvalues.prefix(top).enumerated() {
                print(pad("\(i + 1)", 4) + pad(Format.scientific(e.real, 5), 14) + pad(Format.scientific(e.imaginary, 5), 14) + pad(Format.fixed(e.modulus, 8), 14)
                      + pad(Format.scientific(e.frequency, 4), 14) + Format.scientific(e.growthRate, 4))
            }
            let outside = s.eigenvalues.filter { $0.modulus > 1 + 1e-6 }.count
            print("\(plural(outside, "eigenvalue")) outside the unit circle (|λ| > 1 + 1e-6)")
        }
    }
}
