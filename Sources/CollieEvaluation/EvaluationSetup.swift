import CollieEngine
import CollieMetrics
import CollieModels
import CollieTokenizers
import CollieTraining
import Foundation

/// What `collie eval CONFIG` needs, loaded and checked before anything runs: the model and tokenizer as
/// `collie train` loads them (`PretrainedModel(config:)`: a Hugging Face folder or a preset initialized from
/// `seed`, with `peft_config`'s adapter or a saved one), and the evaluators of `evaluators:` (plus a perplexity
/// evaluator named `eval` on `eval_data` when the config has one).
public struct EvaluationSetup {
    public let config: CollieConfig
    public let tokenizer: Tokenizer
    public let model: any CausalLanguageModel
    /// The config's evaluators; more can be added before `run(monitor:)`.
    public var evaluators: [Evaluator]

    /// - Parameters:
    ///   - source: the config file, for error messages.
    ///   - adapter: a saved PEFT adapter folder to evaluate with (instead of a new `peft_config` adapter).
    /// - Throws: `TrainerError` naming the key whose file cannot be used.
    public init(config: CollieConfig, source: String? = nil, adapter: URL? = nil) throws {
        self.config = config
        let origin = source.map { "\($0): " } ?? ""
        let (tokenizer, files) = try PretrainedModel.tokenizer(config: config, source: source)
        self.tokenizer = tokenizer
        var evaluators = try Self.makeEvaluators(config: config, tokenizer: tokenizer,
                                                 outputDirectory: URL(fileURLWithPath: config.outputDir), source: source)
        if let evalData = config.evalData {
            do {
                let dataset = try TrainingDataset.load(from: URL(fileURLWithPath: evalData), format: config.recordFormat,
                                                       tokenizer: tokenizer, maxLength: config.maxLength)
                evaluators.insert(try PerplexityEvaluator(name: "eval", dataset: dataset, batchSize: config.evalBatchSize,
                                                          padder: Self.padder(config, tokenizer),
                                                          paddingFree: config.paddingFree), at: 0)
            } catch { throw TrainerError("\(origin)eval_data: \(error)") }
        }
        guard !evaluators.isEmpty else { throw TrainerError("\(origin)evaluators: nothing to evaluate; add evaluators or eval_data") }
        self.evaluators = evaluators
        model = try PretrainedModel(config: config, source: source, tokenizer: (tokenizer, files), adapter: adapter).model
    }

    /// Runs every evaluator on the model, tells `monitor` (one `.evaluation(step: 0, …)` event) and returns the
    /// metrics named `<evaluator>/<metric>`.
    public func run(monitor: TrainingMonitor? = nil) throws -> [String: Double] {
        var metrics: [String: Double] = [:]
        // As the trainer's evaluation: the forward passes' loops on the spinning pool.
        try Parallel.withTrainingWorkers {
            for evaluator in evaluators { metrics.merge(try evaluator.prefixedMetrics(model)) { $1 } }
        }
        try monitor?.record(.evaluation(step: 0, metrics: metrics))
        return metrics
    }

    static func padder(_ config: CollieConfig, _ tokenizer: Tokenizer) -> Padder {
        Padder(side: config.paddingSide, padTokenID: tokenizer.padTokenID ?? tokenizer.eosTokenID ?? 0)
    }

    /// The evaluators `config.evaluators` describes. Decoded outputs go to `outputDirectory/<name>.decoded.jsonl`.
    /// - Throws: `TrainerError` naming `evaluators[i].data` and the file's problem.
    public static func makeEvaluators(config: CollieConfig, tokenizer: Tokenizer, outputDirectory: URL,
                                      source: String? = nil) throws -> [Evaluator] {
        let origin = source.map { "\($0): " } ?? ""
        var names: Set<String> = []
        return try config.evaluators.enumerated().map { index, settings in
            let name = settings.resolvedName
            guard names.insert(name).inserted else {
                throw TrainerError("\(origin)evaluators[\(index)].name: two evaluators are named \(name)")
            }
            let url = URL(fileURLWithPath: settings.data)
            func limited<T>(_ records: [T]) -> [T] { settings.maxExamples.map { Array(records.prefix($0)) } ?? records }
            do {
                switch settings.kind {
                case .perplexity:
                    let (_, records) = try TrainingRecord.load(from: url, format: config.recordFormat)
                    let dataset = try TrainingDataset(records: limited(records), tokenizer: tokenizer, maxLength: config.maxLength)
                    return try PerplexityEvaluator(name: name, dataset: dataset, batchSize: config.evalBatchSize,
                                                   padder: padder(config, tokenizer), paddingFree: config.paddingFree)
                case .generation:
                    let metrics: [GenerationMetric] = try settings.metrics.map { metric in
                        switch metric {
                        case .bleu: .bleu(settings.bleu.metric)
                        case .rouge: .rouge(try settings.rouge.metric())
                        case .exactMatch: .exactMatch
                        case .decode: .decode(outputDirectory.appendingPathComponent("\(name).decoded.jsonl"))
                        }
                    }
                    return try GenerationEvaluator(name: name, records: limited(try GenerationRecord.load(from: url)),
                                                   tokenizer: tokenizer, settings: settings.generation, metrics: metrics,
                                                   maxLength: config.maxLength)
                case .classification:
                    return try ClassificationEvaluator(name: name, records: limited(try ClassificationRecord.load(from: url)),
                                                       tokenizer: tokenizer, style: settings.style, settings: settings.generation)
                }
            } catch {
                throw TrainerError("\(origin)evaluators[\(index)].data: \(error)")
            }
        }
    }
}

extension TrainingSetup {
    /// A trainer for this setup with the evaluators the config's `evaluators:` describes (decoded outputs go to
    /// `outputDirectory`, by default `output_dir`).
    public func makeTrainer(monitors: [TrainingMonitor] = [], outputDirectory: URL? = nil, source: String? = nil,
                            communicator: Communicator = SingleProcessCommunicator()) throws -> Trainer {
        let output = outputDirectory ?? URL(fileURLWithPath: config.outputDir)
        return try makeTrainer(monitors: monitors, outputDirectory: outputDirectory,
                               evaluators: EvaluationSetup.makeEvaluators(config: config, tokenizer: tokenizer,
                                                                          outputDirectory: output, source: source),
                               communicator: communicator)
    }
}
