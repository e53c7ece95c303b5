import Foundation

/// Perplexity accumulated over batches of next-token negative log-likelihoods.
///
/// The corpus perplexity is exp(total NLL / total predicted tokens) — every token weighs the same, which is
/// what `transformers`' examples and papers report. CoLLiE's `PPLMetric` instead averages a perplexity per
/// batch; that figure depends on how the data is batched and is kept as `batchMeanPerplexity`.
public struct Perplexity: Codable, Equatable, Sendable {
    /// Σ NLL over every predicted token so far (natural log).
    public private(set) var negativeLogLikelihood: Double = 0
    public private(set) var tokenCount = 0
    /// exp(mean NLL) of each batch added.
    public private(set) var batchPerplexities: [Double] = []

    public init() {}

    /// Adds one batch: its summed NLL and how many tokens it predicts.
    public mutating func add(negativeLogLikelihood sum: Double, tokens: Int) {
        negativeLogLikelihood += sum
        tokenCount += tokens
        if tokens > 0 { batchPerplexities.append(exp(sum / Double(tokens))) }
    }

    /// Mean NLL per predicted token (the evaluation loss).
    public var meanNegativeLogLikelihood: Double { tokenCount == 0 ? .nan : negativeLogLikelihood / Double(tokenCount) }

    /// exp(total NLL / total tokens).
    public var corpusPerplexity: Double { exp(meanNegativeLogLikelihood) }

    /// The mean of the batches' perplexities (CoLLiE's per-batch figure).
    public var batchMeanPerplexity: Double {
        batchPerplexities.isEmpty ? .nan : batchPerplexities.reduce(0, +) / Double(batchPerplexities.count)
    }
}
