import Foundation
import XCTest
@testable import CollieEngine
@testable import CollieIO
@testable import CollieModels

/// `collie score`'s numbers: the summed NLL of tokens 2…n given their prefix equals what
/// `transformers`' logits give for the same tokens (fixture logits, log-softmax in Double).
final class ScoreTests: XCTestCase {
    func testNegativeLogLikelihoodMatchesTransformersLogitsToOneInTenThousand() throws {
        for variant in ["llama_mha", "llama_gqa", "llama_tied", "qwen2", "mistral_sliding_window", "llama_rope_llama3"] {
            let model = try LlamaForCausalLM.load(from: HuggingFaceParityTests.folder(variant))
            let expected = try HuggingFaceParityTests.expected(variant)
            let ids = try expected.tensor("input_ids")
            let logits = try expected.tensor("logits").doubles()   // [B, T, V] from transformers
            let (b, t) = (ids.shape[0], ids.shape[1])
            let v = model.configuration.vocabularySize
            let tokens = ids.ints()
            for row in 0..<b {
                let sequence = Array(tokens[(row * t)..<((row + 1) * t)])
                var reference = 0.0
                for position in 0..<(t - 1) {
                    let scores = logits[((row * t + position) * v)..<((row * t + position + 1) * v)]
                    let top = scores.max()!
                    let logSum = top + Foundation.log(scores.reduce(0) { $0 + Foundation.exp($1 - top) })
                    reference += logSum - scores[scores.startIndex + sequence[position + 1]]
                }
                let (sum, count) = model.negativeLogLikelihood(of: sequence)
                XCTAssertEqual(count, t - 1)
                XCTAssertEqual(sum, reference, accuracy: 1e-4 * Swift.abs(reference), "\(variant) row \(row)")
            }
        }
    }
}
