import COpenCL
import Eddy

/// `eddy devices --compiler`: what the device's OpenCL compiler makes of Eddy's kernels and of inline PTX (issue 16).
/// On NVIDIA, `CL_PROGRAM_BINARIES` is PTX text: its `.version` and `.target` say which PTX the driver emits; the
/// build log with `-cl-nv-verbose` has ptxas's registers and spills for the lift kernel. Inline-PTX `mma.sync` (tf32
/// m16n8k8 and f64 m8n8k4) is the only route from OpenCL to the tensor cores, past the SIMT ceiling; each probe kernel
/// is built and run on one warp and its result checked, with `shfl.sync` (a warp shuffle every recent NVIDIA GPU
/// has) as the positive control: if it fails, inline PTX itself is refused. On other devices the PTX probes are skipped.
public enum CompilerProbe {
    public struct Probe: Sendable {
        public var name: String
        public var built: Bool
        /// Ran on one warp and gave the expected values (nil when not built).
        public var correct: Bool?
        public var message: String
    }

    public struct Report: Sendable {
        public var device: OpenCLDevice
        public var nvidia: Bool
        public var binaryKind: String
        public var ptxVersion: String?
        public var ptxTarget: String?
        public var liftLog: String
        public var registers: String?
        public var spills: String?
        public var probes: [Probe]
        public var skipped: String?

        public var json: JSON {
            .object([
                ("device", .string(device.name)), ("platform", .string(device.platform)), ("driver", .string(device.driver)),
                ("nvidia", .bool(nvidia)), ("binary", .string(binaryKind)),
                ("ptx_version", ptxVersion.map { .string($0) } ?? .null), ("ptx_target", ptxTarget.map { .string($0) } ?? .null),
                ("lift_registers", registers.map { .string($0) } ?? .null), ("lift_spills", spills.map { .string($0) } ?? .null),
                ("lift_build_log", .string(liftLog)),
                ("probes", .array(probes.map { p in
                    .object([("name", .string(p.name)), ("built", .bool(p.built)), ("correct", p.correct.map { .bool($0) } ?? .null),
                             ("message", .string(p.message))])
                })),
                ("skipped", skipped.map { .string($0) } ?? .null),
            ])
        }
    }

    /// One kernel per probe: `out[i]` for 32 work-items (one warp), and the value each must hold.
    static let kernels: [(name: String, source: String, expected: @Sendable (Int) -> Double, double: Bool)] = [
        ("shfl.sync (control)", """
        __kernel void probe(__global float* out) {
            int v = (int)get_global_id(0), r;
            asm volatile("shfl.sync.bfly.b32 %0, %1, 1, 0x1f, 0xffffffff;" : "=r"(r) : "r"(v));
            out[get_global_id(0)] = (float)r;
        }
        """, { Double($0 ^ 1) }, false),
        ("mma.sync m16n8k8 tf32", """
        __kernel void probe(__global float* out) {
            unsigned one = as_uint(1.0f);
            float c = 0.0f, d0, d1, d2, d3;
            asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};"
                : "=f"(d0), "=f"(d1), "=f"(d2), "=f"(d3)
                : "r"(one), "r"(one), "r"(one), "r"(one), "r"(one), "r"(one), "f"(c), "f"(c), "f"(c), "f"(c));
            out[get_global_id(0)] = d0 + d1 + d2 + d3;
        }
        """, { _ in 32 }, false),
        ("mma.sync m8n8k4 f64", """
        #pragma OPENCL EXTENSION cl_khr_fp64 : enable
        __kernel void probe(__global float* out) {
            double a = 1.0, b = 1.0, c = 0.0, d0, d1;
            asm volatile("mma.sync.aligned.m8n8k4.row.col.f64.f64.f64.f64 {%0,%1}, {%2}, {%3}, {%4,%5};"
                : "=d"(d0), "=d"(d1) : "d"(a), "d"(b), "d"(c), "d"(c));
            out[get_global_id(0)] = (float)(d0 + d1);
        }
        """, { _ in 8 }, true),
    ]

    public static func run(device: OpenCLDevice) throws -> Report {
        let nvidia = device.platform.contains("NVIDIA") || device.vendor.uppercased().contains("NVIDIA")
        let context = try CLContext(device: device)
        // The lift kernel as the pass builds it (double when the device has it), verbose on NVIDIA.
        let options = "-cl-std=CL1.2" + (device.fp64 ? " -DEDDY_DOUBLE" : "") + (nvidia ? " -cl-nv-verbose" : "")
        let lift = try CLProgram(context, source: KernelSources.lift, options: options, name: "lift.cl")
        let log = lift.log(for: device)
        let binary = lift.binary()
        let text = String(decoding: binary.prefix(1 << 20), as: UTF8.self)
        let isPTX = text.contains(".version") && text.contains(".target")
        func directive(_ name: String) -> String? {
            text.split(separator: "\n").lazy.map { $0.drop { $0 == " " || $0 == "\t" } }.first { $0.hasPrefix(name + " ") }
                .map { String($0.dropFirst(name.count + 1)) }
        }
        let kind = isPTX ? "PTX text (\(binary.count) bytes)" : binary.starts(with: [0x7f, 0x45, 0x4c, 0x46]) ? "ELF (\(binary.count) bytes)"
            : binary.isEmpty ? "none" : "\(binary.count) bytes, not PTX"
        // ptxas lines: "ptxas info    : Used 64 registers, …" and "… bytes spill stores, … bytes spill loads" for lift_hidden.
        let lines = log.split(separator: "\n").map(String.init)
        func matching(_ f: (String) -> Bool) -> String? {
            let m = lines.filter(f)
            return m.isEmpty ? nil : m.joined(separator: "; ")
        }
        let registers = matching { $0.contains("Used") && $0.contains("registers") }
        let spills = matching { $0.contains("spill") }
        var report = Report(device: device, nvidia: nvidia, binaryKind: kind, ptxVersion: isPTX ? directive(".version") : nil,
                            ptxTarget: isPTX ? directive(".target") : nil, liftLog: String(log.prefix(4000)), registers: registers, spills: spills,
                            probes: [], skipped: nil)
        guard nvidia else {
            report.skipped = "not NVIDIA, skipped (inline PTX is NVIDIA's)"
            return report
        }
        for k in kernels {
            if k.double && !device.fp64 { report.probes.append(Probe(name: k.name, built: false, correct: nil, message: "no FP64")); continue }
            do {
                let program = try CLProgram(context, source: k.source, options: "-cl-std=CL1.2", name: k.name)
                let kernel = try CLKernel(program, "probe")
                let out = try CLBuffer(context, bytes: 32 * 4, what: "probe output")
                try kernel.set([.buffer(out)])
                _ = try kernel.enqueue(on: context.compute, global: [32], local: [32])
                var values = [Float](repeating: -1, count: 32)
                try values.withUnsafeMutableBytes { try out.download(on: context.compute, into: $0.baseAddress!, bytes: $0.count) }
                let ok = values.enumerated().allSatisfy { Double($0.element) == k.expected($0.offset) }
                report.probes.append(Probe(name: k.name, built: true, correct: ok,
                                           message: ok ? "built and ran: correct" : "built and ran: wrong values \(values.prefix(4))"))
            } catch let e as EddyError {
                report.probes.append(Probe(name: k.name, built: false, correct: nil, message: String(e.message.prefix(600))))
            }
        }
        return report
    }
}
