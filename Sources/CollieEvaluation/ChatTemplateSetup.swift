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
    /// Loads everything `config` names, as `TrainingSetup(config:source:)` does, with the chat template of the
    /// tokenizer's folder (tokenizer_config.json's `chat_template` or chat_template.jinja) when `chat_template: true`.
    /// - Throws: `TrainerError` naming the key whose file cannot be used (`chat_template` when there is no template).
    public static func load(config: CollieConfig, source: String? = nil) throws -> TrainingSetup {
        guard config.chatTemplate else { return try TrainingSetup(config: config, source: source) }
        let origin = source.map { "\($0): " } ?? ""
        let (tokenizer, folder) = try PretrainedModel.tokenizer(config: config, source: source)
        guard let folder else {
            throw TrainerError("\(origin)chat_template: true needs a tokenizer folder with a chat template")
        }
        let template: ChatTemplate?
        do { template = try ChatTemplate.load(fromFolder: folder) } catch {
            throw TrainerError("\(origin)chat_template: \(error)")
        }
        guard let template else {
            throw TrainerError("\(origin)chat_template: true, but \(folder.path) has no chat template (tokenizer_config.json's "
                               + "chat_template or chat_template.jinja)")
        }
        return try TrainingSetup(config: config, source: source, chatFormat: ChatFormat(template: template, tokenizer: tokenizer))
    }
}
