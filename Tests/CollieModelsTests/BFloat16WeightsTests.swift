import XCTest
import CollieEngine
import CollieModels

/// bf16 weights: parameters stored in bf16 (rounded to nearest even), every kernel computing in
/// float32 from them. The logits, loss and float32 gradients equal those of a float32 model whose
/// weights hold the same bf16-rounded values.
final class BFloat16WeightsTests: XCTestCase {
    private let config = LlamaConfiguration(hiddenSize: 32, intermediateSize: 64, hiddenLayers: 2, attentionHeads: 4,
                                            keyValueHeads: 2, vocabularySize: 50)
    private let ids = Tensor(ints: [3, 9, 4, 1, 22, 7, 5, 30, 2, 11, 8, 6], shape: [2, 6])

    func testBFloat16WeightsComputeAsTheirFloat32Values() {
        for tied in [false, true] {
            var c = config
            c.tieWordEmbeddings = tied
            let half = LlamaForCausalLM(c, seed: 4)
            let buffer = ParameterBuffer(half.parameters, dtype: .bfloat16)
            XCTAssertTrue(half.parameters.allSatisfy { $0.dtype == .bfloat16 })
            XCTAssertEqual(buffer.values.storage.byteCount, half.parameterCount * 2)

            let reference = LlamaForCausalLM(c, seed: 4)
            let rounded = ParameterBuffer(reference.parameters)
            for (r, h) in zip(reference.parameters, half.parameters) {
                r.pointer(as: Float.self).update(from: h.floats(), count: r.count)
            }
            _ = rounded

            let halfLoss = half.loss(ids: ids, labels: ids)
            let referenceLoss = reference.loss(ids: ids, labels: ids)
            XCTAssertEqual(halfLoss.item, referenceLoss.item, "tied: \(tied)")
            halfLoss.backward()
            referenceLoss.backward()
            for (h, r) in zip(half.parameters, reference.parameters) {
                XCTAssertEqual(h.grad?.dtype, .float32, "gradients of bf16 weights are float32")
                XCTAssertEqual(h.grad?.floats(), r.grad?.floats(), "tied: \(tied)")
            }
        }
    }

    func testConvertingToBFloat16RoundsToNearestEven() {
        let p = Tensor([1.00390625, 1.01171875, -3.1415927, 65504], shape: [4])
        _ = ParameterBuffer([p], dtype: .bfloat16)
        // 1 + 2⁻⁸ ties to 1 (even); 1 + 3·2⁻⁸ ties up to 1 + 2⁻⁶; π rounds to 3.140625.
        XCTAssertEqual(p.floats(), [1, 1.015625, -3.140625, 65536])
    }
}
