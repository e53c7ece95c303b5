import XCTest
import CollieEngine
import CollieModels

/// Activation checkpointing recomputes each decoder layer in backward: the loss and every
/// gradient are bit-identical to the run that keeps activations, hooks still fire once per
/// parameter, and layers behind a frozen embedding still get gradients.
final class ActivationCheckpointingTests: XCTestCase {
    private let config = LlamaConfiguration(hiddenSize: 32, intermediateSize: 64, hiddenLayers: 3, attentionHeads: 4,
                                            keyValueHeads: 2, vocabularySize: 50)
    private let ids = Tensor(ints: [3, 9, 4, 1, 22, 7, 5, 30, 2, 11, 8, 6], shape: [2, 6])
    private let mask = Tensor(ints: [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], shape: [2, 6])

    private func gradients(checkpointing: Bool, padded: Bool) -> (loss: Float, grads: [[Float]]) {
        let model = LlamaForCausalLM(config, seed: 11)
        model.activationCheckpointing = checkpointing
        for p in model.parameters { p.requiresGrad = true }
        let loss = model.loss(ids: ids, labels: ids, keyPaddingMask: padded ? mask : nil)
        loss.backward()
        return (loss.item, model.parameters.map { $0.grad!.floats() })
    }

    func testCheckpointedGradientsAreIdenticalToStoredActivations() {
        for padded in [false, true] {
            let plain = gradients(checkpointing: false, padded: padded)
            let recomputed = gradients(checkpointing: true, padded: padded)
            XCTAssertEqual(plain.loss, recomputed.loss)
            XCTAssertEqual(plain.grads.count, recomputed.grads.count)
            for (a, b) in zip(plain.grads, recomputed.grads) { XCTAssertEqual(a, b, "padded: \(padded)") }
        }
    }

    func testGradientReadyHooksFireOncePerParameterWithCheckpointing() {
        let model = LlamaForCausalLM(config, seed: 2)
        model.activationCheckpointing = true
        var fired = [Int](repeating: 0, count: model.parameters.count)
        for (i, p) in model.parameters.enumerated() {
            p.requiresGrad = true
            p.onGradientReady { _ in fired[i] += 1 }
        }
        model.loss(ids: ids, labels: ids).backward()
        XCTAssertEqual(fired, [Int](repeating: 1, count: model.parameters.count))
    }

    func testLayersBehindAFrozenEmbeddingStillGetGradients() {
        let model = LlamaForCausalLM(config, seed: 5)
        model.activationCheckpointing = true
        for p in model.parameters { p.requiresGrad = true }
        model.embedTokens.denseWeight!.requiresGrad = false
        model.loss(ids: ids, labels: ids).backward()
        XCTAssertNil(model.embedTokens.denseWeight!.grad)
        let q = model.layers[0].selfAttention.qProj.denseWeight!
        XCTAssertGreaterThan(q.grad!.floats().map(abs).max()!, 0)
    }

    func testNoGradientIsRecordedInInference() {
        let model = LlamaForCausalLM(config, seed: 5)
        model.activationCheckpointing = true
        for p in model.parameters { p.requiresGrad = true }
        let logits = withNoGrad { model(ids) }
        XCTAssertFalse(logits.requiresGrad)
    }
}
