/// A list of byte strings in one flat buffer: how vocabularies and merges are held between reading the
/// JSON and building the model (which needs the whole file first, to know how tokens are spelled).
struct ByteStrings {
    private(set) var storage: [UInt8] = []
    private(set) var ends: [Int32] = []

    init(capacity: Int = 0) {
        storage.reserveCapacity(capacity * 8)
        ends.reserveCapacity(capacity)
    }

    var count: Int { ends.count }

    mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        storage.append(contentsOf: bytes)
        ends.append(Int32(storage.count))
    }

    mutating func append(_ string: String) {
        storage.append(contentsOf: string.utf8)
        ends.append(Int32(storage.count))
    }

    /// Calls `body` with the bytes of string `index`.
    func withBytes<T>(_ index: Int, _ body: (UnsafeBufferPointer<UInt8>) throws -> T) rethrows -> T {
        let start = index == 0 ? 0 : Int(ends[index - 1])
        return try storage.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[start..<Int(ends[index])])) }
    }

    func string(_ index: Int) -> String { withBytes(index) { String(decoding: $0, as: UTF8.self) } }
}
