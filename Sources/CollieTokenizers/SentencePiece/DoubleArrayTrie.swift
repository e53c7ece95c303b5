/// A read-only double-array trie in darts-clone's layout, the format of SentencePiece's precompiled
/// normalization rules (`precompiled_charsmap`).
///
/// Each 32-bit unit holds a label, an offset to its children and a has-leaf bit; a leaf's unit holds the
/// value. Lookups check every index, so a damaged file yields no match rather than a crash.
struct DoubleArrayTrie {
    private let units: [UInt32]

    init(units: [UInt32]) { self.units = units }

    /// The values and lengths of every key that is a prefix of `key[0..<length]`, shortest first.
    func commonPrefixSearch(_ key: UnsafePointer<UInt8>, _ length: Int, _ body: (_ value: Int, _ length: Int) -> Void) {
        guard !units.isEmpty else { return }
        units.withUnsafeBufferPointer { units in
            var nodePosition = Int(DoubleArrayTrie.offset(units[0]))
            for i in 0..<length {
                nodePosition ^= Int(key[i])
                guard nodePosition < units.count else { return }
                let unit = units[nodePosition]
                guard DoubleArrayTrie.label(unit) == UInt32(key[i]) else { return }
                nodePosition ^= Int(DoubleArrayTrie.offset(unit))
                if DoubleArrayTrie.hasLeaf(unit) {
                    guard nodePosition < units.count else { return }
                    body(Int(units[nodePosition] & 0x7FFF_FFFF), i + 1)
                }
            }
        }
    }

    @inline(__always) private static func hasLeaf(_ unit: UInt32) -> Bool { (unit >> 8) & 1 == 1 }
    @inline(__always) private static func label(_ unit: UInt32) -> UInt32 { unit & (0x8000_0000 | 0xFF) }
    @inline(__always) private static func offset(_ unit: UInt32) -> UInt32 { (unit >> 10) << ((unit & (1 << 9)) >> 6) }
}
