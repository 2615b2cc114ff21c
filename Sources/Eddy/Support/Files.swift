#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// An output file that appears only when complete: bytes go to a temporary file beside the target, and
/// `commit()` renames it into place. Dropped without `commit()`, the temporary file is removed, so a failed
/// command never leaves a partial or corrupt output behind.
public final class AtomicFile {
    public let path: String
    /// Where the bytes go until `commit()`; a library that writes by path (libnetcdf) may write here instead.
    public let temporaryPath: String
    private var handle: UnsafeMutablePointer<FILE>?
    private var committed = false

    public init(path: String) throws {
        self.path = path
        let dir = Self.directory(of: path)
        var template = Array("\(dir)/.\(Self.basename(of: path)).tmp-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw EddyError("\(path): cannot create output file (\(String(cString: strerror(errno))))")
        }
        temporaryPath = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        fchmod(fd, 0o644)
        handle = fdopen(fd, "wb")
    }

    deinit {
        if let handle { fclose(handle) }
        if !committed { unlink(temporaryPath) }
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
        if fflush(h) != 0 || fsync(fileno(h)) != 0 {
            fclose(h)
            throw EddyError("\(path): write failed (\(String(cString: strerror(errno))))")
        }
        fclose(h)
        if rename(temporaryPath, path) != 0 {
            throw EddyError("\(path): cannot move output into place (\(String(cString: strerror(errno))))")
        }
        committed = true
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

/// Buffered binary/text input through C stdio: the whole file is never read at once.
public final class InputFile {
    public let path: String
    private let handle: UnsafeMutablePointer<FILE>

    public init(path: String) throws {
        var st = stat()
        if stat(path, &st) != 0 { throw EddyError("\(path): no such file") }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw EddyError("\(path): is a directory, expected a file") }
        guard let h = fopen(path, "rb") else {
            throw EddyError("\(path): cannot open (\(String(cString: strerror(errno))))")
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
