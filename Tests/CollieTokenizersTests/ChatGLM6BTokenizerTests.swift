import CollieTestSupport
import Foundation
import XCTest
@testable import CollieTokenizers

/// ChatGLM-6B's tokenizer (`ice_text.model` behind THUDM's `ChatGLMTokenizer`). tokenizers/chatglm6b is a
/// format-identical stand-in for the published file (see tokenizers/README.md); its references come from the
/// wrapper's steps run on it (scripts/fixtures/make_chatglm_tokenizer_fixtures.py).
final class ChatGLM6BTokenizerTests: XCTestCase {
    private var folder: URL { Fixtures.tokenizers.appendingPathComponent("chatglm6b") }

    func testCorpusMatchesThePythonWrapper() throws {
        let tokenizer = try Fixtures.tokenizer("chatglm6b")
        try assertCorpusParity("chatglm6b", corpus: Fixtures.chatGLMCorpus, expected: Fixtures.expected("chatglm6b"),
                               encode: { tokenizer.encode($0, addSpecialTokens: $1) },
                               decode: { try tokenizer.decode($0, skipSpecialTokens: $1) })
    }

    func testFolderLoadsWithTheWrappersSpecialTokenLayout() throws {
        let tokenizer = try Tokenizer(contentsOf: folder)
        XCTAssertEqual(tokenizer.format, .chatGLM6B)
        XCTAssertEqual(tokenizer.id(forToken: "[MASK]"), 140)
        XCTAssertEqual(tokenizer.id(forToken: "[gMASK]"), 141)
        XCTAssertEqual(tokenizer.bosTokenID, 144, "<sop>")
        XCTAssertEqual(tokenizer.eosTokenID, 145, "<eop>")
        XCTAssertEqual(tokenizer.padTokenID, 3)
        XCTAssertEqual(tokenizer.promptSuffix, [141, 144])
        XCTAssertEqual(tokenizer.encode("", addSpecialTokens: true), [141, 144], "build_inputs_with_special_tokens appends [gMASK] <sop>")
        XCTAssertEqual(tokenizer.vocabularySize, 148)
        let file = try Tokenizer(contentsOf: folder.appendingPathComponent("ice_text.model"))
        XCTAssertEqual(file.format, .chatGLM6B, "the file alone reads the tokenizer_config.json beside it")
        XCTAssertEqual(file.encode("你好\n  hi"), tokenizer.encode("你好\n  hi"))
    }

    func testNumImageTokensShiftsEveryTextID() throws {
        let model = folder.appendingPathComponent("ice_text.model")
        let shifted = try Tokenizer(chatGLM6BModel: model, configuration: TokenizerConfiguration(numberOfImageTokens: 20000))
        let plain = try Tokenizer(chatGLM6BModel: model, configuration: TokenizerConfiguration(numberOfImageTokens: 0))
        let text = "问：你好\n\tworld   !"
        XCTAssertEqual(shifted.encode(text), plain.encode(text).map { $0 + 20000 })
        XCTAssertEqual(try shifted.decode(shifted.encode(text, addSpecialTokens: false)),
                       try plain.decode(plain.encode(text, addSpecialTokens: false)))
        XCTAssertEqual(shifted.token(forID: 7), "<image_7>")
        XCTAssertEqual(shifted.id(forToken: "<image_7>"), 7)
        XCTAssertEqual(shifted.id(forToken: "[gMASK]"), 20141)
        XCTAssertEqual(shifted.vocabularySize, 20148)
        XCTAssertEqual(try TokenizerConfiguration(folder: folder).numberOfImageTokens, 0)
        let absent = try Tokenizer(chatGLM6BModel: model)
        XCTAssertEqual(absent.bosTokenID, 20144, "the wrapper's default num_image_tokens is 20000")
    }

    func testWhitespaceBecomesTheWrappersMarkers() {
        XCTAssertEqual(ChatGLM6BTextTokenizer.markingWhitespace("a" + String(repeating: " ", count: 163) + "b\t\n c"),
                       "a<|blank_80|><|blank_80|><|blank_3|>b<|tab|><n> c")
        XCTAssertEqual(ChatGLM6BTextTokenizer.unmarkingWhitespace("<|blank_80|><|blank_2|>x<n><|tab|>"),
                       String(repeating: " ", count: 82) + "x\n\t")
    }
}
