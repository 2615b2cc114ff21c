import Foundation

/// The packed value of the ERA5-shaped test field.
public func era5Raw(step: Int, level: Int, lat: Int, lon: Int) -> Double {
    (1000 * sin(0.3 * Double(step) + 0.7 * Double(lon) + 0.2 * Double(lat)) + 300 * Double(level) + 50 * Double(lat)).rounded()
}

/// An ERA5-shaped file: t(valid_time, pressure_level 2, latitude 3 descending, longitude 4), int16 packed, hourly
/// from 2020-01-01 in `seconds since 1970-01-01`; `fillAt`: a step whose first point is the fill value.
public func writeERA5(_ path: String, steps: Int, fillAt: Int? = nil) throws {
    var t: [Double] = []
    for s in 0..<steps {
        for l in 0..<2 { for i in 0..<3 { for j in 0..<4 { t.append(s == fillAt && l == 0 && i == 0 && j == 0 ? -32767 : era5Raw(step: s, level: l, lat: i, lon: j)) } } }
    }
    let b = ClassicNetCDFBuilder(records: steps, dimensions: [("valid_time", 0), ("pressure_level", 2), ("latitude", 3), ("longitude", 4)], variables: [
        .init("valid_time", [0], type: 4, values: (0..<steps).map { 1_577_836_800 + 3600 * Double($0) },
              attributes: [("units", "seconds since 1970-01-01"), ("calendar", "proleptic_gregorian"), ("standard_name", "time"), ("long_name", "time")]),
        .init("pressure_level", [1], values: [850, 500], attributes: [("units", "hPa"), ("long_name", "pressure"), ("positive", "down"), ("standard_name", "air_pressure")]),
        .init("latitude", [2], values: [50, 45, 40], attributes: [("units", "degrees_north"), ("standard_name", "latitude"), ("long_name", "latitude")]),
        .init("longitude", [3], values: [0, 90, 180, 270], attributes: [("units", "degrees_east"), ("standard_name", "longitude"), ("long_name", "longitude")]),
        .init("t", [0, 1, 2, 3], type: 3, values: t, attributes: [("units", "K"), ("long_name", "Temperature"), ("standard_name", "air_temperature")],
              numericAttributes: [("scale_factor", 6, [0.01]), ("add_offset", 6, [270]), ("_FillValue", 3, [-32767])]),
    ])
    try Data(b.bytes()).write(to: URL(fileURLWithPath: path))
}
