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

    /// Under bf16 mixed precision a bf16 weight goes into the GEMM's bfloat16 panels as stored (no float32 copy): the
    /// loss and every gradient are, bit for bit, those of a float32 model holding the same values, whose products round
    /// them to bfloat16 while packing.
    func testBFloat16WeightsUnderBFloat16MixedPrecisionMatchTheirFloat32Values() {
        for tied in [false, true] {
            var c = config
            c.tieWordEmbeddings = tied
            let half = LlamaForCausalLM(c, seed: 4, dtype: .bfloat16)
            _ = ParameterBuffer(half.parameters, dtype: .bfloat16)
            let reference = LlamaForCausalLM(c, seed: 4)
            _ = ParameterBuffer(reference.parameters)
            for (r, h) in zip(reference.parameters, half.parameters) {
                r.pointer(as: Float.self).update(from: h.floats(), count: r.count)
            }
            let (halfLoss, referenceLoss) = MixedPrecision.with(.bfloat16) {
                let losses = (half.loss(ids: ids, labels: ids), reference.loss(ids: ids, labels: ids))
                losses.0.backward()
                losses.1.backward()
                return losses
            }
            XCTAssertEqual(halfLoss.item.bitPattern, referenceLoss.item.bitPattern, "tied: \(tied)")
            for (index, (h, r)) in zip(half.parameters, reference.parameters).enumerated() {
                XCTAssertEqual(h.grad?.floats().map(\.bitPattern), r.grad?.floats().map(\.bitPattern),
                               "parameter \(index), tied: \(tied)")
            }
        }
    }

    /// A model drawn straight into bfloat16 (a 7B preset never exists in float32) holds the float32 model's values of
    /// the same seed, rounded to nearest even; its norms are ones. Moving it into a bf16 buffer keeps every value.
    func testRandomInitializationInBFloat16IsTheRoundedFloat32Initialization() {
        let half = LlamaForCausalLM(config, seed: 11, dtype: .bfloat16)
        let full = LlamaForCausalLM(config, seed: 11)
        XCTAssertEqual(half.namedParameters.map(\.key), full.namedParameters.map(\.key))
        for ((key, h), (_, f)) in zip(half.namedParameters, full.namedParameters) {
            let rounded = f.floats().map { HalfPrecision.float(bfloat16: HalfPrecision.bfloat16Bits($0)) }
            XCTAssertEqual(h.floats(), rounded, key)
            if key.hasSuffix("proj.weight") || key.hasSuffix("embed_tokens.weight") || key == "lm_head.weight" {
                XCTAssertEqual(h.dtype, .bfloat16, key)
            }
        }
        let before = half.parameters.map { $0.floats() }
        let buffer = ParameterBuffer(half.parameters, dtype: .bfloat16)
        XCTAssertEqual(buffer.values.storage.byteCount, half.parameterCount * 2)
        XCTAssertTrue(half.parameters.allSatisfy { $0.dtype == .bfloat16 })
        XCTAssertEqual(half.parameters.map { $0.floats() }, before)
    }

    func testConvertingToBFloat16RoundsToNearestEven() {
        let p = Tensor([1.00390625, 1.01171875, -3.1415927, 65504], shape: [4])
        _ = ParameterBuffer([p], dtype: .bfloat16)
        // 1 + 2⁻⁸ ties to 1 (even); 1 + 3·2⁻⁸ ties up to 1 + 2⁻⁶; π rounds to 3.140625.
        XCTAssertEqual(p.floats(), [1, 1.015625, -3.140625, 65536])
    }
}
