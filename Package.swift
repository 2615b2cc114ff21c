// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "Eddy",
    products: [
        .executable(name: "eddy", targets: ["EddyCLI"]),
        .library(name: "Eddy", targets: ["Eddy"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // MARK: C libraries, wrapped once, thinly (module.modulemap + shim.h each)
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CLAPACKE", pkgConfig: "lapacke", providers: [.apt(["liblapacke-dev"])]),

        // MARK: The library: data → embed → sample → lift → accumulate → solve → model → forecast
        .target(
            name: "Eddy",
            dependencies: ["CBLAS", "CLAPACKE"],
            swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
        ),

        // MARK: The command-line tool (thin: parse, call the library, print)
        .executableTarget(
            name: "EddyCLI",
            dependencies: ["Eddy", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),

        // MARK: Tests
        .testTarget(name: "EddyTests", dependencies: ["Eddy"]),
        .testTarget(name: "EndToEndTests", dependencies: ["Eddy"]),
    ],
    swiftLanguageModes: [.v6]
)
