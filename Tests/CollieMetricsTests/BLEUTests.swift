@testable import CollieMetrics
import XCTest

/// BLEU equals sacrebleu 2.6.0: on the inputs of sacrebleu's own tests and on a 529-pair multilingual corpus,
/// for every tokenizer, smoothing method, n-gram order, lowercasing and several references per segment.
final class BLEUTests: XCTestCase {
    struct ReferenceCases: Decodable {
        struct Corpus: Decodable {
            var hypotheses: [String]
            var reference_streams: [[String]]
            var settings: BLEUSettings
            var score: Double
        }
        struct Sentence: Decodable {
            var hypothesis: String
            var reference: String
            var settings: BLEUSettings
            var score: Double
        }
        struct Statistics: Decodable {
            var hypothesis: String
            var references: [String]
            var sys_len: Int
            var ref_len: Int
            var correct: [Int]
            var total: [Int]
        }
        var bleu_corpus: [Corpus]
        var bleu_sentence: [Sentence]
        var bleu_statistics: [Statistics]
    }

    struct Fixture: Decodable {
        var tokenized: [String: [String]]
        var tokenizedIndices: [Int]
        var corpus: [ExpectedBLEU]
        var sentence: [SentenceScores]

        struct SentenceScores: Decodable {
            var settings: BLEUSettings
            var scores: [Double]
        }

        enum CodingKeys: String, CodingKey { case tokenized, corpus, sentence }
        struct Tokenized: Decodable {
            var indices: [Int]
            var rest: [String: [String]]
            init(from decoder: Decoder) throws {
                let c = try decoder.container(keyedBy: AnyKey.self)
                indices = try c.decode([Int].self, forKey: AnyKey("indices"))
                rest = [:]
                for key in c.allKeys where key.stringValue != "indices" { rest[key.stringValue] = try c.decode([String].self, forKey: key) }
            }
        }
        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let tokenized = try c.decode(Tokenized.self, forKey: .tokenized)
            self.tokenized = tokenized.rest
            tokenizedIndices = tokenized.indices
            corpus = try c.decode([ExpectedBLEU].self, forKey: .corpus)
            sentence = try c.decode([SentenceScores].self, forKey: .sentence)
        }
    }

    /// sacrebleu's streams (one list per reference slot) as one list of references per segment.
    private func perSegment(_ streams: [[String]]) -> [[String]] {
        streams[0].indices.map { i in streams.map { $0[i] } }
    }

    func testCorpusBLEUMatchesSacrebleuOnItsOwnTestCases() throws {
        let cases = try fixture("reference_cases.json", as: ReferenceCases.self)
        XCTAssertEqual(cases.bleu_corpus.count, 19)
        for (index, item) in cases.bleu_corpus.enumerated() {
            let score = try item.settings.bleu().corpusScore(hypotheses: item.hypotheses,
                                                              references: perSegment(item.reference_streams))
            XCTAssertEqual(score.score, item.score, accuracy: 1e-9, "case \(index) \(item.hypotheses)")
        }
    }

    func testSentenceBLEUMatchesSacrebleuOnItsOwnTestCases() throws {
        let cases = try fixture("reference_cases.json", as: ReferenceCases.self)
        XCTAssertEqual(cases.bleu_sentence.count, 24)
        for item in cases.bleu_sentence {
            let score = try item.settings.bleu(sentence: true).sentenceScore(hypothesis: item.hypothesis, references: [item.reference])
            XCTAssertEqual(score.score, item.score, accuracy: 1e-9, "\(item.hypothesis) \(item.settings)")
        }
        let statistics = try XCTUnwrap(cases.bleu_statistics.first)
        let actual = BLEU().statistics(hypothesis: statistics.hypothesis, references: statistics.references)
        XCTAssertEqual(actual.matches, statistics.correct)
        XCTAssertEqual(actual.totals, statistics.total)
        XCTAssertEqual(actual.hypothesisLength, statistics.sys_len)
        XCTAssertEqual(actual.referenceLength, statistics.ref_len)
    }

    func testTokenizersMatchSacrebleuOnTheCorpus() throws {
        let pairs = try loadCorpus()
        let expected = try fixture("bleu.json", as: Fixture.self)
        XCTAssertEqual(Set(expected.tokenized.keys), Set(BLEUTokenizer.allCases.map(\.rawValue)))
        for tokenizer in BLEUTokenizer.allCases {
            let lines = try XCTUnwrap(expected.tokenized[tokenizer.rawValue])
            XCTAssertEqual(lines.count, expected.tokenizedIndices.count)
            var mismatches = 0
            for (index, line) in zip(expected.tokenizedIndices, lines) {
                let hypothesis = pairs[index].hypothesis
                let trimmed = PythonText.trailingSpaceRemoved(Array(hypothesis.unicodeScalars))  // sacrebleu's rstrip()
                let actual = String(String.UnicodeScalarView(tokenizer.tokenize(trimmed)))
                if actual != line, mismatches < 5 {
                    mismatches += 1
                    XCTFail("\(tokenizer.rawValue) tokenizes pair \(index) as\n\(actual)\nsacrebleu:\n\(line)")
                }
            }
        }
    }

    func testCorpusBLEUMatchesSacrebleuOnTheMultilingualCorpus() throws {
        let pairs = try loadCorpus()
        XCTAssertGreaterThanOrEqual(pairs.count, 500)
        XCTAssertEqual(Set(pairs.map(\.language)), ["en", "ro", "zh", "mixed"])
        XCTAssertTrue(pairs.contains { $0.references.count == 3 } && pairs.contains { $0.references.count == 1 })
        let expected = try fixture("bleu.json", as: Fixture.self)
        XCTAssertEqual(expected.corpus.count, 19)
        for item in expected.corpus {
            let score = try item.settings.bleu().corpusScore(hypotheses: pairs.map(\.hypothesis),
                                                              references: pairs.map(\.references))
            item.check(score, tolerance: 1e-6, "\(item.settings)")
        }
    }

    func testSentenceBLEUMatchesSacrebleuOnEveryPairOfTheCorpus() throws {
        let pairs = try loadCorpus()
        let expected = try fixture("bleu.json", as: Fixture.self)
        XCTAssertEqual(expected.sentence.count, 10)
        var largest = 0.0
        for item in expected.sentence {
            let bleu = try item.settings.bleu(sentence: true)
            XCTAssertEqual(item.scores.count, pairs.count)
            for (pair, score) in zip(pairs, item.scores) {
                let actual = try bleu.sentenceScore(hypothesis: pair.hypothesis, references: pair.references).score
                largest = max(largest, abs(actual - score))
                XCTAssertEqual(actual, score, accuracy: 1e-6, "\(item.settings): \(pair.hypothesis)")
            }
        }
        print("sentence BLEU: largest difference from sacrebleu \(largest) over \(pairs.count * expected.sentence.count) scores")
    }

    func testBadInputIsAClearError() {
        XCTAssertThrowsError(try BLEU().corpusScore(hypotheses: ["a"], references: [])) { error in
            XCTAssertEqual("\(error)", "BLEU: 1 hypotheses but 0 reference sets")
        }
        XCTAssertThrowsError(try BLEU().corpusScore(hypotheses: ["a"], references: [[]])) { error in
            XCTAssertEqual("\(error)", "BLEU: segment 1 has no reference")
        }
        XCTAssertThrowsError(try BLEU(maxNGramOrder: 0).corpusScore(hypotheses: ["a"], references: [["a"]]))
    }
}

struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}
