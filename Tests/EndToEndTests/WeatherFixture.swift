import EddyTestSupport
import Testing

/// The weather demo's real data (three airports, hourly, 2013) and its shaping: seven variables, wind direction as an
/// angle, hour-of-day and day-of-year inputs, gaps of up to 3 h filled.
let weatherData = packageRoot + "/Scripts/data/nyc-airports-2013-hourly.csv"

/// Trains the demo's model shape (24 delays, width 256, January–September) at a given relative ridge into `path`.
func trainWeatherModel(ridge: String, to path: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let t = try eddy(["train", "--data", weatherData, "--episode-column", "origin", "--time-column", "time_hour",
                      "--columns", "temp,dewp,humid,wind_speed,wind_dir,pressure,visib", "--angles", "wind_dir", "--calendar", "hour,doy",
                      "--fill-gaps", "3", "--until", "2013-10-01", "--delays", "24", "--width", "256", "--ridge", ridge, "--out", path])
    #expect(t.status == 0, "\(t.stderr)", sourceLocation: sourceLocation)
}
