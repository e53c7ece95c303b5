#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An open-addressing hash table from byte strings to 32-bit values, looked up from a pointer and a length
/// without allocating.
///
/// Vocabularies (token bytes → id) and the per-word encoding caches are tables of this kind: the encoder's
/// hot loop looks up slices of the input text directly. A slot holds the hash tag, the value and where its
/// key's bytes are, so a lookup touches one slot and one key (two cache lines at most).
final class ByteStringTable {
    private struct Slot {
        var tag: UInt32
        var value: Int32
        var start: UInt32
        var length: UInt32  // `ByteStringTable.empty` in an empty slot
    }

    private static let empty = UInt32.max
    // One thread mutates a table at a time (vocabularies are built, then only read; caches belong to one
    // workspace), so the dynamic exclusivity checks on these hot properties are turned off.
    @exclusivity(unchecked) private(set) var count = 0
    @exclusivity(unchecked) private var keyBytes: UnsafeMutablePointer<UInt8>
    @exclusivity(unchecked) private var keyByteCapacity: Int
    @exclusivity(unchecked) private var keyBytesUsed = 0
    @exclusivity(unchecked) private var slots: UnsafeMutablePointer<Slot>
    @exclusivity(unchecked) private var slotMask: Int

    /// A table sized for about `capacity` keys (it grows as needed).
    init(capacity: Int = 16) {
        keyByteCapacity = max(capacity * 8, 64)
        keyBytes = .allocate(capacity: keyByteCapacity)
        var slotCount = 16
        while slotCount < capacity * 2 { slotCount <<= 1 }
        slots = .allocate(capacity: slotCount)
        slots.initialize(repeating: Slot(tag: 0, value: 0, start: 0, length: ByteStringTable.empty), count: slotCount)
        slotMask = slotCount - 1
    }

    deinit {
        keyBytes.deallocate()
        slots.deallocate()
    }

    /// A fast 64-bit hash of a short byte string (8 bytes per step, multiply-xorshift mixing).
    @inline(__always)
    static func hash(_ base: UnsafePointer<UInt8>, _ length: Int) -> UInt64 {
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(truncatingIfNeeded: length)
        let raw = UnsafeRawPointer(base)
        var i = 0
        while i + 8 <= length {
            let word = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            h = (h ^ word) &* 0xFF51_AFD7_ED55_8CCD
            h ^= h >> 32
            i += 8
        }
        if i < length {
            var word: UInt64 = 0
            var shift: UInt64 = 0
            while i < length {
                word |= UInt64(base[i]) << shift
                shift += 8
                i += 1
            }
            h = (h ^ word) &* 0xFF51_AFD7_ED55_8CCD
        }
        h ^= h >> 29
        h = h &* 0xC4CE_B9FE_1A85_EC53
        h ^= h >> 32
        return h
    }

    /// The slot holding `key`, or the empty slot where it would go.
    @inline(__always)
    private func find(_ base: UnsafePointer<UInt8>, _ length: Int, _ h: UInt64) -> Int {
        let tag = UInt32(truncatingIfNeeded: h >> 32)
        var slot = Int(truncatingIfNeeded: h) & slotMask
        while true {
            let candidate = slots[slot]
            if candidate.length == ByteStringTable.empty { return slot }
            if candidate.tag == tag, Int(candidate.length) == length,
               ByteStringTable.equal(keyBytes + Int(candidate.start), base, length) {
                return slot
            }
            slot = (slot + 1) & slotMask
        }
    }

    /// Whether two byte strings of `length` are equal; short ones compared inline, 8 bytes at a time.
    @inline(__always)
    private static func equal(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ length: Int) -> Bool {
        guard length <= 16 else { return memcmp(a, b, length) == 0 }
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        var i = 0
        while i + 8 <= length {
            if ra.loadUnaligned(fromByteOffset: i, as: UInt64.self) != rb.loadUnaligned(fromByteOffset: i, as: UInt64.self) {
                return false
            }
            i += 8
        }
        while i < length {
            if a[i] != b[i] { return false }
            i += 1
        }
        return true
    }

