import CollieEngine
import CollieModels
import CollieTestSupport
import CollieTraining
import CollieEvaluation
import Foundation
import XCTest

/// The perplexity evaluator equals exp(mean NLL) from transformers, and harness-style classification picks the
/// options a PyTorch reference picks (scripts/fixtures/make_evaluation_fixtures.py, CollieModelsTests' llama_mha
/// fixture model).
final class EvaluatorParityTests: XCTestCase {
    struct Expected: Decodable {
        struct Record: Decodable {
            var context: [Int]
            var options: [[Int]]
            var mean_nll: [Double]
            var choice: Int
        }
        var sequences: [[Int]]
        var nll_sums: [Double]
        var token_counts: [Int]
        var perplexity: Double
        var batch_size: Int
        var batch_mean_perplexity: Double
        var harness: [Record]
    }

    private func load() throws -> (LlamaForCausalLM, Expected) {
        let model = try LlamaForCausalLM.load(from: ModelFixtures.folder("llama_mha"))
        let url = Fixtures.own.appendingPathComponent("evaluation/expected.json")
        return (model, try JSONDecoder().decode(Expected.self, from: Data(contentsOf: url)))
    }

    /// Padded on either side, or padding-free (each batch's examples one after another in one row).
    func testPerplexityEvaluatorEqualsTransformersOnEitherPaddingSideAndPaddingFree() throws {
        let (model, expected) = try load()
        let dataset = try TrainingDataset(examples: expected.sequences.map { TrainingExample(tokens: $0, labels: $0) })
        for (side, paddingFree) in [(PaddingSide.right, false), (.left, false), (.right, true)] {
            let evaluator = try PerplexityEvaluator(dataset: dataset, batchSize: expected.batch_size,
                                                    padder: Padder(side: side, padTokenID: 0), paddingFree: paddingFree)
            let what = "\(side), padding_free: \(paddingFree)"
            let perplexity = evaluator.perplexity(of: model)
            XCTAssertEqual(perplexity.tokenCount, expected.token_counts.reduce(0, +))
            XCTAssertEqual(perplexity.negativeLogLikelihood, expected.nll_sums.reduce(0, +), accuracy: 1e-4)
            let metrics = try evaluator.evaluate(model)
            XCTAssertEqual(metrics["perplexity"]!, expected.perplexity, accuracy: expected.perplexity * 1e-6, what)
            XCTAssertEqual(metrics["loss"]!, log(expected.perplexity), accuracy: 1e-6, what)
            XCTAssertEqual(metrics["batch_mean_perplexity"]!, expected.batch_mean_perplexity,
                           accuracy: expected.batch_mean_perplexity * 1e-6, what)
            XCTAssertNotEqual(metrics["perplexity"]!, metrics["batch_mean_perplexity"]!, "the two definitions differ here")
        }
    }

    func testHarnessClassificationPicksTheOptionsPyTorchPicks() throws {
        let (model, expected) = try load()
        XCTAssertEqual(expected.harness.count, 6)
        XCTAssertGreaterThan(Set(expected.harness.map(\.choice)).count, 1, "the fixture does not always pick one index")
        for (index, record) in expected.harness.enumerated() {
            let (choice, means) = ClassificationEvaluator.harnessChoice(context: record.context, options: record.options,
                                                                        model: model)
            XCTAssertEqual(choice, record.choice, "record \(index)")
            for (actual, wanted) in zip(means, record.mean_nll) {
                XCTAssertEqual(actual, wanted, accuracy: 1e-4, "record \(index)")
            }
        }
    }
}
