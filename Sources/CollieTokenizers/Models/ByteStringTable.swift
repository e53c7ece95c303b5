#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An open-addressing hash table from byte strings to 32-bit values, looked up from a pointer and a length
/// without allocating.
///
/// Vocabularies (token bytes → id) and the per-word encoding caches are tables of this kind: the encoder's
/// hot loop looks up slices of the input text directly.
final class ByteStringTable {
    private(set) var count = 0
    private var keyBytes: UnsafeMutablePointer<UInt8>
    private var keyByteCapacity: Int
    private var keyBytesUsed = 0
    private var entryStart: UnsafeMutablePointer<UInt32>
    private var entryLength: UnsafeMutablePointer<UInt32>
    private var entryValue: UnsafeMutablePointer<Int32>
    private var entryCapacity: Int
    private var slots: UnsafeMutablePointer<Int32>  // entry index, or -1 when empty
    private var slotHash: UnsafeMutablePointer<UInt32>
    private var slotMask: Int

    /// A table sized for about `capacity` keys (it grows as needed).
    init(capacity: Int = 16) {
        entryCapacity = max(capacity, 4)
        keyByteCapacity = max(entryCapacity * 8, 64)
        keyBytes = .allocate(capacity: keyByteCapacity)
        entryStart = .allocate(capacity: entryCapacity)
        entryLength = .allocate(capacity: entryCapacity)
        entryValue = .allocate(capacity: entryCapacity)
        var slotCount = 16
        while slotCount < entryCapacity * 2 { slotCount <<= 1 }
        slots = .allocate(capacity: slotCount)
        slots.initialize(repeating: -1, count: slotCount)
        slotHash = .allocate(capacity: slotCount)
        slotHash.initialize(repeating: 0, count: slotCount)
        slotMask = slotCount - 1
    }

    deinit {
        keyBytes.deallocate()
        entryStart.deallocate()
        entryLength.deallocate()
        entryValue.deallocate()
        slots.deallocate()
        slotHash.deallocate()
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

    /// The value stored for the bytes `base[0..<length]`, or -1.
    @inline(__always)
    func value(_ base: UnsafePointer<UInt8>, _ length: Int) -> Int32 {
        let h = ByteStringTable.hash(base, length)
        let tag = UInt32(truncatingIfNeeded: h >> 32)
        var slot = Int(truncatingIfNeeded: h) & slotMask
        while true {
            let entry = slots[slot]
            if entry < 0 { return -1 }
            if slotHash[slot] == tag {
                let e = Int(entry)
                if Int(entryLength[e]) == length, memcmp(keyBytes + Int(entryStart[e]), base, length) == 0 {
                    return entryValue[e]
                }
            }
            slot = (slot + 1) & slotMask
        }
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
    private static let emptyKey: UnsafeMutablePointer<UInt8> = {
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
        let tag = UInt32(truncatingIfNeeded: h >> 32)
        var slot = Int(truncatingIfNeeded: h) & slotMask
        while true {
            let entry = slots[slot]
            if entry < 0 { break }
            if slotHash[slot] == tag {
                let e = Int(entry)
                if Int(entryLength[e]) == length, memcmp(keyBytes + Int(entryStart[e]), base, length) == 0 {
                    let old = entryValue[e]
                    if replace { entryValue[e] = value }
                    return old
                }
            }
            slot = (slot + 1) & slotMask
        }
        if count == entryCapacity { growEntries() }
        if keyBytesUsed + length > keyByteCapacity { growKeyBytes(minimum: keyBytesUsed + length) }
        (keyBytes + keyBytesUsed).update(from: base, count: length)
        entryStart[count] = UInt32(keyBytesUsed)
        entryLength[count] = UInt32(length)
        entryValue[count] = value
        keyBytesUsed += length
        slots[slot] = Int32(count)
        slotHash[slot] = tag
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
        slots.update(repeating: -1, count: slotMask + 1)
    }

    /// Calls `body` with each key's bytes and its value, in insertion order.
    func forEach(_ body: (UnsafeBufferPointer<UInt8>, Int32) throws -> Void) rethrows {
        for e in 0..<count {
            try body(UnsafeBufferPointer(start: keyBytes + Int(entryStart[e]), count: Int(entryLength[e])),
                     entryValue[e])
        }
    }

    private func growEntries() {
        let newCapacity = entryCapacity * 2
        func grow<T>(_ pointer: inout UnsafeMutablePointer<T>) {
            let new = UnsafeMutablePointer<T>.allocate(capacity: newCapacity)
            new.moveInitialize(from: pointer, count: count)
            pointer.deallocate()
            pointer = new
        }
        grow(&entryStart)
        grow(&entryLength)
        grow(&entryValue)
        entryCapacity = newCapacity
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
        slots.deallocate()
        slotHash.deallocate()
        slots = .allocate(capacity: slotCount)
        slots.initialize(repeating: -1, count: slotCount)
        slotHash = .allocate(capacity: slotCount)
        slotHash.initialize(repeating: 0, count: slotCount)
        slotMask = slotCount - 1
        for e in 0..<count {
            let h = ByteStringTable.hash(keyBytes + Int(entryStart[e]), Int(entryLength[e]))
            var slot = Int(truncatingIfNeeded: h) & slotMask
            while slots[slot] >= 0 { slot = (slot + 1) & slotMask }
            slots[slot] = Int32(e)
            slotHash[slot] = UInt32(truncatingIfNeeded: h >> 32)
        }
    }
}
