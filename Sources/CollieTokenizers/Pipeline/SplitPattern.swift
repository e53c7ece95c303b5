/// What a `Split` pre-tokenizer or a `Replace` normalizer/decoder looks for: `{"String": …}` or
/// `{"Regex": …}` in tokenizer.json.
enum SplitPattern {
    /// A literal string (its UTF-8 bytes).
    case literal([UInt8])
    /// One of the split regexes matched by hand.
    case known(KnownSplitPattern)
    /// Any other regex.
    case regex(RegexPattern)

    /// Reads `{"String": "…"}` or `{"Regex": "…"}`; `key` names it in errors.
    init(json: inout JSONReader, key: String) throws {
        var pattern: SplitPattern?
        try json.forEachMember { json, kind in
            switch kind {
            case "String":
                pattern = .literal(Array(try json.readString().utf8))
            case "Regex":
                let source = try json.readString()
                if let known = KnownSplitPattern(source: source) {
                    pattern = .known(known)
                } else {
                    pattern = .regex(try RegexPattern(source, file: json.file, key: json.keyPath))
                }
            default:
                throw json.error("unknown pattern kind '\(kind)' (expected String or Regex)")
            }
        }
        guard let pattern else { throw json.error("\(key) has no String or Regex") }
        self = pattern
    }

    /// Calls `body` with each match in `bytes[range]`, in order (non-overlapping, leftmost first).
    func forEachMatch(in bytes: UnsafePointer<UInt8>, _ range: Range<Int>, _ body: (Range<Int>) -> Void) {
        switch self {
        case .known(let known):
            known.forEachMatch(in: bytes, range, body)
        case .regex(let regex):
            for match in regex.matches(in: bytes, range) { body(match) }
        case .literal(let needle):
            guard !needle.isEmpty else { return }
            var i = range.lowerBound
            let last = range.upperBound - needle.count
            while i <= last {
                var equal = true
                for k in 0..<needle.count where bytes[i + k] != needle[k] { equal = false; break }
                if equal {
                    body(i..<(i + needle.count))
                    i += needle.count
                } else {
                    i += 1
                }
            }
        }
    }

    /// `bytes[range]` cut into alternating pieces, each flagged as a match or not, covering the range
    /// (as `tokenizers`' `find_matches`).
    func segments(in bytes: UnsafePointer<UInt8>, _ range: Range<Int>) -> [(range: Range<Int>, isMatch: Bool)] {
        if range.isEmpty { return [(range, false)] }
        var result: [(range: Range<Int>, isMatch: Bool)] = []
        var previous = range.lowerBound
        forEachMatch(in: bytes, range) { match in
            if previous != match.lowerBound { result.append((previous..<match.lowerBound, false)) }
            result.append((match, true))
            previous = match.upperBound
        }
        if previous != range.upperBound { result.append((previous..<range.upperBound, false)) }
        return result
    }
}

/// What a split does with the matched delimiters (tokenizer.json's `behavior`).
enum SplitBehavior: String {
    case removed = "Removed"
    case isolated = "Isolated"
    case mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext"
    case contiguous = "Contiguous"

    init(json: inout JSONReader) throws {
        let name = try json.readString()
        guard let behavior = SplitBehavior(rawValue: name) else {
            throw json.error("unknown split behavior '\(name)'")
        }
        self = behavior
    }

    /// The pieces to keep from `segments` (as `tokenizers`' `NormalizedString::split`), empty ones dropped.
    func apply(_ segments: [(range: Range<Int>, isMatch: Bool)], _ emit: (Range<Int>) -> Void) {
        var kept: [Range<Int>] = []
        switch self {
        case .isolated:
            kept = segments.map(\.range)
        case .removed:
            kept = segments.filter { !$0.isMatch }.map(\.range)
        case .contiguous:
            var previousMatch = false
            for (index, segment) in segments.enumerated() {
                if index > 0, segment.isMatch == previousMatch, let last = kept.last {
                    kept[kept.count - 1] = last.lowerBound..<segment.range.upperBound
                } else {
                    kept.append(segment.range)
                }
                previousMatch = segment.isMatch
            }
        case .mergedWithPrevious:
            var previousMatch = false
            for segment in segments {
                if segment.isMatch, !previousMatch, let last = kept.last {
                    kept[kept.count - 1] = last.lowerBound..<segment.range.upperBound
                } else {
                    kept.append(segment.range)
                }
                previousMatch = segment.isMatch
            }
        case .mergedWithNext:
            var previousMatch = false
            for segment in segments.reversed() {
                if segment.isMatch, !previousMatch, let last = kept.last {
                    kept[kept.count - 1] = segment.range.lowerBound..<last.upperBound
                } else {
                    kept.append(segment.range)
                }
                previousMatch = segment.isMatch
            }
            kept.reverse()
        }
        for range in kept where !range.isEmpty { emit(range) }
    }
}
