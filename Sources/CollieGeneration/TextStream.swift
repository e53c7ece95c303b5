import CollieTokenizers

/// Turns a growing list of generated ids into text that is safe to show as it arrives.
///
/// Each step decodes all ids so far (special tokens skipped) and releases what is new, except
/// an incomplete UTF-8 sequence (a trailing U+FFFD from byte fallback) and a tail that could
/// still become a stop string. When a stop string appears, the text ends just before it.
public struct TextStream {
    public let tokenizer: Tokenizer
    public let stopStrings: [String]
    public private(set) var tokens: [Int] = []
    /// The text released so far.
    public private(set) var text = ""
    /// Whether a stop string was found (no more text will be released).
    public private(set) var isStopped = false

    public init(tokenizer: Tokenizer, stopStrings: [String] = []) {
        self.tokenizer = tokenizer
        self.stopStrings = stopStrings
    }

    /// Adds a token; returns the text it releases (possibly empty).
    public mutating func append(_ token: Int) -> String {
        guard !isStopped else { return "" }
        tokens.append(token)
        return release(final: false)
    }

    /// Releases whatever is still held back (at the end of generation).
    public mutating func finish() -> String {
        guard !isStopped else { return "" }
        return release(final: true)
    }

    private mutating func release(final: Bool) -> String {
        var full = (try? tokenizer.decode(tokens, skipSpecialTokens: true)) ?? ""
        if let stop = earliestStop(in: full) {
            full = String(full[..<stop])
            isStopped = true
        } else if !final {
            if full.hasSuffix("\u{FFFD}") { return "" }
            full = String(full.dropLast(heldBackCount(full)))
        }
        guard full.hasPrefix(text), full.count > text.count else { return "" }
        let delta = String(full.dropFirst(text.count))
        text = full
        return delta
    }

    private func earliestStop(in full: String) -> String.Index? {
        stopStrings.compactMap { full.range(of: $0)?.lowerBound }.min()
    }

    /// The length of the longest tail of `full` that is a proper prefix of a stop string.
    private func heldBackCount(_ full: String) -> Int {
        var longest = 0
        for stop in stopStrings {
            for n in stride(from: min(stop.count - 1, full.count), to: longest, by: -1)
            where full.hasSuffix(stop.prefix(n)) {
                longest = n
                break
            }
        }
        return longest
    }
}
