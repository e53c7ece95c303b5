import CollieTestSupport
import Foundation
import XCTest
@testable import CollieTokenizers

/// ChatGLM3's tokenizer: ChatGLM2's `tokenizer.model` behind chatglm3-6b's `ChatGLMTokenizer`, which adds the role
/// tokens `<|system|> <|user|> <|assistant|> <|observation|>` after ChatGLM2's five and lays out conversations by
/// them (`build_chat_input`). tokenizers/chatglm3 is a format-identical stand-in (the ChatGLM2 stand-in's model with
/// chatglm3-6b's tokenizer_config.json fields); references are the wrapper's steps re-created on it
/// (scripts/fixtures/make_chatglm_tokenizer_fixtures.py).
final class ChatGLM3TokenizerTests: XCTestCase {
    static let corpus: [String] = {
        struct Line: Decodable { let text: String }
        return Fixtures.chatGLMCorpus + Fixtures.jsonLines(Fixtures.folder.appendingPathComponent("chatglm3_corpus.jsonl"))
            .map { (try! JSONDecoder().decode(Line.self, from: $0)).text }
    }()

    func testCorpusMatchesTheWrapper() throws {
        let tokenizer = try Fixtures.tokenizer("chatglm3")
        XCTAssertEqual(tokenizer.format, .chatGLM3)
        try assertCorpusParity("chatglm3", corpus: Self.corpus, expected: Fixtures.expected("chatglm3"),
                               encode: { tokenizer.encode($0, addSpecialTokens: $1) },
                               decode: { try tokenizer.decode($0, skipSpecialTokens: $1) })
    }

    func testRoleTokensFollowChatGLM2sSpecialTokens() throws {
        let tokenizer = try Fixtures.tokenizer("chatglm3")
        XCTAssertEqual(tokenizer.vocabularySize, 609)
        XCTAssertEqual(["[gMASK]", "sop", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>"].map { tokenizer.id(forToken: $0) },
                       [601, 603, 605, 606, 607, 608])
        XCTAssertEqual(tokenizer.chatStopTokenIDs, [606, 608], "<|user|> and <|observation|> end a reply")
        XCTAssertEqual(tokenizer.encode("<|user|>", addSpecialTokens: false).contains(606), false,
                       "role text in the input is text, not the role")
        XCTAssertEqual(try tokenizer.decode([607] + tokenizer.encode("Hi", addSpecialTokens: false) + [2]), "<|assistant|> Hi")
        XCTAssertEqual(try Fixtures.tokenizer("chatglm2").chatStopTokenIDs, [])
    }

    func testConversationsAreLaidOutAsBuildChatInput() throws {
        struct Message: Decodable { let role: String; let content: String; let metadata: String? }
        struct Chat: Decodable { let messages: [Message]; let ids: [Int]; let decoded: String }
        let chats = try JSONDecoder().decode([Chat].self, from: Data(contentsOf: Fixtures.folder.appendingPathComponent("expected/chatglm3_chats.json")))
        XCTAssertEqual(chats.count, 4)
        let tokenizer = try Fixtures.tokenizer("chatglm3")
        for chat in chats {
            let ids = try tokenizer.chatGLM3Input(chat.messages.map { ($0.role, $0.metadata ?? "", $0.content) })
            XCTAssertEqual(ids, chat.ids, chat.decoded)
            XCTAssertEqual(try tokenizer.decode(ids), chat.decoded)
        }
        XCTAssertThrowsError(try tokenizer.chatGLM3Input([("wizard", "", "hi")])) { XCTAssertTrue("\($0)".contains("wizard")) }
        XCTAssertThrowsError(try Fixtures.tokenizer("chatglm2").chatGLM3Input([("user", "", "hi")]))
    }

    /// A copy of the ChatGLM2 stand-in folder with `files` added or replaced.
    private func folder(_ files: [String: String]) throws -> URL {
        let folder = try temporaryFolder(for: self).appendingPathComponent("glm")
        try FileManager.default.copyItem(at: Fixtures.tokenizerURL("chatglm2"), to: folder)
        for (name, text) in files { try Data(text.utf8).write(to: folder.appendingPathComponent(name)) }
        return folder
    }

    func testAChatGLM3FolderIsKnownByItsConfigOrItsRemoteCode() throws {
        let config = #"{"tokenizer_class": "ChatGLMTokenizer", "#
        XCTAssertEqual(try Tokenizer(contentsOf: folder([:])).format, .chatGLM2)
        XCTAssertEqual(try Tokenizer(contentsOf: folder(["tokenization_chatglm.py": "roles = ['<|user|>', '<|observation|>']\n"])).format,
                       .chatGLM3)
        XCTAssertEqual(try Tokenizer(contentsOf: folder(["tokenizer_config.json": config + #""name_or_path": "THUDM/chatglm3-6b"}"#])).format,
                       .chatGLM3)
        XCTAssertEqual(try Tokenizer(contentsOf: folder(["tokenizer_config.json": config + #""chat_template": "<|user|>{{ m }}"}"#])).format,
                       .chatGLM3)
    }

    func testEncodeSpecialTokensTurnsRoleTextIntoRoles() throws {
        let plain = try Fixtures.tokenizer("chatglm3")
        let folder = try folder(["tokenizer_config.json": #"{"tokenizer_class": "ChatGLMTokenizer", "name_or_path": "THUDM/chatglm3-6b", "encode_special_tokens": true}"#])
        let tokenizer = try Tokenizer(contentsOf: folder)
        let ids = tokenizer.encode("Hi <|user|>there<|assistant|>", addSpecialTokens: false)
        XCTAssertEqual(ids, plain.encode("Hi ", addSpecialTokens: false) + [606] + plain.encode("there", addSpecialTokens: false) + [607])
    }
}
