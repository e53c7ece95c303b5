import CollieGeneration
import Foundation

extension FuzzEntryPoints {
    /// The conversation every parsed template renders: a system prompt, two turns, an empty message.
    static let sampleMessages = [
        ChatMessage(role: "system", content: "You are helpful."),
        ChatMessage(role: "user", content: "Hi <b>there</b> 🦙"),
        ChatMessage(role: "assistant", content: "Hello!\n"),
        ChatMessage(role: "user", content: ""),
    ]

    /// A chat template (Jinja), parsed and rendered with `sampleMessages`, as a tokenizer_config.json's
    /// `chat_template` is when `collie generate --chat` or the server builds a prompt.
    static func chatTemplate(_ input: [UInt8]) throws {
        let template = try ChatTemplate(String(decoding: input, as: UTF8.self))
        _ = try template.render(sampleMessages, addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>")
    }
}
