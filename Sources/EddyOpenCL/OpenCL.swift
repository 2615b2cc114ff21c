import COpenCL
import Eddy
#if canImport(Glibc)
import Glibc
#endif

// A small OpenCL runtime in the spirit of tinygrad's ops_cl.py: devices, a context with two in-order queues,
// programs, kernels, buffers and events, each handle owned by one small class that releases it. Every failure
// becomes an `EddyError` naming the call and the OpenCL status, so callers (and `auto`) can fall back.

/// Throws an `EddyError` for a failed OpenCL call.
func check(_ status: cl_int, _ call: @autoclosure () -> String) throws {
    guard status == CL_SUCCESS else {
        let name = call()
        throw EddyError("OpenCL: \(name) failed: \(statusName(status))" + (isWait(name) ? lateFaultNote(status) : ""))
    }
}

/// Calls that wait for earlier work: a failure there may belong to any kernel enqueued before.
private func isWait(_ call: String) -> Bool {
    ["clFinish", "clWaitForEvents", "clEnqueueReadBuffer"].contains { call.hasPrefix($0) }
}

/// NVIDIA's OpenCL reports a kernel that faulted (an out-of-bounds access, a watchdog timeout) only later, when the
/// host waits or reads, as CL_INVALID_COMMAND_QUEUE or CL_OUT_OF_RESOURCES, and the context is dead from then on.
/// The words "the context is unusable" mark such an error (`isLateFault`).
func lateFaultNote(_ status: cl_int) -> String {
    guard status == -36 || status == -5 else { return "" }
    return " — at a wait or read-back this means an earlier kernel faulted (on NVIDIA: an out-of-bounds access or a time-out of a long kernel); the context is unusable and must be recreated; try smaller --chunk-rows"
}

/// Whether an error is a late kernel fault (`lateFaultNote`): the context must be replaced before going on.
public func isLateFault(_ message: String) -> Bool { message.contains("the context is unusable") }

/// `CL_OUT_OF_RESOURCES (-5)` for the statuses one meets; the bare number otherwise.
func statusName(_ status: cl_int) -> String {
    let names: [cl_int: String] = [
        -1: "CL_DEVICE_NOT_FOUND", -2: "CL_DEVICE_NOT_AVAILABLE", -3: "CL_COMPILER_NOT_AVAILABLE",
        -4: "CL_MEM_OBJECT_ALLOCATION_FAILURE (device out of memory)", -5: "CL_OUT_OF_RESOURCES (device out of memory or resources)",
        -6: "CL_OUT_OF_HOST_MEMORY", -11: "CL_BUILD_PROGRAM_FAILURE", -30: "CL_INVALID_VALUE", -33: "CL_INVALID_DEVICE",
        -34: "CL_INVALID_CONTEXT", -36: "CL_INVALID_COMMAND_QUEUE", -38: "CL_INVALID_MEM_OBJECT", -44: "CL_INVALID_PROGRAM",
        -45: "CL_INVALID_PROGRAM_EXECUTABLE", -46: "CL_INVALID_KERNEL_NAME", -48: "CL_INVALID_KERNEL", -51: "CL_INVALID_ARG_SIZE",
        -52: "CL_INVALID_KERNEL_ARGS", -54: "CL_INVALID_WORK_GROUP_SIZE", -61: "CL_INVALID_BUFFER_SIZE",
        -1001: "CL_PLATFORM_NOT_FOUND_KHR (no OpenCL driver registered)",
    ]
    return names[status].map { "\($0), \(status)" } ?? "OpenCL status \(status)"
}

