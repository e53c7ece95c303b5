import CollieEngine
import CollieIO
import CollieTokenizers
import Foundation

/// A model with its tokenizer, loaded the one way every command loads them (`collie train`, `eval`, `generate`,
/// `serve`, `score`, `convert`): the model from a Hugging Face folder, a GGUF file (dequantized at load, or its linear
/// layers kept in their quantized blocks) or a preset initialized at random, the tokenizer from a folder, a file or a
/// GGUF file's metadata, and optionally a PEFT adapter — a new one to train, or a saved one to apply.
public struct PretrainedModel {
    public let model: any CausalLanguageModel
    public let tokenizer: Tokenizer
    /// The tokenizer's files (written next to a saved model), when it came from a folder or a GGUF file.
    public let tokenizerFiles: TokenizerFiles?

    /// Where a model's weights come from.
    public enum Source: Sendable {
        /// A Hugging Face folder (config.json and safetensors).
        case folder(URL)
        /// A GGUF file (llama.cpp's format): configuration from its metadata, weights dequantized to the model's dtype.
        case gguf(URL)
        /// A preset shape for the tokenizer's vocabulary, initialized at random from `seed` straight into `dtype`, its
        /// weight matrices drawn from `distribution` (N(0, initializerRange²) when normal).
        case preset(ModelPreset, seed: UInt64, maxPositionEmbeddings: Int, initializerRange: Double, dtype: DType = .float32,
                    distribution: WeightDistribution = .normal)

        /// The model at a path as a user gives it: a `.gguf` file, else a Hugging Face folder.
        public static func at(_ url: URL) -> Source {
            GGUFModelFile.isGGUF(url) ? .gguf(url) : .folder(url)
        }

        /// Whether the source is a GGUF file.
        public var isGGUF: Bool {
            if case .gguf = self { return true }
            return false
        }
    }

    /// A PEFT adapter to put on the model.
    public enum Adapter: Sendable {
        /// A new adapter as `configuration` describes (training), seeded; prompt tuning's TEXT initialization
        /// tokenizes `prompt_tuning_init_text` with the model's tokenizer.
        case new(PEFTConfiguration, seed: UInt64)
        /// A PEFT folder saved by PEFT or Collie (LoRA or prompt tuning).
        case folder(URL)
    }

    /// Which part failed to load, so a caller can name its own key or flag (`model:` / `--model`, …).
    public struct LoadingError: Error, CustomStringConvertible {
        public enum Part: Sendable { case model, tokenizer, adapter }
        public let part: Part
        public let description: String
    }

    /// Loads the tokenizer at `tokenizer` (a folder, a tokenizer.json / tokenizer.model file or a GGUF file), then
    /// the model (its linear layers quantized as `quantization` says) and the adapter.
    /// - Throws: `LoadingError` naming the part and the file's problem.
    public init(model source: Source, tokenizer location: URL, adapter: Adapter? = nil,
                quantization: WeightQuantization? = nil) throws {
        let (tokenizer, files) = try Self.tokenizer(at: location)
        try self.init(model: source, tokenizer: tokenizer, tokenizerFiles: files, adapter: adapter, quantization: quantization)
    }

    /// The model and adapter for an already loaded tokenizer (`tokenizer(at:)`).
    public init(model source: Source, tokenizer: Tokenizer, tokenizerFiles: TokenizerFiles?, adapter: Adapter? = nil,
                quantization: WeightQuantization? = nil, mapped: Bool = false) throws {
        self.tokenizer = tokenizer
        self.tokenizerFiles = tokenizerFiles
        model = try Self.model(source, tokenizer: tokenizer, adapter: adapter, quantization: quantization, mapped: mapped)
    }

