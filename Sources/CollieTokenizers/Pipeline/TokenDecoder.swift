/// A tokenizer.json decoder: turns the tokens of an id sequence back into text. Each step maps a list of
/// token strings to a new list (as `tokenizers`' `decode_chain`); the final list is joined.
indirect enum TokenDecoder {
    /// Byte characters back to bytes, then UTF-8 (invalid sequences become U+FFFD).
    case byteLevel
    /// `▁` back to spaces; the first token loses its `▁`s unless the prepend scheme is `never`.
    case metaspace(replacement: Unicode.Scalar, dropsFirst: Bool)
    /// Runs of `<0xXX>` tokens back to the UTF-8 text they spell (one U+FFFD per byte if invalid).
    case byteFallback
    /// Joins all tokens into one.
    case fuse
    /// Removes up to `start` leading and `stop` trailing `content` characters from each token.
    case strip(content: Unicode.Scalar, start: Int, stop: Int)
    /// Replaces pattern matches in each token.
    case replace(SplitPattern, content: String)
    /// Replaces the end-of-word suffix with a space (none after the last token).
    case bpe(suffix: String)
    case sequence([TokenDecoder])

    /// Reads a decoder object (`{"type": …}`).
    init(json: inout JSONReader) throws {
        guard let type = try json.typeTag() else { throw json.error("a decoder needs a \"type\"") }
        var replacement = "▁", prepend: String?, addPrefixSpace: Bool?, content: String?, start = 0, stop = 0
        var pattern: SplitPattern?, list: [TokenDecoder]?, suffix = "</w>"
        try json.forEachMember { json, key in
            switch (type, key) {
            case (_, "type"): try json.skipValue()
            case ("Metaspace", "replacement"): replacement = try json.readString()
            case ("Metaspace", "prepend_scheme"): prepend = try json.readString()
            case ("Metaspace", "add_prefix_space"): addPrefixSpace = try json.readBool()
            case ("Strip", "content"), ("Replace", "content"): content = try json.readString()
            case ("Strip", "start"): start = try json.readInt()
            case ("Strip", "stop"): stop = try json.readInt()
            case ("Replace", "pattern"): pattern = try SplitPattern(json: &json, key: "pattern")
            case ("BPEDecoder", "suffix"): suffix = try json.readString()
            case ("Sequence", "decoders"):
                var items: [TokenDecoder] = []
                try json.forEachElement { json, _ in items.append(try TokenDecoder(json: &json)) }
                list = items
            default: try json.skipValue()
            }
        }
        switch type {
        case "ByteLevel": self = .byteLevel
        case "Metaspace":
            guard replacement.unicodeScalars.count == 1 else { throw json.error("Metaspace replacement must be one character") }
            let dropsFirst = prepend.map { $0 != "never" } ?? (addPrefixSpace ?? true)
            self = .metaspace(replacement: replacement.unicodeScalars.first!, dropsFirst: dropsFirst)
        case "ByteFallback": self = .byteFallback
        case "Fuse": self = .fuse
        case "Strip":
            guard let content, content.unicodeScalars.count == 1 else {
                throw json.error("Strip needs a one-character \"content\"")
            }
            guard start >= 0, stop >= 0 else { throw json.error("Strip's \"start\" and \"stop\" must not be negative") }
            self = .strip(content: content.unicodeScalars.first!, start: start, stop: stop)
        case "Replace":
            guard let pattern, let content else { throw json.error("Replace needs \"pattern\" and \"content\"") }
            self = .replace(pattern, content: content)
        case "BPEDecoder": self = .bpe(suffix: suffix)
        case "Sequence":
            guard let list else { throw json.error("Sequence needs \"decoders\"") }
            self = .sequence(list)
        default:
            throw json.error("unsupported decoder type '\(type)' (supported: ByteLevel, Metaspace, ByteFallback, "
                             + "Fuse, Strip, Replace, BPEDecoder, Sequence)")
        }
    }

    /// The text of `tokens`.
    func decode(_ tokens: [String]) -> String { decodeChain(tokens).joined() }

    /// One step: tokens in, tokens out.
    func decodeChain(_ tokens: [String]) -> [String] {
        switch self {
        case .sequence(let steps):
            return steps.reduce(tokens) { $1.decodeChain($0) }
        case .byteLevel:
            var bytes: [UInt8] = []
            for token in tokens {
                var token = token
                let start = bytes.count
                let ok = token.withUTF8 { ByteLevel.appendBytes(fromSpelling: $0, to: &bytes) }
                if !ok {
                    bytes.removeSubrange(start...)
                    bytes.append(contentsOf: token.utf8)
                }
            }
            return [String(decoding: bytes, as: UTF8.self)]
        case .metaspace(let replacement, let dropsFirst):
            // Per Unicode scalar, as Rust's chars(): a space may combine with a following mark.
            return tokens.enumerated().map { index, token in
                var result = String.UnicodeScalarView()
                for scalar in token.unicodeScalars {
                    if scalar == replacement {
                        if !(index == 0 && dropsFirst) { result.append(" ") }
                    } else {
                        result.append(scalar)
                    }
                }
                return String(result)
            }
        case .byteFallback:
            var result: [String] = []
            var pending: [UInt8] = []
            func flush() {
                guard !pending.isEmpty else { return }
                if UTF8Scanner.isValid(pending) {
                    result.append(String(decoding: pending, as: UTF8.self))
                } else {
                    result.append(contentsOf: repeatElement("\u{FFFD}", count: pending.count))
                }
                pending.removeAll()
            }
            for token in tokens {
                if let byte = TokenDecoder.byteFallbackValue(token) {
                    pending.append(byte)
                } else {
                    flush()
                    result.append(token)
                }
            }
            flush()
            return result
        case .fuse:
            return [tokens.joined()]
        case .strip(let content, let start, let stop):
            return tokens.map { token in
                let characters = Array(token.unicodeScalars)
                var from = 0
                while from < min(start, characters.count), characters[from] == content { from += 1 }
                var to = characters.count
                var removed = 0
                while removed < stop, to > from, characters[to - 1] == content { to -= 1; removed += 1 }
                var result = String.UnicodeScalarView()
                result.append(contentsOf: characters[from..<to])
                return String(result)
            }
        case .replace(let pattern, let content):
            let normalizer = Normalizer.replace(pattern, content: Array(content.utf8))
            return tokens.map { String(decoding: normalizer.apply(Array($0.utf8)), as: UTF8.self) }
        case .bpe(let suffix):
            return tokens.enumerated().map { index, token in
                token.replacingLiteral(suffix, with: index == tokens.count - 1 ? "" : " ")
            }
        }
    }

    /// The byte of a `<0xXX>` token.
    static func byteFallbackValue(_ token: String) -> UInt8? {
        let utf8 = Array(token.utf8)
        guard utf8.count == 6, utf8[0] == UInt8(ascii: "<"), utf8[1] == UInt8(ascii: "0"), utf8[2] == UInt8(ascii: "x"),
              utf8[5] == UInt8(ascii: ">") else { return nil }
        return UInt8(String(decoding: utf8[3..<5], as: UTF8.self), radix: 16)
    }
}