    /// The value stored for the bytes `base[0..<length]`, or -1.
    @inline(__always)
    func value(_ base: UnsafePointer<UInt8>, _ length: Int) -> Int32 {
        let slot = slots[find(base, length, ByteStringTable.hash(base, length))]
        return slot.length == ByteStringTable.empty ? -1 : slot.value
    }

    /// The value stored for `key`, or -1.
    func value(_ key: UnsafeBufferPointer<UInt8>) -> Int32 {
        value(key.baseAddress ?? UnsafePointer(Self.emptyKey), key.count)
    }

    /// The value stored for the UTF-8 bytes of `key`, or -1.
    func value(_ key: String) -> Int32 {
        var key = key
        return key.withUTF8 { value($0) }
    }

    /// A valid address for empty keys, whose buffers may have none.
    /// Never written through (empty keys have no bytes).
    nonisolated(unsafe) private static let emptyKey: UnsafeMutablePointer<UInt8> = {
        let pointer = UnsafeMutablePointer<UInt8>.allocate(capacity: 1)
        pointer.initialize(to: 0)
        return pointer
    }()

    /// Stores `value` for `key`. When the key is already there, keeps the old value unless `replace`, and
    /// returns the old value; returns -1 for a new key.
    @discardableResult
    func insert(_ key: UnsafeBufferPointer<UInt8>, value: Int32, replace: Bool = false) -> Int32 {
        let base = key.baseAddress ?? UnsafePointer(Self.emptyKey)
        let length = key.count
        let h = ByteStringTable.hash(base, length)
        let slot = find(base, length, h)
        if slots[slot].length != ByteStringTable.empty {
            let old = slots[slot].value
            if replace { slots[slot].value = value }
            return old
        }
        if keyBytesUsed + length > keyByteCapacity { growKeyBytes(minimum: keyBytesUsed + length) }
        (keyBytes + keyBytesUsed).update(from: base, count: length)
        slots[slot] = Slot(tag: UInt32(truncatingIfNeeded: h >> 32), value: value, start: UInt32(keyBytesUsed),
                           length: UInt32(length))
        keyBytesUsed += length
        count += 1
        if count * 2 > slotMask + 1 { rehash(slotCount: (slotMask + 1) * 2) }
        return -1
    }

    /// Stores `value` for the UTF-8 bytes of `key` (see `insert(_:value:replace:)`).
    @discardableResult
    func insert(_ key: String, value: Int32, replace: Bool = false) -> Int32 {
        var key = key
        return key.withUTF8 { insert($0, value: value, replace: replace) }
    }

    /// Empties the table, keeping its memory.
    func removeAll() {
        count = 0
        keyBytesUsed = 0
        for slot in 0...slotMask { slots[slot].length = ByteStringTable.empty }
    }

    private func growKeyBytes(minimum: Int) {
        var newCapacity = keyByteCapacity * 2
        while newCapacity < minimum { newCapacity *= 2 }
        let new = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        new.update(from: keyBytes, count: keyBytesUsed)
        keyBytes.deallocate()
        keyBytes = new
        keyByteCapacity = newCapacity
    }

    private func rehash(slotCount: Int) {
        let old = slots, oldCount = slotMask + 1
        slots = .allocate(capacity: slotCount)
        slots.initialize(repeating: Slot(tag: 0, value: 0, start: 0, length: ByteStringTable.empty), count: slotCount)
        slotMask = slotCount - 1
        for index in 0..<oldCount where old[index].length != ByteStringTable.empty {
            let entry = old[index]
            let h = ByteStringTable.hash(keyBytes + Int(entry.start), Int(entry.length))
            var slot = Int(truncatingIfNeeded: h) & slotMask
            while slots[slot].length != ByteStringTable.empty { slot = (slot + 1) & slotMask }
            slots[slot] = entry
        }
        old.deallocate()
    }
}
