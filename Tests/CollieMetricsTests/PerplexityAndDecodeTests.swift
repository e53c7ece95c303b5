import CollieMetrics
import CollieTestSupport
import Foundation
import XCTest

final class PerplexityAndDecodeTests: XCTestCase {
    func testCorpusPerplexityWeighsEveryTokenAndBatchMeanWeighsEveryBatch() {
        var perplexity = Perplexity()
        perplexity.add(negativeLogLikelihood: 6, tokens: 3)   // mean 2
        perplexity.add(negativeLogLikelihood: 4, tokens: 1)   // mean 4
        XCTAssertEqual(perplexity.tokenCount, 4)
        XCTAssertEqual(perplexity.meanNegativeLogLikelihood, 2.5)
        XCTAssertEqual(perplexity.corpusPerplexity, exp(2.5), accuracy: 1e-12)
        XCTAssertEqual(perplexity.batchMeanPerplexity, (exp(2) + exp(4)) / 2, accuracy: 1e-12)
        XCTAssertTrue(Perplexity().corpusPerplexity.isNaN)
    }

    func testDecodedPairsRoundTripAsJSONLines() throws {
        let url = try temporaryFolder(for: self).appendingPathComponent("decoded.jsonl")
        let pairs = [DecodedPair(prediction: "a \"quoted\"\nline", target: "b/c"), DecodedPair(prediction: "", target: "中文")]
        try DecodedOutputs.jsonLines(pairs).write(to: url)
        let text = try String(contentsOf: url, encoding: .utf8)
        XCTAssertEqual(text.split(separator: "\n").count, 2)
        XCTAssertTrue(text.hasPrefix("{\"prediction\":\"a \\\"quoted\\\"\\nline\",\"target\":\"b/c\"}\n"))
        XCTAssertEqual(try DecodedOutputs.read(from: url), pairs)
        try Data("{\"prediction\": 1}\n".utf8).write(to: url)
        XCTAssertThrowsError(try DecodedOutputs.read(from: url)) { error in
            XCTAssertTrue("\(error)".hasSuffix("decoded.jsonl:1: not a {\"prediction\", \"target\"} JSON object"))
        }
    }
}
