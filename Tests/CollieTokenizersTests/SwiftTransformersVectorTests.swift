import Foundation
import XCTest
@testable import CollieTokenizers

/// The text → ids vectors of huggingface/swift-transformers (Tests/TokenizersTests/Resources) for the
/// tokenizers bundled here.
///
/// Used: gpt2_encoded_tokens, llama_encoded, llama_3.2_encoded, whisper_tiny_en_encoded (its GPT-2 body) and
/// tokenizer_tests.json's distilgpt2, Llama-2-7b-chat-coreml and Llama-3.2-1B-Instruct entries. Skipped
/// because their tokenizers are not bundled: bert_uncased and distilbert_cased (WordPiece), t5_base (Unigram
/// with a precompiled normalizer), falcon, gemma, whisper_large_v2 (its own vocabulary), and the bert, t5,
/// falcon, gemma, whisper and distilbert entries of tokenizer_tests.json.
final class SwiftTransformersVectorTests: XCTestCase {
    private struct EncodedFile: Decodable {
        let text: String
        let token_ids: [Int]
    }

    private struct Case: Decodable {
        struct Encoded: Decodable { let input_ids: [Int] }
        let input: String
        let encoded: Encoded
        let decoded_without_special: String
    }

    private func encodedFile(_ name: String) throws -> EncodedFile {
        try JSONDecoder().decode(EncodedFile.self, from: Data(contentsOf: Fixtures.folder.appendingPathComponent("vectors/\(name)")))
    }

    private func cases(_ model: String) throws -> [Case] {
        let data = try Data(contentsOf: Fixtures.folder.appendingPathComponent("vectors/tokenizer_tests.json"))
        return try JSONDecoder().decode([String: [Case]].self, from: data)[model] ?? []
    }

    func testGPT2EncodesTheFrenchParagraphVector() throws {
        let vector = try encodedFile("gpt2_encoded_tokens.json")
        let tokenizer = try Fixtures.tokenizer("gpt2")
        XCTAssertEqual(tokenizer.encode(vector.text), vector.token_ids)
        XCTAssertEqual(try tokenizer.decode(vector.token_ids), vector.text)
    }

    func testWhisperTinyVectorIsGPT2BetweenItsSpecialTokens() throws {
        // whisper-tiny.en spells text with GPT-2's BPE; its first two and last ids are Whisper's special tokens.
        let vector = try encodedFile("whisper_tiny_en_encoded.json")
        let body = Array(vector.token_ids.dropFirst(2).dropLast())
        XCTAssertEqual(try Fixtures.tokenizer("gpt2").encode(vector.text), body)
    }

    func testLlama2VectorsMatchTheSentencePieceModel() throws {
        // These vectors come from Llama-2's SentencePiece tokenizer (BOS first).
        let tokenizer = try Fixtures.tokenizer("llama2-spm")
        let vector = try encodedFile("llama_encoded.json")
        XCTAssertEqual(tokenizer.encode(vector.text), vector.token_ids)
        XCTAssertEqual(try tokenizer.decode(vector.token_ids, skipSpecialTokens: true), vector.text)
        let all = try cases("coreml-projects/Llama-2-7b-chat-coreml")
        XCTAssertEqual(all.count, 18)
        for vector in all {
            XCTAssertEqual(tokenizer.encode(vector.input), vector.encoded.input_ids, vector.input)
            XCTAssertEqual(try tokenizer.decode(vector.encoded.input_ids, skipSpecialTokens: true), vector.decoded_without_special)
        }
    }

    func testLlama2JSONMatchesTheVectorsExceptWhereTokenizersDiffersFromSentencePiece() throws {
        // tokenizers' Metaspace does not add "▁" before text that starts with a space and does not merge a
        // space run the way SentencePiece does: "Hi  Hello" and "   leading space" differ by design.
        let tokenizer = try Fixtures.tokenizer("llama2")
        let vector = try encodedFile("llama_encoded.json")
        XCTAssertEqual(tokenizer.encode(vector.text), vector.token_ids)
        for vector in try cases("coreml-projects/Llama-2-7b-chat-coreml") where !["Hi  Hello", "   leading space"].contains(vector.input) {
            XCTAssertEqual(tokenizer.encode(vector.input), vector.encoded.input_ids, vector.input)
        }
    }

    func testLlama3VectorsMatchAfterTheirBOS() throws {
        // The bundled Llama-3 tokenizer.json has a ByteLevel post-processor (no BOS); Llama-3.2's adds BOS.
        let tokenizer = try Fixtures.tokenizer("llama3")
        let vector = try encodedFile("llama_3.2_encoded.json")
        XCTAssertEqual(vector.token_ids.first, 128000)
        XCTAssertEqual(tokenizer.encode(vector.text), Array(vector.token_ids.dropFirst()))
        XCTAssertEqual(try tokenizer.decode(vector.token_ids, skipSpecialTokens: true), vector.text)
        let all = try cases("pcuenq/Llama-3.2-1B-Instruct-tokenizer")
        XCTAssertEqual(all.count, 18)
        for vector in all {
            XCTAssertEqual(tokenizer.encode(vector.input), Array(vector.encoded.input_ids.dropFirst()), vector.input)
            // Those decodes were made with transformers' clean_up_tokenization_spaces.
            let decoded = try tokenizer.decode(vector.encoded.input_ids, skipSpecialTokens: true)
            XCTAssertEqual(decoded.cleanedUpTokenizationSpaces(), vector.decoded_without_special)
        }
    }

    func testDistilGPT2VectorsMatchGPT2() throws {
        let tokenizer = try Fixtures.tokenizer("gpt2")
        let all = try cases("distilgpt2")
        XCTAssertEqual(all.count, 18)
        for vector in all {
            XCTAssertEqual(tokenizer.encode(vector.input), vector.encoded.input_ids, vector.input)
            let decoded = try tokenizer.decode(vector.encoded.input_ids, skipSpecialTokens: true)
            XCTAssertEqual(decoded.cleanedUpTokenizationSpaces(), vector.decoded_without_special)
        }
    }
}
