/// A tokenizer.json pre-tokenizer: cuts normalized text into words (pre-tokens) that the model encodes
/// independently.
indirect enum PreTokenizer {
    /// GPT-2's byte-level step: optionally a leading space, optionally the GPT-2 split regex, then bytes are
    /// spelled with byte characters (Collie keeps raw bytes, so that last step costs nothing).
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    /// Splits on a pattern, keeping or merging the delimiters.
    case split(SplitPattern, behavior: SplitBehavior, invert: Bool)
    /// Replaces spaces with `replacement`, prepends it by `prependScheme`, and optionally splits before it.
    case metaspace(replacement: [UInt8], prependScheme: PrependScheme, split: Bool)
    /// `\w+|[^\w\s]+`: words and runs of symbols; whitespace dropped.
    case whitespace
    /// Splits on whitespace, dropping it.
    case whitespaceSplit
    /// Splits digits from the rest: each digit alone, or runs of digits.
    case digits(individual: Bool)
    /// Splits on punctuation.
    case punctuation(SplitBehavior)
    /// BERT's: whitespace dropped, each punctuation character alone.
    case bert
    /// Splits on one character, dropping it.
    case characterDelimiter(UInt32)
    case sequence([PreTokenizer])

    /// When Metaspace puts the replacement character before a piece.
    enum PrependScheme: String {
        case always, first, never
    }

    /// Reads a pre-tokenizer object (`{"type": …}`).
    init(json: inout JSONReader) throws {
        guard let type = try json.typeTag() else { throw json.error("a pre-tokenizer needs a \"type\"") }
        var addPrefixSpace: Bool?, useRegex = true, individual = false, invert = false, split = true
        var pattern: SplitPattern?, behavior: SplitBehavior?, replacement: String?, prepend: PrependScheme?
        var list: [PreTokenizer]?, delimiter: String?
        try json.forEachMember { json, key in
            switch (type, key) {
            case (_, "type"): try json.skipValue()
            case ("ByteLevel", "add_prefix_space"), ("Metaspace", "add_prefix_space"):
                addPrefixSpace = json.readNull() ? nil : try json.readBool()
            case ("ByteLevel", "use_regex"): useRegex = try json.readBool()
            case ("Split", "pattern"): pattern = try SplitPattern(json: &json, key: "pattern")
            case ("Split", "behavior"), ("Punctuation", "behavior"): behavior = try SplitBehavior(json: &json)
            case ("Split", "invert"): invert = try json.readBool()
            case ("Metaspace", "replacement"): replacement = try json.readString()
            case ("Metaspace", "prepend_scheme"):
                let name = try json.readString()
                guard let scheme = PrependScheme(rawValue: name) else {
                    throw json.error("unknown prepend_scheme '\(name)' (expected always, first or never)")
                }
                prepend = scheme
            case ("Metaspace", "split"): split = try json.readBool()
            case ("Digits", "individual_digits"): individual = try json.readBool()
            case ("CharDelimiterSplit", "delimiter"): delimiter = try json.readString()
            case ("Sequence", "pretokenizers"):
                var items: [PreTokenizer] = []
                try json.forEachElement { json, _ in items.append(try PreTokenizer(json: &json)) }
                list = items
            default: try json.skipValue()
            }
        }
        switch type {
        case "ByteLevel":
            self = .byteLevel(addPrefixSpace: addPrefixSpace ?? true, useRegex: useRegex)
        case "Split":
            guard let pattern, let behavior else { throw json.error("Split needs \"pattern\" and \"behavior\"") }
            self = .split(pattern, behavior: behavior, invert: invert)
        case "Metaspace":
            let character = replacement ?? "▁"
            guard character.unicodeScalars.count == 1 else { throw json.error("Metaspace replacement must be one character") }
            let scheme = prepend ?? ((addPrefixSpace ?? true) ? .always : .never)
            self = .metaspace(replacement: Array(character.utf8), prependScheme: scheme, split: split)
        case "Whitespace": self = .whitespace
        case "WhitespaceSplit": self = .whitespaceSplit
        case "Digits": self = .digits(individual: individual)
        case "Punctuation": self = .punctuation(behavior ?? .isolated)
        case "BertPreTokenizer": self = .bert
        case "CharDelimiterSplit":
            guard let delimiter, delimiter.unicodeScalars.count == 1 else {
                throw json.error("CharDelimiterSplit needs a one-character \"delimiter\"")
            }
            self = .characterDelimiter(delimiter.unicodeScalars.first!.value)
        case "Sequence":
            guard let list else { throw json.error("Sequence needs \"pretokenizers\"") }
            self = .sequence(list)
        default:
            throw json.error("unsupported pre-tokenizer type '\(type)' (supported: ByteLevel, Split, Metaspace, "
                             + "Whitespace, WhitespaceSplit, Digits, Punctuation, BertPreTokenizer, "
                             + "CharDelimiterSplit, Sequence)")
        }
    }

    /// Whether this pre-tokenizer (or one inside a sequence) is ByteLevel.
    var containsByteLevel: Bool {
        switch self {
        case .byteLevel: return true
        case .sequence(let list): return list.contains { $0.containsByteLevel }
        default: return false
        }
    }

    /// The steps that run after the first ByteLevel step (they would see byte characters, not text).
    var stepsAfterByteLevel: [PreTokenizer] {
        guard case .sequence(let list) = self, let index = list.firstIndex(where: { $0.containsByteLevel }) else { return [] }
        return Array(list[(index + 1)...])
    }

    // MARK: - Applying

    /// Cuts each piece of `workspace.pieces` (ranges of `workspace.buffer`). `atTextStart`: the first piece
    /// begins the original text (Metaspace's `first` scheme).
    func apply(_ workspace: EncoderWorkspace, atTextStart: Bool) {
        switch self {
        case .sequence(let list):
            for step in list { step.apply(workspace, atTextStart: atTextStart) }
        case .byteLevel(let addPrefixSpace, let useRegex):
            if addPrefixSpace {
                rewrite(workspace) { piece, _, output in
                    if piece.first != UInt8(ascii: " ") { output.append(UInt8(ascii: " ")) }
                    output.append(contentsOf: piece)
                }
            }
            if useRegex {
                cut(workspace) { bytes, range, emit in KnownSplitPattern.gpt2.forEachMatch(in: bytes, range, emit) }
            }
        case .split(let pattern, let behavior, let invert):
            if case .known(let known) = pattern, behavior == .isolated {
                cut(workspace) { bytes, range, emit in known.forEachMatch(in: bytes, range, emit) }
            } else {
                cut(workspace) { bytes, range, emit in
                    var segments = pattern.segments(in: bytes, range)
                    if invert { segments = segments.map { ($0.range, !$0.isMatch) } }
                    behavior.apply(segments, emit)
                }
            }
        case .metaspace(let replacement, let scheme, let split):
            rewrite(workspace) { piece, index, output in
                let start = output.count
                for byte in piece {
                    if byte == UInt8(ascii: " ") { output.append(contentsOf: replacement) } else { output.append(byte) }
                }
                let startsWithReplacement = output.count - start >= replacement.count
                    && Array(output[start..<(start + replacement.count)]) == replacement
                let prepend = switch scheme {
                case .always: !startsWithReplacement
                case .first: !startsWithReplacement && atTextStart && index == 0
                case .never: false
                }
                if prepend { output.insert(contentsOf: replacement, at: start) }
            }
            if split {
                let pattern = SplitPattern.literal(replacement)
                cut(workspace) { bytes, range, emit in
                    SplitBehavior.mergedWithNext.apply(pattern.segments(in: bytes, range), emit)
                }
            }
        case .whitespace:
            cut(workspace) { bytes, range, emit in
                // Runs of word characters and runs of other non-space characters; whitespace between is dropped.
                var i = range.lowerBound
                while i < range.upperBound {
                    let (code, length) = UTF8Scanner.decode(bytes, i, range.upperBound)
                    let flags = CharacterClass.of(code)
                    if flags.contains(.whitespace) && !flags.contains(.word) { i += length; continue }
                    let isWord = flags.contains(.word)
                    var j = i + length
                    while j < range.upperBound {
                        let (nextCode, nextLength) = UTF8Scanner.decode(bytes, j, range.upperBound)
                        let next = CharacterClass.of(nextCode)
                        if isWord ? !next.contains(.word) : (next.contains(.word) || next.contains(.whitespace)) { break }
                        j += nextLength
                    }
                    emit(i..<j)
                    i = j
                }
            }
        case .whitespaceSplit:
            splitOnCharacters(workspace, behavior: .removed) { CharacterClass.of($0).contains(.whitespace) }
        case .digits(let individual):
            splitOnCharacters(workspace, behavior: individual ? .isolated : .contiguous) {
                CharacterClass.of($0).contains(.number)
            }
        case .punctuation(let behavior):
            splitOnCharacters(workspace, behavior: behavior) { CharacterClass.of($0).contains(.punctuation) }
        case .bert:
            splitOnCharacters(workspace, behavior: .removed) { CharacterClass.of($0).contains(.whitespace) }
            splitOnCharacters(workspace, behavior: .isolated) { CharacterClass.of($0).contains(.punctuation) }
        case .characterDelimiter(let delimiter):
            splitOnCharacters(workspace, behavior: .removed) { $0 == delimiter }
        }
    }

    /// Replaces every piece with sub-ranges of it.
    private func cut(_ workspace: EncoderWorkspace,
                     _ body: (UnsafePointer<UInt8>, Range<Int>, (Range<Int>) -> Void) -> Void) {
        var output = workspace.spareRanges
        output.removeAll(keepingCapacity: true)
        workspace.buffer.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            for piece in workspace.pieces {
                body(base, piece) { if !$0.isEmpty { output.append($0) } }
            }
        }
        workspace.spareRanges = workspace.pieces
        workspace.pieces = output
    }

    /// Rebuilds the buffer, writing each piece (given its bytes and index) through `body`.
    private func rewrite(_ workspace: EncoderWorkspace,
                         _ body: (ArraySlice<UInt8>, Int, inout [UInt8]) -> Void) {
        var output = workspace.spareBuffer
        output.removeAll(keepingCapacity: true)
        var ranges = workspace.spareRanges
        ranges.removeAll(keepingCapacity: true)
        for (index, piece) in workspace.pieces.enumerated() {
            let start = output.count
            body(workspace.buffer[piece], index, &output)
            if output.count > start { ranges.append(start..<output.count) }
        }
        workspace.spareBuffer = workspace.buffer
        workspace.buffer = output
        workspace.spareRanges = workspace.pieces
        workspace.pieces = ranges
    }

    /// Splits where single characters satisfy `isDelimiter`, each such character its own match.
    private func splitOnCharacters(_ workspace: EncoderWorkspace, behavior: SplitBehavior,
                                   _ isDelimiter: (UInt32) -> Bool) {
        cut(workspace) { bytes, range, emit in
            var segments: [(range: Range<Int>, isMatch: Bool)] = []
            var previous = range.lowerBound
            var i = range.lowerBound
            while i < range.upperBound {
                let (code, length) = UTF8Scanner.decode(bytes, i, range.upperBound)
                if isDelimiter(code) {
                    if previous < i { segments.append((previous..<i, false)) }
                    segments.append((i..<(i + length), true))
                    previous = i + length
                }
                i += length
            }
            if previous < range.upperBound { segments.append((previous..<range.upperBound, false)) }
            if segments.isEmpty { segments.append((range, false)) }
            behavior.apply(segments, emit)
        }
    }
}
