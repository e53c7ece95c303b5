import Foundation

/// A split or replace regex from a tokenizer file, run by ICU (`NSRegularExpression`) — the general engine
/// behind the hand-written `KnownSplitPattern`s.
///
/// Hugging Face `tokenizers` uses Oniguruma. The two agree on the syntax tokenizer files use; to agree on
/// `\s` too, it is rewritten to `\p{White_Space}` (Oniguruma's meaning; ICU's `\s` omits U+000B and U+0085).
final class RegexPattern {
    let source: String
    private let expression: NSRegularExpression

    /// Compiles `source`; `file` and `key` name it in the error if it does not compile.
    init(_ source: String, file: String, key: String) throws {
        self.source = source
        do {
            expression = try NSRegularExpression(pattern: RegexPattern.translate(source), options: [])
        } catch {
            throw TokenizerError(file: file, "\(key): the regex \(source.debugDescription) does not compile: \(error)")
        }
    }

    /// Rewrites `\s` and `\S` (outside other escapes) to White_Space property classes.
    static func translate(_ source: String) -> String {
        var result = ""
        var iterator = source.makeIterator()
        while let character = iterator.next() {
            guard character == "\\" else { result.append(character); continue }
            guard let escaped = iterator.next() else { result.append(character); break }
            switch escaped {
            case "s": result += #"\p{White_Space}"#
            case "S": result += #"\P{White_Space}"#
            default: result.append(character); result.append(escaped)
            }
        }
        return result
    }

    /// The byte ranges of the matches in `bytes[range]` (UTF-8), in order; empty matches included.
    func matches(in bytes: UnsafePointer<UInt8>, _ range: Range<Int>) -> [Range<Int>] {
        let text = String(decoding: UnsafeBufferPointer(start: bytes + range.lowerBound, count: range.count), as: UTF8.self)
        // UTF-16 offset → UTF-8 offset, for converting ICU's ranges back.
        var utf8Offset: [Int] = []
        utf8Offset.reserveCapacity(text.utf16.count + 1)
        var offset = 0
        for scalar in text.unicodeScalars {
            let width = scalar.utf8.count
            utf8Offset.append(offset)
            if scalar.value > 0xFFFF { utf8Offset.append(offset) }
            offset += width
        }
        utf8Offset.append(offset)
        let all = NSRange(location: 0, length: text.utf16.count)
        return expression.matches(in: text, options: [], range: all).map { match in
            let start = utf8Offset[match.range.location], end = utf8Offset[match.range.location + match.range.length]
            return (range.lowerBound + start)..<(range.lowerBound + end)
        }
    }
}