/// A device as `eddy devices` lists it. The OpenCL handle stays inside this module.
public struct OpenCLDevice: Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable { case gpu, cpu, accelerator, other }

    /// Position in the listing (platforms in loader order, devices in platform order).
    public let index: Int
    public let platform: String
    public let platformVendor: String
    public let name: String
    public let vendor: String
    public let kind: Kind
    public let memoryBytes: Int
    public let maxAllocationBytes: Int
    public let computeUnits: Int
    public let fp64: Bool
    /// Driver version as the device reports it (`CL_DRIVER_VERSION`).
    public let driver: String
    /// `OpenCL 3.0 …` (`CL_DEVICE_VERSION`).
    public let version: String
    let handle: DeviceHandle

    /// PoCL runs kernels on the host CPU: right for tests, never picked by `auto`.
    public var isPoCL: Bool { platformVendor.lowercased().contains("pocl") || platform.contains("Portable Computing Language") }

    public var description: String {
        "\(name) (\(kind.rawValue), \(platform), driver \(driver), \(memoryBytes >> 20) MiB, FP64 \(fp64 ? "yes" : "no"))"
    }

    /// Whether `NAME-OR-INDEX` (an index, or a case-insensitive part of the device, platform or vendor name) selects this device.
    public func matches(_ query: String) -> Bool {
        if let i = Int(query) { return i == index }
        let q = query.lowercased()
        return [name, vendor, platform, platformVendor].contains { $0.lowercased().contains(q) }
    }
}

struct DeviceHandle: @unchecked Sendable {
    let id: cl_device_id
    let platform: cl_platform_id
}

public enum OpenCLDevices {
    /// Every device of every platform. No platform at all (no ICD file, or `OCL_ICD_VENDORS` pointing at an
    /// empty folder) is an empty list, not an error.
    public static func all() throws -> [OpenCLDevice] {
        var count: cl_uint = 0
        let status = clGetPlatformIDs(0, nil, &count)
        if status == -1001 || count == 0 { return [] }   // CL_PLATFORM_NOT_FOUND_KHR
        try check(status, "clGetPlatformIDs")
        var platforms = [cl_platform_id?](repeating: nil, count: Int(count))
        try check(clGetPlatformIDs(count, &platforms, nil), "clGetPlatformIDs")
        var out: [OpenCLDevice] = []
        for case let platform? in platforms {
            let platformName = platformString(platform, cl_platform_info(CL_PLATFORM_NAME))
            let platformVendor = platformString(platform, cl_platform_info(CL_PLATFORM_VENDOR))
            var n: cl_uint = 0
            let s = clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), 0, nil, &n)
            if s == CL_DEVICE_NOT_FOUND || n == 0 { continue }
            try check(s, "clGetDeviceIDs(\(platformName))")
            var ids = [cl_device_id?](repeating: nil, count: Int(n))
            try check(clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), n, &ids, nil), "clGetDeviceIDs(\(platformName))")
            for case let id? in ids {
                let type: cl_device_type = deviceValue(id, CL_DEVICE_TYPE)
                let kind: OpenCLDevice.Kind =
                    type & cl_device_type(CL_DEVICE_TYPE_GPU) != 0 ? .gpu :
                    type & cl_device_type(CL_DEVICE_TYPE_CPU) != 0 ? .cpu :
                    type & cl_device_type(CL_DEVICE_TYPE_ACCELERATOR) != 0 ? .accelerator : .other
                let fp64Config: cl_device_fp_config = deviceValue(id, CL_DEVICE_DOUBLE_FP_CONFIG)
                let memory: cl_ulong = deviceValue(id, CL_DEVICE_GLOBAL_MEM_SIZE)
                let maxAlloc: cl_ulong = deviceValue(id, CL_DEVICE_MAX_MEM_ALLOC_SIZE)
                let units: cl_uint = deviceValue(id, CL_DEVICE_MAX_COMPUTE_UNITS)
                let extensions = deviceString(id, CL_DEVICE_EXTENSIONS)
                out.append(OpenCLDevice(
                    index: out.count, platform: platformName, platformVendor: platformVendor,
                    name: deviceString(id, CL_DEVICE_NAME), vendor: deviceString(id, CL_DEVICE_VENDOR), kind: kind,
                    memoryBytes: Int(memory), maxAllocationBytes: Int(maxAlloc), computeUnits: Int(units),
                    fp64: fp64Config != 0 || extensions.contains("cl_khr_fp64"),
                    driver: deviceString(id, CL_DRIVER_VERSION), version: deviceString(id, CL_DEVICE_VERSION),
                    handle: DeviceHandle(id: id, platform: platform)))
            }
        }
        return out
    }

    private static func platformString(_ p: cl_platform_id, _ what: cl_platform_info) -> String {
        var size = 0
        guard clGetPlatformInfo(p, what, 0, nil, &size) == CL_SUCCESS, size > 0 else { return "" }
        var bytes = [CChar](repeating: 0, count: size + 1)
        _ = clGetPlatformInfo(p, what, size, &bytes, nil)
        return trimmed(bytes)
    }

    static func deviceString(_ d: cl_device_id, _ what: Int32) -> String {
        var size = 0
        guard clGetDeviceInfo(d, cl_device_info(what), 0, nil, &size) == CL_SUCCESS, size > 0 else { return "" }
        var bytes = [CChar](repeating: 0, count: size + 1)
        _ = clGetDeviceInfo(d, cl_device_info(what), size, &bytes, nil)
        return trimmed(bytes)
    }

    static func deviceValue<T: FixedWidthInteger>(_ d: cl_device_id, _ what: Int32) -> T {
        var v: T = 0
        _ = clGetDeviceInfo(d, cl_device_info(what), MemoryLayout<T>.size, &v, nil)
        return v
    }

    private static func trimmed(_ bytes: [CChar]) -> String {
        let s = bytes.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return s.trimmingSpaces()
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " || s.first == "\n" { s = s.dropFirst() }
        while s.last == " " || s.last == "\n" { s = s.dropLast() }
        return String(s)
    }
}

