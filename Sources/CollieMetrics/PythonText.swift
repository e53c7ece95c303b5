/// The few pieces of Python's `str` that the reference metric libraries rely on, reproduced on Unicode scalars
/// (Python strings are sequences of code points, not of grapheme clusters).
enum PythonText {
    /// `str.isspace()` for one code point (Python 3.11: bidirectional class WS, B or S, or category Zs).
    static func isSpace(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    /// `str.split()` with no separator: runs of whitespace separate, none at either end.
    static func split(_ scalars: [Unicode.Scalar]) -> [String] {
        var words: [String] = []
        var current = String.UnicodeScalarView()
        for scalar in scalars {
            if isSpace(scalar) {
                if !current.isEmpty { words.append(String(current)); current = String.UnicodeScalarView() }
            } else {
                current.append(scalar)
            }
        }
        if !current.isEmpty { words.append(String(current)) }
        return words
    }

    /// `str.rstrip()` with no argument.
    static func trailingSpaceRemoved(_ scalars: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var end = scalars.count
        while end > 0, isSpace(scalars[end - 1]) { end -= 1 }
        return Array(scalars[..<end])
    }

    /// `str.strip()` with no argument.
    static func spaceTrimmed(_ scalars: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var start = 0
        while start < scalars.count, isSpace(scalars[start]) { start += 1 }
        return trailingSpaceRemoved(Array(scalars[start...]))
    }

    /// `str.lower()`: full lowercase mappings, with Greek capital sigma becoming final sigma (ς) at the end of
    /// a word as Python's Final_Sigma rule says.
    static func lowercased(_ scalars: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var result: [Unicode.Scalar] = []
        result.reserveCapacity(scalars.count)
        for (index, scalar) in scalars.enumerated() {
            if scalar.value < 0x80 {
                result.append(scalar.value >= 0x41 && scalar.value <= 0x5A ? Unicode.Scalar(scalar.value + 32)! : scalar)
            } else if scalar.value == 0x3A3 {
                result.append(isFinalSigma(scalars, at: index) ? "\u{3C2}" : "\u{3C3}")
            } else {
                result.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return result
    }

    /// Python's `_PyUnicode_IsFinalSigma`: a cased letter before (skipping case-ignorable ones), none after.
    private static func isFinalSigma(_ scalars: [Unicode.Scalar], at index: Int) -> Bool {
        var i = index - 1
        while i >= 0, scalars[i].properties.isCaseIgnorable { i -= 1 }
        guard i >= 0, scalars[i].properties.isCased else { return false }
        var j = index + 1
        while j < scalars.count, scalars[j].properties.isCaseIgnorable { j += 1 }
        return j == scalars.count || !scalars[j].properties.isCased
    }
}
