import Foundation

/// Instruction data as one-turn conversations in the model's chat template (`chat_template: true`): the prompt
/// becomes the user's message and the response the assistant's reply, as TRL's SFTTrainer formats conversational
/// data for an instruction-tuned model. The template's own special tokens (ChatML's `<|im_start|>`, LLaMA-3's
/// headers, a BOS it writes) replace the tokenizer's prefix and suffix; the reply's end (`<|im_end|>`, `</s>`) is
/// trained with it.
///
/// CollieTraining has no template engine: the renderer comes from above (CollieEvaluation's
/// `ChatFormat(template:tokenizer:)` wraps CollieGeneration's `ChatTemplate`; `TrainingSetup.load` uses it).
///
/// ChatGLM3 has no template but role tokens no text can spell: `roleTokens` lays out a turn as its tokenizer's
/// `build_chat_input` and its finetune demo do — `[gMASK] sop <|user|>` "\n" prompt `<|assistant|>` (masked), then
/// "\n" reply `</s>` (trained: the demo's mask, shifted by one, starts after `<|assistant|>` and ends on the EOS).
public struct ChatFormat {
    /// Renders `(role, content)` messages; with `addGenerationPrompt` it appends the assistant's header.
    public typealias Render = (_ messages: [(role: String, content: String)], _ addGenerationPrompt: Bool) throws -> String

    private let render: Render?

    public init(render: @escaping Render) {
        self.render = render
    }

    private init() { render = nil }

    /// ChatGLM3's turns by role tokens (the tokenizer's `chatGLM3Input`), for a tokenizer without a template.
    public static var roleTokens: ChatFormat { ChatFormat() }

    /// Whether turns are laid out by ChatGLM3's role tokens rather than rendered by a template.
    public var usesRoleTokens: Bool { render == nil }

    /// The user's message for an Alpaca record: the instruction, then its input (if any) after a blank line.
    public static func userMessage(instruction: String, input: String) -> String {
        input.isEmpty ? instruction : instruction + "\n\n" + input
    }

    /// The template text of a conversation whose user says `user`, up to the assistant's header.
    public func prompt(user: String) throws -> String {
        guard let render else { throw DatasetError(nil, "ChatGLM3's turns are laid out by role tokens, not rendered as text") }
        return try render([("user", user)], true)
    }

    /// The conversation (`user`, then `assistant`) split where the assistant's reply starts: the masked prompt and
    /// the trained response (the reply and what the template closes its turn with).
    /// - Throws: `DatasetError` when the template renders the conversation without the prompt as its start.
    public func split(user: String, assistant: String) throws -> (prompt: String, response: String) {
        let prompt = try prompt(user: user)
        let whole = try render!([("user", user), ("assistant", assistant)], false)
        guard whole.utf8.starts(with: prompt.utf8) else {
            throw DatasetError(nil, "the chat template renders a conversation that does not start with its prompt "
                               + "(the user's turn and the assistant's header), so the reply cannot be told apart")
        }
        return (prompt, String(decoding: whole.utf8.dropFirst(prompt.utf8.count), as: UTF8.self))
    }
}
