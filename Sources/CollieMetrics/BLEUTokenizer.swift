/// The tokenizers sacrebleu applies before counting n-grams (`--tokenize`), with sacrebleu 2.6's exact rules.
public enum BLEUTokenizer: String, Codable, CaseIterable, Sendable {
    /// No tokenization: the text is split on whitespace only.
    case none
    /// mteval-v13a, WMT's standard: punctuation split off, except `.`/`,` between digits.
    case thirteenA = "13a"
    /// mteval-v14 "international": Unicode punctuation and symbols split off.
    case international = "intl"
    /// Chinese: each CJK character is a token, the rest as 13a.
    case chinese = "zh"
    /// Every character is a token.
    case character = "char"

    /// The tokenized line: tokens separated by single spaces (`none` and `char` may leave other whitespace,
    /// which BLEU's split on whitespace removes).
    public func tokenize(_ line: String) -> String {
        String(String.UnicodeScalarView(tokenize(Array(line.unicodeScalars))))
    }

    func tokenize(_ line: [Unicode.Scalar]) -> [Unicode.Scalar] {
        switch self {
        case .none:
            return line
        case .thirteenA:
            return Self.regexpTokenized([" "] + Self.thirteenANormalized(line) + [" "])
        case .international:
            return Self.internationalTokenized(line)
        case .chinese:
            var spaced: [Unicode.Scalar] = []
            for scalar in PythonText.spaceTrimmed(line) {
                if Self.isChinese(scalar) { spaced += [" ", scalar, " "] } else { spaced.append(scalar) }
            }
            return Self.regexpTokenized(spaced)
        case .character:
            var joined: [Unicode.Scalar] = []
            for (index, scalar) in line.enumerated() {
                if index > 0 { joined.append(" ") }
                joined.append(scalar)
            }
            return joined
        }
    }

    // MARK: - 13a

