import CollieGeneration
import CollieIO
import CollieMetrics
import CollieModels
import CollieTokenizers
import CollieTraining
import Foundation

/// What a generation evaluator computes from the decoded predictions and their targets.
public enum GenerationMetric {
    /// Corpus BLEU (sacrebleu's), each record's targets as its references: `bleu`.
    case bleu(BLEU)
    /// Mean ROUGE F1 (rouge-score's) over records, the best target per record: `rouge1`, `rougeL`, … and
    /// `<type>_precision`, `<type>_recall`.
    case rouge(ROUGE)
    /// Fraction of predictions equal to a target after trimming whitespace: `accuracy`.
    case exactMatch
    /// Writes every prediction and its first target as JSON lines to the URL (CoLLiE's `DecodeMetric`).
    case decode(URL)
}

/// Generates a continuation for every prompt and scores it against the record's targets (CoLLiE's
/// `EvaluatorForGeneration`). Prompts are the tokenizer's prefix (BOS) + the record's `text`; the generated ids
/// are decoded without special tokens.
public final class GenerationEvaluator: Evaluator {
    public let name: String
    public let records: [GenerationRecord]
    public let tokenizer: Tokenizer
    public var settings: GenerationSettings
    public var metrics: [GenerationMetric]
    /// Prompts longer than this (with the new tokens; or than the model's positions) keep their last tokens.
    public var maxLength: Int
    public var generator: ContinuationGenerator
    /// The pairs of the last `evaluate(_:)`.
    public private(set) var decoded: [DecodedPair] = []

    /// - Throws: `EvaluationError` when a record has no target and a metric needs one.
    public init(name: String, records: [GenerationRecord], tokenizer: Tokenizer, settings: GenerationSettings = .init(),
                metrics: [GenerationMetric], maxLength: Int = 2048, generator: @escaping ContinuationGenerator = greedyGenerator) throws {
        guard !records.isEmpty else { throw EvaluationError("\(name): no records to evaluate") }
        if metrics.contains(where: { if case .decode = $0 { false } else { true } }),
           let bare = records.first(where: { $0.targets.isEmpty }) {
            throw EvaluationError("\(name): \(bare.location.map { "\($0): " } ?? "")a record without \"target\" cannot be scored")
        }
        guard settings.maxNewTokens >= 1, maxLength > settings.maxNewTokens else {
            throw EvaluationError("\(name): max_new_tokens (\(settings.maxNewTokens)) must be at least 1 and below max_length (\(maxLength))")
        }
        self.name = name
        self.records = records
        self.tokenizer = tokenizer
        self.settings = settings
        self.metrics = metrics
        self.maxLength = maxLength
        self.generator = generator
    }

    /// The decoded continuation of every record's prompt, in order.
    public func predictions(_ model: any CausalLanguageModel) throws -> [String] {
        let special = SpecialTokens(tokenizer)
        let stop = Set(settings.stopTokenIDs ?? model.configuration.eosTokenIDs)
        // Prompt tuning's virtual tokens take positions too (`Generator.contextLength` leaves them out).
        let positions = min(maxLength, Generator(model: model).contextLength)
        let room = positions - settings.maxNewTokens
        guard room >= 1 else {
            throw EvaluationError("\(name): max_new_tokens (\(settings.maxNewTokens)) leaves no room for a prompt within "
                                  + "\(positions) positions")
        }
        return try records.map { record in
            var prompt = special.prefix + tokenizer.encode(record.text, addSpecialTokens: false) + special.promptSuffix
            guard !prompt.isEmpty else {
                throw EvaluationError("\(name): \(record.location.map { "\($0): " } ?? "")the prompt has no tokens and the tokenizer adds no BOS")
            }
            if prompt.count > room { prompt = Array(prompt.suffix(room)) }
            var generated = try generator(model, prompt, settings)
            if let last = generated.last, stop.contains(last) { generated.removeLast() }
            return try tokenizer.decode(generated, skipSpecialTokens: true)
        }
    }

    public func evaluate(_ model: any CausalLanguageModel) throws -> [String: Double] {
        let predictions = try predictions(model)
        decoded = zip(predictions, records).map { DecodedPair(prediction: $0, target: $1.targets.first ?? "") }
        var results: [String: Double] = [:]
        for metric in metrics {
            switch metric {
            case .bleu(let bleu):
                results["bleu"] = try bleu.corpusScore(hypotheses: predictions, references: records.map(\.targets)).score
            case .rouge(let rouge):
                var sums: [String: Double] = [:]
                for (prediction, record) in zip(predictions, records) {
                    for (kind, score) in try rouge.score(targets: record.targets, prediction: prediction) {
                        sums["\(kind)", default: 0] += score.fmeasure
                        sums["\(kind)_precision", default: 0] += score.precision
                        sums["\(kind)_recall", default: 0] += score.recall
                    }
                }
                for (key, sum) in sums { results[key] = sum / Double(records.count) }
            case .exactMatch:
                let trimmed = { (text: String) in text.trimmingCharacters(in: .whitespacesAndNewlines) }
                let hits = zip(predictions, records).filter { prediction, record in
                    record.targets.contains { trimmed($0) == trimmed(prediction) }
                }.count
                results["accuracy"] = Double(hits) / Double(records.count)
            case .decode(let url):
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try AtomicFile.write(DecodedOutputs.jsonLines(decoded), to: url)
            }
        }
        return results
    }
}
