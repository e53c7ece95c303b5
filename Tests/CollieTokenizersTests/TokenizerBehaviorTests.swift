import CollieTestSupport
import Foundation
import XCTest
@testable import CollieTokenizers

/// The public surface beyond parity: vocabulary access, special tokens, batches, configuration, and the
/// hand-written split matchers against the general regex engine.
final class TokenizerBehaviorTests: XCTestCase {
    func testHandWrittenSplitMatchersEqualTheRegexEngineOnTheCorpus() throws {
        for (known, source) in [(KnownSplitPattern.gpt2, KnownSplitPattern.gpt2Source),
                                (.llama3, KnownSplitPattern.llama3Source), (.qwen2, KnownSplitPattern.qwen2Source)] {
            let regex = try RegexPattern(source, file: "", key: "")
            var differences = 0
            // ICU folds case without U+017F ſ ~ s, which Oniguruma (and the hand-written matcher) applies.
            for text in Fixtures.corpus where !text.contains("ſ") {
                let bytes = Array(text.utf8)
                var byHand: [Range<Int>] = []
                bytes.withUnsafeBufferPointer { buffer in
                    guard let base = buffer.baseAddress else { return }
                    known.forEachMatch(in: base, 0..<buffer.count) { byHand.append($0) }
                }
                let byRegex = bytes.withUnsafeBufferPointer { buffer in
                    buffer.baseAddress.map { regex.matches(in: $0, 0..<buffer.count) } ?? []
                }
                if byHand != byRegex {
                    differences += 1
                    if differences <= 3 { XCTFail("\(known): \(text.debugDescription.prefix(100)): \(byHand.prefix(6)) vs \(byRegex.prefix(6))") }
                }
            }
            XCTAssertEqual(differences, 0, "\(known)")
        }
    }

    func testVocabularyAccessUsesTheFileSpelling() throws {
        let gpt2 = try Fixtures.tokenizer("gpt2")
        XCTAssertEqual(gpt2.vocabularySize, 50257)
        XCTAssertEqual(gpt2.token(forID: 995), "Ġworld")
        XCTAssertEqual(gpt2.id(forToken: "Ġworld"), 995)
        XCTAssertEqual(gpt2.token(forID: 50256), "<|endoftext|>")
        XCTAssertEqual(gpt2.id(forToken: "<|endoftext|>"), 50256)
        XCTAssertNil(gpt2.token(forID: 50257))
        XCTAssertNil(gpt2.id(forToken: "not a token at all"))
        XCTAssertEqual(gpt2.bosTokenID, 50256)
        XCTAssertEqual(gpt2.addedTokens.map(\.content), ["<|endoftext|>"])

        let llama = try Fixtures.tokenizer("llama2-spm")
        XCTAssertEqual(llama.format, .sentencePiece)
        XCTAssertEqual(llama.vocabularySize, 32000)
        XCTAssertEqual(llama.token(forID: 1), "<s>")
        XCTAssertEqual(llama.token(forID: 13), "<0x0A>")
        XCTAssertEqual(llama.id(forToken: "▁the"), 278)
        XCTAssertEqual([llama.bosTokenID, llama.eosTokenID, llama.unknownTokenID], [1, 2, 0])
        XCTAssertNil(llama.padTokenID)

        let llama3 = try Fixtures.tokenizer("llama3")
        XCTAssertEqual(llama3.vocabularySize, 128002)
        XCTAssertEqual([llama3.bosTokenID, llama3.eosTokenID], [128000, 128001])
    }

    func testSpecialTokensFollowThePostProcessorOrTheConfiguration() throws {
        XCTAssertEqual(try Fixtures.tokenizer("llama2").encode("hi"), [1, 7251])
        XCTAssertEqual(try Fixtures.tokenizer("llama2").encode("hi", addSpecialTokens: false), [7251])
        XCTAssertEqual(try Fixtures.tokenizer("llama2-spm").encode("hi"), [1, 7251])
        XCTAssertEqual(try Fixtures.tokenizer("qwen2").encode("hi"), [6023])  // ByteLevel post-processor: none

        // add_bos_token/add_eos_token in tokenizer_config.json decide, as in transformers.
        let folder = try temporaryFolder(for: self)
        try FileManager.default.copyItem(at: Fixtures.tokenizers.appendingPathComponent("llama2/tokenizer.json"),
                                         to: folder.appendingPathComponent("tokenizer.json"))
        try #"{"bos_token": {"content": "<s>"}, "eos_token": "</s>", "add_bos_token": false, "add_eos_token": true}"#
            .write(to: folder.appendingPathComponent("tokenizer_config.json"), atomically: true, encoding: .utf8)
        let configured = try Tokenizer(contentsOf: folder)
        XCTAssertEqual(configured.configuration.addEOSToken, true)
        XCTAssertEqual(configured.encode("hi"), [7251, 2])
        XCTAssertEqual(try configured.decode([1, 7251, 2], skipSpecialTokens: true), "hi")
        XCTAssertEqual(try configured.decode([1, 7251, 2]), "<s> hi</s>")
    }

    func testBatchEncodingEqualsOneByOne() throws {
        let tokenizer = try Fixtures.tokenizer("llama3")
        let texts = Array(Fixtures.corpus.prefix(400))
        XCTAssertEqual(tokenizer.encode(batch: texts), texts.map { tokenizer.encode($0) })
        XCTAssertEqual(tokenizer.encode(batch: []), [])
    }

    func testConcurrentCallersGetTheSameIDs() throws {
        let tokenizer = try Fixtures.tokenizer("gpt2")
        let texts = Array(Fixtures.corpus.prefix(200))
        let expected = texts.map { tokenizer.encode($0) }
        var results = [[[Int]]](repeating: [], count: 4)
        results.withUnsafeMutableBufferPointer { output in
            nonisolated(unsafe) let output = output   // each worker writes its own index
            DispatchQueue.concurrentPerform(iterations: 4) { worker in
                output[worker] = texts.map { tokenizer.encode($0) }
            }
        }
        for result in results { XCTAssertEqual(result, expected) }
    }

    func testRepeatedWordsUseTheCacheAndGiveTheSameIDs() throws {
        let tokenizer = try Fixtures.tokenizer("gpt2")
        let once = tokenizer.encode(" tokenization")
        XCTAssertEqual(tokenizer.encode(String(repeating: " tokenization", count: 50)),
                       Array(repeating: once, count: 50).flatMap { $0 })
    }

    func testEmptyTextEncodesToSpecialTokensOnly() throws {
        XCTAssertEqual(try Fixtures.tokenizer("gpt2").encode(""), [])
        XCTAssertEqual(try Fixtures.tokenizer("llama2").encode(""), [1])
        XCTAssertEqual(try Fixtures.tokenizer("chinese-sp").encode("", addSpecialTokens: false), [])
        XCTAssertEqual(try Fixtures.tokenizer("gpt2").decode([]), "")
    }
}
