/// ROUGE-N, ROUGE-L and ROUGE-Lsum exactly as Google's rouge-score 0.1.2 computes them (`RougeScorer`): its
/// tokenizer (lowercase, runs of `[a-z0-9]`), optional Porter stemming of words longer than 3 characters
/// (NLTK's stemmer), precision/recall/F1 per pair, and Lsum's summary-level LCS over sentences split on newlines.
///
/// ```swift
/// let rouge = ROUGE(types: [.n(1), .n(2), .longestCommonSubsequence, .summaryLongestCommonSubsequence], stemming: true)
/// let scores = try rouge.score(target: "The cat sat.", prediction: "A cat sat down.")
/// print(scores[.n(1)]!.fmeasure)
/// ```
public struct ROUGE: Sendable {
    /// A ROUGE variant (rouge-score's `rouge_types`).
    public enum Kind: Hashable, Codable, Sendable, CustomStringConvertible {
        /// ROUGE-N: n-gram overlap.
        case n(Int)
        /// ROUGE-L: longest common subsequence of the whole texts.
        case longestCommonSubsequence
        /// ROUGE-Lsum: union LCS per reference sentence (sentences split on "\n").
        case summaryLongestCommonSubsequence

        /// rouge-score's name: `rouge1`, `rougeL`, `rougeLsum`.
        public var description: String {
            switch self {
            case .n(let n): "rouge\(n)"
            case .longestCommonSubsequence: "rougeL"
            case .summaryLongestCommonSubsequence: "rougeLsum"
            }
        }

        /// Parses rouge-score's names (`rouge1`…`rouge9`, `rougeL`, `rougeLsum`).
        public init(name: String) throws {
            switch name {
            case "rougeL": self = .longestCommonSubsequence
            case "rougeLsum": self = .summaryLongestCommonSubsequence
            default:
                let digits = name.dropFirst(5)
                guard name.hasPrefix("rouge"), digits.count == 1, let n = Int(digits), n > 0 else {
                    throw MetricsError("unknown ROUGE type \"\(name)\" (use rouge1…rouge9, rougeL or rougeLsum)")
                }
                self = .n(n)
            }
        }

        public init(from decoder: Decoder) throws { self = try Kind(name: try decoder.singleValueContainer().decode(String.self)) }
        public func encode(to encoder: Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(description)
        }
    }

    /// Precision, recall and F1 of one comparison.
    public struct Score: Equatable, Codable, Sendable {
        public var precision: Double
        public var recall: Double
        public var fmeasure: Double

        public init(precision: Double, recall: Double) {
            self.precision = precision
            self.recall = recall
            fmeasure = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0
        }

        static let zero = Score(precision: 0, recall: 0)
    }

    public var types: [Kind]
    /// Porter stemming of tokens longer than 3 characters (`use_stemmer`).
    public var stemming: Bool
    private let stemmer = PorterStemmer()

    public init(types: [Kind] = [.n(1), .n(2), .longestCommonSubsequence, .summaryLongestCommonSubsequence],
                stemming: Bool = false) {
        self.types = types
        self.stemming = stemming
    }

    /// rouge-score's tokenizer: lowercase, every run of characters outside `[a-z0-9]` separates, words longer
    /// than 3 characters stemmed when `stemming` is on.
    public func tokenize(_ text: String) -> [String] {
        var tokens: [String] = []
        var current: [UInt8] = []
        func flush() {
            guard !current.isEmpty else { return }
            let word = String(decoding: current, as: UTF8.self)
            tokens.append(stemming && current.count > 3 ? stemmer.stem(word) : word)
            current.removeAll(keepingCapacity: true)
        }
        for scalar in PythonText.lowercased(Array(text.unicodeScalars)) {
            let v = scalar.value
            if (v >= 0x61 && v <= 0x7A) || (v >= 0x30 && v <= 0x39) { current.append(UInt8(v)) } else { flush() }
        }
        flush()
        return tokens.filter { !$0.isEmpty }
    }

    /// The scores of `prediction` against `target` for every type (rouge-score's `score(target, prediction)`).
    /// - Throws: `MetricsError` for ROUGE-N with n < 1.
    public func score(target: String, prediction: String) throws -> [Kind: Score] {
        // Tokens as small integers: the LCS tables compare them many times.
        var vocabulary: [String: Int] = [:]
        func ids(_ text: String) -> [Int] {
            tokenize(text).map { token in
                if let id = vocabulary[token] { return id }
                vocabulary[token] = vocabulary.count
                return vocabulary.count - 1
            }
        }
        let targetTokens = ids(target), predictionTokens = ids(prediction)
        var scores: [Kind: Score] = [:]
        for kind in types {
            switch kind {
            case .n(let n):
                guard n > 0 else { throw MetricsError("ROUGE-N needs n ≥ 1, not \(n)") }
                scores[kind] = Self.nGramScore(target: targetTokens, prediction: predictionTokens, n: n)
            case .longestCommonSubsequence:
                scores[kind] = Self.lcsScore(target: targetTokens, prediction: predictionTokens)
            case .summaryLongestCommonSubsequence:
                scores[kind] = Self.summaryLevelLCS(target: sentences(target).map(ids),
                                                    prediction: sentences(prediction).map(ids))
            }
        }
        return scores
    }

