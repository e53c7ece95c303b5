import CollieTestSupport
import Foundation
import XCTest
@testable import CollieTokenizers

/// A folder in GPT-2's original format — vocab.json, merges.txt, added_tokens.json, as MOSS (moss-moon-003) and
/// CodeGen ship — loads as the byte-level BPE tokenizer `transformers` makes of it. tokenizers/gpt2-files holds
/// GPT-2's vocabulary in that format with MOSS's chat tokens added (moss-moon-003's own files could not be obtained
/// here); references by transformers 5.25 (scripts/fixtures/make_gpt2_files_fixtures.py).
final class VocabularyAndMergesTokenizerTests: XCTestCase {
    static let corpus: [String] = {
        struct Line: Decodable { let text: String }
        return Fixtures.corpus + Fixtures.jsonLines(Fixtures.folder.appendingPathComponent("gpt2_files_corpus.jsonl"))
            .map { (try! JSONDecoder().decode(Line.self, from: $0)).text }
    }()

    func testCorpusMatchesTransformers() throws {
        let tokenizer = try Fixtures.tokenizer("gpt2-files")
        XCTAssertEqual(tokenizer.format, .vocabularyAndMerges)
        try assertCorpusParity("gpt2-files", corpus: Self.corpus, expected: Fixtures.expected("gpt2_files"),
                               encode: { tokenizer.encode($0, addSpecialTokens: $1) },
                               decode: { try tokenizer.decode($0, skipSpecialTokens: $1) })
    }

    func testEqualsTheSameVocabularyReadFromTokenizerJSON() throws {
        let files = try Fixtures.tokenizer("gpt2-files"), json = try Fixtures.tokenizer("gpt2")
        for text in Fixtures.corpus.prefix(400) {
            XCTAssertEqual(files.encode(text), json.encode(text), text)
        }
    }

    func testAddedTokensAreWholeTokensAndTheEndOfTextTokenIsSpecial() throws {
        let tokenizer = try Fixtures.tokenizer("gpt2-files")
        XCTAssertEqual(tokenizer.vocabularySize, 50_262)
        XCTAssertEqual(["<eoh>", "<eom>", "<eot>", "<|Human|>", "<|MOSS|>"].map { tokenizer.id(forToken: $0) },
                       [50_257, 50_258, 50_259, 50_260, 50_261])
        XCTAssertEqual(tokenizer.encode("<|Human|>: hi<eoh>"), [50_260, 25, 23105, 50_257])
        XCTAssertEqual(tokenizer.eosTokenID, 50_256)
        XCTAssertEqual(try tokenizer.decode([50_256, 23105, 50_257], skipSpecialTokens: true), " hi<eoh>")
    }

    /// A copy of the fixture folder with `file` replaced by `contents`.
    private func folder(replacing file: String, with contents: String) throws -> URL {
        let folder = try temporaryFolder(for: self).appendingPathComponent("tokenizer")
        try FileManager.default.copyItem(at: Fixtures.tokenizerURL("gpt2-files"), to: folder)
        try Data(contents.utf8).write(to: folder.appendingPathComponent(file))
        return folder
    }

    func testMalformedFilesNameTheFileAndLine() throws {
        XCTAssertThrowsError(try Tokenizer(contentsOf: folder(replacing: "merges.txt", with: "#version: 0.2\nĠ t\nabc\n"))) {
            XCTAssertTrue("\($0)".contains("merges.txt") && "\($0)".contains("line 3"), "\($0)")
        }
        XCTAssertThrowsError(try Tokenizer(contentsOf: folder(replacing: "vocab.json", with: "[1, 2]"))) {
            XCTAssertTrue("\($0)".contains("vocab.json"), "\($0)")
        }
        XCTAssertThrowsError(try Tokenizer(contentsOf: folder(replacing: "added_tokens.json", with: "{\"<x>\": -4}"))) {
            XCTAssertTrue("\($0)".contains("added_tokens.json"), "\($0)")
        }
    }
}
