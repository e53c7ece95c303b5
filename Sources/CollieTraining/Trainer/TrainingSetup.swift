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
    /// The tokenizer's folder (its files are copied next to the final model), when it is a folder.
    public let tokenizerFolder: URL?
    public let trainDataset: TrainingDataset
    public let evaluationDataset: TrainingDataset?
    public let model: LlamaForCausalLM

    /// Loads everything `config` names. Errors name the config key and the file (and line, for records).
    /// - Parameter source: the config file, for error messages.
    /// - Throws: `TrainerError` naming the key whose file cannot be used.
    public init(config: CollieConfig, source: String? = nil) throws {
        self.config = config
        let origin = source.map { "\($0): " } ?? ""
        func failure(_ key: String, _ error: Error) -> TrainerError {
            TrainerError("\(origin)\(key): \(error)")
        }

        guard let tokenizerPath = config.tokenizerPath else {
            throw TrainerError("\(origin)tokenizer: required with a model preset")
        }
        let tokenizerURL = URL(fileURLWithPath: tokenizerPath)
        do { tokenizer = try Tokenizer(contentsOf: tokenizerURL) } catch { throw failure("tokenizer", error) }
        var isDirectory: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: tokenizerURL.path, isDirectory: &isDirectory)
        tokenizerFolder = isDirectory.boolValue ? tokenizerURL : nil

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
            trainDataset = try TrainingDataset(records: trainRecords, tokenizer: tokenizer, maxLength: config.maxLength)
            if !heldOut.isEmpty {
                evaluationDataset = try TrainingDataset(records: heldOut, tokenizer: tokenizer, maxLength: config.maxLength)
            } else if let evalPath = config.evalData {
                do {
                    evaluationDataset = try TrainingDataset.load(from: URL(fileURLWithPath: evalPath),
                                                                 format: config.recordFormat, tokenizer: tokenizer,
                                                                 maxLength: config.maxLength)
                } catch { throw failure("eval_data", error) }
            } else {
                evaluationDataset = nil
            }
        } catch let error as TrainerError {
            throw error
        } catch {
            throw failure("train_data", error)
        }

        switch config.model {
        case .preset(let preset):
            let configuration = preset.configuration(for: tokenizer, maxPositionEmbeddings: max(2048, config.maxLength),
                                                     initializerRange: config.initMethod.std)
            model = LlamaForCausalLM(configuration, seed: UInt64(bitPattern: Int64(config.seed)))
        case .folder(let path):
            do { model = try LlamaForCausalLM.load(from: URL(fileURLWithPath: path)) } catch { throw failure("model", error) }
        }
        if let peft = config.peftConfig {
            var promptTokens: [Int]?
            if case .promptTuning(let prompt) = peft, prompt.initialization == .text, let text = prompt.initializationText {
                promptTokens = tokenizer.encode(text)   // with special tokens, as PEFT tokenizes it
            }
            do {
                try model.addAdapter(peft, seed: UInt64(bitPattern: Int64(config.seed)), promptTokenIDs: promptTokens)
            } catch { throw failure("peft_config", error) }
        }
    }

    /// The id padding gets: the tokenizer's pad token, else its EOS, else 0.
    public var padTokenID: Int { tokenizer.padTokenID ?? tokenizer.eosTokenID ?? 0 }

    /// A trainer for this setup.
    public func makeTrainer(monitors: [TrainingMonitor] = [], outputDirectory: URL? = nil,
                            communicator: Communicator = SingleProcessCommunicator()) throws -> Trainer {
        let output = outputDirectory ?? URL(fileURLWithPath: config.outputDir)
        return try Trainer(config: config, model: model, trainDataset: trainDataset, evaluationDataset: evaluationDataset,
                           padTokenID: padTokenID, monitors: monitors, outputDirectory: outputDirectory,
                           evaluators: EvaluationSetup.makeEvaluators(config: config, tokenizer: tokenizer, outputDirectory: output),
                           communicator: communicator)
    }

    /// The token ids the model is prompted with for `config.samplePrompt`-style text: the tokenizer's prefix
    /// (BOS), then the text, wrapped in the Alpaca prompt when the training records are Alpaca's.
    public func promptIDs(for text: String) -> [Int] {
        let prompt = trainDataset.format == .alpaca ? AlpacaTemplate.prompt(instruction: text, input: "") : text
        return SpecialTokens(tokenizer).prefix + tokenizer.encode(prompt, addSpecialTokens: false)
    }

    /// Copies the tokenizer's files (tokenizer.json, tokenizer_config.json, tokenizer.model,
    /// special_tokens_map.json) into `folder`, so a saved model folder is complete.
    public func copyTokenizerFiles(to folder: URL) throws {
        guard let tokenizerFolder else { return }
        for name in ["tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json"] {
            let source = tokenizerFolder.appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: source.path) else { continue }
            try AtomicFile.write(data, to: folder.appendingPathComponent(name))
        }
    }
}

extension LlamaForCausalLM {
    /// Greedy continuation of `prompt`: up to `maxNewTokens` ids, each the most likely next token, stopping
    /// after one of `stopTokens` (the model's EOS ids by default). Decodes with a KV cache; a model gathered
    /// layer by layer (ZeRO-3's unit hooks), which cached decoding does not take, recomputes the whole sequence
    /// per token.
    public func greedyContinuation(of prompt: [Int], maxNewTokens: Int, stopTokens: Set<Int>? = nil) -> [Int] {
        precondition(!prompt.isEmpty, "a prompt needs at least one token")
        let stop = stopTokens ?? Set(configuration.eosTokenIDs)
        var generated: [Int] = []
        guard maxNewTokens > 0 else { return generated }
        withNoGrad {
            if parameterUnitHooks == nil {
                let cache = KVCache(model: self, batchSize: 1, tokens: prompt.count + maxNewTokens)
                var logits = nextTokenLogits([prompt], cache: cache)
                while true {
                    let next = logits.argmax(axis: -1).ints()[0]
                    generated.append(next)
                    if stop.contains(next) || generated.count == maxNewTokens { break }
                    logits = nextTokenLogits([[next]], cache: cache)
                }
                return
            }
            var tokens = prompt
            for _ in 0..<maxNewTokens {
                let logits = self(Tensor(ints: tokens, shape: [1, tokens.count]))
                let next = logits.slice(axis: 1, (tokens.count - 1)..<tokens.count).argmax(axis: -1).ints()[0]
                generated.append(next)
                tokens.append(next)
                if stop.contains(next) { break }
            }
        }
        return generated
    }
}