    /// Against several targets: per type, the score with the highest F1 (the first on a tie), as `score_multi`.
    public func score(targets: [String], prediction: String) throws -> [Kind: Score] {
        guard !targets.isEmpty else { throw MetricsError("ROUGE: a prediction has no target") }
        let all = try targets.map { try score(target: $0, prediction: prediction) }
        var best: [Kind: Score] = [:]
        for kind in types {
            for scores in all where best[kind] == nil || scores[kind]!.fmeasure > best[kind]!.fmeasure { best[kind] = scores[kind] }
        }
        return best
    }

    /// Scores of every pair and their mean per type (what summarization papers report as ROUGE).
    public func corpusScore(targets: [String], predictions: [String]) throws -> (mean: [Kind: Score], pairs: [[Kind: Score]]) {
        guard targets.count == predictions.count else {
            throw MetricsError("ROUGE: \(predictions.count) predictions but \(targets.count) targets")
        }
        let pairs = try zip(targets, predictions).map { try score(target: $0, prediction: $1) }
        var mean: [Kind: Score] = [:]
        for kind in types {
            var p = 0.0, r = 0.0, f = 0.0
            for pair in pairs { p += pair[kind]!.precision; r += pair[kind]!.recall; f += pair[kind]!.fmeasure }
            let count = Double(max(pairs.count, 1))
            var score = Score(precision: p / count, recall: r / count)
            score.fmeasure = f / count
            mean[kind] = score
        }
        return (mean, pairs)
    }

    /// Lsum's sentences: the text split on "\n", empty pieces dropped.
    func sentences(_ text: String) -> [String] {
        // On code points: a Swift Character would keep "\r\n" together.
        text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: true).map { String(String.UnicodeScalarView($0)) }
    }

    // MARK: - The scores

    static func nGramScore<Token: Hashable>(target: [Token], prediction: [Token], n: Int) -> Score {
        let targetGrams = nGrams(target, n), predictionGrams = nGrams(prediction, n)
        var overlap = 0
        for (gram, count) in targetGrams { overlap += min(count, predictionGrams[gram] ?? 0) }
        let targetCount = targetGrams.values.reduce(0, +), predictionCount = predictionGrams.values.reduce(0, +)
        return Score(precision: Double(overlap) / Double(max(predictionCount, 1)),
                     recall: Double(overlap) / Double(max(targetCount, 1)))
    }

    static func nGrams<Token: Hashable>(_ tokens: [Token], _ n: Int) -> [ArraySlice<Token>: Int] {
        var counts: [ArraySlice<Token>: Int] = [:]
        if tokens.count >= n { for start in 0...(tokens.count - n) { counts[tokens[start..<(start + n)], default: 0] += 1 } }
        return counts
    }

    static func lcsScore<Token: Hashable>(target: [Token], prediction: [Token]) -> Score {
        guard !target.isEmpty, !prediction.isEmpty else { return .zero }
        let length = lcsTable(target, prediction)[target.count][prediction.count]
        return Score(precision: Double(length) / Double(prediction.count), recall: Double(length) / Double(target.count))
    }

    /// The dynamic-programming table: `table[i][j]` is the LCS length of `a[..<i]` and `b[..<j]`.
    static func lcsTable<Token: Hashable>(_ a: [Token], _ b: [Token]) -> [[Int]] {
        var table = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in stride(from: 1, through: a.count, by: 1) {
            for j in stride(from: 1, through: b.count, by: 1) {
                table[i][j] = a[i - 1] == b[j - 1] ? table[i - 1][j - 1] + 1 : max(table[i - 1][j], table[i][j - 1])
            }
        }
        return table
    }

    /// Indices into `reference` of one LCS with `candidate`, found by rouge-score's backtracking.
    static func lcsIndices<Token: Hashable>(_ reference: [Token], _ candidate: [Token]) -> [Int] {
        let table = lcsTable(reference, candidate)
        var (i, j) = (reference.count, candidate.count)
        var indices: [Int] = []
        while i > 0, j > 0 {
            if reference[i - 1] == candidate[j - 1] {
                indices.append(i - 1); i -= 1; j -= 1
            } else if table[i][j - 1] > table[i - 1][j] {
                j -= 1
            } else {
                i -= 1
            }
        }
        return indices.reversed()
    }

    /// Summary-level LCS (Lin 2004, §3.2): for each reference sentence the union of its LCS with every candidate
    /// sentence; each token is counted at most as often as it occurs in either summary.
    static func summaryLevelLCS<Token: Hashable>(target: [[Token]], prediction: [[Token]]) -> Score {
        guard !target.isEmpty, !prediction.isEmpty else { return .zero }
        let m = target.reduce(0) { $0 + $1.count }, n = prediction.reduce(0) { $0 + $1.count }
        guard m > 0, n > 0 else { return .zero }
        var targetCounts: [Token: Int] = [:], predictionCounts: [Token: Int] = [:]
        for sentence in target { for token in sentence { targetCounts[token, default: 0] += 1 } }
        for sentence in prediction { for token in sentence { predictionCounts[token, default: 0] += 1 } }
        var hits = 0
        for sentence in target {
            var union = Set<Int>()
            for candidate in prediction { union.formUnion(lcsIndices(sentence, candidate)) }
            for index in union.sorted() {
                let token = sentence[index]
                if predictionCounts[token, default: 0] > 0, targetCounts[token, default: 0] > 0 {
                    hits += 1
                    predictionCounts[token]! -= 1
                    targetCounts[token]! -= 1
                }
            }
        }
        return Score(precision: Double(hits) / Double(n), recall: Double(hits) / Double(m))
    }
}
