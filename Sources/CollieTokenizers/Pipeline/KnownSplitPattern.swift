/// Hand-written matchers for the split regexes almost every byte-level tokenizer uses, exact to the
/// regex semantics (leftmost alternative wins, greedy with backtracking) and several times faster than a
/// regex engine. Any other pattern goes to `RegexPattern`.
///
/// - GPT-2 (also ByteLevel's built-in regex):
///   `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
/// - Llama-3 (tiktoken cl100k): `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|`
///   ` ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
/// - Qwen2: Llama-3's with `\p{N}` in place of `\p{N}{1,3}`.
enum KnownSplitPattern: Equatable {
    case gpt2
    case llama3
    case qwen2

    static let gpt2Source = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let llama3Source = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Source = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// The matcher for a regex source, if it is one of the known patterns.
    init?(source: String) {
        switch source {
        case KnownSplitPattern.gpt2Source: self = .gpt2
        case KnownSplitPattern.llama3Source: self = .llama3
        case KnownSplitPattern.qwen2Source: self = .qwen2
        default: return nil
        }
    }

    /// Calls `match` with the byte range of every match in `bytes[range]`, in order. These patterns match
    /// every character, so the matches tile the range.
    func forEachMatch(in bytes: UnsafePointer<UInt8>, _ range: Range<Int>, _ match: (Range<Int>) -> Void) {
        CharacterClass.withTable { table in
            let scanner = Scanner(pattern: self, bytes: bytes, end: range.upperBound, table: table)
            var i = range.lowerBound
            while i < range.upperBound {
                let matchEnd = self == .gpt2 ? scanner.gpt2Match(i) : scanner.llamaMatch(i)
                match(i..<matchEnd)
                i = matchEnd
            }
        }
    }
}

/// One pass of a known pattern over a buffer, with the character-class table at hand.
private struct Scanner {
    let pattern: KnownSplitPattern
    let bytes: UnsafePointer<UInt8>
    let end: Int
    let table: UnsafePointer<UInt8>

    // MARK: - Pieces shared by the patterns

    @inline(__always)
    func character(_ i: Int) -> (code: UInt32, length: Int, flags: CharacterClass) {
        let lead = bytes[i]
        if lead < 0x80 { return (UInt32(lead), 1, CharacterClass(rawValue: table[Int(lead)])) }
        let (code, length) = UTF8Scanner.decode(bytes, i, end)
        return (code, length, code < 0x10000 ? CharacterClass(rawValue: table[Int(code)]) : CharacterClass.of(code))
    }

    /// The end of the longest run from `i` of characters with any of `flags` (`limit`: at most that many).
    @inline(__always)
    func run(_ i: Int, _ flags: CharacterClass, limit: Int = .max) -> Int {
        var j = i
        var n = 0
        while j < end, n < limit {
            let c = character(j)
            if c.flags.isDisjoint(with: flags) { break }
            j += c.length
            n += 1
        }
        return j
    }

    /// The end of a run of "other" characters: not whitespace, letters or numbers.
    @inline(__always)
    func otherRun(_ i: Int) -> Int {
        var j = i
        while j < end {
            let c = character(j)
            if !c.flags.isDisjoint(with: [.letter, .number, .whitespace]) { break }
            j += c.length
        }
        return j
    }

    /// After an apostrophe at `i`: the end of `'s|'t|'re|'ve|'m|'ll|'d`, or nil.
    @inline(__always)
    func contraction(_ i: Int, caseInsensitive: Bool) -> Int? {
        func letter(_ at: Int) -> (UInt32, Int)? {
            guard at < end else { return nil }
            let c = character(at)
            guard caseInsensitive else { return (c.code, c.length) }
            if c.code == 0x17F { return (0x73, c.length) }  // ſ folds to s
            if (0x41...0x5A).contains(c.code) { return (c.code + 0x20, c.length) }
            return (c.code, c.length)
        }
        guard let (first, firstLength) = letter(i + 1) else { return nil }
        let afterFirst = i + 1 + firstLength
        switch first {
        case 0x73, 0x74, 0x6D, 0x64: return afterFirst  // s t m d
        case 0x72, 0x76, 0x6C:  // r v l: 're 've 'll
            guard let (second, secondLength) = letter(afterFirst) else { return nil }
            let expected: UInt32 = first == 0x6C ? 0x6C : 0x65
            return second == expected ? afterFirst + secondLength : nil
        default:
            return nil
        }
    }

    /// `\s+(?!\S)|\s+` at a whitespace character: the whole run when it ends the text, else all but its last
    /// character, else the single character.
    @inline(__always)
    func whitespaceMatch(_ i: Int) -> Int {
        var j = i
        var lastStart = i
        var count = 0
        while j < end {
            let c = character(j)
            if !c.flags.contains(.whitespace) { break }
            lastStart = j
            j += c.length
            count += 1
        }
        if j == end || count == 1 { return j }
        return lastStart
    }

    // MARK: - The patterns

    func gpt2Match(_ i: Int) -> Int {
        let c = character(i)
        if c.code == 0x27, let e = contraction(i, caseInsensitive: false) { return e }
        var start = i
        var flags = c.flags
        if c.code == 0x20, i + 1 < end {
            let next = character(i + 1)
            if !next.flags.contains(.whitespace) {
                start = i + 1
                flags = next.flags
            }
        }
        if flags.contains(.letter) { return run(start, .letter) }
        if flags.contains(.number) { return run(start, .number) }
        if !flags.contains(.whitespace) { return otherRun(start) }
        return whitespaceMatch(i)
    }

    func llamaMatch(_ i: Int) -> Int {
        let c = character(i)
        if c.code == 0x27, let e = contraction(i, caseInsensitive: true) { return e }
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if c.flags.contains(.letter) { return run(i, .letter) }
        let next = i + c.length < end ? character(i + c.length) : nil
        if c.flags.isDisjoint(with: [.newline, .number]), let next, next.flags.contains(.letter) {
            return run(i + c.length, .letter)
        }
        // \p{N}{1,3} or \p{N}
        if c.flags.contains(.number) { return run(i, .number, limit: pattern == .llama3 ? 3 : 1) }
        // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        if c.code == 0x20, let next, next.flags.isDisjoint(with: [.letter, .number, .whitespace]) {
            return run(otherRun(i + 1), .newline)
        }
        if c.flags.isDisjoint(with: [.letter, .number, .whitespace]) {
            return run(otherRun(i), .newline)
        }
        // \s*[\r\n]+ : through the last newline of the whitespace run
        var j = i
        var lastNewlineEnd = -1
        while j < end {
            let w = character(j)
            if !w.flags.contains(.whitespace) { break }
            j += w.length
            if w.flags.contains(.newline) { lastNewlineEnd = j }
        }
        if lastNewlineEnd >= 0 { return lastNewlineEnd }
        // \s+(?!\S)|\s+
        return whitespaceMatch(i)
    }
}

