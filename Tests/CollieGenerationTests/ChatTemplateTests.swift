import CollieGeneration
import CollieModels
import CollieTestSupport
import CollieTokenizers
import Foundation
import XCTest

/// Chat templates render as `transformers`' `apply_chat_template` on real templates; what the
/// subset does not support is a clear error.
final class ChatTemplateTests: XCTestCase {
    struct Fixture: Decodable {
        struct Case: Decodable {
            let template: String
            let conversation: Int
            let add_generation_prompt: Bool
            let text: String?
            let error: String?
        }
        let templates: [String: String]
        let bos_token: String
        let eos_token: String
        let conversations: [[ChatMessage]]
        let cases: [Case]
    }

    func testTemplatesRenderAsTransformers() throws {
        let fixture = try Fixtures.json("chat_templates.json", as: Fixture.self)
        XCTAssertEqual(Set(fixture.templates.keys), ["llama2", "llama3", "chatml", "zephyr", "whitespace_control"])
        for c in fixture.cases {
            let template = try ChatTemplate(fixture.templates[c.template]!)
            let label = "\(c.template) conversation \(c.conversation) add_generation_prompt \(c.add_generation_prompt)"
            let render = {
                try template.render(fixture.conversations[c.conversation], addGenerationPrompt: c.add_generation_prompt,
                                    bosToken: fixture.bos_token, eosToken: fixture.eos_token)
            }
            if let text = c.text {
                XCTAssertEqual(try render(), text, label)
            } else {
                XCTAssertThrowsError(try render(), label) { error in
                    XCTAssertTrue("\(error)".contains("Conversation roles must alternate"), "\(error)")
                }
            }
        }
    }

    func testLlamaTwoTemplateRejectsNonAlternatingRoles() throws {
        let fixture = try Fixtures.json("chat_templates.json", as: Fixture.self)
        let template = try ChatTemplate(fixture.templates["llama2"]!)
        XCTAssertThrowsError(try template.render([.init(role: "user", content: "a"), .init(role: "user", content: "b")],
                                                 bosToken: "<s>", eosToken: "</s>")) { error in
            XCTAssertTrue("\(error)".contains("Conversation roles must alternate user/assistant"), "\(error)")
        }
    }

    func testUnsupportedConstructsNameTheLine() {
        XCTAssertThrowsError(try ChatTemplate("hello\n{% macro greet(x) %}{{ x }}{% endmacro %}")) { error in
            XCTAssertEqual("\(error)", "chat template line 2: the 'macro' statement is not supported (supported: if, for, set, break, continue)")
        }
        XCTAssertThrowsError(try ChatTemplate("{% if x %}never closed")) { error in
            XCTAssertTrue("\(error)".contains("missing {% endif %}"), "\(error)")
        }
        XCTAssertThrowsError(try ChatTemplate("a\nb\n{{ x + }}")) { error in
            XCTAssertTrue("\(error)".hasPrefix("chat template line 3:"), "\(error)")
        }
        XCTAssertThrowsError(try ChatTemplate("{{ x | frobnicate }}").render([])) { error in
            XCTAssertTrue("\(error)".contains("unknown filter 'frobnicate'"), "\(error)")
        }
    }

