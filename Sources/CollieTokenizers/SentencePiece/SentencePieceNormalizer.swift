/// SentencePiece's text normalization: the model's precompiled rules (e.g. NFKC), removal of extra
/// whitespace, the dummy `▁` prefix, and spaces escaped as `▁` — as `normalizer.cc` does it.
struct SentencePieceNormalizer {
    private let trie: DoubleArrayTrie?
    /// Replacement strings the trie's values point into (each ends with a zero byte).
    private let replacements: [UInt8]
    private let addDummyPrefix: Bool
    private let removeExtraWhitespaces: Bool
    private let escapeWhitespaces: Bool
    private let treatWhitespaceAsSuffix: Bool
    /// User-defined symbols, longest first: copied as they are, never normalized.
    private let userDefinedSymbols: [[UInt8]]

    static let spaceSymbol: [UInt8] = Array("▁".utf8)
    private static let replacementCharacter: [UInt8] = [0xEF, 0xBF, 0xBD]

    /// A normalizer from a model's `normalizer_spec`; `file` names the model in errors.
    init(spec: Sentencepiece_NormalizerSpec, treatWhitespaceAsSuffix: Bool, userDefinedSymbols: [String],
         file: String) throws {
        addDummyPrefix = spec.addDummyPrefix
        removeExtraWhitespaces = spec.removeExtraWhitespaces
        escapeWhitespaces = spec.escapeWhitespaces
        self.treatWhitespaceAsSuffix = treatWhitespaceAsSuffix
        self.userDefinedSymbols = userDefinedSymbols.map { Array($0.utf8) }.filter { !$0.isEmpty }
            .sorted { $0.count > $1.count }
        let blob = [UInt8](spec.precompiledCharsmap)
        if blob.isEmpty {
            trie = nil
            replacements = []
            return
        }
        guard blob.count > 4 else {
            throw TokenizerError(file: file, "normalizer_spec.precompiled_charsmap is truncated")
        }
        let trieSize = Int(blob[0]) | Int(blob[1]) << 8 | Int(blob[2]) << 16 | Int(blob[3]) << 24
        guard trieSize < blob.count - 4, trieSize % 4 == 0 else {
            throw TokenizerError(file: file, "normalizer_spec.precompiled_charsmap: the trie size exceeds the blob")
        }
        var units = [UInt32](repeating: 0, count: trieSize / 4)
        for i in 0..<units.count {
            let at = 4 + 4 * i
            units[i] = UInt32(blob[at]) | UInt32(blob[at + 1]) << 8 | UInt32(blob[at + 2]) << 16 | UInt32(blob[at + 3]) << 24
        }
        trie = DoubleArrayTrie(units: units)
        replacements = Array(blob[(4 + trieSize)...])
    }

    /// The normalized UTF-8 of `input`.
    func normalize(_ input: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        guard let base = input.baseAddress, !input.isEmpty else { return [] }
        var position = 0
        let end = input.count
        var output: [UInt8] = []
        output.reserveCapacity(end * 3 / 2 + 8)
        // Leading whitespace.
        if removeExtraWhitespaces {
            while position < end {
                let (replacement, consumed) = normalizePrefix(base, position, end)
                guard replacement.count == 1, replacement[0] == UInt8(ascii: " ") else { break }
                position += consumed
            }
        }
        if position == end { return [] }
        let space: [UInt8] = escapeWhitespaces ? SentencePieceNormalizer.spaceSymbol : [UInt8(ascii: " ")]
        if !treatWhitespaceAsSuffix && addDummyPrefix { output += space }
        var previousIsSpace = removeExtraWhitespaces
        while position < end {
            let (replacement, consumed) = normalizePrefix(base, position, end)
            var piece = replacement[...]
            while previousIsSpace, piece.first == UInt8(ascii: " ") { piece = piece.dropFirst() }
            if !piece.isEmpty {
                for byte in piece {
                    if escapeWhitespaces && byte == UInt8(ascii: " ") { output += SentencePieceNormalizer.spaceSymbol } else { output.append(byte) }
                }
                previousIsSpace = piece.last == UInt8(ascii: " ")
            }
            position += consumed
            if !removeExtraWhitespaces { previousIsSpace = false }
        }
        if removeExtraWhitespaces {
            while output.count >= space.count, Array(output[(output.count - space.count)...]) == space {
                output.removeLast(space.count)
            }
        }
        if treatWhitespaceAsSuffix && addDummyPrefix { output += space }
        return output
    }

    /// The replacement for the longest rule matching at `position`, and the bytes it consumes.
    private func normalizePrefix(_ base: UnsafePointer<UInt8>, _ position: Int, _ end: Int) -> ([UInt8], Int) {
        for symbol in userDefinedSymbols where symbol.count <= end - position {
            var equal = true
            for k in 0..<symbol.count where base[position + k] != symbol[k] { equal = false; break }
            if equal { return (symbol, symbol.count) }
        }
        var longestLength = 0, longestValue = 0
        trie?.commonPrefixSearch(base + position, end - position) { value, length in
            if longestLength == 0 || length > longestLength {
                longestLength = length
                longestValue = value
            }
        }
        if longestLength > 0, longestValue < replacements.count {
            var stop = longestValue
            while stop < replacements.count, replacements[stop] != 0 { stop += 1 }
            return (Array(replacements[longestValue..<stop]), longestLength)
        }
        let length = SentencePieceUTF8.validLength(base + position, end - position)
        if length == 0 { return (SentencePieceNormalizer.replacementCharacter, 1) }
        return (Array(UnsafeBufferPointer(start: base + position, count: length)), length)
    }
}

/// SentencePiece's own UTF-8 rule (`util.cc`): a sequence must be complete, minimal and not a surrogate,
/// else one byte is consumed as invalid. U+FFFD itself counts as valid.
enum SentencePieceUTF8 {
    /// The length of the valid sequence at `bytes`, or 0 if it is invalid.
    static func validLength(_ bytes: UnsafePointer<UInt8>, _ available: Int) -> Int {
        guard available > 0 else { return 0 }
        let b0 = UInt32(bytes[0])
        func trail(_ i: Int) -> Bool { bytes[i] & 0xC0 == 0x80 }
        func valid(_ code: UInt32) -> Bool { code < 0xD800 || (code >= 0xE000 && code <= 0x10FFFF) }
        if b0 < 0x80 { return 1 }
        if available >= 2, b0 & 0xE0 == 0xC0 {
            let code = (b0 & 0x1F) << 6 | UInt32(bytes[1] & 0x3F)
            if trail(1), code >= 0x80, valid(code) { return 2 }
        } else if available >= 3, b0 & 0xF0 == 0xE0 {
            let code = (b0 & 0x0F) << 12 | UInt32(bytes[1] & 0x3F) << 6 | UInt32(bytes[2] & 0x3F)
            if trail(1), trail(2), code >= 0x800, valid(code) { return 3 }
        } else if available >= 4, b0 & 0xF8 == 0xF0 {
            let code = (b0 & 0x07) << 18 | UInt32(bytes[1] & 0x3F) << 12 | UInt32(bytes[2] & 0x3F) << 6
                | UInt32(bytes[3] & 0x3F)
            if trail(1), trail(2), trail(3), code >= 0x10000, valid(code) { return 4 }
        }
        return 0
    }
}
