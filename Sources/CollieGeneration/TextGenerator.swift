import CollieEngine
import CollieIO
import CollieModels
import CollieTokenizers
import Foundation

/// A model folder or GGUF file ready to turn text into text: the model, its tokenizer, its chat template and
/// the ids that end a reply.
public final class TextGenerator {
    public let generator: Generator
    public let tokenizer: Tokenizer
    public let chatTemplate: ChatTemplate?
    /// The model config's, generation_config.json's and the tokenizer's end-of-sequence ids.
    public let stopTokenIDs: Set<Int>

    public init(generator: Generator, tokenizer: Tokenizer, chatTemplate: ChatTemplate?, stopTokenIDs: Set<Int>) {
        self.generator = generator
        self.tokenizer = tokenizer
        self.chatTemplate = chatTemplate
        self.stopTokenIDs = stopTokenIDs
    }

    /// Loads a Hugging Face folder — config.json and weights, tokenizer.json or tokenizer.model,
    /// tokenizer_config.json's chat_template or chat_template.jinja — or a GGUF file (weights, tokenizer and chat
    /// template from its metadata); `chatTemplate`, a Jinja file, replaces the model's template; optionally a PEFT
    /// adapter folder (LoRA or prompt tuning); with `quantization` the linear layers decode from quantized blocks.
    public static func load(from folder: URL, chatTemplate templateFile: URL? = nil, adapter: URL? = nil,
                            quantization: WeightQuantization? = nil) throws -> TextGenerator {
        let loaded = try PretrainedModel(model: .at(folder), tokenizer: folder, adapter: adapter.map(PretrainedModel.Adapter.folder),
                                         quantization: quantization)
        let (model, tokenizer) = (loaded.model, loaded.tokenizer)
        // Text can become any of the tokenizer's ids; a training set's ids are checked one by one instead.
        guard tokenizer.vocabularySize <= model.configuration.vocabularySize else {
            throw GenerationError.invalidPrompt(
                "\(folder.path): the tokenizer has \(tokenizer.vocabularySize) ids but the model only \(model.configuration.vocabularySize)")
        }
        let template = try templateFile.map { url in
            guard let text = String(data: try InputFile.contents(of: url), encoding: .utf8) else {
                throw CheckpointError(file: url.path, "is not UTF-8 text")
            }
            return try ChatTemplate(text)
        } ?? loaded.tokenizerFiles.flatMap(ChatTemplate.init(files:))
        var stops = Set(model.configuration.eosTokenIDs)
        if let eos = tokenizer.eosTokenID { stops.insert(eos) }
        stops.formUnion(tokenizer.chatStopTokenIDs)
        if !GGUFModelFile.isGGUF(folder) {
            stops.formUnion(try GenerationConfiguration.load(fromFolder: folder)?.eosTokenIDs ?? [])
        }
        return TextGenerator(generator: Generator(model: model), tokenizer: tokenizer, chatTemplate: template,
                             stopTokenIDs: stops)
    }

    /// The model's context length.
    public var contextLength: Int { generator.contextLength }

    /// Token ids of a plain-text prompt (with the tokenizer's BOS etc.).
    public func encode(prompt: String) -> [Int] { tokenizer.encode(prompt) }

    /// Token ids of a conversation rendered with the chat template (special tokens come from the template); without
    /// one, ChatGLM3's tokenizer lays it out by its role tokens (`Tokenizer.chatGLM3Input`; OpenAI's `tool` role is
    /// its `observation`).
    public func encode(chat messages: [ChatMessage]) throws -> [Int] {
        if chatTemplate == nil, tokenizer.format == .chatGLM3 {
            do {
                return try tokenizer.chatGLM3Input(messages.map { ($0.role == "tool" ? "observation" : $0.role, "", $0.content) })
            } catch { throw TemplateError("\(error)") }
        }
        guard let chatTemplate else {
            throw TemplateError("the model folder has no chat_template in tokenizer_config.json (give one with --chat-template)")
        }
        let text = try chatTemplate.render(messages, addGenerationPrompt: true, bosToken: tokenizer.configuration.bosToken,
                                           eosToken: tokenizer.configuration.eosToken)
        return tokenizer.encode(text, addSpecialTokens: false)
    }

    /// One completed prompt: its text, its token ids, why it ended and how many tokens it took.
    public struct Completion: Equatable, Sendable {
        public var text: String
        /// The generated ids (a stop string cuts `text`, not these).
        public var tokens: [Int]
        public var finishReason: FinishReason
        public var promptTokens: Int
        public var completionTokens: Int
    }

    /// Continues each prompt (one batch, left-padded). `parameters.stopTokenIDs` is extended with
    /// the model's own; stop strings end a row early. `onText(row, delta)` receives the text as it
    /// is released; `isCancelled` is polled after every token and stops every row when true.
    public func complete(_ prompts: [[Int]], parameters: GenerationParameters,
                         isCancelled: @escaping () -> Bool = { false },
                         onText: ((_ row: Int, _ delta: String) -> Void)? = nil) throws -> [Completion] {
        var parameters = parameters
        parameters.stopTokenIDs.formUnion(stopTokenIDs)
        var streams = prompts.map { _ in TextStream(tokenizer: tokenizer, stopStrings: parameters.stopStrings) }
        let sequences = try generator.generate(prompts: prompts, parameters: parameters) { row, token in
            if isCancelled() { return false }
            let delta = streams[row].append(token)
            if !delta.isEmpty { onText?(row, delta) }
            return !streams[row].isStopped
        }
        return sequences.enumerated().map { row, sequence in
            let tail = streams[row].finish()
            if !tail.isEmpty { onText?(row, tail) }
            return Completion(text: streams[row].text, tokens: sequence.tokens, finishReason: sequence.finishReason,
                              promptTokens: prompts[row].count, completionTokens: sequence.tokens.count)
        }
    }
}