    func testExpressionsFollowJinjaSemantics() throws {
        func render(_ source: String) throws -> String { try ChatTemplate(source).render([.init(role: "user", content: "Hi")]) }
        XCTAssertEqual(try render("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ 1 / 2 }} {{ 2 * 3 + 1 }}"), "3 -4 1 0.5 7")
        XCTAssertEqual(try render("{{ 'a' ~ 1 ~ none }} {{ [1, 2, 3][1:] }} {{ 'abc'[::-1] }}"), "a1None [2, 3] cba")
        XCTAssertEqual(try render("{{ messages[0].role }}{{ messages[-1]['content'] }}{{ messages | length }}"), "userHi1")
        XCTAssertEqual(try render("{% for m in messages %}{{ loop.first }}{{ loop.last }}{% else %}empty{% endfor %}"), "TrueTrue")
        XCTAssertEqual(try render("{{ 'yes' if 'x' in 'xyz' and not undefined_thing is defined else 'no' }}"), "yes")
        XCTAssertEqual(try render("{{ {'a': 1, 'b': [true, 'q']} | tojson }}"), #"{"a": 1, "b": [true, "q"]}"#)
        XCTAssertEqual(try render("{% for i in range(5) %}{% if i == 3 %}{% break %}{% endif %}{{ i }}{% endfor %}"), "012")
        XCTAssertEqual(try render("  {%- if true %}\n  x\n{% endif -%}  \n"), "  x\n")
    }

    func testTemplateFileThatIsNotUTF8NamesTheFile() throws {
        let folder = try temporaryFolder(for: self)
        try Data("{}".utf8).write(to: folder.appendingPathComponent("tokenizer_config.json"))
        try Data([0x7B, 0x7B, 0xFF, 0xFE, 0x7D, 0x7D]).write(to: folder.appendingPathComponent("chat_template.jinja"))
        XCTAssertThrowsError(try ChatTemplate.load(fromFolder: folder)) { error in
            XCTAssertTrue(error is TemplateError, "\(error)")
            XCTAssertTrue("\(error)".contains("chat_template.jinja"), "\(error)")
        }
    }

    func testTemplateFilesThatAreFIFOsAreRefusedNotWaitedOn() throws {
        let folder = try temporaryFolder(for: self)
        let config = folder.appendingPathComponent("tokenizer_config.json")
        XCTAssertEqual(mkfifo(config.path, 0o600), 0)
        XCTAssertThrowsError(try ChatTemplate.load(fromFolder: folder)) { error in
            XCTAssertTrue("\(error)".contains("tokenizer_config.json") && "\(error)".contains("FIFO"), "\(error)")
        }
        try FileManager.default.removeItem(at: config)
        try Data("{}".utf8).write(to: config)
        XCTAssertEqual(mkfifo(folder.appendingPathComponent("chat_template.jinja").path, 0o600), 0)
        XCTAssertThrowsError(try ChatTemplate.load(fromFolder: folder)) { error in
            XCTAssertTrue("\(error)".contains("chat_template.jinja"), "\(error)")
        }
    }
}

/// Without a chat template, a ChatGLM3 tokenizer lays a conversation out by its role tokens, as its remote code's
/// `chat` does (OpenAI's `tool` role is its `observation`); another tokenizer without a template is an error.
final class RoleTokenChatTests: XCTestCase {
    private func generator(_ tokenizer: String) throws -> TextGenerator {
        let model = LlamaForCausalLM(LlamaConfiguration(hiddenSize: 16, intermediateSize: 32, hiddenLayers: 1, attentionHeads: 2,
                                                        keyValueHeads: 2, vocabularySize: 640, maxPositionEmbeddings: 64), seed: 1)
        return TextGenerator(generator: Generator(model: model),
                             tokenizer: try Tokenizer(contentsOf: TestPaths.tokenizers.appendingPathComponent(tokenizer)),
                             chatTemplate: nil, stopTokenIDs: [])
    }

    func testChatGLM3ConversationUsesItsRoleTokens() throws {
        let glm3 = try generator("chatglm3")
        let messages = [ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "user", content: "Weather?"),
                        ChatMessage(role: "assistant", content: "call"), ChatMessage(role: "tool", content: "{\"t\": 21}")]
        let ids = try glm3.encode(chat: messages)
        let expected = try glm3.tokenizer.chatGLM3Input([("system", "", "Be brief."), ("user", "", "Weather?"),
                                                          ("assistant", "", "call"), ("observation", "", "{\"t\": 21}")])
        XCTAssertEqual(ids, expected)
        XCTAssertEqual(Array(ids.prefix(3)), [601, 603, 605], "[gMASK] sop <|system|>")
        XCTAssertEqual(ids.last, 607, "ends with <|assistant|>")
        XCTAssertThrowsError(try glm3.encode(chat: [ChatMessage(role: "narrator", content: "x")]))
        XCTAssertThrowsError(try generator("chatglm2").encode(chat: messages)) {
            XCTAssertTrue("\($0)".contains("chat_template"), "\($0)")
        }
    }
}
