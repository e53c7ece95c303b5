import XCTest
import CollieEngine
import CollieModels
import CollieTraining

/// A LLaMA trained by AdamW: a fresh model's loss starts near uniform and falls when fitting one batch; AdamW's first
/// step and its decoupled weight decay.
final class LlamaTrainingTests: XCTestCase {
    private let tiny = LlamaConfiguration(hiddenSize: 32, intermediateSize: 64, hiddenLayers: 2, attentionHeads: 4,
                                          keyValueHeads: 2, vocabularySize: 40)

    func testLossStartsNearUniformAndFallsWhenFittingOneBatch() {
        let model = LlamaForCausalLM(tiny, seed: 7)
        let optimizer = AdamW(parameters: model.parameters, learningRate: 1e-2, weightDecay: 0)
        var generator = RandomGenerator(seed: 11)
        let ids = Tensor(ints: (0..<32).map { _ in Int(generator.next() % 40) }, shape: [2, 16])
        var losses: [Float] = []
        for _ in 0..<30 {
            optimizer.zeroGradients()
            let loss = model.loss(ids: ids, labels: ids)
            loss.backward()
            optimizer.step()
            losses.append(loss.item)
        }
        // A fresh model predicts nearly uniformly: loss ≈ ln(40) ≈ 3.69.
        XCTAssertEqual(losses[0], Foundation.log(40), accuracy: 0.1)
        XCTAssertLessThan(losses.last!, losses[0] * 0.5, "losses: \(losses)")
    }

    func testAdamWFirstStepMovesEachWeightByTheLearningRateAgainstItsGradient() {
        let w = Tensor([0.5, -1.0, 2.0], shape: [3])
        w.requiresGrad = true
        (w * Tensor([3, -2, 0.5], shape: [3])).sum().backward()
        let optimizer = AdamW(parameters: [w], learningRate: 0.1, weightDecay: 0)
        optimizer.step()
        // With zero moments Adam's first update is lr · g / (|g| + ε·…) ≈ lr · sign(g).
        let moved = zip(w.floats(), [0.5, -1.0, 2.0] as [Float]).map { $0 - $1 }
        for (delta, expected) in zip(moved, [-0.1, 0.1, -0.1] as [Float]) { XCTAssertEqual(delta, expected, accuracy: 1e-6) }
        // Decoupled weight decay shrinks the weight by lr·wd before the Adam update.
        let v = Tensor([1.0], shape: [1]); v.requiresGrad = true
        v.grad = Tensor([0.0], shape: [1])
        AdamW(parameters: [v], learningRate: 0.1, weightDecay: 0.5).step()
        XCTAssertEqual(v.floats()[0], 0.95, accuracy: 1e-6)
    }
}
