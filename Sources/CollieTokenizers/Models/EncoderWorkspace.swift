/// Scratch memory for encoding: reused between calls so the hot loop does not allocate. One thread uses a
/// workspace at a time; `Tokenizer` keeps a pool of them for concurrent callers.
final class EncoderWorkspace {
    let symbols = SymbolList()
    let mergeQueue = MergeQueue()
    let wordCache = WordCache()
    /// Text bytes of the segment being pre-tokenized, and the pieces cut from it.
    // A workspace is used by one thread at a time: no dynamic exclusivity checks on its hot arrays.
    @exclusivity(unchecked) var buffer: [UInt8] = []
    @exclusivity(unchecked) var pieces: [Range<Int>] = []
    @exclusivity(unchecked) var spareBuffer: [UInt8] = []
    @exclusivity(unchecked) var spareRanges: [Range<Int>] = []

    init() {
        buffer.reserveCapacity(1 << 12)
        pieces.reserveCapacity(1 << 10)
    }
}

/// A word's symbols during BPE, as a doubly linked list over arrays; merged-away symbols have length 0.
final class SymbolList {
    @exclusivity(unchecked) var id: [Int32] = []
    @exclusivity(unchecked) var previous: [Int32] = []
    @exclusivity(unchecked) var next: [Int32] = []
    @exclusivity(unchecked) var length: [Int32] = []

    var count: Int { id.count }

    func removeAll() {
        id.removeAll(keepingCapacity: true)
        previous.removeAll(keepingCapacity: true)
        next.removeAll(keepingCapacity: true)
        length.removeAll(keepingCapacity: true)
    }

    @inline(__always)
    func append(_ symbol: Int32, length symbolLength: Int) {
        let index = Int32(id.count)
        if index > 0 { next[Int(index) - 1] = index }
        id.append(symbol)
        previous.append(index - 1)
        next.append(-1)
        length.append(Int32(symbolLength))
    }

    /// Appends the ids of the symbols still alive, in order.
    func appendIDs(to output: inout [Int32]) {
        for i in 0..<id.count where length[i] > 0 { output.append(id[i]) }
    }
}

/// A binary min-heap of candidate merges ordered by (rank, position).
final class MergeQueue {
    struct Entry {
        var key: UInt64  // rank << 32 | position
        var result: UInt32
        var rank: UInt32 { UInt32(key >> 32) }
        var position: Int32 { Int32(truncatingIfNeeded: key & 0xFFFF_FFFF) }
    }

    @exclusivity(unchecked) private var heap: [Entry] = []

    func removeAll() { heap.removeAll(keepingCapacity: true) }

    func push(rank: UInt32, position: Int32, result: UInt32) {
        var i = heap.count
        heap.append(Entry(key: UInt64(rank) << 32 | UInt64(UInt32(bitPattern: position)), result: result))
        let entry = heap[i]
        while i > 0 {
            let parent = (i - 1) / 2
            if heap[parent].key <= entry.key { break }
            heap[i] = heap[parent]
            i = parent
        }
        heap[i] = entry
    }

    func pop() -> Entry? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        let count = heap.count
        if count > 0 {
            var i = 0
            while true {
                let left = 2 * i + 1
                if left >= count { break }
                let right = left + 1
                let child = right < count && heap[right].key < heap[left].key ? right : left
                if heap[child].key >= last.key { break }
                heap[i] = heap[child]
                i = child
            }
            heap[i] = last
        }
        return top
    }
}
