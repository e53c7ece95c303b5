/// The Porter stemmer as NLTK 3.x implements it in its default `NLTK_EXTENSIONS` mode — the stemmer
/// rouge-score uses with `use_stemmer=True`. Works on lowercase ASCII words (what ROUGE's tokenizer yields).
public struct PorterStemmer: Sendable {
    public init() {}

    /// NLTK's irregular forms, looked up before any rule.
    private static let irregular: [String: String] = [
        "sky": "sky", "skies": "sky", "dying": "die", "lying": "lie", "tying": "tie", "news": "news",
        "innings": "inning", "inning": "inning", "outings": "outing", "outing": "outing",
        "cannings": "canning", "canning": "canning", "howe": "howe", "proceed": "proceed", "exceed": "exceed",
        "succeed": "succeed",
    ]

    /// The stem of `word` (lowercase ASCII letters and digits).
    public func stem(_ word: String) -> String {
        if let irregular = Self.irregular[word] { return irregular }
        var w = Word(Array(word.utf8))
        if w.count <= 2 { return word }
        w = step1a(w); w = step1b(w); w = step1c(w); w = step2(w); w = step3(w); w = step4(w)
        w = step5a(w); w = step5b(w)
        return String(decoding: w, as: UTF8.self)
    }

    typealias Word = [UInt8]
    typealias Condition = (Word) -> Bool
    private struct Rule {
        let suffix: Word
        let replacement: Word
        let condition: Condition?
        init(_ suffix: String, _ replacement: String, _ condition: Condition? = nil) {
            self.suffix = Array(suffix.utf8); self.replacement = Array(replacement.utf8); self.condition = condition
        }
        init(doubleConsonant replacement: Word, _ condition: @escaping Condition) {
            suffix = Array("*d".utf8); self.replacement = replacement; self.condition = condition
        }
    }

    private static func isVowel(_ c: UInt8) -> Bool { c == 97 || c == 101 || c == 105 || c == 111 || c == 117 }
    private static let y = UInt8(ascii: "y")

    /// NLTK's `_is_consonant`: a `y` after a run of `y`s alternates starting from the letter before the run.
    private static func isConsonant(_ word: Word, _ index: Int) -> Bool {
        if isVowel(word[index]) { return false }
        guard word[index] == y else { return true }
        var i = index, negate = false
        while i > 0, word[i] == y { negate.toggle(); i -= 1 }
        return !isVowel(word[i]) != negate
    }

    /// NLTK's `_consonant_flags` (used by the measure and the vowel test; `y` flips the previous flag).
    private static func consonantFlags(_ word: Word) -> [Bool] {
        var flags: [Bool] = []
        for (i, c) in word.enumerated() {
            if isVowel(c) { flags.append(false) } else if c == y { flags.append(i == 0 ? true : !flags[i - 1]) } else { flags.append(true) }
        }
        return flags
    }

    /// m in [C](VC)^m[V]: the number of vowel→consonant transitions.
    private static func measure(_ stem: Word) -> Int {
        let flags = consonantFlags(stem)
        var m = 0
        for i in flags.indices.dropFirst() where !flags[i - 1] && flags[i] { m += 1 }
        return m
    }

    private static func hasPositiveMeasure(_ stem: Word) -> Bool { measure(stem) > 0 }
    private static func containsVowel(_ stem: Word) -> Bool { consonantFlags(stem).contains(false) }

    private static func endsDoubleConsonant(_ word: Word) -> Bool {
        word.count >= 2 && word[word.count - 1] == word[word.count - 2] && isConsonant(word, word.count - 1)
    }

    /// consonant-vowel-consonant with the last not w, x or y; NLTK also accepts a two-letter vowel-consonant word.
    private static func endsCVC(_ word: Word) -> Bool {
        let n = word.count
        if n >= 3, isConsonant(word, n - 3), !isConsonant(word, n - 2), isConsonant(word, n - 1),
           ![UInt8(ascii: "w"), UInt8(ascii: "x"), y].contains(word[n - 1]) { return true }
        return n == 2 && !isConsonant(word, 0) && isConsonant(word, 1)
    }

    private static func hasSuffix(_ word: Word, _ suffix: Word) -> Bool {
        word.count >= suffix.count && word[(word.count - suffix.count)...].elementsEqual(suffix)
    }

    private static func hasSuffix(_ word: Word, _ suffix: String) -> Bool { hasSuffix(word, Array(suffix.utf8)) }
    private static func dropping(_ word: Word, _ count: Int) -> Word { Array(word[..<(word.count - count)]) }

    /// The first rule whose suffix matches decides: replaced if its condition holds, unchanged otherwise.
    private static func apply(_ rules: [Rule], to word: Word) -> Word {
        for rule in rules {
            if rule.suffix == Array("*d".utf8), endsDoubleConsonant(word) {
                let stem = dropping(word, 2)
                return rule.condition.map { $0(stem) } ?? true ? stem + rule.replacement : word
            }
            if hasSuffix(word, rule.suffix) {
                let stem = dropping(word, rule.suffix.count)
                return rule.condition.map { $0(stem) } ?? true ? stem + rule.replacement : word
            }
        }
        return word
    }

