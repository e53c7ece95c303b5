import XCTest
@testable import CollieEngine

/// `Tensor.scaledDotProductAttention` against `torch.nn.functional.scaled_dot_product_attention`
/// (fixture cases `sdpa_*`, saved in the Swift layout [B, T, H, D]), plus finite-difference
/// gradient checks in float64.
///
/// The torch side repeats each KV head H/KVH times (`repeat_interleave`, so query head h reads KV
/// head h / (H/KVH)) and turns the [B, S] padding mask (nonzero = keep) into a boolean attn_mask;
/// with both a mask and causality it folds the causal triangle into that mask.
/// Tolerance: the default 1e-5 × max|expected| (the score rows are only 6–7 long).
final class AttentionGoldenTests: XCTestCase {
    private func assertAttentionMatchesTorch(_ name: String, file: StaticString = #filePath, line: UInt = #line) {
        let causal = OpsFixture.int(name, "causal") != 0
        let mask = OpsFixture.has("\(name).mask") ? OpsFixture.tensor("\(name).mask") : nil
        let scale = OpsFixture.has("\(name).p.scale") ? OpsFixture.double(name, "scale") : nil
        assertMatchesTorch(name, differentiable: ["query", "key", "value"], file: file, line: line) {
            Tensor.scaledDotProductAttention(query: $0["query"]!, key: $0["key"]!, value: $0["value"]!,
                                             causal: causal, keyPaddingMask: mask, scale: scale)
        }
    }

    /// B=2, T=S=7, H=KVH=2, D=8, is_causal=True.
    func testCausalAttentionMatchesTorch() { assertAttentionMatchesTorch("sdpa_causal") }
    /// H=4 query heads over KVH=2 key/value heads, causal.
    func testGroupedQueryAttentionMatchesTorchWithRepeatedKVHeads() { assertAttentionMatchesTorch("sdpa_gqa") }
    /// Non-causal, T=5 queries over S=7 keys, H=2 over KVH=1, some keys padded out.
    func testKeyPaddingMaskMatchesTorchBooleanMask() { assertAttentionMatchesTorch("sdpa_padding") }
    /// Causal with right padding, GQA and an explicit scale of 0.2.
    func testCausalPaddedAttentionWithExplicitScaleMatchesTorch() { assertAttentionMatchesTorch("sdpa_causal_padding_scale") }

    // MARK: - Finite differences (float64)

    func testCausalGroupedQueryAttentionGradientsMatchFiniteDifferences() {
        var g = RandomGenerator(seed: 71)
        let q = Tensor.normal([2, 5, 4, 3], dtype: .float64, generator: &g)
        let k = Tensor.normal([2, 5, 2, 3], dtype: .float64, generator: &g)
        let v = Tensor.normal([2, 5, 2, 3], dtype: .float64, generator: &g)
        assertGradientsMatchFiniteDifferences(inputs: [q, k, v]) {
            Tensor.scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], causal: true)
        }
    }

    func testPaddedAttentionWithScaleGradientsMatchFiniteDifferences() {
        var g = RandomGenerator(seed: 72)
        let q = Tensor.normal([2, 4, 2, 3], dtype: .float64, generator: &g)
        let k = Tensor.normal([2, 6, 1, 3], dtype: .float64, generator: &g)
        let v = Tensor.normal([2, 6, 1, 3], dtype: .float64, generator: &g)
        let mask = Tensor(ints: [1, 1, 0, 1, 1, 1,
                                 1, 1, 1, 1, 0, 0], shape: [2, 6])
        assertGradientsMatchFiniteDifferences(inputs: [q, k, v]) {
            Tensor.scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], causal: false,
                                             keyPaddingMask: mask, scale: 0.7)
        }
    }
}
