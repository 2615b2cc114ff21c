import ArgumentParser
import Eddy
import EddyOpenCL

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the compute backends and OpenCL devices this eddy can use, and which one --backend auto takes.",
        discussion: """
        auto takes an OpenCL GPU only after a self-test (a small lift, SYRK and GEMM compared with OpenBLAS) passes on it, otherwise the CPU; PoCL and other CPU OpenCL devices are used only with --backend opencl or --device. When no GPU is listed, the likely reason and its fix are printed (a missing ICD file is the usual one in containers; OCL_ICD_VENDORS points the loader at a folder of them).
        """
    )

    @Option(help: "Precision auto would run in: double or mixed (a GPU without FP64 qualifies only for mixed).") var precision = "double"
    @Flag(help: "Instead of the list: build Eddy's lift kernel on a device (auto's GPU or --device) and report the compiler's binary (PTX version and target on NVIDIA), the lift kernel's registers and spills, and whether inline-PTX mma.sync (tf32, f64) and the shfl.sync control build and run correctly (NVIDIA only; elsewhere \"not NVIDIA, skipped\").") var compiler = false
    @Option(help: "With --compiler: the OpenCL device, an index or part of a name (default: auto's GPU, else the first device).") var device: String?
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try reportingErrors {
            let p: Precision = try parseChoice(precision, "--precision")
            if device != nil && !compiler { throw EddyError("--device applies to --compiler (eddy devices lists every device)") }
            let cpu = CPUBackend()
            if let reason = OpenCLProbe.failure() {
                // A driver that crashes or hangs is never loaded into this process: the CPU is all there is.
                if json {
                    print(JSON.object([
                        "backends": .array([.object(["name": .string("cpu"), "details": .string(cpu.details), "available": .bool(true)]),
                                            .object(["name": .string("opencl"), "available": .bool(false)])]),
                        "devices": .array([]), "error": .string(reason), "auto": .string("cpu: OpenCL is not usable: \(reason)"),
                    ]).text)
                } else {
                    print("backends:\n  cpu      \(cpu.details)\n  opencl   not usable: \(reason)")
                    print("auto → cpu")
                }
                return
            }
            let survey = DeviceSurvey.take()
            if compiler {
                let chosen = device.map { q in survey.devices.first { $0.matches(q) } } ?? (BackendSelection.autoCandidate(survey.devices, precision: .mixed) ?? survey.devices.first)
                guard let d = chosen else {
                    throw EddyError(device.map { "--device \($0): no such OpenCL device" } ?? "--compiler: no OpenCL device (eddy devices explains)")
                }
                let r = try CompilerProbe.run(device: d)
                if json { print(r.json.text); return }
                print("\(d.name) (\(d.platform), driver \(d.driver)): lift.cl binary \(r.binaryKind)"
                      + (r.ptxVersion.map { ", PTX \($0)" } ?? "") + (r.ptxTarget.map { ", target \($0)" } ?? ""))
                if let reg = r.registers { print("  lift registers: \(reg)") }
                if let sp = r.spills { print("  lift spills: \(sp)") }
                if let why = r.skipped { print("  inline-PTX probes: \(why)") }
                for p in r.probes { print("  \(p.name): \(p.message)") }
                return
            }
            let candidate = BackendSelection.autoCandidate(survey.devices, precision: p)
            // What auto really does, self-test included (only where there is a GPU to test).
            let (_, reason) = try BackendSelection.make(.auto, precision: p)
            if json {
                print(JSON.object([
                    "backends": .array([
                        .object(["name": .string("cpu"), "details": .string(cpu.details), "available": .bool(true)]),
                        .object(["name": .string("opencl"), "available": .bool(!survey.devices.isEmpty)]),
                    ]),
                    "devices": .array(survey.devices.map { d in
                        .object([
                            "index": .int(d.index), "name": .string(d.name), "vendor": .string(d.vendor), "type": .string(d.kind.rawValue),
                            "platform": .string(d.platform), "platform_vendor": .string(d.platformVendor), "driver": .string(d.driver),
                            "version": .string(d.version), "memory_bytes": .int(d.memoryBytes), "max_allocation_bytes": .int(d.maxAllocationBytes),
                            "compute_units": .int(d.computeUnits), "fp64": .bool(d.fp64), "pocl": .bool(d.isPoCL),
                        ])
                    }),
                    "icd": .object(["source": .string(survey.icdSource), "files": .array(survey.icdFiles.map { .string($0) })]),
                    "error": survey.error.map { .string($0) } ?? .null,
                    "auto_candidate": candidate.map { .int($0.index) } ?? .null,
                    "auto": .string(reason),
                    "advice": .array(survey.advice.map { .string($0) }),
                ]).text)
                return
            }
            print("backends:")
            print("  cpu      \(cpu.details)")
            if let error = survey.error { print("  opencl   not usable: \(error)") }
            print("OpenCL drivers registered in \(survey.icdSource): \(survey.icdFiles.isEmpty ? "none" : survey.icdFiles.joined(separator: ", "))")
            if survey.devices.isEmpty {
                print("OpenCL devices: none")
            } else {
                print("OpenCL devices:")
                for d in survey.devices {
                    let gib = Format.fixed(Double(d.memoryBytes) / Double(1 << 30), 1)
                    print("  \(d.index)  \(d.name) [\(d.kind.rawValue)\(d.isPoCL ? ", PoCL" : "")]  \(d.platform), driver \(d.driver), \(d.version)")
                    print("     \(gib) GiB, \(d.computeUnits) compute units, FP64 \(d.fp64 ? "yes" : "no")\(d.index == candidate?.index ? "  ← auto's candidate" : "")")
                }
            }
            print("auto → \(reason)")
            if !survey.advice.isEmpty {
                print("no GPU found; likely reason\(survey.advice.count > 1 ? "s" : ""):")
                for a in survey.advice { print("  - " + a.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\n    ")) }
            }
        }
    }
}
