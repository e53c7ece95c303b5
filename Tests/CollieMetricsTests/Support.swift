import CollieMetrics
import Foundation
import XCTest

/// Loads a fixture written by scripts/fixtures/make_metrics_fixtures.py.
func fixture<T: Decodable>(_ name: String, as type: T.Type) throws -> T {
    let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil),
                            "missing fixture \(name); run scripts/fixtures/make_metrics_fixtures.py")
    return try JSONDecoder().decode(T.self, from: Data(contentsOf: url))
}

/// sacrebleu's keyword arguments as they appear in the fixtures.
struct BLEUSettings: Decodable {
    var tokenize: String?
    var lowercase: Bool?
    var smooth_method: String?
    var smooth_value: Double?
    var max_ngram_order: Int?
    var effective_order: Bool?

    /// The Swift BLEU with these settings; `sentence` switches effective order on as `sentence_bleu` does.
    func bleu(sentence: Bool = false) throws -> BLEU {
        BLEU(tokenizer: try XCTUnwrap(BLEUTokenizer(rawValue: tokenize ?? "13a")),
             lowercase: lowercase ?? false,
             smoothing: try XCTUnwrap(BLEU.Smoothing(rawValue: smooth_method ?? "exp")),
             smoothValue: smooth_value, maxNGramOrder: max_ngram_order ?? 4,
             effectiveOrder: sentence || (effective_order ?? false))
    }
}

/// sacrebleu's score and statistics.
struct ExpectedBLEU: Decodable {
    var settings: BLEUSettings
    var score: Double
    var precisions: [Double]
    var bp: Double
    var sys_len: Int
    var ref_len: Int
    var counts: [Double]
    var totals: [Double]

    func check(_ actual: BLEUScore, tolerance: Double = 1e-9, _ context: String,
               file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.score, score, accuracy: tolerance, "BLEU \(context)", file: file, line: line)
        XCTAssertEqual(actual.hypothesisLength, sys_len, "hypothesis length \(context)", file: file, line: line)
        XCTAssertEqual(actual.referenceLength, ref_len, "reference length \(context)", file: file, line: line)
        XCTAssertEqual(actual.brevityPenalty, bp, accuracy: 1e-12, "brevity penalty \(context)", file: file, line: line)
        XCTAssertEqual(actual.precisions.count, precisions.count, context, file: file, line: line)
        for (a, e) in zip(actual.precisions, precisions) {
            XCTAssertEqual(a, e, accuracy: tolerance, "precisions \(context)", file: file, line: line)
        }
        // add-k adds k to the statistics sacrebleu returns; Collie keeps the raw counts.
        if settings.smooth_method != "add-k" {
            XCTAssertEqual(actual.matches.map(Double.init), counts, "matches \(context)", file: file, line: line)
            XCTAssertEqual(actual.totals.map(Double.init), totals, "totals \(context)", file: file, line: line)
        }
    }
}

/// One hypothesis/reference pair of the committed multilingual corpus.
struct CorpusPair: Decodable {
    var language: String
    var hypothesis: String
    var references: [String]
}

func loadCorpus() throws -> [CorpusPair] { try fixture("corpus.json", as: [CorpusPair].self) }
