import CollieTestSupport
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
        try assertCorpusParity(name, corpus: corpus, expected: expected,
                               encode: { tokenizer.encode($0, addSpecialTokens: $1) },
                               decode: { try tokenizer.decode($0, skipSpecialTokens: $1) })
    }
}
