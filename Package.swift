// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "Eddy",
    products: [
        .executable(name: "eddy", targets: ["EddyCLI"]),
        .library(name: "Eddy", targets: ["Eddy"]),
        .library(name: "EddyOpenCL", targets: ["EddyOpenCL"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // MARK: C libraries, wrapped once, thinly (module.modulemap + shim.h each)
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CLAPACKE", pkgConfig: "lapacke", providers: [.apt(["liblapacke-dev"])]),
        .systemLibrary(name: "COpenCL", pkgConfig: "OpenCL", providers: [.apt(["ocl-icd-opencl-dev", "opencl-headers"])]),
        .systemLibrary(name: "CCLBlast", pkgConfig: "clblast", providers: [.apt(["libclblast-dev"])]),
        .systemLibrary(name: "CNetCDF", pkgConfig: "netcdf", providers: [.apt(["libnetcdf-dev"])]),

        // MARK: The library: data → embed → sample → lift → accumulate → solve → model → forecast
        .target(
            name: "Eddy",
            dependencies: ["CBLAS", "CLAPACKE", "CNetCDF"]
            // Built with Swift's checks on (no unchecked optimisation mode): this library parses untrusted files and
            // options, and its bounds and overflow checks turn a malformed size into an error instead of a crash
            // (README, "Bad input"; their cost is measured there).
        ),

        // MARK: The OpenCL backend (lift kernels + CLBlast); Kernels/*.cl are embedded at build time
        .target(
            name: "EddyOpenCL",
            dependencies: ["Eddy", "COpenCL", "CCLBlast", "CBLAS", "CLAPACKE", "CLBlastParameters"],
            plugins: ["EmbedKernels"]
        ),
        // CLBlast's tuning parameters read back (its C++ API only): the defaults a failed tuned set returns to, and
        // the parameters `eddy bench` reports as applied.
        .target(name: "CLBlastParameters", dependencies: ["CCLBlast"]),
        .plugin(name: "EmbedKernels", capability: .buildTool(), dependencies: ["KernelEmbedder"]),
        .executableTarget(name: "KernelEmbedder", path: "Plugins/KernelEmbedder"),

        // MARK: The command-line tool (thin: parse, call the library, print). The commands are a library so that
        // `eddy` and `eddy-mpi` (below, only with EDDY_MPI=1) share them; `eddy` itself is one line.
        .target(
            name: "EddyCommands",
            dependencies: ["Eddy", "EddyOpenCL", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(name: "EddyCLI", dependencies: ["EddyCommands"]),

        // MARK: Tests
        .target(name: "EddyTestSupport", dependencies: ["Eddy"], path: "Tests/EddyTestSupport"),
        .testTarget(name: "EddyTests", dependencies: ["Eddy", "EddyTestSupport", "CNetCDF"]),
        .testTarget(name: "EndToEndTests", dependencies: ["Eddy", "EddyTestSupport", "CNetCDF"]),
        .testTarget(name: "EddyOpenCLTests", dependencies: ["Eddy", "EddyOpenCL", "EddyTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)

// MARK: Fuzzers (libFuzzer), declared only for Scripts/fuzz.sh: EDDY_FUZZ=1 swift build --sanitize=fuzzer …
// The package is then the library and its fuzzers alone (a sanitized build would also build the kernel embedder and the
// CLI as libraries, which they are not). Each fuzzer is an executable target without a main: libFuzzer supplies it
// and calls LLVMFuzzerTestOneInput.
if Context.environment["EDDY_FUZZ"] == "1" {
    let keep: Set<String> = ["CBLAS", "CLAPACKE", "CNetCDF", "Eddy"]
    package.targets = package.targets.filter { keep.contains($0.name) }
    package.products = []
    package.dependencies = []
    for (name, path) in [("FuzzNPY", "Fuzz/NPYFuzzer"), ("FuzzModelFile", "Fuzz/ModelFileFuzzer"), ("FuzzCSV", "Fuzz/CSVFuzzer"),
                         ("FuzzOptions", "Fuzz/OptionsFuzzer"), ("FuzzNetCDF", "Fuzz/NetCDFFuzzer")] {
        package.targets.append(.executableTarget(name: name, dependencies: ["Eddy"], path: path))
        package.products.append(.executable(name: name, targets: [name]))
    }
}

// MARK: MPI (Open MPI or MPICH), declared only with EDDY_MPI=1: EDDY_MPI=1 swift build --product eddy-mpi
// `eddy` never links libmpi (a binary linked to it does not start where it is absent); `eddy-mpi` shares every command
// through EddyCommands and installs an MPI process group (Sources/EddyMPI) before running them. Scripts/test.sh sets it.
if Context.environment["EDDY_MPI"] == "1" && Context.environment["EDDY_FUZZ"] != "1" {
    package.targets += [
        .systemLibrary(name: "CMPI", pkgConfig: "mpi", providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .target(name: "EddyMPI", dependencies: ["Eddy", "CMPI"]),
        .executableTarget(name: "EddyMPICLI", dependencies: ["EddyCommands", "EddyMPI", "Eddy",
                                                             .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .testTarget(name: "MPITests", dependencies: ["Eddy", "EddyTestSupport"]),
    ]
    package.products.append(.executable(name: "eddy-mpi", targets: ["EddyMPICLI"]))
}
