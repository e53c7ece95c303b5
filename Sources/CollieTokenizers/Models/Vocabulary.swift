/// A model's tokens, both ways: the bytes a token stands for → its id, and id → bytes and spelling.
///
/// Byte-level vocabularies (GPT-2, Llama-3, Qwen2) spell tokens with GPT-2's 256 byte characters; they are
/// stored as the raw bytes they stand for, so the encoder looks up slices of the input text directly.
final class Vocabulary {
    /// How token strings in the file relate to the bytes they stand for.
    enum Spelling: Equatable {
        /// The token string's UTF-8 bytes are the token's bytes.
        case utf8
        /// The token string spells bytes with GPT-2's byte characters (`ByteLevel`).
        case byteLevel
    }

    let spelling: Spelling
    /// Token bytes → id.
    let lookup: ByteStringTable
    @exclusivity(unchecked) private var storage: [UInt8] = []
    @exclusivity(unchecked) private var starts: [Int32] = []  // per id; -1 where the id has no token
    @exclusivity(unchecked) private var lengths: [Int32] = []
    /// Byte-level tokens whose spelling is not made of the 256 characters: kept by spelling, never matched.
    private var irregularSpellings: [Int32: String] = [:]
    @exclusivity(unchecked) private var conversion: [UInt8] = []

    init(spelling: Spelling, capacity: Int = 1024) {
        self.spelling = spelling
        lookup = ByteStringTable(capacity: capacity)
        storage.reserveCapacity(capacity * 6)
    }

    /// One past the largest id.
    var idCount: Int { starts.count }

    /// The number of distinct tokens (`tokenizers`' `get_vocab_size()`, which numbers added tokens after it).
    var tokenCount: Int { lookup.count + irregularSpellings.count }

    /// Adds a token given as it is spelled in the file. Returns false if the spelling was already there
    /// (the later id replaces the earlier, as a JSON object's later key does).
    @discardableResult
    func add(spelling token: UnsafeBufferPointer<UInt8>, id: Int32) -> Bool {
        if spelling == .byteLevel {
            conversion.removeAll(keepingCapacity: true)
            if ByteLevel.appendBytes(fromSpelling: token, to: &conversion) {
                return conversion.withUnsafeBufferPointer { add(bytes: $0, id: id) }
            }
            irregularSpellings[id] = String(decoding: token, as: UTF8.self)
            ensureID(id)
            return true
        }
        return add(bytes: token, id: id)
    }

    /// Adds a token by the bytes it stands for.
    @discardableResult
    func add(bytes: UnsafeBufferPointer<UInt8>, id: Int32) -> Bool {
        ensureID(id)
        starts[Int(id)] = Int32(storage.count)
        lengths[Int(id)] = Int32(bytes.count)
        storage.append(contentsOf: bytes)
        return lookup.insert(bytes, value: id, replace: true) < 0
    }

    private func ensureID(_ id: Int32) {
        if Int(id) == starts.count {
            starts.append(-1)
            lengths.append(0)
        } else if Int(id) > starts.count {
            let missing = Int(id) + 1 - starts.count
            starts.append(contentsOf: repeatElement(-1, count: missing))
            lengths.append(contentsOf: repeatElement(0, count: missing))
        }
    }

    /// The id of the token standing for `bytes`, or -1.
    @inline(__always)
    func id(_ base: UnsafePointer<UInt8>, _ length: Int) -> Int32 { lookup.value(base, length) }

    /// The bytes token `id` stands for, or nil if there is no such token (or it cannot stand for bytes).
    func bytes(of id: Int) -> ArraySlice<UInt8>? {
        guard id >= 0, id < starts.count, starts[id] >= 0 else { return nil }
        return storage[Int(starts[id])..<Int(starts[id] + lengths[id])]
    }

    /// The token's string as the tokenizer file spells it.
    func token(of id: Int) -> String? {
        if let irregular = irregularSpellings[Int32(truncatingIfNeeded: id)], id < starts.count { return irregular }
        guard let bytes = bytes(of: id) else { return nil }
        switch spelling {
        case .utf8: return String(decoding: bytes, as: UTF8.self)
        case .byteLevel: return ByteLevel.spelling(of: bytes)
        }
    }

    /// The id of a token given as the tokenizer file spells it.
    func id(ofToken token: String) -> Int? {
        var token = token
        return token.withUTF8 { spelled -> Int? in
            switch spelling {
            case .utf8:
                let id = lookup.value(spelled)
                return id >= 0 ? Int(id) : nil
            case .byteLevel:
                var raw: [UInt8] = []
                if ByteLevel.appendBytes(fromSpelling: spelled, to: &raw) {
                    let id = raw.withUnsafeBufferPointer { lookup.value($0) }
                    return id >= 0 ? Int(id) : nil
                }
                let text = String(decoding: spelled, as: UTF8.self)
                return irregularSpellings.first { $0.value == text }.map { Int($0.key) }
            }
        }
    }
}
