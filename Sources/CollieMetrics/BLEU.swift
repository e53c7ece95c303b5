import Foundation

/// Corpus and sentence BLEU exactly as sacrebleu 2.6 computes it (`sacrebleu.metrics.BLEU`): the same
/// tokenizers, lowercasing, n-gram clipping against several references, closest reference length, smoothing
/// methods and effective order, so scores equal the ones papers cite.
///
/// ```swift
/// let bleu = BLEU()                                   // 13a, exp smoothing, 4-grams
/// let score = try bleu.corpusScore(hypotheses: ["The cat sat."], references: [["The cat sat down."]])
/// print(score.score)                                  // 0…100
/// let sentence = BLEU(effectiveOrder: true)           // as sacrebleu.sentence_bleu
/// ```
public struct BLEU: Sendable {
    /// How zero n-gram matches are smoothed (Chen & Cherry 2014; sacrebleu's `smooth_method`).
    public enum Smoothing: String, Codable, CaseIterable, Sendable {
        /// No smoothing: one order without matches makes BLEU 0.
        case none
        /// Method 1: a zero count becomes `smoothValue` (default 0.1).
        case floor
        /// Method 2: `smoothValue` (default 1) is added to matches and totals of orders above 1.
        case addK = "add-k"
        /// Method 3, mteval-v13a's: the k-th order without matches gets precision 1 / (2^k · total).
        case exponential = "exp"

        /// sacrebleu's `SMOOTH_DEFAULTS`.
        var defaultValue: Double {
            switch self {
            case .floor: 0.1
            case .addK: 1
            case .none, .exponential: 0
            }
        }
    }

    public var tokenizer: BLEUTokenizer
    public var lowercase: Bool
    public var smoothing: Smoothing
    /// The value for `floor` and `add-k`; nil takes sacrebleu's default (0.1 and 1).
    public var smoothValue: Double?
    public var maxNGramOrder: Int
    /// Stops at the highest order with any n-grams (sacrebleu's `effective_order`; on for sentence BLEU).
    public var effectiveOrder: Bool

    public init(tokenizer: BLEUTokenizer = .thirteenA, lowercase: Bool = false, smoothing: Smoothing = .exponential,
                smoothValue: Double? = nil, maxNGramOrder: Int = 4, effectiveOrder: Bool = false) {
        self.tokenizer = tokenizer
        self.lowercase = lowercase
        self.smoothing = smoothing
        self.smoothValue = smoothValue
        self.maxNGramOrder = maxNGramOrder
        self.effectiveOrder = effectiveOrder
    }

    /// BLEU over a corpus: `references[i]` holds the references of `hypotheses[i]` (one or more; the number may
    /// vary). The statistics of all segments are summed before the score is formed.
    /// - Throws: `MetricsError` when the counts differ, a segment has no reference, or the order is below 1.
    public func corpusScore(hypotheses: [String], references: [[String]]) throws -> BLEUScore {
        guard maxNGramOrder >= 1 else { throw MetricsError("BLEU: max n-gram order must be at least 1, not \(maxNGramOrder)") }
        guard hypotheses.count == references.count else {
            throw MetricsError("BLEU: \(hypotheses.count) hypotheses but \(references.count) reference sets")
        }
        var total = BLEUStatistics(order: maxNGramOrder)
        for (index, (hypothesis, segmentReferences)) in zip(hypotheses, references).enumerated() {
            guard !segmentReferences.isEmpty else { throw MetricsError("BLEU: segment \(index + 1) has no reference") }
            total.add(statistics(hypothesis: hypothesis, references: segmentReferences))
        }
        return score(total)
    }

    /// BLEU of one hypothesis against its references (sacrebleu's `sentence_score`; use `effectiveOrder: true`
    /// as `sacrebleu.sentence_bleu` does).
    public func sentenceScore(hypothesis: String, references: [String]) throws -> BLEUScore {
        try corpusScore(hypotheses: [hypothesis], references: [references])
    }

    /// The sufficient statistics of one segment: lengths, clipped matches and totals per order.
    public func statistics(hypothesis: String, references: [String]) -> BLEUStatistics {
        var vocabulary: [String: Int] = [:]   // tokens as small integers: n-grams hash faster
        var referenceCounts: [[Int]: Int] = [:]
        var referenceLengths: [Int] = []
        for reference in references {
            let (counts, length) = nGrams(of: preprocessed(reference), vocabulary: &vocabulary)
            referenceLengths.append(length)
            for (gram, count) in counts { referenceCounts[gram] = max(referenceCounts[gram] ?? 0, count) }
        }
        let (counts, length) = nGrams(of: preprocessed(hypothesis), vocabulary: &vocabulary)
        var statistics = BLEUStatistics(order: maxNGramOrder)
        statistics.hypothesisLength = length
        statistics.referenceLength = Self.closestReferenceLength(hypothesisLength: length, referenceLengths: referenceLengths)
        for (gram, count) in counts {
            statistics.totals[gram.count - 1] += count
            if let available = referenceCounts[gram] { statistics.matches[gram.count - 1] += min(count, available) }
        }
        return statistics
    }

