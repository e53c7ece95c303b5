import CollieGeneration
import CollieTestSupport
import CollieTokenizers
import XCTest

/// Streamed text equals the final text, never shows half a character or the start of a stop string.
final class TextStreamTests: XCTestCase {
    func tokenizer() throws -> Tokenizer {
        try Tokenizer(contentsOf: TestPaths.llama2Tokenizer)
    }

    func testStreamedDeltasConcatenateToTheDecodedText() throws {
        let tokenizer = try tokenizer()
        let text = "Hello world, naïve café — 日本語 🙂 done."
        let ids = tokenizer.encode(text, addSpecialTokens: false)
        var stream = TextStream(tokenizer: tokenizer)
        var pieces: [String] = []
        for id in ids { pieces.append(stream.append(id)) }
        pieces.append(stream.finish())
        XCTAssertEqual(pieces.joined(), try tokenizer.decode(ids, skipSpecialTokens: true))
        XCTAssertFalse(pieces.contains { $0.contains("\u{FFFD}") }, "an incomplete UTF-8 sequence was released")
        XCTAssertGreaterThan(pieces.filter { !$0.isEmpty }.count, 5)
    }

    func testStopStringEndsTheTextBeforeIt() throws {
        let tokenizer = try tokenizer()
        let ids = tokenizer.encode("The answer is 42.\nUser: next question", addSpecialTokens: false)
        var stream = TextStream(tokenizer: tokenizer, stopStrings: ["\nUser:"])
        var released = ""
        for id in ids {
            released += stream.append(id)
            XCTAssertFalse(released.contains("\n"), "the start of a stop string was released early: \(released.debugDescription)")
            if stream.isStopped { break }
        }
        released += stream.finish()
        XCTAssertTrue(stream.isStopped)
        XCTAssertEqual(released, "The answer is 42.")
        XCTAssertEqual(stream.text, "The answer is 42.")
    }
}
