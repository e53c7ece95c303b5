import Foundation
import XCTest
@testable import CollieTokenizers

/// Tokenizer files from strangers, read from bytes: numbers out of range are errors naming the key, and any
/// bytes at all give an error, never a crash.
final class TokenizerInputLimitsTests: XCTestCase {
    private let model = #""model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":[["a","b"]]}"#

    private func assertJSONFails(_ json: String, mentions fragments: [String], line: UInt = #line) {
        XCTAssertThrowsError(try Tokenizer(tokenizerJSON: Array(json.utf8), file: "strange.json"), line: line) { error in
            let message = "\(error)"
            for fragment in ["strange.json"] + fragments {
                XCTAssertTrue(message.contains(fragment), "'\(fragment)' missing from: \(message)", line: line)
            }
        }
    }

    func testReadsTokenizerJSONFromBytes() throws {
        let tokenizer = try Tokenizer(tokenizerJSON: Array("{\(model)}".utf8))
        XCTAssertEqual(tokenizer.encode("abab"), [2, 2])
    }

    func testNumbersOutOfRangeAreErrorsNamingTheKey() {
        for id in ["-1", "99999999999999999999", "1.0", "1e3", "4294967296", "2097153"] {
            assertJSONFails(#"{"model":{"type":"BPE","vocab":{"a":\#(id)},"merges":[]}}"#, mentions: ["model.vocab.a"])
            assertJSONFails(#"{"added_tokens":[{"id":\#(id),"content":"<s>","special":true}],\#(model)}"#,
                            mentions: ["added_tokens[0].id"])
            assertJSONFails(#"{"model":{"type":"Unigram","unk_id":\#(id),"vocab":[["a",-1.0]]}}"#, mentions: ["unk_id"])
        }
        assertJSONFails(#"{"model":{"type":"Unigram","unk_id":5,"vocab":[["a",-1.0]]}}"#,
                        mentions: ["unk_id 5 is not an index"])
        assertJSONFails(#"{"decoder":{"type":"Strip","content":" ","start":-1,"stop":0},\#(model)}"#,
                        mentions: ["decoder", "negative"])
    }

    func testArbitraryBytesAreErrorsNotCrashes() {
        var generator = SystemRandomNumberGenerator()
        let fragments = ["{", "}", "[", "]", ",", ":", "\"model\"", "\"type\"", "\"BPE\"", "\"Unigram\"", "\"vocab\"",
                         "\"merges\"", "\"a\"", "\"ab\"", "0", "-1", "1e999", "99999999999999999999", "null", "true",
                         "\"\\ud800\"", "\"added_tokens\"", "\"id\"", "\"content\"", "\"decoder\"", "\"Strip\"",
                         "\"start\"", "\"pre_tokenizer\"", "\"Split\"", "\"pattern\"", "\"Regex\"", "\"(\""]
        for _ in 0..<3_000 {
            let text = (0..<Int.random(in: 1...24, using: &generator)).map { _ in
                fragments.randomElement(using: &generator) ?? ""
            }.joined()
            _ = try? Tokenizer(tokenizerJSON: Array(text.utf8), file: "fuzz.json")
            let bytes = (0..<Int.random(in: 0...64, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            _ = try? Tokenizer(tokenizerJSON: bytes, file: "fuzz.json")
            _ = try? Tokenizer(sentencePieceModel: Data(bytes), file: "fuzz.model")
        }
        XCTAssertThrowsError(try Tokenizer(sentencePieceModel: Data(), file: "empty.model")) { error in
            XCTAssertTrue("\(error)".contains("empty.model"), "\(error)")
        }
    }
}
