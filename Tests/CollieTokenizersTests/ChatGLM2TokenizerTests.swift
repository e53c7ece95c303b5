import CollieTestSupport
import Foundation
import XCTest
@testable import CollieTokenizers

/// ChatGLM2's tokenizer (`tokenizer.model` behind THUDM's chatglm2-6b `ChatGLMTokenizer`). tokenizers/chatglm2 is
/// a format-identical stand-in for the published file (see tokenizers/README.md); its references come from the
/// wrapper's steps run on it (scripts/fixtures/make_chatglm_tokenizer_fixtures.py), which the published wrapper
/// itself reproduces on every string.
final class ChatGLM2TokenizerTests: XCTestCase {
    func testCorpusMatchesThePythonWrapper() throws {
        let tokenizer = try Fixtures.tokenizer("chatglm2")
        XCTAssertEqual(tokenizer.format, .chatGLM2)
        try assertCorpusParity("chatglm2", corpus: Fixtures.chatGLMCorpus, expected: Fixtures.expected("chatglm2"),
                               encode: { tokenizer.encode($0, addSpecialTokens: $1) },
                               decode: { try tokenizer.decode($0, skipSpecialTokens: $1) })
    }

    func testSpecialTokensFollowThePiecesAndGMaskSopComeFirst() throws {
        let tokenizer = try Fixtures.tokenizer("chatglm2")
        XCTAssertEqual(tokenizer.vocabularySize, 605)
        XCTAssertEqual(["[MASK]", "[gMASK]", "[sMASK]", "sop", "eop"].map { tokenizer.id(forToken: $0) }, [600, 601, 602, 603, 604])
        XCTAssertEqual(tokenizer.token(forID: 603), "sop")
        XCTAssertEqual(tokenizer.encode("", addSpecialTokens: true), [601, 603])
        XCTAssertEqual(tokenizer.eosTokenID, 2)
        XCTAssertEqual(tokenizer.padTokenID, 0, "the wrapper pads with <unk>")
        XCTAssertEqual(tokenizer.promptSuffix, [])
        XCTAssertEqual(try tokenizer.decode([601, 603] + tokenizer.encode("Hello", addSpecialTokens: false) + [2]), "Hello")
    }
}