    /// The tokenizer at `location` — a folder, a tokenizer.json / tokenizer.model file, or a GGUF file (its
    /// `tokenizer.*` metadata, as transformers converts it) — and the files a saved model carries for it: a
    /// folder's, or those made from the GGUF metadata (tokenizer.json, tokenizer_config.json, chat_template.jinja).
    public static func tokenizer(at location: URL) throws -> (tokenizer: Tokenizer, files: TokenizerFiles?) {
        do {
            if GGUFModelFile.isGGUF(location) {
                return try GGUFModelFile.tokenizer(of: GGUFFile(url: location))
            }
            try InputFile.checkFileOrFolder(location)
            let tokenizer = try Tokenizer(contentsOf: location)
            var isDirectory: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: location.path, isDirectory: &isDirectory)
            return (tokenizer, isDirectory.boolValue ? .folder(location) : nil)
        } catch {
            throw LoadingError(part: .tokenizer, description: "\(error)")
        }
    }

    /// The model alone (`collie score` reads token ids and needs no tokenizer; a preset or a new prompt-tuning
    /// adapter initialized from text does). With `quantization` its decoder blocks' linear weights are kept in
    /// quantized blocks (`.keepBlocks` needs a GGUF file) and frozen: only an adapter trains.
    ///
    /// With `mapped` (a tensor-parallel rank, whose trainer splits the model next) a folder's large weights stay views
    /// of the mapped files (`loadMapped`), so each rank copies only its slices.
    public static func model(_ source: Source, tokenizer: Tokenizer? = nil, adapter: Adapter? = nil,
                             quantization: WeightQuantization? = nil, mapped: Bool = false) throws -> any CausalLanguageModel {
        let model: any CausalLanguageModel
        if quantization == .keepBlocks, !(source.isGGUF) {
            throw LoadingError(part: .model, description: "quantized blocks are kept from a GGUF file only; this model "
                               + "is not one: quantize it at load instead (quantize: q8_0, q4_0, q4_1 or q4_k)")
        }
        switch source {
        case .folder(let folder):
            do {
                let configuration = try LlamaConfiguration.load(from: folder)
                let architecture = architecture(of: configuration)
                model = mapped && quantization == nil
                    ? try architecture.loadMapped(from: CheckpointFolder(url: folder), configuration: configuration)
                    : try architecture.load(from: CheckpointFolder(url: folder), configuration: configuration,
                                            quantization: quantization)
            } catch { throw LoadingError(part: .model, description: "\(error)") }
        case .gguf(let url):
            do {
                let weights = try GGUFWeights(file: GGUFFile(url: url))
                model = try architecture(of: weights.configuration).load(from: weights, configuration: weights.configuration,
                                                                          quantization: quantization)
            } catch { throw LoadingError(part: .model, description: "\(error)") }
        case .preset(let preset, let seed, let positions, let range, let dtype, let distribution):
            guard let tokenizer else { throw LoadingError(part: .tokenizer, description: "required with a model preset") }
            let configuration = preset.configuration(for: tokenizer, maxPositionEmbeddings: positions, initializerRange: range)
            do {
                // No weight file bounds a preset's size: its configuration (the vocabulary is the tokenizer's) is
                // checked, and its parameters must fit in memory, before any is allocated.
                try configuration.validate()
                try ParameterMemory.check(architecture(of: configuration).parameterShapes(for: configuration).map(\.shape),
                                          dtype: dtype, for: "a \(preset.rawValue) model of \(configuration.vocabularySize) token ids")
            } catch { throw LoadingError(part: .model, description: "\(error)") }
            model = architecture(of: configuration).init(configuration, seed: seed, dtype: dtype, distribution: distribution)
            if case .quantize(let format) = quantization {
                do { try model.quantizeLinearLayers(as: format) } catch {
                    throw LoadingError(part: .model, description: "\(error)")
                }
            }
        }
        do {
            switch adapter {
            case nil: break
            case .new(let configuration, let seed):
                var promptTokens: [Int]?
                if case .promptTuning(let prompt) = configuration, prompt.initialization == .text,
                   let text = prompt.initializationText {
                    guard let tokenizer else { throw PEFTError("prompt_tuning_init: TEXT needs a tokenizer") }
                    promptTokens = tokenizer.encode(text)   // with special tokens, as PEFT tokenizes it
                }
                try model.addAdapter(configuration, seed: seed, promptTokenIDs: promptTokens)
            case .folder(let folder):
                try model.loadAdapter(from: folder)
            }
        } catch let error as LoadingError {
            throw error
        } catch {
            throw LoadingError(part: .adapter, description: "\(error)")
        }
        return model
    }

    /// The model registry: the architecture that implements `configuration.modelType` (config.json's `model_type`).
    /// (Not inlined: Swift 6.3.1's release build crashes in its SIL ownership verifier when it devirtualizes the
    /// `init` that `model(_:tokenizer:adapter:)` calls on the returned type.)
    @inline(never)
    public static func architecture(of configuration: LlamaConfiguration) -> any CausalLanguageModel.Type {
        switch configuration.modelType {
        case .llama, .mistral, .qwen2, .internlm: LlamaForCausalLM.self
        case .internlm2: InternLM2ForCausalLM.self
        case .chatglm: configuration.chatGLM6B == nil ? ChatGLMForConditionalGeneration.self : ChatGLM6BForConditionalGeneration.self
        case .moss: MossForCausalLM.self
        }
    }
}
