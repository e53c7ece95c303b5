import Foundation

/// ChatGLM-6B's tokenizer (THUDM's `tokenization_chatglm.py`, `SPTokenizer` over `ice_text.model`), as
/// `transformers` runs it:
///
/// - the text is split at the special tokens `transformers` knows (bos `<sop>`, eos `<eop>`, unk, pad, mask
///   `[MASK]`), and the whitespace beside them is dropped;
/// - in each piece between them, newline becomes `<n>`, tab `<|tab|>` and a run of 2…80 spaces `<|blank_N|>`
///   (a longer run: blanks of 80 first), then SentencePiece encodes it;
/// - every SentencePiece id is shifted by `num_image_tokens` (20000 in the first releases, 0 in the last; the
///   ids below it are `<image_N>`);
/// - decoding drops `<pad>`, undoes the whitespace markers, and with `skipSpecialTokens` drops the special
///   tokens above (`[gMASK]` is not one of them: `transformers` keeps it).
struct ChatGLM6BTextTokenizer {
    static let maxBlankLength = 80

    let model: SentencePieceTokenizer
    /// `num_image_tokens`.
    let offset: Int
    /// The special tokens the text is split at, with their ids.
    let splitTokens: [(text: String, id: Int)]
    let padID: Int?

    init(model: SentencePieceTokenizer, configuration: TokenizerConfiguration) {
        self.model = model
        let offset = configuration.numberOfImageTokens ?? 20000
        self.offset = offset
        let names = [configuration.bosToken ?? "<sop>", configuration.eosToken ?? "<eop>",
                     configuration.unknownToken ?? "<unk>", configuration.padToken ?? "<pad>",
                     configuration.maskToken ?? "[MASK]"]
        var splitTokens: [(String, Int)] = []
        for name in names where !splitTokens.contains(where: { $0.0 == name }) {
            if let id = model.id(ofToken: name) { splitTokens.append((name, id + offset)) }
        }
        self.splitTokens = splitTokens
        padID = model.id(ofToken: configuration.padToken ?? "<pad>").map { $0 + offset }
    }

    /// One past the largest id.
    var count: Int { model.pieces.count + offset }

    func token(forID id: Int) -> String? {
        guard id >= 0, id < count else { return nil }
        return id < offset ? "<image_\(id)>" : model.pieces[id - offset]
    }

    func id(forToken token: String) -> Int? {
        if token.hasPrefix("<image_"), token.hasSuffix(">"), let n = Int(token.dropFirst(7).dropLast()), n >= 0,
           n < offset {
            return n
        }
        return model.id(ofToken: token).map { $0 + offset }
    }

    func encode(_ text: String) -> [Int] {
        var ids: [Int] = []
        var rest = Substring(text)
        var stripLeading = false
        while !rest.isEmpty {
            var next: (range: Range<Substring.Index>, id: Int)?
            for token in splitTokens {
                if let range = rest.range(of: token.text, options: .literal),
                   next == nil || range.lowerBound < next!.range.lowerBound {
                    next = (range, token.id)
                }
            }
            var chunk = rest[..<(next?.range.lowerBound ?? rest.endIndex)]
            if stripLeading { chunk = chunk.drop(while: \.isPythonWhitespace) }
            if next != nil { chunk = chunk.trimmingTrailingPythonWhitespace() }
            if !chunk.isEmpty {
                ids += model.encode(Self.markingWhitespace(String(chunk))).lazy.map { Int($0) + offset }
            }
            guard let next else { break }
            ids.append(next.id)
            rest = rest[next.range.upperBound...]
            stripLeading = true
        }
        return ids
    }

    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        let special = Set(splitTokens.map(\.id))
        let kept = ids.filter { $0 >= offset && $0 != padID && !(skipSpecialTokens && special.contains($0)) }
        return Self.unmarkingWhitespace(model.decode(kept.map { $0 - offset }, skipSpecialTokens: false))
    }

    /// `SPTokenizer._preprocess`: newline → `<n>`, tab → `<|tab|>`, runs of spaces → `<|blank_N|>`.
    static func markingWhitespace(_ text: String) -> String {
        var result = ""
        result.reserveCapacity(text.utf8.count)
        var spaces = 0
        func flush() {
            // Python replaces runs of 80 down to 2: blanks of 80 from the left, then the rest as one.
            for _ in 0..<(spaces / maxBlankLength) { result += "<|blank_\(maxBlankLength)|>" }
            let rest = spaces % maxBlankLength
            if rest == 1 { result += " " } else if rest > 1 { result += "<|blank_\(rest)|>" }
            spaces = 0
        }
        for scalar in text.unicodeScalars {
            if scalar == " " { spaces += 1; continue }
            flush()
            switch scalar {
            case "\n": result += "<n>"
            case "\t": result += "<|tab|>"
            default: result.unicodeScalars.append(scalar)
            }
        }
        flush()
        return result
    }

    /// `SPTokenizer.postprocess`.
    static func unmarkingWhitespace(_ text: String) -> String {
        var text = text.replacingLiteral("<n>", with: "\n").replacingLiteral("<|tab|>", with: "\t")
        guard text.contains("<|blank_") else { return text }
        for length in 2...maxBlankLength {
            text = text.replacingLiteral("<|blank_\(length)|>", with: String(repeating: " ", count: length))
        }
        return text
    }
}

extension Character {
    /// Python's `str.isspace` for the characters `transformers` strips beside special tokens.
    var isPythonWhitespace: Bool { unicodeScalars.allSatisfy { $0.properties.isWhitespace || (0x1C...0x1F).contains($0.value) } }
}

extension Substring {
    func trimmingTrailingPythonWhitespace() -> Substring {
        var end = endIndex
        while end > startIndex, self[index(before: end)].isPythonWhitespace { end = index(before: end) }
        return self[..<end]
    }
}
