import CollieTestSupport
import Foundation
import XCTest
@testable import CollieTokenizers

/// Malformed or unsupported files give a thrown error naming the file, the line and the JSON key — never a
/// crash.
final class TokenizerErrorTests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws {
        folder = try temporaryFolder(for: self)
    }

    private func write(_ text: String, name: String = "tokenizer.json") throws -> URL {
        let url = folder.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    /// Loading `json` fails with a message containing each of `fragments` (and the file's name).
    private func assertLoadFails(_ json: String, mentions fragments: [String], line: UInt = #line) throws {
        let url = try write(json)
        XCTAssertThrowsError(try Tokenizer(contentsOf: url), line: line) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("tokenizer.json"), "no file in: \(message)", line: line)
            for fragment in fragments {
                XCTAssertTrue(message.contains(fragment), "'\(fragment)' missing from: \(message)", line: line)
            }
        }
    }

    private let minimalModel = #""model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":[["a","b"]]}"#

    func testMinimalTokenizerJSONLoadsAndEncodes() throws {
        let tokenizer = try Tokenizer(tokenizerJSON: try write("{\(minimalModel)}"))
        XCTAssertEqual(tokenizer.encode("abab"), [2, 2])
        XCTAssertEqual(tokenizer.encode("ba"), [1, 0])
        XCTAssertEqual(tokenizer.vocabularySize, 3)
    }

    func testTruncatedJSONNamesTheLine() throws {
        try assertLoadFails("{\n\"model\": {\"type\": \"BPE\",\n\"vocab\": {\"a\": 0", mentions: ["line 3", "model.vocab"])
    }

    func testUnknownModelTypeNamesTheKeyAndType() throws {
        try assertLoadFails(#"{"model":{"type":"WordPiece","vocab":{}}}"#, mentions: ["model", "WordPiece", "unsupported"])
    }

    func testUnknownPreTokenizerNamesTheKeyAndType() throws {
        try assertLoadFails(#"{"pre_tokenizer":{"type":"Nonsense"},\#(minimalModel)}"#,
                            mentions: ["pre_tokenizer", "Nonsense"])
    }

    func testWrongValueTypeNamesTheKeyPath() throws {
        try assertLoadFails(#"{"added_tokens":[{"id":"x","content":"<s>"}],\#(minimalModel)}"#,
                            mentions: ["added_tokens[0].id", "expected an integer"])
    }

    func testMergeOfAnUnknownTokenNamesTheMerge() throws {
        try assertLoadFails(#"{"model":{"type":"BPE","vocab":{"a":0},"merges":["a c"]}}"#,
                            mentions: ["model.merges[0]", "'c' is not in model.vocab"])
    }

    func testRegexThatDoesNotCompileNamesItsKey() throws {
        let json = #"{"pre_tokenizer":{"type":"Split","pattern":{"Regex":"(unclosed"},"behavior":"Isolated"},\#(minimalModel)}"#
        try assertLoadFails(json, mentions: ["pre_tokenizer.pattern.Regex", "does not compile"])
    }

    func testLoneSurrogateEscapeIsAnError() throws {
        try assertLoadFails(#"{"model":{"type":"BPE","vocab":{"\ud800":0},"merges":[]}}"#, mentions: ["lone surrogate"])
    }

    func testHugeTokenIDIsAnErrorNotAnAllocation() throws {
        try assertLoadFails(#"{"model":{"type":"BPE","vocab":{"a":4000000000},"merges":[]}}"#,
                            mentions: ["model.vocab.a", "out of range"])
    }

    func testDeepNestingIsAnErrorNotAStackOverflow() throws {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        try assertLoadFails(#"{"truncation":\#(deep),\#(minimalModel)}"#, mentions: ["nests deeper"])
    }

    func testMissingModelIsAnError() throws {
        try assertLoadFails(#"{"normalizer":null}"#, mentions: ["no \"model\""])
    }

    func testNotASentencePieceModelNamesTheFile() throws {
        let url = folder.appendingPathComponent("broken.model")
        try Data([0xFF, 0xFF, 0xFF, 0x01, 0x02]).write(to: url)
        XCTAssertThrowsError(try Tokenizer(contentsOf: url)) { error in
            XCTAssertTrue("\(error)".contains("broken.model"), "\(error)")
        }
    }

    func testFolderWithoutTokenizerFilesIsAnError() throws {
        XCTAssertThrowsError(try Tokenizer(contentsOf: folder)) { error in
            XCTAssertTrue("\(error)".contains("neither tokenizer.json nor vocab.json + merges.txt nor tokenizer.model"), "\(error)")
        }
    }

    func testMalformedTokenizerConfigNamesItsFile() throws {
        _ = try write("{\(minimalModel)}")
        _ = try write(#"{"add_bos_token": "yes"}"#, name: "tokenizer_config.json")
        XCTAssertThrowsError(try Tokenizer(contentsOf: folder)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("tokenizer_config.json") && message.contains("add_bos_token"), message)
        }
    }

    func testDecodingAnUnknownIDThrows() throws {
        let tokenizer = try Fixtures.tokenizer("gpt2")
        XCTAssertThrowsError(try tokenizer.decode([15496, 999_999])) { error in
            XCTAssertTrue("\(error)".contains("999999"), "\(error)")
        }
        XCTAssertThrowsError(try Fixtures.tokenizer("llama2-spm").decode([-1]))
    }

    func testFilesThatAreNotRegularAreRefusedNotWaitedOn() throws {
        let fifo = folder.appendingPathComponent("tokenizer.json")
        XCTAssertEqual(mkfifo(fifo.path, 0o600), 0)
        XCTAssertThrowsError(try Tokenizer(contentsOf: fifo)) { error in
            XCTAssertTrue("\(error)".contains("tokenizer.json") && "\(error)".contains("not a regular file"), "\(error)")
        }
    }
}
