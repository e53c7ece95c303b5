import CollieEngine
import CollieIO
import CollieModels
import CollieTokenizers
import Foundation

/// What a config names, loaded and checked before anything is written: the tokenizer, the training and
/// evaluation datasets, and the model (a Hugging Face folder, or a preset initialized at random with the
/// tokenizer's vocabulary). `collie train` builds one, then a `Trainer` from it.
public struct TrainingSetup {
    public let config: CollieConfig
    public let tokenizer: Tokenizer
    /// The tokenizer's files (written next to every saved model), when it came from a folder or a GGUF file.
    public let tokenizerFiles: TokenizerFiles?
    public let trainDataset: TrainingDataset
    public let evaluationDataset: TrainingDataset?
    public let model: any CausalLanguageModel
    /// The tokenizer's chat template as the data uses it (`chat_template: true`), else nil.
    public let chatFormat: ChatFormat?

    /// Loads everything `config` names. Errors name the config key and the file (and line, for records).
    /// - Parameters:
    ///   - source: the config file, for error messages.
    ///   - tokenizer: the config's tokenizer when already loaded (`PretrainedModel.tokenizer(config:source:)`).
    ///   - chatFormat: the tokenizer's chat template, required by `chat_template: true` (`TrainingSetup.load`, in
    ///     CollieEvaluation, reads it from the tokenizer's files).
    /// - Throws: `TrainerError` naming the key whose file cannot be used.
    public init(config: CollieConfig, source: String? = nil, tokenizer loaded: (Tokenizer, TokenizerFiles?)? = nil,
                chatFormat: ChatFormat? = nil) throws {
        self.config = config
        let origin = source.map { "\($0): " } ?? ""
        func failure(_ key: String, _ error: Error) -> TrainerError {
            TrainerError("\(origin)\(key): \(error)")
        }

        // The tokenizer and the data first: a typo there should not wait for a large model to load.
        (tokenizer, tokenizerFiles) = try loaded ?? PretrainedModel.tokenizer(config: config, source: source)
        guard !config.chatTemplate || chatFormat != nil else {
            throw TrainerError("\(origin)chat_template: true needs the tokenizer's chat template (TrainingSetup.load reads it)")
        }
        let chatFormat = config.chatTemplate ? chatFormat : nil
        self.chatFormat = chatFormat

        guard let trainPath = config.trainData else { throw TrainerError("\(origin)train_data: no training data given") }
        do {
            let (_, records) = try TrainingRecord.load(from: URL(fileURLWithPath: trainPath), format: config.recordFormat)
            var trainRecords = records, heldOut: [TrainingRecord] = []
            if config.evalSplit > 0 {
                let count = min(records.count - 1, max(1, Int((Double(records.count) * config.evalSplit).rounded())))
                guard count >= 1 else {
                    throw DatasetError(file: trainPath, "\(records.count) record(s) cannot be split for evaluation (eval_split)")
                }
                heldOut = Array(records.suffix(count))
                trainRecords = Array(records.dropLast(count))
            }
            trainDataset = try TrainingDataset(records: trainRecords, tokenizer: tokenizer, maxLength: config.maxLength,
                                               chatFormat: chatFormat)
            if !heldOut.isEmpty {
                evaluationDataset = try TrainingDataset(records: heldOut, tokenizer: tokenizer, maxLength: config.maxLength,
                                                        chatFormat: chatFormat)
            } else if let evalPath = config.evalData {
                do {
                    evaluationDataset = try TrainingDataset.load(from: URL(fileURLWithPath: evalPath),
                                                                 format: config.recordFormat, tokenizer: tokenizer,
                                                                 maxLength: config.maxLength, chatFormat: chatFormat)
                } catch { throw failure("eval_data", error) }
            } else {
                evaluationDataset = nil
            }
        } catch let error as TrainerError {
            throw error
        } catch {
            throw failure("train_data", error)
        }
        // A tensor-parallel rank maps the folder's weights; the trainer copies only its slices when it splits them.
        model = try PretrainedModel(config: config, source: source, tokenizer: (tokenizer, tokenizerFiles),
                                    mapped: config.tensorParallelSize > 1).model
    }

    /// The id padding gets: the tokenizer's pad token, else its EOS, else 0.
    public var padTokenID: Int { tokenizer.padTokenID ?? tokenizer.eosTokenID ?? 0 }

