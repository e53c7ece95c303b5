/// BPE's merge rules: for a pair of token ids, the rule's rank (its line in the merges list) and the id of
/// the merged token. An open-addressing table keyed by the pair packed into 64 bits.
struct MergeTable {
    /// A merge rule's rank (lower merges first) and the token it produces.
    struct Rule: Equatable {
        var rank: UInt32
        var result: UInt32
    }

    /// A slot: the packed pair and its rule, together so a lookup touches one cache line.
    private struct Slot {
        var key: UInt64
        var rule: Rule
    }

    private var slots: [Slot]
    private var mask: Int
    private(set) var count = 0
    private static let empty = UInt64.max

    init(capacity: Int) {
        var slotCount = 16
        while slotCount < capacity * 2 { slotCount <<= 1 }
        slots = [Slot](repeating: Slot(key: MergeTable.empty, rule: Rule(rank: 0, result: 0)), count: slotCount)
        mask = slotCount - 1
    }

    @inline(__always)
    private static func slot(_ key: UInt64, _ mask: Int) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 29) & mask
    }

    /// The rule for merging `left` then `right`, if there is one.
    @inline(__always)
    func rule(_ left: UInt32, _ right: UInt32) -> Rule? {
        let key = UInt64(left) << 32 | UInt64(right)
        return slots.withUnsafeBufferPointer { slots in
            var slot = MergeTable.slot(key, mask)
            while true {
                let found = slots[slot]
                if found.key == key { return found.rule }
                if found.key == MergeTable.empty { return nil }
                slot = (slot + 1) & mask
            }
        }
    }

    /// Adds a rule; a later rule for the same pair replaces an earlier one, as in Hugging Face `tokenizers`.
    mutating func insert(_ left: UInt32, _ right: UInt32, _ rule: Rule) {
        if (count + 1) * 2 > slots.count { grow() }
        let key = UInt64(left) << 32 | UInt64(right)
        var slot = MergeTable.slot(key, mask)
        while slots[slot].key != MergeTable.empty && slots[slot].key != key { slot = (slot + 1) & mask }
        if slots[slot].key == MergeTable.empty { count += 1 }
        slots[slot] = Slot(key: key, rule: rule)
    }

    private mutating func grow() {
        var bigger = MergeTable(capacity: slots.count)
        for slot in slots where slot.key != MergeTable.empty {
            bigger.insert(UInt32(slot.key >> 32), UInt32(truncatingIfNeeded: slot.key), slot.rule)
        }
        self = bigger
    }
}