    /// The score from summed statistics (sacrebleu's `compute_bleu`).
    public func score(_ statistics: BLEUStatistics) -> BLEUScore {
        let order = maxNGramOrder
        let (hypothesisLength, referenceLength) = (statistics.hypothesisLength, statistics.referenceLength)
        var brevityPenalty = 1.0
        if hypothesisLength < referenceLength {
            brevityPenalty = hypothesisLength > 0 ? exp(1 - Double(referenceLength) / Double(hypothesisLength)) : 0
        }
        var precisions = [Double](repeating: 0, count: order)
        let result = { (score: Double) in
            BLEUScore(score: score, precisions: precisions, brevityPenalty: brevityPenalty,
                      hypothesisLength: hypothesisLength, referenceLength: referenceLength,
                      matches: statistics.matches, totals: statistics.totals)
        }
        if !statistics.matches.contains(where: { $0 != 0 }) { return result(0) }
        let smoothValue = self.smoothValue ?? smoothing.defaultValue
        var matches = statistics.matches.map(Double.init), totals = statistics.totals.map(Double.init)
        var mteval = 1.0
        var effective = order
        for n in 1...order {
            if smoothing == .addK, n > 1 {
                matches[n - 1] += smoothValue
                totals[n - 1] += smoothValue
            }
            if totals[n - 1] == 0 { break }
            if effectiveOrder { effective = n }
            if matches[n - 1] == 0 {
                if smoothing == .exponential {
                    mteval *= 2
                    precisions[n - 1] = 100 / (mteval * totals[n - 1])
                } else if smoothing == .floor {
                    precisions[n - 1] = 100 * smoothValue / totals[n - 1]
                }
            } else {
                precisions[n - 1] = 100 * matches[n - 1] / totals[n - 1]
            }
        }
        // sacrebleu's my_log: log(0) is floored at -9999999999.
        let logSum = precisions[..<effective].reduce(0.0) { $0 + ($1 == 0 ? -9_999_999_999 : log($1)) }
        return result(brevityPenalty * exp(logSum / Double(effective)))
    }

    /// Lowercased (optionally), trailing whitespace removed, tokenized — sacrebleu's `_preprocess_segment`.
    func preprocessed(_ segment: String) -> [Unicode.Scalar] {
        var scalars = Array(segment.unicodeScalars)
        if lowercase { scalars = PythonText.lowercased(scalars) }
        return tokenizer.tokenize(PythonText.trailingSpaceRemoved(scalars))
    }

    /// Every n-gram of orders 1…maxNGramOrder of the whitespace-separated tokens, counted, and the token count.
    func nGrams(of line: [Unicode.Scalar], vocabulary: inout [String: Int]) -> (counts: [[Int]: Int], length: Int) {
        let tokens = PythonText.split(line).map { token in
            if let id = vocabulary[token] { return id }
            vocabulary[token] = vocabulary.count
            return vocabulary.count - 1
        }
        var counts: [[Int]: Int] = [:]
        for n in 1...maxNGramOrder where n <= tokens.count {
            for start in 0...(tokens.count - n) { counts[Array(tokens[start..<(start + n)]), default: 0] += 1 }
        }
        return (counts, tokens.count)
    }

    /// The reference length closest to the hypothesis's; the shorter one on a tie.
    static func closestReferenceLength(hypothesisLength: Int, referenceLengths: [Int]) -> Int {
        var best: (difference: Int, length: Int)? = nil
        for length in referenceLengths {
            let difference = abs(hypothesisLength - length)
            if best == nil || difference < best!.difference || (difference == best!.difference && length < best!.length) {
                best = (difference, length)
            }
        }
        return best?.length ?? -1
    }
}

/// BLEU's sufficient statistics; segments' statistics add up to the corpus's.
public struct BLEUStatistics: Equatable, Codable, Sendable {
    public var hypothesisLength = 0
    public var referenceLength = 0
    /// Clipped n-gram matches per order (index 0: unigrams).
    public var matches: [Int]
    /// Hypothesis n-grams per order.
    public var totals: [Int]

    public init(order: Int) {
        matches = [Int](repeating: 0, count: order)
        totals = [Int](repeating: 0, count: order)
    }

    public mutating func add(_ other: BLEUStatistics) {
        hypothesisLength += other.hypothesisLength
        referenceLength += other.referenceLength
        for n in matches.indices {
            matches[n] += other.matches[n]
            totals[n] += other.totals[n]
        }
    }
}

/// A BLEU score with its parts, as sacrebleu's `BLEUScore`.
public struct BLEUScore: Equatable, Codable, Sendable {
    /// BLEU on sacrebleu's 0…100 scale.
    public var score: Double
    /// Modified n-gram precisions (0…100), after smoothing.
    public var precisions: [Double]
    public var brevityPenalty: Double
    public var hypothesisLength: Int
    public var referenceLength: Int
    public var matches: [Int]
    public var totals: [Int]
}