/// A context on one device with two in-order queues: `compute` (kernels, CLBlast) and `transfer` (uploads),
/// so the next chunk's upload overlaps the current chunk's products.
final class CLContext: @unchecked Sendable {
    let device: OpenCLDevice
    let context: cl_context
    let compute: cl_command_queue
    let transfer: cl_command_queue

    init(device: OpenCLDevice) throws {
        self.device = device
        var status: cl_int = 0
        var id: cl_device_id? = device.handle.id
        guard let context = clCreateContext(nil, 1, &id, nil, nil, &status), status == CL_SUCCESS else {
            throw EddyError("OpenCL: clCreateContext(\(device.name)) failed: \(statusName(status))")
        }
        self.context = context
        guard let compute = clCreateCommandQueue(context, device.handle.id, 0, &status), status == CL_SUCCESS else {
            clReleaseContext(context)
            throw EddyError("OpenCL: clCreateCommandQueue(\(device.name)) failed: \(statusName(status))")
        }
        self.compute = compute
        guard let transfer = clCreateCommandQueue(context, device.handle.id, 0, &status), status == CL_SUCCESS else {
            clReleaseCommandQueue(compute)
            clReleaseContext(context)
            throw EddyError("OpenCL: clCreateCommandQueue(\(device.name)) failed: \(statusName(status))")
        }
        self.transfer = transfer
    }

    deinit {
        clFinish(transfer)
        clFinish(compute)
        clReleaseCommandQueue(transfer)
        clReleaseCommandQueue(compute)
        clReleaseContext(context)
    }

    func finish() throws {
        try check(clFinish(transfer), "clFinish(transfer)")
        try check(clFinish(compute), "clFinish(compute)")
    }
}

/// A device buffer of `bytes` bytes.
final class CLBuffer: @unchecked Sendable {
    let mem: cl_mem
    let bytes: Int

    init(_ context: CLContext, bytes: Int, what: String) throws {
        var status: cl_int = 0
        let size = max(bytes, 8)   // OpenCL refuses empty buffers (e.g. no inputs)
        guard let mem = clCreateBuffer(context.context, cl_mem_flags(CL_MEM_READ_WRITE), size, nil, &status), status == CL_SUCCESS else {
            throw EddyError("OpenCL: allocating \(what) (\(size >> 20) MiB) on \(context.device.name) failed: \(statusName(status))")
        }
        self.mem = mem
        self.bytes = size
    }

    deinit { clReleaseMemObject(mem) }

    /// Fills with zero bytes (0.0 in float and double).
    func zero(on queue: cl_command_queue) throws {
        var pattern: UInt8 = 0
        try check(clEnqueueFillBuffer(queue, mem, &pattern, 1, 0, bytes, 0, nil, nil), "clEnqueueFillBuffer")
    }

    /// Starts copying `count` bytes from host memory; the memory must stay untouched until the event completes.
    func upload(on queue: cl_command_queue, from host: UnsafeRawPointer, bytes count: Int, after: CLEvent? = nil) throws -> CLEvent {
        var event: cl_event?
        try withWaitList(after) { n, list in
            try check(clEnqueueWriteBuffer(queue, mem, cl_bool(CL_FALSE), 0, count, host, n, list, &event), "clEnqueueWriteBuffer")
        }
        return CLEvent(event!)
    }

