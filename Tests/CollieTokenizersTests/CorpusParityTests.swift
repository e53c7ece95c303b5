import XCTest
@testable import CollieTokenizers

/// Every corpus string (2,384: English, Chinese, Japanese, Arabic, emoji and ZWJ sequences, whitespace runs,
/// code, numbers, special-token text, odd bytes) encodes to the reference library's ids and decodes to its
/// text, for every bundled tokenizer. References: `tokenizers` for tokenizer.json, `sentencepiece` for .model
/// (scripts/fixtures/make_tokenizer_fixtures.py).
final class CorpusParityTests: XCTestCase {
    func testGPT2MatchesTokenizers() throws { try checkParity("gpt2") }
    func testLlama2MetaspaceJSONMatchesTokenizers() throws { try checkParity("llama2") }
    func testLlama2HubLayoutJSONMatchesTokenizers() throws { try checkParity("llama2-hubstyle") }
    func testLlama3MatchesTokenizers() throws { try checkParity("llama3") }
    func testQwen2MatchesTokenizers() throws { try checkParity("qwen2") }
    func testUnigramJSONMatchesTokenizers() throws { try checkParity("chinese-sp-unigram") }
    func testLlama2SentencePieceModelMatchesSentencePiece() throws { try checkParity("llama2-spm") }
    func testChineseSentencePieceModelMatchesSentencePiece() throws { try checkParity("chinese-sp") }
    func testSentencePieceBPEWithUserAndControlSymbolsMatchesSentencePiece() throws { try checkParity("spm-bpe-user") }
    func testSentencePieceUnigramWithWhitespaceSuffixMatchesSentencePiece() throws { try checkParity("spm-unigram-user") }

    func testGeneralRegexSplitMatchesTokenizers() throws {
        // GPT-2's vocabulary with a split pattern no hand-written matcher knows: the ICU fallback path.
        try checkParity("gpt2-regex", tokenizer: try Fixtures.variant("gpt2-regex"))
    }

    func testAddedTokenOptionsAndLowercaseMatchTokenizers() throws {
        // lstrip, rstrip, single_word, normalized added tokens, behind a Lowercase normalizer.
        try checkParity("gpt2-added", tokenizer: try Fixtures.variant("gpt2-added"))
    }

    func testMetaspaceFirstSchemeMatchesTokenizers() throws {
        // "▁" only before the text's first piece, not after special tokens.
        try checkParity("llama2-first", tokenizer: try Fixtures.variant("llama2-first"))
    }

    func testStripAccentsReplaceRegexStripPrependDigitsPunctuationMatchTokenizers() throws {
        try checkParity("unigram-punctuation", tokenizer: try Fixtures.variant("unigram-punctuation"))
    }

    func testNFKDLowercaseWhitespaceSplitContiguousInvertMatchTokenizers() throws {
        try checkParity("unigram-whitespace", tokenizer: try Fixtures.variant("unigram-whitespace"))
    }

    func testNFKCWhitespaceRemovedMergedWithNextBertMatchTokenizers() throws {
        try checkParity("unigram-words", tokenizer: try Fixtures.variant("unigram-words"))
    }

    private func checkParity(_ name: String, tokenizer given: Tokenizer? = nil) throws {
        let tokenizer = try given ?? Fixtures.tokenizer(name)
        let corpus = Fixtures.corpus
        let expected = Fixtures.expected(name)
        XCTAssertEqual(corpus.count, expected.count)
        XCTAssertGreaterThanOrEqual(corpus.count, 2000)
        var idMismatches = 0, decodeMismatches = 0, specialMismatches = 0
        for (text, reference) in zip(corpus, expected) {
            let ids = tokenizer.encode(text, addSpecialTokens: false)
            if ids != reference.ids {
                idMismatches += 1
                if idMismatches <= 5 { XCTFail("\(name): \(describeMismatch(text, expected: reference.ids, actual: ids))") }
            }
            let decoded = try tokenizer.decode(reference.ids)
            if decoded != (reference.decoded ?? text) {
                decodeMismatches += 1
                if decodeMismatches <= 5 {
                    XCTFail("\(name): decode of \(text.debugDescription.prefix(80)): expected "
                            + "\((reference.decoded ?? text).debugDescription.prefix(80)) got \(decoded.debugDescription.prefix(80))")
                }
            }
            if let special = reference.special_ids {
                let withSpecial = tokenizer.encode(text, addSpecialTokens: true)
                let skipped = try tokenizer.decode(special, skipSpecialTokens: true)
                if withSpecial != special || skipped != reference.decoded_skip {
                    specialMismatches += 1
                    if specialMismatches <= 5 {
                        XCTFail("\(name): with special tokens \(text.debugDescription.prefix(60)): expected \(special.prefix(6)) "
                                + "\(reference.decoded_skip.debugDescription.prefix(60)), got \(withSpecial.prefix(6)) "
                                + "\(skipped.debugDescription.prefix(60))")
                    }
                }
            }
        }
        XCTAssertEqual(idMismatches, 0, "\(name): strings whose ids differ")
        XCTAssertEqual(decodeMismatches, 0, "\(name): decodes that differ")
        XCTAssertEqual(specialMismatches, 0, "\(name): encodings with special tokens that differ")
    }
}
