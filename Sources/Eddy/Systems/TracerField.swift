import CNetCDF
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// A synthetic gridded field for demos and benchmarks of the gridded workflow, written as CF netCDF like reanalysis
/// data (`q(time, lat, lon)`, hourly, `hours since 2000-01-01`): a tracer on a lat/lon grid, periodic in longitude,
///
///     ∂q/∂t = −u(φ) ∂q/∂λ − v(λ, φ) ∂q/∂φ + κ ∇²q − (q − q_eq(φ))/τ + H(λ, φ, t) + blobs,
///
/// advected by a zonal jet `u = 0.4 + 1.2 cos²φ` cells/h with a weak meridional wave `v = 0.2 sin 2λ cos φ`, diffusing
/// (κ = 0.15 cells²/h), relaxing to `q_eq = 10 cos φ` (τ = 72 h), heated by a sun that circles the globe once a day
/// (`H = 0.6 (max(0, cos(λ − λ_sun(t))) − 1/π) cos φ`), and stirred by Gaussian blobs of random sign dropped at random
/// places (`blobRate` per hour, amplitude 3, width 2.5 cells) — the part no model can foresee. First-order upwind
/// advection and explicit diffusion in 4 sub-steps per hour; 10 days of spin-up are discarded.
public struct TracerOptions: Sendable {
    public var latitudes = 32
    public var longitudes = 64
    public var steps: Int
    public var seed: UInt64 = 0
    public var blobRate = 0.5

    public init(steps: Int) { self.steps = steps }
}

/// Streams the field to a netCDF file, one hour at a time (constant memory); the file appears only when complete.
public func generateTracerField(_ o: TracerOptions, to path: String, progress: ((Double) -> Void)? = nil) throws -> GenerationSummary {
    guard o.latitudes >= 3, o.longitudes >= 4 else { throw EddyError("--lat must be at least 3 and --lon at least 4, got \(o.latitudes) × \(o.longitudes)") }
    guard o.latitudes * o.longitudes <= 4_000_000 else { throw EddyError("--lat × --lon is too large (\(o.latitudes * o.longitudes) points; at most 4,000,000)") }
    guard o.steps >= 1 else { throw EddyError("--steps must be at least 1, got \(o.steps)") }
    guard o.blobRate >= 0, o.blobRate <= 50 else { throw EddyError("--blob-rate must lie in 0…50 blobs per hour, got \(o.blobRate)") }
    guard path.lowercased().hasSuffix(".nc") else { throw EddyError("\(path): the tracer field is gridded; write it to a netCDF (.nc) file") }
    let ny = o.latitudes, nx = o.longitudes, points = ny * nx
    let lats = (0..<ny).map { -75 + 150 * Double($0) / Double(ny - 1) }
    let lons = (0..<nx).map { 360 * Double($0) / Double(nx) }
    let rad = Double.pi / 180
    let u = lats.map { 0.4 + 1.2 * pow(cos($0 * rad), 2) }
    let cosLat = lats.map { cos($0 * rad) }
    var v = [Double](repeating: 0, count: points)
    for i in 0..<ny { for j in 0..<nx { v[i * nx + j] = 0.2 * sin(2 * lons[j] * rad) * cosLat[i] } }
    let equilibrium = cosLat.map { 10 * $0 }
    let kappa = 0.15, tau = 72.0, substeps = 4, h = 1.0 / Double(substeps)
    var q = [Double](repeating: 0, count: points)
    for i in 0..<ny { for j in 0..<nx { q[i * nx + j] = equilibrium[i] } }
    var next = q
    var random = SeededGenerator(seed: o.seed, stream: "generate.tracer")

    func advance(hour: Int) {
        let sun = 360 * Double(hour % 24) / 24
        for _ in 0..<substeps {
            for i in 0..<ny {
                let up = max(i - 1, 0), down = min(i + 1, ny - 1)
                for j in 0..<nx {
                    let k = i * nx + j
                    let w = (j + nx - 1) % nx, e = (j + 1) % nx
                    let c = q[k]
                    let dqdx = c - q[i * nx + w]                 // u > 0: upwind from the west
                    let vv = v[k]
                    let dqdy = vv > 0 ? c - q[up * nx + j] : q[down * nx + j] - c
                    let lap = q[i * nx + w] + q[i * nx + e] + q[up * nx + j] + q[down * nx + j] - 4 * c
                    let heat: Double = 0.6 * (max(0, cos((lons[j] - sun) * rad)) - 1 / Double.pi) * cosLat[i]
                    let transport: Double = -u[i] * dqdx - vv * dqdy + kappa * lap
                    next[k] = c + h * (transport - (c - equilibrium[i]) / tau + heat)
                }
            }
            swap(&q, &next)
        }
        // Blobs: a Poisson number per hour (mean blobRate; Knuth's product of uniforms) at random places, of random sign.
        var count = 0
        var product = Double.random(in: 0..<1, using: &random)
        let limit = exp(-o.blobRate)
        while product > limit {
            count += 1
            product *= Double.random(in: 0..<1, using: &random)
        }
        for _ in 0..<count {
            let ci = Double.random(in: 0..<Double(ny), using: &random), cj = Double.random(in: 0..<Double(nx), using: &random)
            let amplitude = 3 * (Double.random(in: 0..<1, using: &random) < 0.5 ? -1.0 : 1.0)
            for i in 0..<ny {
                for j in 0..<nx {
                    var dx = abs(Double(j) - cj)
                    dx = min(dx, Double(nx) - dx)
                    let dy = Double(i) - ci
                    let r2: Double = dx * dx + dy * dy
                    q[i * nx + j] += amplitude * exp(-r2 / 12.5)
                }
            }
        }
    }

    let spinUp = 240
    for hour in 0..<spinUp { advance(hour: hour) }
    let file = try NetCDFWriter(path: path)
    let timeDim = try file.dimension("time", nil), latDim = try file.dimension("lat", ny), lonDim = try file.dimension("lon", nx)
    try file.attribute(NC_GLOBAL, "Conventions", "CF-1.8")
    try file.attribute(NC_GLOBAL, "title", "eddy generate tracer: an advected, diffusing, daily-heated tracer with random blobs")
    let timeVar = try file.variable("time", [timeDim], attributes: [("units", "hours since 2000-01-01 00:00:00"), ("calendar", "proleptic_gregorian")])
    let latVar = try file.variable("lat", [latDim], attributes: [("units", "degrees_north")])
    let lonVar = try file.variable("lon", [lonDim], attributes: [("units", "degrees_east")])
    let qVar = try file.variable("q", [timeDim, latDim, lonDim], attributes: [("units", "1"), ("long_name", "tracer")])
    try file.endDefinitions()
    try file.put(latVar, start: [0], count: [ny], lats)
    try file.put(lonVar, start: [0], count: [nx], lons)
    for step in 0..<o.steps {
        advance(hour: spinUp + step)
        try file.put(timeVar, start: [step], count: [1], [Double(step)])
        try file.put(qVar, start: [step, 0, 0], count: [1, ny, nx], q)
        if step % 256 == 0 { progress?(Double(step) / Double(o.steps)) }
    }
    try file.commit()
    return GenerationSummary(path: path, trajectories: 1, steps: o.steps, variableNames: ["q (\(ny) × \(nx) grid)"], inputNames: [], dt: 3600)
}
