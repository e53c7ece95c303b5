import CollieMetrics
import CollieModels
import CollieTraining
import Foundation

/// Perplexity of a model on a tokenized dataset (CoLLiE's `EvaluatorForPerplexity`).
///
/// Metrics: `loss` (mean NLL per predicted token over the whole set), `perplexity` = exp(loss) — the corpus
/// perplexity, independent of batching — and `batch_mean_perplexity`, the mean of exp(batch mean NLL) over
/// batches, which is what CoLLiE's `PPLMetric` reports.
public final class PerplexityEvaluator: Evaluator {
    public let name: String
    public let loader: DataLoader
    /// Whether each batch goes through the model flattened, without padding (`padding_free`).
    public let paddingFree: Bool

    /// - Parameters:
    ///   - batchSize: examples per forward pass; rows are padded on `padder`'s side and masked.
    ///   - paddingFree: run each batch's examples one after another in one row instead (where the model packs sequences).
    public init(name: String = "perplexity", dataset: TrainingDataset, batchSize: Int, padder: Padder,
                paddingFree: Bool = false) throws {
        self.name = name
        self.paddingFree = paddingFree
        loader = try DataLoader(dataset: dataset, batchSize: batchSize, lastBatch: .normal, shuffle: false, padder: padder)
    }

    /// The accumulated NLL of every batch, in order.
    public func perplexity(of model: any CausalLanguageModel) -> Perplexity {
        loader.negativeLogLikelihood(of: model, paddingFree: paddingFree)
    }

    public func evaluate(_ model: any CausalLanguageModel) throws -> [String: Double] {
        let result = perplexity(of: model)
        guard result.tokenCount > 0 else { throw EvaluationError("\(name): the dataset predicts no token") }
        return ["loss": result.meanNegativeLogLikelihood, "perplexity": result.corpusPerplexity,
                "batch_mean_perplexity": result.batchMeanPerplexity]
    }
}
