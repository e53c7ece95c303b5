import XCTest
@testable import CollieEngine
@testable import CollieModels

/// The LLaMA model itself: Hugging Face parameter names, one parameter buffer, rotary tables per sequence length.
final class LlamaModelTests: XCTestCase {
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