    /// A trainer for this setup with `evaluators`. (`CollieEvaluation` adds a `makeTrainer` that builds the
    /// evaluators `evaluators:` describes.)
    public func makeTrainer(monitors: [TrainingMonitor] = [], outputDirectory: URL? = nil, evaluators: [Evaluator],
                            communicator: Communicator = SingleProcessCommunicator()) throws -> Trainer {
        try Trainer(config: config, model: model, trainDataset: trainDataset, evaluationDataset: evaluationDataset,
                    padTokenID: padTokenID, monitors: monitors, outputDirectory: outputDirectory,
                    tokenizerFiles: tokenizerFiles, evaluators: evaluators, communicator: communicator)
    }

    /// The token ids the model is prompted with for `config.samplePrompt`-style text: with `chat_template: true`
    /// the chat template's prompt for it as the user's message; else the tokenizer's prefix (BOS), then the text,
    /// wrapped in the Alpaca prompt when the training records are Alpaca's, then the tokenizer's prompt suffix
    /// (ChatGLM-6B's `[gMASK] <sop>`).
    public func promptIDs(for text: String) throws -> [Int] {
        if let chatFormat { return tokenizer.encode(try chatFormat.prompt(user: text), addSpecialTokens: false) }
        let prompt = trainDataset.format == .alpaca ? AlpacaTemplate.prompt(instruction: text, input: "") : text
        let special = SpecialTokens(tokenizer)
        return special.prefix + tokenizer.encode(prompt, addSpecialTokens: false) + special.promptSuffix
    }
}

extension PretrainedModel {
    /// The model, tokenizer and adapter a config names — `model:` (a folder, a GGUF file, or a preset initialized from `seed`;
    /// its linear weights quantized by `quantized:` / `quantize:`), `tokenizer:`, `peft_config:` (a new adapter) —
    /// loaded as every command loads them. Errors name the key.
    /// - Parameters:
    ///   - source: the config file, for error messages.
    ///   - tokenizer: the config's tokenizer when already loaded (`tokenizer(config:source:)`).
    ///   - adapter: a saved PEFT folder to apply instead of a new `peft_config` adapter (`collie eval --adapter`).
    ///   - mapped: leave a folder's large weights as read-only views of the mapped files (`loadMapped`), for a trainer
    ///     that splits the model for tensor parallelism at once.
    /// - Throws: `TrainerError` naming the key whose file cannot be used.
    public init(config: CollieConfig, source: String? = nil, tokenizer: (Tokenizer, TokenizerFiles?)? = nil,
                adapter: URL? = nil, mapped: Bool = false) throws {
        let (tokenizer, files) = try tokenizer ?? Self.tokenizer(config: config, source: source)
        let seed = UInt64(bitPattern: Int64(config.seed))
        let model: Source = switch config.model {
        case .preset(let preset):
            .preset(preset, seed: seed, maxPositionEmbeddings: max(2048, config.maxLength), initializerRange: config.initMethod.std,
                    dtype: config.dtype.dtype, distribution: config.initMethod.kind)
        case .folder(let path): .at(URL(fileURLWithPath: path))
        }
        let peft: Adapter? = adapter.map(Adapter.folder) ?? config.peftConfig.map { .new($0, seed: seed) }
        do {
            try self.init(model: model, tokenizer: tokenizer, tokenizerFiles: files, adapter: peft,
                          quantization: config.weightQuantization, mapped: mapped)
        } catch let error as LoadingError {
            let key = switch error.part {
            case .model: config.quantized ? "model (quantized: true)"
                : config.quantize.map { "model (quantize: \($0.rawValue))" } ?? "model"
            case .tokenizer: "tokenizer"
            case .adapter: adapter == nil ? "peft_config" : "adapter \(adapter!.path)"
            }
            throw TrainerError("\(source.map { "\($0): " } ?? "")\(key): \(error)")
        }
    }

    /// The tokenizer `tokenizer:` (or the model folder or GGUF file) names, and its files.
    /// - Throws: `TrainerError` naming the key.
    public static func tokenizer(config: CollieConfig, source: String? = nil) throws -> (Tokenizer, TokenizerFiles?) {
        let origin = source.map { "\($0): " } ?? ""
        guard let path = config.tokenizerPath else { throw TrainerError("\(origin)tokenizer: required with a model preset") }
        do { return try tokenizer(at: URL(fileURLWithPath: path)) } catch {
            throw TrainerError("\(origin)tokenizer: \(error)")
        }
    }
}