    /// Enqueues a device-side copy of all of `source` (at most this buffer's size) into this buffer.
    func copy(from source: CLBuffer, on queue: cl_command_queue) throws {
        try check(clEnqueueCopyBuffer(queue, source.mem, mem, 0, 0, min(bytes, source.bytes), 0, nil, nil), "clEnqueueCopyBuffer")
    }

    /// Reads (`write` false, blocking) or writes (blocking) a `rows × columns` block of doubles of a column-major matrix
    /// with leading dimension `ld`, starting at (`row`, `column`), from or into `host` (leading dimension `rows`).
    func block(_ write: Bool, on queue: cl_command_queue, row: Int, column: Int, rows: Int, columns: Int, ld: Int,
               host: UnsafeMutableRawPointer) throws {
        var origin = [row * 8, column, 0], hostOrigin = [0, 0, 0], region = [rows * 8, columns, 1]
        let status = write
            ? clEnqueueWriteBufferRect(queue, mem, cl_bool(CL_TRUE), &origin, &hostOrigin, &region, ld * 8, 0, rows * 8, 0, host, 0, nil, nil)
            : clEnqueueReadBufferRect(queue, mem, cl_bool(CL_TRUE), &origin, &hostOrigin, &region, ld * 8, 0, rows * 8, 0, host, 0, nil, nil)
        try check(status, write ? "clEnqueueWriteBufferRect" : "clEnqueueReadBufferRect")
    }

    /// Copies the first `count` bytes back, blocking.
    func download(on queue: cl_command_queue, into host: UnsafeMutableRawPointer, bytes count: Int) throws {
        try check(clEnqueueReadBuffer(queue, mem, cl_bool(CL_TRUE), 0, count, host, 0, nil, nil), "clEnqueueReadBuffer")
    }
}

/// Calls `body` with an OpenCL wait list: (0, NULL) without an event, else (1, the event).
func withWaitList<R>(_ event: CLEvent?, _ body: (cl_uint, UnsafePointer<cl_event?>?) throws -> R) rethrows -> R {
    guard let event else { return try body(0, nil) }
    let list: [cl_event?] = [event.event]
    return try list.withUnsafeBufferPointer { try body(1, $0.baseAddress) }
}

/// An event, released when dropped.
final class CLEvent: @unchecked Sendable {
    let event: cl_event
    init(_ event: cl_event) { self.event = event }
    deinit { clReleaseEvent(event) }

    func wait() throws {
        var e: cl_event? = event
        try check(clWaitForEvents(1, &e), "clWaitForEvents")
    }
}

/// A program built from source for one device; a build failure carries the compiler's log.
final class CLProgram: @unchecked Sendable {
    let program: cl_program

    init(_ context: CLContext, source: String, options: String, name: String) throws {
        var status: cl_int = 0
        let built: cl_program? = source.withCString { text in
            var strings: UnsafePointer<CChar>? = text
            var length = strlen(text)
            return clCreateProgramWithSource(context.context, 1, &strings, &length, &status)
        }
        guard let program = built, status == CL_SUCCESS else {
            throw EddyError("OpenCL: clCreateProgramWithSource(\(name)) failed: \(statusName(status))")
        }
        self.program = program
        var device: cl_device_id? = context.device.handle.id
        let result = clBuildProgram(program, 1, &device, options, nil, nil)
        if result != CL_SUCCESS {
            let log = Self.buildLog(program, context.device.handle.id)
            throw EddyError("OpenCL: building kernels \(name) for \(context.device.name) failed: \(statusName(result))\(log.isEmpty ? "" : "\n" + log)")
        }
    }

    deinit { clReleaseProgram(program) }

