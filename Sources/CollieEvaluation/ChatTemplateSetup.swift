import CollieGeneration
import CollieModels
import CollieTokenizers
import CollieTraining
import Foundation

extension ChatFormat {
    /// The format `template` renders, with `tokenizer`'s BOS and EOS texts as the template's `bos_token`/`eos_token`.
    public init(template: ChatTemplate, tokenizer: Tokenizer) {
        let bos = tokenizer.configuration.bosToken, eos = tokenizer.configuration.eosToken
        self.init { messages, addGenerationPrompt in
            try template.render(messages.map { ChatMessage(role: $0.role, content: $0.content) },
                                addGenerationPrompt: addGenerationPrompt, bosToken: bos, eosToken: eos)
        }
    }
}

extension TrainingSetup {
    /// Loads everything `config` names, as `TrainingSetup(config:source:)` does, with the tokenizer's chat template
    /// (a folder's tokenizer_config.json `chat_template` or chat_template.jinja, a GGUF file's
    /// `tokenizer.chat_template`) when `chat_template: true`; a ChatGLM3 tokenizer without one lays turns out by its
    /// role tokens (`ChatFormat.roleTokens`).
    /// - Throws: `TrainerError` naming the key whose file cannot be used (`chat_template` when there is no template).
    public static func load(config: CollieConfig, source: String? = nil) throws -> TrainingSetup {
        guard config.chatTemplate else { return try TrainingSetup(config: config, source: source) }
        let origin = source.map { "\($0): " } ?? ""
        let (tokenizer, files) = try PretrainedModel.tokenizer(config: config, source: source)
        let template: ChatTemplate?
        do { template = try files.flatMap(ChatTemplate.init(files:)) } catch {
            throw TrainerError("\(origin)chat_template: \(error)")
        }
        if template == nil, tokenizer.format == .chatGLM3 {
            return try TrainingSetup(config: config, source: source, tokenizer: (tokenizer, files), chatFormat: .roleTokens)
        }
        guard let template else {
            throw TrainerError("\(origin)chat_template: true, but the tokenizer (\(config.tokenizerPath ?? "none")) has no chat "
                               + "template (tokenizer_config.json's chat_template, chat_template.jinja or a GGUF file's)")
        }
        return try TrainingSetup(config: config, source: source, tokenizer: (tokenizer, files),
                                 chatFormat: ChatFormat(template: template, tokenizer: tokenizer))
    }
}
