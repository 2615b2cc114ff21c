#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// An output file that appears only when complete: bytes go to a temporary file beside the target, and
/// `commit()` renames it into place. Dropped without `commit()`, the temporary file is removed, so a failed
/// command never leaves a partial or corrupt output behind; the temporary file is also removed when the process
/// is stopped by SIGINT, SIGTERM or SIGHUP (see `TemporaryFiles`).
///
/// The target is checked first (`OutputGuard.destination`): `-`, directories, devices, FIFOs and sockets are
/// refused. An output that is a symbolic link is written through: the link is kept and the regular file it points
/// to is replaced (atomically, in that file's directory).
public final class AtomicFile {
    public let path: String
    /// The file that is replaced: `path`, or the file a symbolic link at `path` points to.
    public let destination: String
    /// Where the bytes go until `commit()`; a library that writes by path (libnetcdf) may write here instead.
    public let temporaryPath: String
    private var handle: UnsafeMutablePointer<FILE>?
    private var committed = false
    private let slot: Int?

    /// Set by `eddy-mpi` on every rank but 0: outputs are then written by rank 0 alone, and here nothing is created.
    nonisolated(unsafe) public static var discardWrites = false

    public init(path: String) throws {
        self.path = path
        destination = try OutputGuard.destination(of: path)
        if AtomicFile.discardWrites {
            temporaryPath = "/dev/null"
            slot = nil
            committed = true
            handle = fopen("/dev/null", "wb")
            return
        }
        let dir = Self.directory(of: destination)
        var template = Array("\(dir)/.\(Self.basename(of: destination)).tmp-XXXXXX".utf8CString)
        TemporaryFiles.installHandlers()
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw EddyError("\(path): cannot create output file (\(String(cString: strerror(errno))))")
        }
        temporaryPath = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        slot = TemporaryFiles.register(temporaryPath)
        // A replaced file keeps its permissions; a new one is rw-r--r--.
        var st = stat()
        let mode: mode_t = stat(destination, &st) == 0 ? st.st_mode & 0o7777 : 0o644
        fchmod(fd, mode)
        handle = fdopen(fd, "wb")
    }

    deinit {
        if let handle { fclose(handle) }
        if !committed { unlink(temporaryPath) }
        TemporaryFiles.unregister(slot)
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard let handle else { throw EddyError("\(path): write after close") }
        if bytes.count == 0 { return }
        if fwrite(bytes.baseAddress, 1, bytes.count, handle) != bytes.count {
            throw EddyError("\(path): write failed (\(String(cString: strerror(errno))))")
        }
    }

    public func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }
    public func write(_ text: String) throws { try write(Array(text.utf8)) }
    public func write(doubles: [Double]) throws { try doubles.withUnsafeBytes { try write($0) } }
    public func write(floats: [Float]) throws { try floats.withUnsafeBytes { try write($0) } }

    /// Flushes, closes and renames into place.
    public func commit() throws {
        guard let h = handle else { return }
        handle = nil
        if AtomicFile.discardWrites { fclose(h); return }
        if fflush(h) != 0 || fsync(fileno(h)) != 0 {
            fclose(h)
            throw EddyError("\(path): write failed (\(String(cString: strerror(errno))))")
        }
        fclose(h)
        if rename(temporaryPath, destination) != 0 {
            throw EddyError("\(path): cannot move output into place (\(String(cString: strerror(errno))))")
        }
        committed = true
        TemporaryFiles.unregister(slot)
    }

    /// Writes a whole file atomically.
    public static func write(_ text: String, to path: String) throws {
        let f = try AtomicFile(path: path)
        try f.write(text)
        try f.commit()
    }

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let d = String(path[..<slash])
        return d.isEmpty ? "/" : d
    }

    static func basename(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }
}