    static func buildLog(_ program: cl_program, _ device: cl_device_id) -> String {
        var size = 0
        guard clGetProgramBuildInfo(program, device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), 0, nil, &size) == CL_SUCCESS, size > 1 else { return "" }
        var bytes = [CChar](repeating: 0, count: size + 1)
        _ = clGetProgramBuildInfo(program, device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), size, &bytes, nil)
        let log = bytes.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }.trimmingSpaces()
        // Long logs (warnings of a whole program) are cut: the first lines name the error.
        let lines = log.split(separator: "\n", omittingEmptySubsequences: false)
        return lines.prefix(20).joined(separator: "\n") + (lines.count > 20 ? "\n…" : "")
    }
}

/// One kernel of a program, with typed argument setters.
final class CLKernel: @unchecked Sendable {
    let kernel: cl_kernel
    let name: String
    private let program: CLProgram   // kept alive as long as the kernel

    init(_ program: CLProgram, _ name: String) throws {
        var status: cl_int = 0
        guard let k = clCreateKernel(program.program, name, &status), status == CL_SUCCESS else {
            throw EddyError("OpenCL: clCreateKernel(\(name)) failed: \(statusName(status))")
        }
        kernel = k
        self.name = name
        self.program = program
    }

    deinit { clReleaseKernel(kernel) }

    enum Argument {
        case int(Int)
        case double(Double)
        case buffer(CLBuffer)
    }

    func set(_ arguments: [Argument]) throws {
        for (i, a) in arguments.enumerated() {
            switch a {
            case .int(let v):
                var x = cl_int(v)
                try check(clSetKernelArg(kernel, cl_uint(i), MemoryLayout<cl_int>.size, &x), "clSetKernelArg(\(name), \(i))")
            case .double(let v):
                var x = v
                try check(clSetKernelArg(kernel, cl_uint(i), MemoryLayout<Double>.size, &x), "clSetKernelArg(\(name), \(i))")
            case .buffer(let b):
                var m: cl_mem? = b.mem
                try check(clSetKernelArg(kernel, cl_uint(i), MemoryLayout<cl_mem>.size, &m), "clSetKernelArg(\(name), \(i))")
            }
        }
    }

    /// Enqueues over `global` work-items (rounded up to `local` when given), after `wait` if given.
    func enqueue(on queue: cl_command_queue, global: [Int], local: [Int]? = nil, after wait: CLEvent? = nil) throws -> CLEvent {
        var g = global
        if let local { g = zip(global, local).map { ($0 + $1 - 1) / $1 * $1 } }
        var event: cl_event?
        let status: cl_int = withWaitList(wait) { n, list in
            if var l = local { return clEnqueueNDRangeKernel(queue, kernel, cl_uint(g.count), nil, &g, &l, n, list, &event) }
            return clEnqueueNDRangeKernel(queue, kernel, cl_uint(g.count), nil, &g, nil, n, list, &event)
        }
        try check(status, "clEnqueueNDRangeKernel(\(name))")
        return CLEvent(event!)
    }
}

extension CLProgram {
    /// The build log (warnings, and on NVIDIA with -cl-nv-verbose the ptxas register and spill lines), full length.
    func log(for device: OpenCLDevice) -> String {
        var size = 0
        guard clGetProgramBuildInfo(program, device.handle.id, cl_program_build_info(CL_PROGRAM_BUILD_LOG), 0, nil, &size) == CL_SUCCESS,
              size > 1 else { return "" }
        var bytes = [CChar](repeating: 0, count: size + 1)
        _ = clGetProgramBuildInfo(program, device.handle.id, cl_program_build_info(CL_PROGRAM_BUILD_LOG), size, &bytes, nil)
        return bytes.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }.trimmingSpaces()
    }

    /// The program's binary for its one device (`CL_PROGRAM_BINARIES`: PTX text on NVIDIA, an ELF or bitcode elsewhere).
    func binary() -> [UInt8] {
        var size = 0
        guard clGetProgramInfo(program, cl_program_info(CL_PROGRAM_BINARY_SIZES), MemoryLayout<Int>.size, &size, nil) == CL_SUCCESS,
              size > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: size)
        let status: cl_int = bytes.withUnsafeMutableBufferPointer { b in
            var pointers: [UnsafeMutablePointer<UInt8>?] = [b.baseAddress]
            return clGetProgramInfo(program, cl_program_info(CL_PROGRAM_BINARIES), MemoryLayout<UnsafeMutablePointer<UInt8>?>.size, &pointers, nil)
        }
        return status == CL_SUCCESS ? bytes : []
    }
}
