import CollieIO

/// The BPE vocabulary (token → id, the last id winning where a token repeats, as a Python dict does) and merges.
/// Tokens are keyed by their UTF-8 bytes: Swift's `String` equality would merge canonically equivalent tokens
/// (`ά` U+03AC and `ά` U+03B1 U+0301), which are different tokens.
struct GGUFVocabulary {
    var tokens: [String]
    var ids: [[UInt8]: Int]
    var merges: [(String, String)]

    static func ids(_ tokens: [String]) -> [[UInt8]: Int] {
        var ids: [[UInt8]: Int] = [:]
        ids.reserveCapacity(tokens.count)
        for (id, token) in tokens.enumerated() { ids[Array(token.utf8)] = id }
        return ids
    }

    func id(_ token: String) -> Int? { ids[Array(token.utf8)] }

    /// The token an id has in the vocabulary (nil where a later duplicate took its spelling).
    func token(_ id: Int) -> String? {
        guard id >= 0, id < tokens.count, self.id(tokens[id]) == id else { return nil }
        return tokens[id]
    }

    /// transformers' byte_level_tokenizer: tokens spelled outside the byte alphabet are respelled byte by byte.
    static func byteLevel(tokens: [String], reader: GGUFMetadataReader) throws -> GGUFVocabulary {
        let alphabet = ByteLevelAlphabet.characters
        let spelled = tokens.map { token in
            token.unicodeScalars.allSatisfy(alphabet.contains) ? token : ByteLevelAlphabet.spell(token)
        }
        let ids = ids(spelled)
        guard reader.value("tokenizer.ggml.merges") != nil else {
            throw reader.error("tokenizer.ggml.merges", "missing: a gpt2 tokenizer needs its merges")
        }
        return GGUFVocabulary(tokens: spelled, ids: ids, merges: try splitMerges(reader))
    }

    /// The most bytes of candidate splits recovering merges may build (LLaMA-2's 32,000 pieces need about 2 million).
    static let maximumMergeWork = 1 << 28

    /// transformers' sentencepiece_tokenizer: merges from the file, or recovered from the scores.
    static func sentencePiece(tokens: [String], reader: GGUFMetadataReader) throws -> GGUFVocabulary {
        let ids = ids(tokens)
        if reader.value("tokenizer.ggml.merges") != nil {
            return GGUFVocabulary(tokens: tokens, ids: ids, merges: try splitMerges(reader))
        }
        guard let scores = try reader.floats("tokenizer.ggml.scores", count: tokens.count) else {
            throw reader.error("tokenizer.ggml.scores", "missing: a llama tokenizer without merges needs its scores")
        }
        // Recovering merges tries every split of every token: bound the work a file of long tokens could ask for.
        var work = 0
        for token in tokens {
            let (product, overflow) = token.unicodeScalars.count.multipliedReportingOverflow(by: token.utf8.count)
            let (sum, sumOverflow) = work.addingReportingOverflow(product)
            work = sum
            if overflow || sumOverflow || work > maximumMergeWork {
                throw reader.error("tokenizer.ggml.tokens", "tokens too long to recover merges from (more than "
                                   + "\(maximumMergeWork) bytes of splits)")
            }
        }
        return GGUFVocabulary(tokens: tokens, ids: ids, merges: generatedMerges(tokens: tokens, ids: ids, scores: scores))
    }

    private static func splitMerges(_ reader: GGUFMetadataReader) throws -> [(String, String)] {
        let merges = try reader.strings("tokenizer.ggml.merges")
        return try merges.enumerated().map { index, merge in
            let parts = merge.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2 else {
                throw reader.error("tokenizer.ggml.merges", "merge \(index) is not two tokens separated by one space")
            }
            return (String(parts[0]), String(parts[1]))
        }
    }

    /// transformers' generate_merges(vocab, scores): every split of a token into two vocabulary tokens, ordered by the
    /// token's score (highest first), then by the pieces' lengths (longest first), ties kept in vocabulary order.
    private static func generatedMerges(tokens: [String], ids: [[UInt8]: Int], scores: [Double]) -> [(String, String)] {
        // vocab_scores = dict(zip(tokens, scores)): first position, last score.
        var scoreOf: [[UInt8]: Double] = [:]
        var order: [String] = []
        for (token, score) in zip(tokens, scores) {
            if scoreOf.updateValue(score, forKey: Array(token.utf8)) == nil { order.append(token) }
        }
        var merges: [(left: String, right: String, score: Double, leftLength: Int, rightLength: Int)] = []
        for token in order {
            let scalars = Array(token.unicodeScalars)
            guard scalars.count > 1, let score = scoreOf[Array(token.utf8)] else { continue }
            var local: [(left: String, right: String, leftID: Int, rightID: Int, split: Int)] = []
            for split in 1..<scalars.count {
                var left = String.UnicodeScalarView(), right = String.UnicodeScalarView()
                left.append(contentsOf: scalars[..<split])
                right.append(contentsOf: scalars[split...])
                let l = String(left), r = String(right)
                if let leftID = ids[Array(l.utf8)], let rightID = ids[Array(r.utf8)] { local.append((l, r, leftID, rightID, split)) }
            }
            local.sort { ($0.leftID, $0.rightID, $0.split) < ($1.leftID, $1.rightID, $1.split) }
            for entry in local {
                merges.append((entry.left, entry.right, score, entry.split, scalars.count - entry.split))
            }
        }
        let order2 = merges.indices.sorted { a, b in
            let x = merges[a], y = merges[b]
            if x.score != y.score { return x.score > y.score }
            if x.leftLength != y.leftLength { return x.leftLength > y.leftLength }
            if x.rightLength != y.rightLength { return x.rightLength > y.rightLength }
            return a < b
        }
        return order2.map { (merges[$0].left, merges[$0].right) }
    }
}

/// GPT-2's byte-to-character table (`bytes_to_unicode`): printable Latin-1 bytes are themselves, the rest 256 + n.
enum ByteLevelAlphabet {
    static let table: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            if (33...126).contains(byte) || (161...172).contains(byte) || (174...255).contains(byte) {
                table[byte] = Unicode.Scalar(UInt8(byte))
            } else {
                table[byte] = Unicode.Scalar(next) ?? " "
                next += 1
            }
        }
        return table
    }()

    static let characters: Set<Unicode.Scalar> = Set(table)

    static func spell(_ text: String) -> String {
        var scalars = String.UnicodeScalarView()
        for byte in text.utf8 { scalars.append(table[Int(byte)]) }
        return String(scalars)
    }
}
