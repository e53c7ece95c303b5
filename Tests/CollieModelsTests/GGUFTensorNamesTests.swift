import XCTest
@testable import CollieModels

final class GGUFTensorNamesTests: XCTestCase {
    func testNamesMapBothWays() {
        let pairs = [
            ("token_embd.weight", "model.embed_tokens.weight"),
            ("output_norm.weight", "model.norm.weight"),
            ("output.weight", "lm_head.weight"),
            ("blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight"),
            ("blk.12.attn_q.weight", "model.layers.12.self_attn.q_proj.weight"),
            ("blk.12.attn_q.bias", "model.layers.12.self_attn.q_proj.bias"),
            ("blk.1.attn_k.bias", "model.layers.1.self_attn.k_proj.bias"),
            ("blk.1.attn_v.weight", "model.layers.1.self_attn.v_proj.weight"),
            ("blk.29.attn_output.weight", "model.layers.29.self_attn.o_proj.weight"),
            ("blk.2.ffn_norm.weight", "model.layers.2.post_attention_layernorm.weight"),
            ("blk.2.ffn_gate.weight", "model.layers.2.mlp.gate_proj.weight"),
            ("blk.2.ffn_up.weight", "model.layers.2.mlp.up_proj.weight"),
            ("blk.2.ffn_down.weight", "model.layers.2.mlp.down_proj.weight"),
        ]
        for (gguf, huggingFace) in pairs {
            XCTAssertEqual(GGUFTensorNames.huggingFaceName(forGGUFName: gguf), huggingFace)
            XCTAssertEqual(GGUFTensorNames.ggufName(forHuggingFaceName: huggingFace), gguf)
        }
    }

    func testUnknownNamesMapToNil() {
        for name in ["rope_freqs.weight", "blk.x.attn_q.weight", "blk.-1.attn_q.weight", "blk.01.attn_q.weight",
                     "blk.1.attn_q.scale", "blk.1.attn_qq.weight", "blk..attn_q.weight", "blk.1.attn_q", ""] {
            XCTAssertNil(GGUFTensorNames.huggingFaceName(forGGUFName: name), name)
        }
        for name in ["model.layers.1.self_attn.rotary_emb.inv_freq", "model.layers.1.mlp.gate_proj.lora_A.weight",
                     "layers.1.mlp.up_proj.weight", "model.layers.99999999999999999999.mlp.up_proj.weight"] {
            XCTAssertNil(GGUFTensorNames.ggufName(forHuggingFaceName: name), name)
        }
    }

    /// Values printed by `LlamaModel.permute` of convert_hf_to_gguf.py (numpy) for the same inputs.
    func testPermutationMatchesLlamaCppConversion() throws {
        XCTAssertEqual(try GGUFRotaryPermutation.permuted(Array(0..<8), rows: 8, heads: 2), [0, 2, 1, 3, 4, 6, 5, 7])
        XCTAssertEqual(try GGUFRotaryPermutation.permuted(Array(0..<12), rows: 6, heads: 1),
                       [0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11])
    }

    func testUnpermuteUndoesPermute() throws {
        let values = (0..<(24 * 5)).map { Float($0) * 0.5 }
        for heads in [1, 2, 3, 4, 6, 12] {
            let permuted = try GGUFRotaryPermutation.permuted(values, rows: 24, heads: heads)
            XCTAssertEqual(try GGUFRotaryPermutation.unpermuted(permuted, rows: 24, heads: heads), values)
            if heads < 12 { XCTAssertNotEqual(permuted, values, "\(heads) heads") }
        }
    }

    func testPermutationRejectsShapesThatDoNotSplitIntoHeads() {
        XCTAssertThrowsError(try GGUFRotaryPermutation.permuted(Array(0..<12), rows: 6, heads: 2))
        XCTAssertThrowsError(try GGUFRotaryPermutation.permuted(Array(0..<12), rows: 8, heads: 2))
        XCTAssertThrowsError(try GGUFRotaryPermutation.unpermuted(Array(0..<8), rows: 8, heads: 0))
        XCTAssertThrowsError(try GGUFRotaryPermutation.unpermuted([Int](), rows: 0, heads: 1))
    }
}
