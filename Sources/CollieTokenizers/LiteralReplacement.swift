extension String {
    /// `self` with every occurrence of `target` replaced, comparing UTF-8 bytes (as Rust and Python do).
    ///
    /// Foundation's `replacingOccurrences` compares by canonical equivalence and whole grapheme clusters, so
    /// it would miss `▁` followed by a combining mark; token strings need the literal replacement.
    func replacingLiteral(_ target: String, with replacement: String) -> String {
        let needle = Array(target.utf8)
        guard !needle.isEmpty else { return self }
        let haystack = Array(utf8)
        var result: [UInt8] = []
        result.reserveCapacity(haystack.count)
        var i = 0
        while i < haystack.count {
            if haystack[i] == needle[0], i + needle.count <= haystack.count,
               haystack[i..<(i + needle.count)].elementsEqual(needle) {
                result.append(contentsOf: replacement.utf8)
                i += needle.count
            } else {
                result.append(haystack[i])
                i += 1
            }
        }
        return String(decoding: result, as: UTF8.self)
    }
}