    /// mteval-v13a's unescaping: drops `<skipped>` and hyphenated line breaks, joins lines, unescapes
    /// `&quot; &amp; &lt; &gt;` (in that order).
    static func thirteenANormalized(_ line: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var text = String(String.UnicodeScalarView(line))
        text = replacing(text, "<skipped>", "")
        text = replacing(text, "-\n", "")
        text = replacing(text, "\n", " ")
        if text.unicodeScalars.contains("&") {
            for (entity, character) in [("&quot;", "\""), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">")] {
                text = replacing(text, entity, character)
            }
        }
        return Array(text.unicodeScalars)
    }

    /// Python's `str.replace` on code points (Swift's own replacement compares grapheme clusters).
    static func replacing(_ text: String, _ target: String, _ replacement: String) -> String {
        let source = Array(text.unicodeScalars), pattern = Array(target.unicodeScalars)
        var result = String.UnicodeScalarView()
        var i = 0
        while i < source.count {
            if i + pattern.count <= source.count, source[i..<(i + pattern.count)].elementsEqual(pattern) {
                result.append(contentsOf: replacement.unicodeScalars)
                i += pattern.count
            } else {
                result.append(source[i])
                i += 1
            }
        }
        return String(result)
    }

    /// sacrebleu's `TokenizerRegexp` (shared by 13a and zh): four regular-expression substitutions applied in
    /// turn, left to right without overlap as `re.sub` does, then whitespace collapsed.
    static func regexpTokenized(_ line: [Unicode.Scalar]) -> [Unicode.Scalar] {
        // ([\{-\~\[-\` -\&\(-\+\:-\@\/]) → " \1 "
        var text = substituting(line, single: isThirteenAPunctuation)
        // ([^0-9])([\.,]) → "\1 \2 "
        text = substituting(text, first: { !isDigit($0) }, second: isPeriodOrComma, spaceBefore: false)
        // ([\.,])([^0-9]) → " \1 \2"
        text = substituting(text, first: isPeriodOrComma, second: { !isDigit($0) }, spaceBefore: true)
        // ([0-9])(-) → "\1 \2 "
        text = substituting(text, first: isDigit, second: { $0 == "-" }, spaceBefore: false)
        return joinedWords(text)
    }

    private static func isDigit(_ scalar: Unicode.Scalar) -> Bool { scalar.value >= 0x30 && scalar.value <= 0x39 }
    private static func isPeriodOrComma(_ scalar: Unicode.Scalar) -> Bool { scalar == "." || scalar == "," }

    /// The 13a punctuation class `[{-~[-\` -&(-+:-@/]`.
    private static func isThirteenAPunctuation(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x7B...0x7E, 0x5B...0x60, 0x20...0x26, 0x28...0x2B, 0x3A...0x40, 0x2F: return true
        default: return false
        }
    }

    // MARK: - intl

    /// mteval-v14's international tokenization: `(\P{N})(\p{P})` → `\1 \2 `, `(\p{P})(\P{N})` → ` \1 \2`,
    /// `(\p{S})` → ` \1 `, then whitespace collapsed.
    static func internationalTokenized(_ line: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var text = substituting(line, first: { !isNumber($0) }, second: isPunctuation, spaceBefore: false)
        text = substituting(text, first: isPunctuation, second: { !isNumber($0) }, spaceBefore: true)
        text = substituting(text, single: isSymbol)
        return joinedWords(text)
    }

    private static func isNumber(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    private static func isPunctuation(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
             .finalPunctuation, .otherPunctuation: return true
        default: return false
        }
    }

    private static func isSymbol(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol: return true
        default: return false
        }
    }

    // MARK: - zh

    /// sacrebleu's `_UCODE_RANGES` test. Two of its ranges are written with five hex digits after `\u`, which
    /// Python reads as a four-digit code point followed by a digit; compared with one character they become
    /// U+2001…U+2A6D and U+2F81…U+2FA1, and that is what sacrebleu does, so it is reproduced here.
    static func isChinese(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x3400...0x4DB5, 0x4E00...0x9FA5, 0x9FA6...0x9FBB, 0xF900...0xFA2D, 0xFA30...0xFA6A, 0xFA70...0xFAD9,
             0x2001...0x2A6D, 0x2F81...0x2FA1, 0xFF00...0xFFEF, 0x2E80...0x2EFF, 0x3000...0x303F, 0x31C0...0x31EF,
             0x2F00...0x2FDF, 0x2FF0...0x2FFF, 0x3100...0x312F, 0x31A0...0x31BF, 0xFE10...0xFE1F, 0xFE30...0xFE4F,
             0x2600...0x26FF, 0x2700...0x27BF, 0x3200...0x32FF, 0x3300...0x33FF:
            return true
        default:
            return false
        }
    }

    // MARK: - Substitution machinery

    /// `re.sub("(X)", " \1 ", text)` for a one-character class X.
    private static func substituting(_ text: [Unicode.Scalar], single matches: (Unicode.Scalar) -> Bool) -> [Unicode.Scalar] {
        var result: [Unicode.Scalar] = []
        result.reserveCapacity(text.count * 2)
        for scalar in text {
            if matches(scalar) { result += [" ", scalar, " "] } else { result.append(scalar) }
        }
        return result
    }

    /// `re.sub("(A)(B)", "\1 \2 ", text)` (or `" \1 \2"` with `spaceBefore`): a two-character pattern scanned
    /// left to right; after a match the scan resumes behind it.
    private static func substituting(_ text: [Unicode.Scalar], first: (Unicode.Scalar) -> Bool,
                                     second: (Unicode.Scalar) -> Bool, spaceBefore: Bool) -> [Unicode.Scalar] {
        var result: [Unicode.Scalar] = []
        result.reserveCapacity(text.count * 2)
        var i = 0
        while i < text.count {
            if i + 1 < text.count, first(text[i]), second(text[i + 1]) {
                result += spaceBefore ? [" ", text[i], " ", text[i + 1]] : [text[i], " ", text[i + 1], " "]
                i += 2
            } else {
                result.append(text[i])
                i += 1
            }
        }
        return result
    }

    /// `' '.join(text.split())`.
    private static func joinedWords(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var result: [Unicode.Scalar] = []
        result.reserveCapacity(text.count)
        var pendingSpace = false
        for scalar in text {
            if PythonText.isSpace(scalar) {
                pendingSpace = !result.isEmpty
            } else {
                if pendingSpace { result.append(" "); pendingSpace = false }
                result.append(scalar)
            }
        }
        return result
    }
}
