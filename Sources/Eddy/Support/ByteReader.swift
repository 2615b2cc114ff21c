/// A bounds-checked cursor over bytes for parsing untrusted files: every read returns nil when the input is too
/// short instead of trapping, and every length is compared with what is left by subtraction (`count <= remaining`),
/// so no check can overflow.
public struct ByteReader: Sendable {
    public let bytes: [UInt8]
    /// The next byte to read; always within `0...bytes.count`.
    public private(set) var offset: Int

    public init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = min(max(offset, 0), bytes.count)
    }

    public var remaining: Int { bytes.count - offset }
    public var isAtEnd: Bool { offset == bytes.count }

    /// Whether `count` bytes starting at `offset` lie within `length` bytes (all three may be hostile).
    public static func fits(_ count: Int, at offset: Int, in length: Int) -> Bool {
        count >= 0 && offset >= 0 && length >= 0 && offset <= length && count <= length - offset
    }

    /// The next byte, without consuming it.
    public func peek() -> UInt8? { offset < bytes.count ? bytes[offset] : nil }

    public mutating func u8() -> UInt8? {
        guard offset < bytes.count else { return nil }
        defer { offset += 1 }
        return bytes[offset]
    }

    /// The next `count` bytes, or nil (consuming nothing) when fewer are left.
    public mutating func read(_ count: Int) -> ArraySlice<UInt8>? {
        guard count >= 0, count <= remaining else { return nil }
        defer { offset += count }
        return bytes[offset..<(offset + count)]
    }

    /// Skips `count` bytes; false (consuming nothing) when fewer are left.
    @discardableResult
    public mutating func skip(_ count: Int) -> Bool { read(count) != nil }

    /// Consumes `expected` if the input continues with it.
    public mutating func consume(_ expected: [UInt8]) -> Bool {
        guard expected.count <= remaining, bytes[offset..<(offset + expected.count)].elementsEqual(expected) else { return false }
        offset += expected.count
        return true
    }

    /// Consumes bytes while `predicate` holds.
    public mutating func skip(while predicate: (UInt8) -> Bool) {
        while offset < bytes.count, predicate(bytes[offset]) { offset += 1 }
    }

    private mutating func littleEndian(_ size: Int) -> UInt64? {
        guard let s = read(size) else { return nil }
        var v: UInt64 = 0
        for (i, b) in s.enumerated() { v |= UInt64(b) << UInt64(8 * i) }
        return v
    }

    private mutating func bigEndian(_ size: Int) -> UInt64? {
        guard let s = read(size) else { return nil }
        var v: UInt64 = 0
        for b in s { v = v << 8 | UInt64(b) }
        return v
    }

    public mutating func u16le() -> UInt16? { littleEndian(2).map { UInt16(truncatingIfNeeded: $0) } }
    public mutating func u32le() -> UInt32? { littleEndian(4).map { UInt32(truncatingIfNeeded: $0) } }
    public mutating func u64le() -> UInt64? { littleEndian(8) }
    /// Big-endian (network order), as in the classic netCDF header.
    public mutating func u32be() -> UInt32? { bigEndian(4).map { UInt32(truncatingIfNeeded: $0) } }
    public mutating func u64be() -> UInt64? { bigEndian(8) }
}

/// Sizes computed from untrusted numbers: nil instead of an overflow trap.
public enum CheckedSize {
    public static func product(_ factors: [Int]) -> Int? {
        var p = 1
        for f in factors {
            guard f >= 0 else { return nil }
            let (r, o) = p.multipliedReportingOverflow(by: f)
            if o { return nil }
            p = r
        }
        return p
    }

    public static func multiply(_ a: Int, _ b: Int) -> Int? {
        let (r, o) = a.multipliedReportingOverflow(by: b)
        return o ? nil : r
    }

    public static func add(_ a: Int, _ b: Int) -> Int? {
        let (r, o) = a.addingReportingOverflow(b)
        return o ? nil : r
    }

    /// Bytes of `shape` elements of `itemSize` bytes each; nil for a negative entry or an overflow.
    public static func bytes(shape: [Int], itemSize: Int) -> Int? {
        product(shape).flatMap { multiply($0, itemSize) }
    }
}

/// FNV-1a, 64 bit: the model file's checksum (not cryptographic; it catches corruption, not forgery).
public struct FNV1a64: Sendable, Equatable {
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    public mutating func add<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
        var h = value
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01B3
        }
        value = h
    }

    public static func of<S: Sequence>(_ bytes: S) -> UInt64 where S.Element == UInt8 {
        var h = FNV1a64()
        h.add(bytes)
        return h.value
    }

    /// Sixteen lower-case hex digits.
    public static func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}
