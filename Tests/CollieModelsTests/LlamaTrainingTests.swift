import XCTest
@testable import CollieEngine
@testable import CollieModels
@testable import CollieTraining

final class LlamaTrainingTests: XCTestCase {
    private let tiny = LlamaConfiguration(hiddenSize: 32, intermediateSize: 64, hiddenLayers: 2, attentionHeads: 4,
                                          keyValueHeads: 2, vocabularySize: 40)

    func testParameterKeysAreHuggingFaceNames() {
        var c = tiny
        c.hiddenLayers = 1
        let keys = LlamaForCausalLM(c).namedParameters.map(\.key)
        XCTAssertEqual(keys, [
            "model.embed_tokens.weight",
            "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
            "model.layers.0.self_attn.v_proj.weight", "model.layers.0.self_attn.o_proj.weight",
            "model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight",
            "model.layers.0.mlp.down_proj.weight",
            "model.layers.0.input_layernorm.weight", "model.layers.0.post_attention_layernorm.weight",
            "model.norm.weight", "lm_head.weight",
        ])
        c.tieWordEmbeddings = true
        XCTAssertFalse(LlamaForCausalLM(c).namedParameters.map(\.key).contains("lm_head.weight"))
    }

    func testParameterBufferKeepsValuesIdentityAndSharesOneAllocation() {
        let model = LlamaForCausalLM(tiny, seed: 3)
        let before = model.parameters.map { $0.floats() }
        let buffer = ParameterBuffer(model.parameters)
        XCTAssertEqual(model.parameters.map { $0.floats() }, before)
        XCTAssertTrue(model.parameters.allSatisfy { $0.storage === buffer.values.storage })
        XCTAssertEqual(buffer.count, model.parameterCount)
        buffer.attachGradients()
        let ids = Tensor(ints: [1, 2, 3, 4, 5, 6], shape: [1, 6])
        model.loss(ids: ids, labels: ids).backward()
        let gradients = model.parameters.map { $0.grad!.floats() }
        XCTAssertTrue(model.parameters.allSatisfy { $0.grad!.storage === buffer.gradients!.storage })
        XCTAssertGreaterThan(gradients.flatMap { $0 }.map(Swift.abs).max()!, 0)
        buffer.zeroGradients()
        XCTAssertEqual(buffer.gradients!.floats().map(Swift.abs).max(), 0)
    }

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

    func testCachedRotaryTablesNeverServeAnotherSequenceLength() {
        let model = LlamaForCausalLM(tiny, seed: 5)
        let long = Tensor(ints: [3, 1, 4, 1, 5, 9, 2, 6], shape: [1, 8])
        let short = Tensor(ints: [3, 1, 4, 1, 5], shape: [1, 5])
        let (fresh, afterLong, again) = withNoGrad { () -> ([Float], [Float], [Float]) in
            let fresh = LlamaForCausalLM(tiny, seed: 5)(short).floats()
            let full = model(long).floats()
            return (fresh, model(short).floats(), Array(full.prefix(5 * tiny.vocabularySize)))
        }
        XCTAssertEqual(afterLong, fresh, "a shorter call after a longer one uses its own tables")
        for (a, b) in zip(again, fresh) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    }
}
