import Foundation

/// A tokenizer.json normalizer: rewrites text before it is split (Unicode normalization, lowercasing,
/// replacements, the `▁` prefix of SentencePiece-style vocabularies).
indirect enum Normalizer {
    case nfc, nfd, nfkc, nfkd
    case lowercase
    /// Replaces every match of the pattern with `content`.
    case replace(SplitPattern, content: [UInt8])
    /// Puts `prefix` before non-empty text.
    case prepend([UInt8])
    /// Puts `suffix` after non-empty text.
    case append([UInt8])
    /// Removes leading and/or trailing whitespace.
    case strip(left: Bool, right: Bool)
    /// Removes combining marks (use after NFD/NFKD).
    case stripAccents
    case sequence([Normalizer])

    /// Reads a normalizer object (`{"type": …}`).
    init(json: inout JSONReader) throws {
        guard let type = try json.typeTag() else { throw json.error("a normalizer needs a \"type\"") }
        var result: Normalizer?
        switch type {
        case "NFC": result = .nfc
        case "NFD": result = .nfd
        case "NFKC": result = .nfkc
        case "NFKD": result = .nfkd
        case "Lowercase": result = .lowercase
        case "StripAccents": result = .stripAccents
        default: break
        }
        if let result {
            try json.skipValue()
            self = result
            return
        }
        var pattern: SplitPattern?
        var content: [UInt8]?
        var normalizers: [Normalizer]?
        var left = true, right = true
        try json.forEachMember { json, key in
            switch (type, key) {
            case (_, "type"): try json.skipValue()
            case ("Replace", "pattern"): pattern = try SplitPattern(json: &json, key: "pattern")
            case ("Replace", "content"), ("Prepend", "prepend"), ("Append", "append"):
                content = Array(try json.readString().utf8)
            case ("Strip", "strip_left"): left = try json.readBool()
            case ("Strip", "strip_right"): right = try json.readBool()
            case ("Sequence", "normalizers"):
                var list: [Normalizer] = []
                try json.forEachElement { json, _ in list.append(try Normalizer(json: &json)) }
                normalizers = list
            default: try json.skipValue()
            }
        }
        switch type {
        case "Replace":
            guard let pattern, let content else { throw json.error("Replace needs \"pattern\" and \"content\"") }
            self = .replace(pattern, content: content)
        case "Prepend":
            guard let content else { throw json.error("Prepend needs \"prepend\"") }
            self = .prepend(content)
        case "Append":
            guard let content else { throw json.error("Append needs \"append\"") }
            self = .append(content)
        case "Strip":
            self = .strip(left: left, right: right)
        case "Sequence":
            guard let normalizers else { throw json.error("Sequence needs \"normalizers\"") }
            self = .sequence(normalizers)
        default:
            throw json.error("unsupported normalizer type '\(type)' (supported: NFC, NFD, NFKC, NFKD, Lowercase, "
                             + "Replace, Prepend, Append, Strip, StripAccents, Sequence)")
        }
    }

    /// The normalized form of UTF-8 `text`.
    func apply(_ text: [UInt8]) -> [UInt8] {
        switch self {
        case .nfc: return Array(string(text).precomposedStringWithCanonicalMapping.utf8)
        case .nfd: return Array(string(text).decomposedStringWithCanonicalMapping.utf8)
        case .nfkc: return Array(string(text).precomposedStringWithCompatibilityMapping.utf8)
        case .nfkd: return Array(string(text).decomposedStringWithCompatibilityMapping.utf8)
        case .lowercase:
            // Per character, as Rust's char::to_lowercase (no context-dependent final sigma).
            var result = String.UnicodeScalarView()
            for scalar in string(text).unicodeScalars { result.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars) }
            return Array(String(result).utf8)
        case .replace(let pattern, let content):
            var result: [UInt8] = []
            result.reserveCapacity(text.count)
            var previous = 0
            text.withUnsafeBufferPointer { buffer in
                guard let base = buffer.baseAddress else { return }
                pattern.forEachMatch(in: base, 0..<buffer.count) { match in
                    result.append(contentsOf: buffer[previous..<match.lowerBound])
                    result.append(contentsOf: content)
                    previous = match.upperBound
                }
                result.append(contentsOf: buffer[previous...])
            }
            return result
        case .prepend(let prefix):
            return text.isEmpty ? text : prefix + text
        case .append(let suffix):
            return text.isEmpty ? text : text + suffix
        case .strip(let left, let right):
            let scalars = Array(string(text).unicodeScalars)
            var start = 0, end = scalars.count
            if left { while start < end, scalars[start].properties.isWhitespace { start += 1 } }
            if right { while end > start, scalars[end - 1].properties.isWhitespace { end -= 1 } }
            var result = String.UnicodeScalarView()
            result.append(contentsOf: scalars[start..<end])
            return Array(String(result).utf8)
        case .stripAccents:
            var result = String.UnicodeScalarView()
            for scalar in string(text).unicodeScalars {
                switch scalar.properties.generalCategory {
                case .nonspacingMark, .spacingMark, .enclosingMark: continue
                default: result.append(scalar)
                }
            }
            return Array(String(result).utf8)
        case .sequence(let normalizers):
            return normalizers.reduce(text) { $1.apply($0) }
        }
    }

    private func string(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
}
