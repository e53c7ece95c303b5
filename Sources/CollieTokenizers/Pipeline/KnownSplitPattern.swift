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
        var i = range.lowerBound
        let end = range.upperBound
        while i < end {
            let matchEnd = self == .gpt2 ? gpt2Match(bytes, i, end) : llamaMatch(bytes, i, end)
            match(i..<matchEnd)
            i = matchEnd
        }
    }

    // MARK: - Pieces shared by the patterns

    @inline(__always)
    private func character(_ bytes: UnsafePointer<UInt8>, _ i: Int, _ end: Int) -> (code: UInt32, length: Int, flags: CharacterClass) {
        let lead = bytes[i]
        if lead < 0x80 { return (UInt32(lead), 1, CharacterClass.ascii[Int(lead)]) }
        let (code, length) = UTF8Scanner.decode(bytes, i, end)
        return (code, length, CharacterClass.of(code))
    }

    /// The end of the longest run from `i` of characters with any of `flags` (`limit`: at most that many).
    @inline(__always)
    private func run(_ bytes: UnsafePointer<UInt8>, _ i: Int, _ end: Int, _ flags: CharacterClass,
                     limit: Int = .max) -> Int {
        var j = i
        var n = 0
        while j < end, n < limit {
            let c = character(bytes, j, end)
            if c.flags.isDisjoint(with: flags) { break }
            j += c.length
            n += 1
        }
        return j
    }

    /// The end of a run of "other" characters: not whitespace, letters or numbers.
    @inline(__always)
    private func otherRun(_ bytes: UnsafePointer<UInt8>, _ i: Int, _ end: Int) -> Int {
        var j = i
        while j < end {
            let c = character(bytes, j, end)
            if !c.flags.isDisjoint(with: [.letter, .number, .whitespace]) { break }
            j += c.length
        }
        return j
    }

    /// After an apostrophe at `i`: the end of `'s|'t|'re|'ve|'m|'ll|'d`, or nil.
    @inline(__always)
    private func contraction(_ bytes: UnsafePointer<UInt8>, _ i: Int, _ end: Int, caseInsensitive: Bool) -> Int? {
        func letter(_ at: Int) -> (UInt32, Int)? {
            guard at < end else { return nil }
            let c = character(bytes, at, end)
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
    private func whitespaceMatch(_ bytes: UnsafePointer<UInt8>, _ i: Int, _ end: Int) -> Int {
        var j = i
        var lastStart = i
        var count = 0
        while j < end {
            let c = character(bytes, j, end)
            if !c.flags.contains(.whitespace) { break }
            lastStart = j
            j += c.length
            count += 1
        }
        if j == end || count == 1 { return j }
        return lastStart
    }

    // MARK: - The patterns

    private func gpt2Match(_ bytes: UnsafePointer<UInt8>, _ i: Int, _ end: Int) -> Int {
        let c = character(bytes, i, end)
        if c.code == 0x27, let e = contraction(bytes, i, end, caseInsensitive: false) { return e }
        var start = i
        var flags = c.flags
        if c.code == 0x20, i + 1 < end {
            let next = character(bytes, i + 1, end)
            if !next.flags.contains(.whitespace) {
                start = i + 1
                flags = next.flags
            }
        }
        if flags.contains(.letter) { return run(bytes, start, end, .letter) }
        if flags.contains(.number) { return run(bytes, start, end, .number) }
        if !flags.contains(.whitespace) { return otherRun(bytes, start, end) }
        return whitespaceMatch(bytes, i, end)
    }

    private func llamaMatch(_ bytes: UnsafePointer<UInt8>, _ i: Int, _ end: Int) -> Int {
        let c = character(bytes, i, end)
        if c.code == 0x27, let e = contraction(bytes, i, end, caseInsensitive: true) { return e }
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if c.flags.contains(.letter) { return run(bytes, i, end, .letter) }
        let next = i + c.length < end ? character(bytes, i + c.length, end) : nil
        if c.flags.isDisjoint(with: [.newline, .number]), let next, next.flags.contains(.letter) {
            return run(bytes, i + c.length, end, .letter)
        }
        // \p{N}{1,3} or \p{N}
        if c.flags.contains(.number) { return run(bytes, i, end, .number, limit: self == .llama3 ? 3 : 1) }
        // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        if c.code == 0x20, let next, next.flags.isDisjoint(with: [.letter, .number, .whitespace]) {
            return run(bytes, otherRun(bytes, i + 1, end), end, .newline)
        }
        if c.flags.isDisjoint(with: [.letter, .number, .whitespace]) {
            return run(bytes, otherRun(bytes, i, end), end, .newline)
        }
        // \s*[\r\n]+ : through the last newline of the whitespace run
        var j = i
        var lastNewlineEnd = -1
        while j < end {
            let w = character(bytes, j, end)
            if !w.flags.contains(.whitespace) { break }
            j += w.length
            if w.flags.contains(.newline) { lastNewlineEnd = j }
        }
        if lastNewlineEnd >= 0 { return lastNewlineEnd }
        // \s+(?!\S)|\s+
        return whitespaceMatch(bytes, i, end)
    }
}

extension CharacterClass {
    /// Flags of the 128 ASCII characters, for the matchers' fast path.
    static let ascii: [CharacterClass] = (0..<128).map { CharacterClass.of(UInt32($0)) }
}