    private func step1a(_ word: Word) -> Word {
        if Self.hasSuffix(word, "ies"), word.count == 4 { return Self.dropping(word, 3) + Array("ie".utf8) }
        return Self.apply([Rule("sses", "ss"), Rule("ies", "i"), Rule("ss", "ss"), Rule("s", "")], to: word)
    }

    private func step1b(_ word: Word) -> Word {
        if Self.hasSuffix(word, "ied") {
            return Self.dropping(word, 3) + Array((word.count == 4 ? "ie" : "i").utf8)
        }
        if Self.hasSuffix(word, "eed") {
            let stem = Self.dropping(word, 3)
            return Self.measure(stem) > 0 ? stem + Array("ee".utf8) : word
        }
        var intermediate: Word? = nil
        for suffix in ["ed", "ing"] where Self.hasSuffix(word, suffix) {
            let stem = Self.dropping(word, suffix.utf8.count)
            if Self.containsVowel(stem) { intermediate = stem; break }
        }
        guard let stem = intermediate else { return word }
        let last = stem[stem.count - 1]
        return Self.apply([
            Rule("at", "ate"), Rule("bl", "ble"), Rule("iz", "ize"),
            Rule(doubleConsonant: [last]) { _ in ![UInt8(ascii: "l"), UInt8(ascii: "s"), UInt8(ascii: "z")].contains(last) },
            Rule("", "e") { Self.measure($0) == 1 && Self.endsCVC($0) },
        ], to: stem)
    }

    private func step1c(_ word: Word) -> Word {
        Self.apply([Rule("y", "i") { $0.count > 1 && Self.isConsonant($0, $0.count - 1) }], to: word)
    }

    private func step2(_ word: Word) -> Word {
        if Self.hasSuffix(word, "alli"), Self.hasPositiveMeasure(Self.dropping(word, 4)) {
            return step2(Self.dropping(word, 4) + Array("al".utf8))
        }
        let positive: Condition = Self.hasPositiveMeasure
        let rules = [
            Rule("ational", "ate", positive), Rule("tional", "tion", positive), Rule("enci", "ence", positive),
            Rule("anci", "ance", positive), Rule("izer", "ize", positive), Rule("bli", "ble", positive),
            Rule("alli", "al", positive), Rule("entli", "ent", positive), Rule("eli", "e", positive),
            Rule("ousli", "ous", positive), Rule("ization", "ize", positive), Rule("ation", "ate", positive),
            Rule("ator", "ate", positive), Rule("alism", "al", positive), Rule("iveness", "ive", positive),
            Rule("fulness", "ful", positive), Rule("ousness", "ous", positive), Rule("aliti", "al", positive),
            Rule("iviti", "ive", positive), Rule("biliti", "ble", positive), Rule("fulli", "ful", positive),
            Rule("logi", "log") { _ in Self.hasPositiveMeasure(Self.dropping(word, 3)) },
        ]
        return Self.apply(rules, to: word)
    }

    private func step3(_ word: Word) -> Word {
        let positive: Condition = Self.hasPositiveMeasure
        return Self.apply([
            Rule("icate", "ic", positive), Rule("ative", "", positive), Rule("alize", "al", positive),
            Rule("iciti", "ic", positive), Rule("ical", "ic", positive), Rule("ful", "", positive),
            Rule("ness", "", positive),
        ], to: word)
    }

    private func step4(_ word: Word) -> Word {
        let above1: Condition = { Self.measure($0) > 1 }
        return Self.apply([
            Rule("al", "", above1), Rule("ance", "", above1), Rule("ence", "", above1), Rule("er", "", above1),
            Rule("ic", "", above1), Rule("able", "", above1), Rule("ible", "", above1), Rule("ant", "", above1),
            Rule("ement", "", above1), Rule("ment", "", above1), Rule("ent", "", above1),
            Rule("ion", "") { Self.measure($0) > 1 && ($0.last == UInt8(ascii: "s") || $0.last == UInt8(ascii: "t")) },
            Rule("ou", "", above1), Rule("ism", "", above1), Rule("ate", "", above1), Rule("iti", "", above1),
            Rule("ous", "", above1), Rule("ive", "", above1), Rule("ize", "", above1),
        ], to: word)
    }

    private func step5a(_ word: Word) -> Word {
        guard Self.hasSuffix(word, "e") else { return word }
        let stem = Self.dropping(word, 1)
        let m = Self.measure(stem)
        if m > 1 || (m == 1 && !Self.endsCVC(stem)) { return stem }
        return word
    }

    private func step5b(_ word: Word) -> Word {
        Self.apply([Rule("ll", "l") { _ in Self.measure(Self.dropping(word, 1)) > 1 }], to: word)
    }
}
