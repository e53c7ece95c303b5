@testable import CollieMetrics
import XCTest

/// ROUGE equals rouge-score 0.1.2 (with NLTK's Porter stemmer): on the inputs of its own tests and on every
/// pair of the multilingual corpus, ROUGE-1/2/L/Lsum precision, recall and F1, with and without stemming.
final class ROUGETests: XCTestCase {
    struct ReferenceCases: Decodable {
        struct Case: Decodable {
            var types: [String]
            var stemming: Bool
            var target: String
            var prediction: String
            var scores: [String: [Double]]
        }
        struct Multi: Decodable {
            var types: [String]
            var targets: [String]
            var prediction: String
            var scores: [String: [Double]]
        }
        struct Tokenize: Decodable {
            var text: String
            var tokens: [String]
        }
        var rouge: [Case]
        var rouge_multi: [Multi]
        var rouge_tokenize: [Tokenize]
    }

    struct Fixture: Decodable {
        var pairs: [String: [[String: [Double]]]]
        var multi_plain: [[String: [Double]]]
        var multi_stemmed: [[String: [Double]]]
        var stems: [String: String]
    }

    private func check(_ actual: [ROUGE.Kind: ROUGE.Score], _ expected: [String: [Double]], tolerance: Double = 1e-12,
                       _ context: @autoclosure () -> String, file: StaticString = #filePath, line: UInt = #line) throws {
        for (name, values) in expected {
            let score = try XCTUnwrap(actual[try ROUGE.Kind(name: name)], "\(name) missing", file: file, line: line)
            XCTAssertEqual(score.precision, values[0], accuracy: tolerance, "\(name) precision \(context())", file: file, line: line)
            XCTAssertEqual(score.recall, values[1], accuracy: tolerance, "\(name) recall \(context())", file: file, line: line)
            XCTAssertEqual(score.fmeasure, values[2], accuracy: tolerance, "\(name) F1 \(context())", file: file, line: line)
        }
    }

    func testROUGEMatchesRougeScoreOnItsOwnTestCases() throws {
        let cases = try fixture("reference_cases.json", as: ReferenceCases.self)
        XCTAssertEqual(cases.rouge.count, 12)
        for item in cases.rouge {
            let rouge = ROUGE(types: try item.types.map(ROUGE.Kind.init(name:)), stemming: item.stemming)
            try check(try rouge.score(target: item.target, prediction: item.prediction), item.scores,
                      "\(item.target) / \(item.prediction)")
        }
        for item in cases.rouge_multi {
            let rouge = ROUGE(types: try item.types.map(ROUGE.Kind.init(name:)))
            try check(try rouge.score(targets: item.targets, prediction: item.prediction), item.scores, item.prediction)
        }
        for item in cases.rouge_tokenize { XCTAssertEqual(ROUGE().tokenize(item.text), item.tokens) }
    }

    func testPorterStemmerMatchesNLTK() throws {
        let stems = try fixture("rouge.json", as: Fixture.self).stems
        XCTAssertGreaterThan(stems.count, 2000)
        let stemmer = PorterStemmer()
        var wrong: [String] = []
        for (word, stem) in stems.sorted(by: { $0.key < $1.key }) where stemmer.stem(word) != stem {
            wrong.append("\(word) → \(stemmer.stem(word)), NLTK \(stem)")
        }
        XCTAssertEqual(wrong, [], "\(wrong.count) of \(stems.count) stems differ")
    }

    func testROUGEMatchesRougeScoreOnEveryPairOfTheCorpus() throws {
        let pairs = try loadCorpus()
        let expected = try fixture("rouge.json", as: Fixture.self)
        for stemming in [false, true] {
            let rows = try XCTUnwrap(expected.pairs[stemming ? "stemmed" : "plain"])
            XCTAssertEqual(rows.count, pairs.count)
            let rouge = ROUGE(stemming: stemming)
            for (index, (pair, row)) in zip(pairs, rows).enumerated() {
                try check(try rouge.score(target: pair.references[0], prediction: pair.hypothesis), row,
                          "pair \(index), stemming \(stemming)")
            }
            let multi = stemming ? expected.multi_stemmed : expected.multi_plain
            XCTAssertEqual(multi.count, pairs.count)
            for (index, (pair, row)) in zip(pairs, multi).enumerated() {
                try check(try rouge.score(targets: pair.references, prediction: pair.hypothesis), row,
                          "multi-reference pair \(index), stemming \(stemming)")
            }
        }
    }

    func testLsumSplitsSentencesOnNewlinesOnly() throws {
        let rouge = ROUGE(types: [.summaryLongestCommonSubsequence])
        let split = try rouge.score(target: "a b\nc d", prediction: "c d\na b")[.summaryLongestCommonSubsequence]!
        let joined = try rouge.score(target: "a b c d", prediction: "c d a b")[.summaryLongestCommonSubsequence]!
        XCTAssertEqual(split.fmeasure, 1)
        XCTAssertEqual(joined.fmeasure, 0.5)
        XCTAssertEqual(rouge.sentences("x\r\ny\n\nz"), ["x\r", "y", "z"])
    }

    func testUnknownTypesAreRejectedByName() {
        XCTAssertThrowsError(try ROUGE.Kind(name: "rouge0"))
        XCTAssertThrowsError(try ROUGE.Kind(name: "rougeX")) { error in
            XCTAssertTrue("\(error)".contains("rougeX"))
        }
        XCTAssertEqual(try ROUGE.Kind(name: "rouge9"), .n(9))
    }
}
