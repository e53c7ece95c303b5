/// A token added on top of the model's vocabulary (tokenizer.json `added_tokens`): special tokens such as
/// `<|endoftext|>` and user additions. They are found in the text before the model runs.
public struct AddedToken: Equatable, Sendable {
    public var id: Int
    public var content: String
    /// Only matches where it is not part of a larger word.
    public var singleWord = false
    /// Also takes the whitespace on its left.
    public var leftStrip = false
    /// Also takes the whitespace on its right.
    public var rightStrip = false
    /// Matched in the normalized text (true) or in the raw text (false).
    public var normalized = true
    /// Special tokens are left out when decoding with `skipSpecialTokens`.
    public var special = false

    public init(id: Int, content: String, singleWord: Bool = false, leftStrip: Bool = false, rightStrip: Bool = false,
                normalized: Bool = true, special: Bool = false) {
        self.id = id
        self.content = content
        self.singleWord = singleWord
        self.leftStrip = leftStrip
        self.rightStrip = rightStrip
        self.normalized = normalized
        self.special = special
    }

    /// Reads one entry of `added_tokens`.
    init(json: inout JSONReader) throws {
        var id: Int?, content: String?
        var token = AddedToken(id: 0, content: "")
        try json.forEachMember { json, key in
            switch key {
            case "id": id = Int(try json.readTokenID())
            case "content": content = try json.readString()
            case "single_word": token.singleWord = try json.readBool()
            case "lstrip": token.leftStrip = try json.readBool()
            case "rstrip": token.rightStrip = try json.readBool()
            case "normalized": token.normalized = try json.readBool()
            case "special": token.special = try json.readBool()
            default: try json.skipValue()
            }
        }
        guard let id, let content else { throw json.error("an added token needs \"id\" and \"content\"") }
        token.id = id
        token.content = content
        self = token
    }
}

/// Finds added tokens in text, leftmost-longest, with `tokenizers`' rules for `lstrip`, `rstrip` and
/// `single_word`.
struct AddedTokenMatcher {
    private struct Pattern {
        var bytes: [UInt8]
        var token: AddedToken
    }

    /// Patterns by first byte, longest first.
    private var byFirstByte: [[Pattern]] = Array(repeating: [], count: 256)
    /// No token to find: the text is one piece.
    private(set) var isEmpty = true

    /// A matcher for `tokens`, each matched as `pattern(token)` spells it (normalized or not).
    init(_ tokens: [AddedToken], pattern: (AddedToken) -> [UInt8]) {
        for token in tokens {
            let bytes = pattern(token)
            guard let first = bytes.first else { continue }
            byFirstByte[Int(first)].append(Pattern(bytes: bytes, token: token))
            isEmpty = false
        }
        for index in 0..<256 { byFirstByte[index].sort { $0.bytes.count > $1.bytes.count } }
    }

    /// A piece of text: either an added token's id or a stretch to encode with the model.
    enum Piece: Equatable {
        case token(Int32)
        case text(Range<Int>)
    }

    /// Cuts `bytes[range]` into added tokens and the text between them (empty text left out).
    func split(_ bytes: UnsafePointer<UInt8>, _ range: Range<Int>, into output: inout [Piece]) {
        var cursor = range.lowerBound  // start of the text not yet emitted
        var i = range.lowerBound
        while i < range.upperBound {
            guard let (pattern, length) = longestMatch(bytes, i, range.upperBound) else { i += 1; continue }
            var start = i, stop = i + length
            let token = pattern.token
            if token.singleWord {
                let startOK = start == range.lowerBound || !endsWithWord(bytes, range.lowerBound, start)
                let stopOK = stop == range.upperBound || !startsWithWord(bytes, stop, range.upperBound)
                if !startOK || !stopOK { i = stop; continue }  // the matcher moves past a rejected match
            }
            if token.leftStrip { start = max(whitespaceStart(bytes, range.lowerBound, start), cursor) }
            if token.rightStrip { stop = whitespaceEnd(bytes, stop, range.upperBound) }
            if cursor < start { output.append(.text(cursor..<start)) }
            output.append(.token(Int32(token.id)))
            cursor = stop
            i = stop
        }
        if cursor < range.upperBound { output.append(.text(cursor..<range.upperBound)) }
    }

    private func longestMatch(_ bytes: UnsafePointer<UInt8>, _ i: Int, _ end: Int) -> (Pattern, Int)? {
        for pattern in byFirstByte[Int(bytes[i])] where pattern.bytes.count <= end - i {
            var equal = true
            for k in 1..<pattern.bytes.count where bytes[i + k] != pattern.bytes[k] { equal = false; break }
            if equal { return (pattern, pattern.bytes.count) }
        }
        return nil
    }

    // `\w$`, `^\w`, `\s*$`, `^\s*` of the Rust regex crate: \w and \s are Unicode classes.
    private func endsWithWord(_ bytes: UnsafePointer<UInt8>, _ lower: Int, _ end: Int) -> Bool {
        guard end > lower else { return false }
        var start = end - 1
        while start > lower, bytes[start] & 0xC0 == 0x80 { start -= 1 }
        return CharacterClass.of(UTF8Scanner.decode(bytes, start, end).0).contains(.word)
    }

    private func startsWithWord(_ bytes: UnsafePointer<UInt8>, _ start: Int, _ end: Int) -> Bool {
        guard start < end else { return false }
        return CharacterClass.of(UTF8Scanner.decode(bytes, start, end).0).contains(.word)
    }

    private func whitespaceStart(_ bytes: UnsafePointer<UInt8>, _ lower: Int, _ end: Int) -> Int {
        var position = end
        while position > lower {
            var start = position - 1
            while start > lower, bytes[start] & 0xC0 == 0x80 { start -= 1 }
            guard CharacterClass.of(UTF8Scanner.decode(bytes, start, position).0).contains(.whitespace) else { break }
            position = start
        }
        return position
    }

    private func whitespaceEnd(_ bytes: UnsafePointer<UInt8>, _ start: Int, _ end: Int) -> Int {
        var position = start
        while position < end {
            let (code, length) = UTF8Scanner.decode(bytes, position, end)
            guard CharacterClass.of(code).contains(.whitespace) else { break }
            position += length
        }
        return position
    }
}