/// Checks on output paths, made before a command starts its work, so that a bad output costs nothing and an
/// output can never overwrite the command's own input.
public enum OutputGuard {
    /// Refuses, naming the option and the path: an output that is `-` (standard output is not supported: outputs
    /// are written atomically by rename), empty, a directory, a device, a FIFO or a socket (after following
    /// symbolic links); an output whose directory is missing or not writable; an output that is the same file as
    /// one of `inputs` or as another output (after symbolic links: `realpath`, and the same device and inode).
    /// Nil paths (options not given) are skipped.
    public static func check(outputs: [(option: String, path: String?)], inputs: [(option: String, path: String?)] = []) throws {
        var seen: [(option: String, path: String, identity: Identity)] = []
        for (option, input) in inputs {
            guard let input else { continue }
            seen.append((option, input, identity(ofExisting: input)))
        }
        let inputCount = seen.count
        for (option, output) in outputs {
            guard let output else { continue }
            let dest: String
            do { dest = try destination(of: output) } catch let e as EddyError { throw EddyError("\(option) \(e.message)") }
            let dir = AtomicFile.directory(of: dest)
            var st = stat()
            if stat(dir, &st) != 0 || (st.st_mode & S_IFMT) != S_IFDIR {
                throw EddyError("\(option) \(output): the directory '\(dir)' does not exist; create it first")
            }
            if access(dir, W_OK | X_OK) != 0 {
                throw EddyError("\(option) \(output): cannot write in the directory '\(dir)' (\(String(cString: strerror(errno))))")
            }
            let id = identity(ofOutput: dest)
            for (i, other) in seen.enumerated() where other.identity.matches(id) {
                if i < inputCount {
                    throw EddyError("\(option) \(output): is the same file as the input \(other.option) \(other.path); write the output elsewhere (inputs are never overwritten)")
                }
                throw EddyError("\(option) \(output): is the same file as the output \(other.option) \(other.path); give each output its own file")
            }
            seen.append((option, output, id))
        }
    }

    /// The same checks without option names (each path is named in the message).
    public static func check(outputs: [String?], inputs: [String?] = []) throws {
        try check(outputs: outputs.map { (option: "output", path: $0) }, inputs: inputs.map { (option: "input", path: $0) })
    }

    /// The file an output at `path` replaces: `path`, or the end of the chain of symbolic links at `path` (which
    /// need not exist yet). Throws for `-`, an empty path, and anything there that is not a regular file.
    public static func destination(of path: String) throws -> String {
        if path.isEmpty { throw EddyError("'': empty output path; give a file name") }
        if path == "-" {
            throw EddyError("-: writing to standard output is not supported (outputs are written to a temporary file and renamed into place); give a file name")
        }
        var p = path
        var hops = 0
        while true {
            var st = stat()
            if lstat(p, &st) != 0 { return p }     // not there yet: created (its directory is checked by the caller or mkstemp)
            let kind = st.st_mode & S_IFMT
            if kind == S_IFREG { return p }
            if kind != S_IFLNK { throw EddyError("\(path): \(p == path ? "is" : "points to \(p), which is") \(describe(kind)), not a regular file; give a file name") }
            hops += 1
            if hops > 40 { throw EddyError("\(path): too many levels of symbolic links") }
            var buffer = [CChar](repeating: 0, count: 4097)
            let n = readlink(p, &buffer, buffer.count - 1)
            if n < 0 { throw EddyError("\(path): cannot read the symbolic link (\(String(cString: strerror(errno))))") }
            let target = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            p = target.hasPrefix("/") ? target : AtomicFile.directory(of: p) + "/" + target
        }
    }

    static func describe(_ kind: mode_t) -> String {
        switch kind {
        case S_IFDIR: return "a directory"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFIFO: return "a FIFO (named pipe)"
        case S_IFSOCK: return "a socket"
        default: return "a special file"
        }
    }

    struct Identity {
        var canonical: String?
        var device: UInt64?
        var inode: UInt64?
        func matches(_ o: Identity) -> Bool {
            if let a = canonical, let b = o.canonical, a == b { return true }
            if let d = device, let i = inode, d == o.device, i == o.inode { return true }
            return false
        }
    }

    static func realPath(_ path: String) -> String? {
        guard let r = realpath(path, nil) else { return nil }
        defer { free(r) }
        return String(cString: r)
    }

