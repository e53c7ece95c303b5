import CollieIO
import CollieModels
import CollieTokenizers
import Foundation

/// One chat message (`{"role": "user", "content": "…"}`).
public struct ChatMessage: Codable, Equatable, Sendable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// A tokenizer's `chat_template` (a Jinja template, rendered with the subset `JinjaSyntax` lists),
/// turning messages into the prompt text the model was tuned on, as `apply_chat_template` does.
public struct ChatTemplate {
    public let source: String
    private let nodes: [JinjaNode]

    /// Parses `source`; an unsupported construct is a `TemplateError` naming its line.
    public init(_ source: String) throws {
        self.source = source
        nodes = try JinjaParser.parse(source)
    }

    /// The template in `folder`'s tokenizer_config.json (`chat_template`, a string or a list of
    /// named templates, of which "default" is taken), or nil when there is none.
    public static func load(fromFolder folder: URL) throws -> ChatTemplate? {
        let url = folder.appendingPathComponent("tokenizer_config.json")
        let jinja = folder.appendingPathComponent("chat_template.jinja")
        guard FileManager.default.fileExists(atPath: url.path) else {
            return FileManager.default.fileExists(atPath: jinja.path) ? try template(inFile: jinja) : nil
        }
        struct Named: Decodable { let name: String; let template: String }
        enum Stored: Decodable {
            case single(String), named([Named])
            init(from decoder: Decoder) throws {
                let c = try decoder.singleValueContainer()
                if let s = try? c.decode(String.self) { self = .single(s) } else { self = .named(try c.decode([Named].self)) }
            }
        }
        struct Config: Decodable {
            let chatTemplate: Stored?
            enum CodingKeys: String, CodingKey { case chatTemplate = "chat_template" }
        }
        let config: Config
        do {
            config = try JSONDecoder().decode(Config.self, from: InputFile.contents(of: url))
        } catch {
            throw TemplateError("\(url.path): cannot read chat_template (\(error))")
        }
        switch config.chatTemplate {
        case .single(let s)?: return try ChatTemplate(s)
        case .named(let list)?:
            guard let chosen = list.first(where: { $0.name == "default" }) ?? list.first else { return nil }
            return try ChatTemplate(chosen.template)
        case nil:
            guard FileManager.default.fileExists(atPath: jinja.path) else { return nil }
            return try template(inFile: jinja)
        }
    }

    private static func template(inFile url: URL) throws -> ChatTemplate {
        guard let data = try? InputFile.contents(of: url), let text = String(data: data, encoding: .utf8) else {
            throw TemplateError("\(url.path): cannot read the file as UTF-8 text")
        }
        return try ChatTemplate(text)
    }

    /// The chat template of a tokenizer's files (`PretrainedModel.tokenizerFiles`): a folder's (as
    /// `load(fromFolder:)` reads it), or the chat_template.jinja made from a GGUF file's metadata; nil when there
    /// is none.
    public init?(files: TokenizerFiles) throws {
        switch files {
        case .folder(let folder):
            guard let template = try Self.load(fromFolder: folder) else { return nil }
            self = template
        case .contents(let contents):
            guard let data = contents["chat_template.jinja"] else { return nil }
            try self.init(String(decoding: data, as: UTF8.self))
        }
    }

    /// The prompt text for `messages`. `addGenerationPrompt` appends the assistant's header;
    /// `bosToken`/`eosToken` are the tokenizer's (`transformers` passes every special token).
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool = true, bosToken: String? = nil,
                       eosToken: String? = nil, extra: [String: JinjaValue] = [:]) throws -> String {
        var context = extra
        context["messages"] = .list(messages.map { .object([("role", .string($0.role)), ("content", .string($0.content))]) })
        context["add_generation_prompt"] = .bool(addGenerationPrompt)
        context["bos_token"] = bosToken.map(JinjaValue.string) ?? .undefined
        context["eos_token"] = eosToken.map(JinjaValue.string) ?? .undefined
        return try JinjaRenderer(context: context).render(nodes)
    }
}
