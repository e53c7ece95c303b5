/// Remembers the ids a model produced for recent words (pre-tokens), so repeated words skip the merge loop.
///
/// Owned by one thread at a time (through `EncoderWorkspace`); when full it starts over.
final class WordCache {
    private let table: ByteStringTable
    @exclusivity(unchecked) private var ids: [Int32] = []
    @exclusivity(unchecked) private var ranges: [(start: Int32, count: Int32)] = []
    let capacity: Int
    /// Words longer than this many bytes are not cached.
    static let maximumWordLength = 256

    init(capacity: Int = 32768) {
        self.capacity = capacity
        table = ByteStringTable(capacity: capacity)
        ids.reserveCapacity(capacity * 2)
        ranges.reserveCapacity(capacity)
    }

    /// Appends the cached ids for `word` to `output` and returns true, or returns false.
    @inline(__always)
    func append(_ word: UnsafePointer<UInt8>, _ length: Int, to output: inout [Int32]) -> Bool {
        let entry = table.value(word, length)
        if entry < 0 { return false }
        let range = ranges[Int(entry)]
        ids.withUnsafeBufferPointer { ids in
            output.append(contentsOf: UnsafeBufferPointer(rebasing: ids[Int(range.start)..<Int(range.start + range.count)]))
        }
        return true
    }

    /// Remembers the ids for `word`.
    func store(_ word: UnsafePointer<UInt8>, _ length: Int, ids wordIDs: ArraySlice<Int32>) {
        guard length <= WordCache.maximumWordLength else { return }
        if table.count >= capacity {
            table.removeAll()
            ids.removeAll(keepingCapacity: true)
            ranges.removeAll(keepingCapacity: true)
        }
        let entry = Int32(ranges.count)
        if table.insert(UnsafeBufferPointer(start: word, count: length), value: entry) < 0 {
            ranges.append((Int32(ids.count), Int32(wordIDs.count)))
            ids.append(contentsOf: wordIDs)
        }
    }
}