    static func identity(ofExisting path: String) -> Identity {
        var st = stat()
        guard stat(path, &st) == 0 else { return identity(ofOutput: path) }
        return Identity(canonical: realPath(path), device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }

    /// For a path that may not exist yet: its directory's real path and its name.
    static func identity(ofOutput path: String) -> Identity {
        var st = stat()
        if stat(path, &st) == 0 { return Identity(canonical: realPath(path), device: UInt64(st.st_dev), inode: UInt64(st.st_ino)) }
        let dir = realPath(AtomicFile.directory(of: path))
        return Identity(canonical: dir.map { ($0 == "/" ? "" : $0) + "/" + AtomicFile.basename(of: path) }, device: nil, inode: nil)
    }
}

/// Checks on input paths that a library opens by name (libnetcdf reads by random access, and blocks forever on a
/// FIFO nobody writes to): such an input must be a regular file.
public enum InputGuard {
    public static func requireRegularFile(_ path: String, option: String, reason: String) throws {
        var st = stat()
        guard stat(path, &st) == 0 else { return }       // a missing file is the reader's message
        let kind = st.st_mode & S_IFMT
        if kind != S_IFREG && kind != S_IFDIR {
            throw EddyError("\(option) \(path): is \(OutputGuard.describe(kind)), not a regular file; \(reason)")
        }
    }
}

/// Estimated sizes of what a command would hold, checked before the work: a clear message instead of an
/// overflow trap or an allocation that cannot succeed.
public enum SizeGuard {
    /// The most values (doubles) one command holds at once: 2³¹ (16 GiB).
    public static let maxValues = 1 << 31

    /// The product of `factors` (each ≥ 0), or nil if it overflows.
    public static func product(_ factors: [Int]) -> Int? {
        var p = 1
        for f in factors {
            let (r, overflow) = p.multipliedReportingOverflow(by: f)
            if overflow || f < 0 { return nil }
            p = r
        }
        return p
    }

    /// The sum of `terms`, each the product of its factors, or nil if anything overflows.
    public static func sum(ofProducts terms: [[Int]]) -> Int? {
        var total = 0
        for t in terms {
            guard let p = product(t) else { return nil }
            let (r, overflow) = total.addingReportingOverflow(p)
            if overflow { return nil }
            total = r
        }
        return total
    }

    /// Throws when `values` (nil: overflowed) exceeds `maxValues`: "`what` would hold about X GiB (N values) …; `advice`".
    public static func check(values: Int?, limit: Int = maxValues, what: String, advice: String) throws {
        if let v = values, v <= limit { return }
        let size: String
        if let v = values {
            size = "about \(Format.general(Double(v) * 8 / Double(1 << 30), 3)) GiB (\(v) values)"
        } else {
            size = "more than \(Int.max) values (the count overflows)"
        }
        throw EddyError("\(what) would hold \(size), more than the \(limit / (1 << 27)) GiB (\(limit) values) allowed; \(advice)")
    }
}

/// Temporary output files alive in this process, removed if SIGINT, SIGTERM or SIGHUP stops it. The handler only
/// calls `unlink` (async-signal-safe) on the registered paths, then the signal is raised again with its default
/// action, so the process still ends by that signal. A signal that was ignored (or handled by someone else) when
/// the first output was created is left alone; one that was blocked is unblocked (in the creating thread).
public enum TemporaryFiles {
    static let capacity = 256
    /// C strings of live temporary paths; nil slots are free. Strings are never freed once published (a handler
    /// on another thread may be reading one), which costs a path's bytes per output file.
    nonisolated(unsafe) static let slots: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> = {
        let p = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: capacity)
        p.initialize(repeating: nil, count: capacity)
        return p
    }()
    nonisolated(unsafe) static let lock: UnsafeMutablePointer<pthread_mutex_t> = {
        let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(m, nil)
        return m
    }()
    static let signals: [Int32] = [SIGINT, SIGTERM, SIGHUP]

    private static let installed: Bool = {
        _ = slots
        var handled = sigset_t()
        sigemptyset(&handled)
        for sig in signals {
            var old = sigaction()
            guard sigaction(sig, nil, &old) == 0 else { continue }
            #if canImport(Glibc)
            let previous = unsafeBitCast(old.__sigaction_handler.sa_handler, to: Int.self)
            #else
            let previous = unsafeBitCast(old.__sigaction_u.__sa_handler, to: Int.self)
            #endif
            guard previous == 0 else { continue }   // SIG_DFL is 0; SIG_IGN or another handler: leave it
            var action = sigaction()
            #if canImport(Glibc)
            action.__sigaction_handler.sa_handler = temporaryFilesSignalHandler
            action.sa_flags = Int32(bitPattern: UInt32(truncatingIfNeeded: SA_RESETHAND))
            #else
            action.__sigaction_u.__sa_handler = temporaryFilesSignalHandler
            action.sa_flags = SA_RESETHAND
            #endif
            sigemptyset(&action.sa_mask)
            if sigaction(sig, &action, nil) == 0 { sigaddset(&handled, sig) }
        }
        // A parent may start us with these blocked (Foundation's Process inherits the spawning thread's mask, in
        // which a Dispatch thread blocks nearly everything): a handled signal is also unblocked, so that it stops
        // the command instead of waiting forever.
        pthread_sigmask(SIG_UNBLOCK, &handled, nil)
        return true
    }()

