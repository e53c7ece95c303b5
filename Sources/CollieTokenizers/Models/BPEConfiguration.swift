/// A BPE model's settings as tokenizer.json gives them, with the vocabulary and merges still spelled as in
/// the file (the model is built once the whole file is read and the spelling is known).
struct BPEConfiguration {
    var vocabulary = ByteStrings(capacity: 1 << 15)
    var vocabularyIDs: [Int32] = []
    /// Merge rules as pairs: strings 2i and 2i+1 are rule i's left and right tokens.
    var merges = ByteStrings(capacity: 1 << 16)
    var unknownToken: String?
    var continuingSubwordPrefix: String?
    var endOfWordSuffix: String?
    var fuseUnknown = false
    var byteFallback = false
    var ignoreMerges = false

    init() {}

    /// Reads the `model` object of a tokenizer.json whose type is BPE.
    init(json: inout JSONReader) throws {
        vocabularyIDs.reserveCapacity(1 << 15)
        try json.forEachMember { json, key in
            switch key {
            case "vocab":
                try json.forEachMemberRaw { json, token in
                    vocabulary.append(token)
                    vocabularyIDs.append(try json.readTokenID())
                }
            case "merges":
                try json.forEachElement { json, _ in try readMerge(&json) }
            case "unk_token": unknownToken = json.readNull() ? nil : try json.readString()
            case "continuing_subword_prefix": continuingSubwordPrefix = json.readNull() ? nil : try json.readString()
            case "end_of_word_suffix": endOfWordSuffix = json.readNull() ? nil : try json.readString()
            case "fuse_unk": fuseUnknown = json.readNull() ? false : try json.readBool()
            case "byte_fallback": byteFallback = json.readNull() ? false : try json.readBool()
            case "ignore_merges": ignoreMerges = json.readNull() ? false : try json.readBool()
            case "dropout":
                // Dropout only matters when training with sampled merges; encoding here is deterministic.
                if !json.readNull() { _ = try json.readDouble() }
            default:
                try json.skipValue()
            }
        }
    }

    /// A merge is `"left right"` (older files) or `["left", "right"]`.
    private mutating func readMerge(_ json: inout JSONReader) throws {
        switch json.peekKind() {
        case .string:
            let ok = try json.withStringBytes { text -> Bool in
                guard let space = text.firstIndex(of: UInt8(ascii: " ")),
                      !text[(space + 1)...].contains(UInt8(ascii: " ")) else { return false }
                merges.append(UnsafeBufferPointer(rebasing: text[..<space]))
                merges.append(UnsafeBufferPointer(rebasing: text[(space + 1)...]))
                return true
            }
            if !ok { throw json.error("a merge must be two tokens separated by one space") }
        case .array:
            var parts = 0
            try json.forEachElement { json, _ in
                parts += 1
                guard parts <= 2 else { throw json.error("a merge must have two tokens") }
                try json.withStringBytes { merges.append($0) }
            }
            if parts != 2 { throw json.error("a merge must have two tokens") }
        default:
            throw json.error("expected a merge as \"left right\" or [\"left\", \"right\"]")
        }
    }
}