    /// Installs the handlers (once per process).
    public static func installHandlers() { _ = installed }

    /// Paths registered now (for tests).
    public static var live: [String] {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return (0..<capacity).compactMap { slots[$0].map { String(cString: $0) } }
    }

    static func register(_ path: String) -> Int? {
        installHandlers()
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        guard let i = (0..<capacity).first(where: { slots[$0] == nil }), let copy = strdup(path) else { return nil }
        slots[i] = copy
        return i
    }

    static func unregister(_ slot: Int?) {
        guard let slot else { return }
        pthread_mutex_lock(lock)
        slots[slot] = nil
        pthread_mutex_unlock(lock)
    }
}

/// Removes the live temporary files and re-raises the signal (whose default action SA_RESETHAND restored; it is
/// delivered when this returns). Only async-signal-safe calls.
private func temporaryFilesSignalHandler(_ sig: Int32) {
    let slots = TemporaryFiles.slots
    var i = 0
    while i < TemporaryFiles.capacity {
        if let p = slots[i] { unlink(p) }
        i += 1
    }
    raise(sig)
}

/// Buffered binary/text input through C stdio: the whole file is never read at once.
public final class InputFile {
    public let path: String
    private let handle: UnsafeMutablePointer<FILE>

    public init(path: String) throws {
        var st = stat()
        if stat(path, &st) != 0 { throw EddyError("\(path): no such file") }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw EddyError("\(path): is a directory, expected a file") }
        // Opened without blocking, so a FIFO nobody writes to reads as empty instead of hanging; reads then block
        // as usual (a pipe that is being written, as from a shell's <(…), is read to its end).
        let fd = open(path, O_RDONLY | O_NONBLOCK)
        if fd < 0 { throw EddyError("\(path): cannot open (\(String(cString: strerror(errno))))") }
        let flags = fcntl(fd, F_GETFL)
        if flags >= 0 { _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) }
        guard let h = fdopen(fd, "rb") else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw EddyError("\(path): cannot open (\(reason))")
        }
        self.path = path
        handle = h
    }

    deinit { fclose(handle) }

    /// Reads up to `count` bytes into `buffer`; returns how many were read (0 at end of file).
    public func read(into buffer: UnsafeMutableRawPointer, count: Int) -> Int {
        fread(buffer, 1, count, handle)
    }

    /// Reads exactly `count` bytes or returns fewer at end of file.
    public func readBytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let n = out.withUnsafeMutableBytes { read(into: $0.baseAddress!, count: count) }
        if n < count { out.removeLast(count - n) }
        return out
    }

    public func seek(to offset: Int) throws {
        if fseeko(handle, off_t(offset), SEEK_SET) != 0 { throw EddyError("\(path): seek failed") }
    }

    public var size: Int {
        var st = stat()
        fstat(fileno(handle), &st)
        return Int(st.st_size)
    }
}

public enum FileSystem {
    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    /// Regular files in a directory, sorted by name (hidden files skipped).
    public static func files(in directory: String) throws -> [String] {
        guard let dir = opendir(directory) else { throw EddyError("\(directory): cannot open directory") }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name.hasPrefix(".") { continue }
            let full = directory.hasSuffix("/") ? directory + name : directory + "/" + name
            if !isDirectory(full) { names.append(full) }
        }
        return names.sorted()
    }

    /// Whether standard error is a terminal (progress is shown only there).
    public static var stderrIsTerminal: Bool { isatty(2) != 0 }
}

/// Writes text to standard error.
public func printError(_ text: String, newline: Bool = true) {
    var t = text
    if newline && !t.hasSuffix("\n") { t += "\n" }
    _ = t.withCString { write(2, $0, strlen($0)) }
}
