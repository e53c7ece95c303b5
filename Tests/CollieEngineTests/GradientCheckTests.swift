import Foundation
import XCTest
@testable import CollieEngine

/// Checks the analytic gradient of `function` at `inputs` (float64) against central finite
/// differences.
///
/// The scalar checked is `L = Σ function(inputs) · w` for a fixed random `w` of the output's
/// shape, so every output element contributes. The analytic gradient comes from one `backward()`
/// of L through leaf copies of the inputs; the numeric one perturbs each input element by ±eps
/// (eps = 1e-6) and evaluates L without recording. Central differences in float64 are accurate to
/// about eps² (truncation) plus 1e-16·|L| / eps (rounding) ≈ 1e-10 here, so a mismatch above
/// `tolerance × max(1, max|numeric|)` (1e-6 by default) is a wrong derivative, not noise.
/// Constants (indices, masks, tables) are captured by `function`, not passed as inputs.
func assertGradientsMatchFiniteDifferences(inputs: [Tensor], epsilon: Double = 1e-6, tolerance: Double = 1e-6,
                                           file: StaticString = #filePath, line: UInt = #line,
                                           function: ([Tensor]) -> Tensor) {
    for t in inputs {
        precondition(t.dtype == .float64, "finite-difference checks run in float64, got \(t.dtype)")
    }
    let leaves = inputs.map { t -> Tensor in
        let leaf = t.contiguousCopy()
        leaf.requiresGrad = true
        return leaf
    }
    let out = function(leaves)
    XCTAssertEqual(out.dtype, .float64, "the op should compute in float64", file: file, line: line)
    var g = RandomGenerator(seed: 0xF1D)
    let weights = Tensor.normal(out.shape, dtype: .float64, generator: &g)
    let w = weights.doubles()
    (out * weights).sum().backward()

    func loss() -> Double {
        let values = withNoGrad { function(leaves) }.doubles()
        var s = 0.0
        for i in 0..<values.count { s += values[i] * w[i] }
        return s
    }

    for (index, leaf) in leaves.enumerated() {
        guard let grad = leaf.grad else {
            XCTFail("input \(index): no gradient reached it", file: file, line: line)
            continue
        }
        XCTAssertEqual(grad.shape, leaf.shape, "input \(index): gradient shape", file: file, line: line)
        let analytic = grad.doubles()
        var numeric = [Double](repeating: 0, count: leaf.count)
        let p = leaf.pointer(as: Double.self)
        for k in 0..<leaf.count {
            let original = p[k]
            p[k] = original + epsilon
            let plus = loss()
            p[k] = original - epsilon
            let minus = loss()
            p[k] = original
            numeric[k] = (plus - minus) / (2 * epsilon)
        }
        let scale = Swift.max(1, numeric.map(Swift.abs).max() ?? 0)
        var worst = 0.0, at = 0
        for k in 0..<numeric.count where Swift.abs(analytic[k] - numeric[k]) > worst {
            worst = Swift.abs(analytic[k] - numeric[k]); at = k
        }
        if !(worst <= tolerance * scale) {
            XCTFail("input \(index) \(leaf.shape): analytic \(analytic[at]) vs finite-difference \(numeric[at]) "
                    + "at element \(at) (|difference| \(worst) > \(tolerance) × \(scale))", file: file, line: line)
        }
    }
}

/// Every differentiable op's backward against finite differences in float64.
final class GradientCheckTests: XCTestCase {
    private var g = RandomGenerator(seed: 2024)

    private func normal(_ shape: [Int], std: Double = 1) -> Tensor {
        Tensor.normal(shape, std: std, dtype: .float64, generator: &g)
    }

    /// Values in [low, high) (for log, sqrt, division, ...).
    private func uniform(_ shape: [Int], _ low: Double, _ high: Double) -> Tensor {
        Tensor.uniform(shape, low: low, high: high, dtype: .float64, generator: &g)
    }

    /// Normal values pushed at least `gap` away from each point in `kinks` (abs, clamp).
    private func normal(_ shape: [Int], avoiding kinks: [Double], gap: Double = 1e-3) -> Tensor {
        let values = normal(shape).doubles().map { v -> Double in
            var v = v
            for k in kinks where Swift.abs(v - k) < gap { v = k + (v < k ? -gap : gap) * 2 }
            return v
        }
        return Tensor(doubles: values, shape: shape)
    }

    private func check(_ inputs: [Tensor], file: StaticString = #filePath, line: UInt = #line, _ f: ([Tensor]) -> Tensor) {
        assertGradientsMatchFiniteDifferences(inputs: inputs, file: file, line: line, function: f)
    }

    // MARK: - Unary

    func testExpGradient() { check([uniform([3, 4], -3, 3)]) { $0[0].exp() } }
    func testLogGradient() { check([uniform([3, 4], 0.2, 4)]) { $0[0].log() } }
    func testSqrtGradient() { check([uniform([3, 4], 0.2, 4)]) { $0[0].sqrt() } }
    func testRsqrtGradient() { check([uniform([3, 4], 0.2, 4)]) { $0[0].rsqrt() } }
    func testTanhGradient() { check([normal([3, 4], std: 2)]) { $0[0].tanh() } }
    func testSigmoidGradient() { check([normal([3, 4], std: 3)]) { $0[0].sigmoid() } }
    func testSiLUGradient() { check([normal([3, 4], std: 3)]) { $0[0].silu() } }
    func testExactGELUGradient() { check([normal([3, 4], std: 3)]) { $0[0].gelu(approximateTanh: false) } }
    func testTanhApproximateGELUGradient() { check([normal([3, 4], std: 3)]) { $0[0].gelu(approximateTanh: true) } }
    func testNegationGradient() { check([normal([3, 4])]) { -$0[0] } }
    func testAbsGradient() { check([normal([3, 4], avoiding: [0])]) { $0[0].abs() } }
    func testPowGradient() { check([uniform([3, 4], 0.2, 3)]) { $0[0].pow(2.5) } }
    func testClampGradient() {
        check([normal([4, 5], avoiding: [-0.5, 0.8])]) { $0[0].clamp(min: -0.5, max: 0.8) }
        check([normal([4, 5], avoiding: [0.1])]) { $0[0].clamp(min: 0.1) }
        check([normal([4, 5], avoiding: [0.3])]) { $0[0].clamp(max: 0.3) }
    }

    // MARK: - Binary with broadcasting

    /// [2,3,4] with [4], with [2,1,4], and [3,1] with [2,1,4] (both sides broadcast); [2,3,4] with a scalar [] and
    /// [3,4] with [1,1] (one element, read as a number).
    private func broadcastPairs() -> [(Tensor, Tensor)] {
        [(normal([2, 3, 4]), uniform([4], 0.5, 2)),
         (normal([2, 3, 4]), uniform([2, 1, 4], -2, -0.5)),
         (normal([3, 1]), uniform([2, 1, 4], 0.5, 2)),
         (normal([2, 3, 4]), uniform([], 0.5, 2)),
         (normal([3, 4]), uniform([1, 1], -2, -0.5))]
    }

    func testAdditionGradientWithBroadcasting() { for (a, b) in broadcastPairs() { check([a, b]) { $0[0] + $0[1] } } }
    func testSubtractionGradientWithBroadcasting() { for (a, b) in broadcastPairs() { check([a, b]) { $0[0] - $0[1] } } }
    func testMultiplicationGradientWithBroadcasting() { for (a, b) in broadcastPairs() { check([a, b]) { $0[0] * $0[1] } } }
    func testDivisionGradientWithBroadcasting() { for (a, b) in broadcastPairs() { check([a, b]) { $0[0] / $0[1] } } }

    func testScalarArithmeticGradient() {
        check([normal([3, 4])]) { (2.5 * $0[0] + 1.5) / 3 - 0.25 }
    }

    func testWhereGradient() {
        let condition = Tensor(ints: [1, 0, 0, 1, 1, 0, 1, 0, 0, 0, 1, 1], shape: [3, 4])
        check([normal([2, 3, 4]), normal([4])]) { Tensor.where(condition, $0[0], $0[1]) }
    }

    func testMaskedFillGradient() {
        let mask = Tensor(ints: [1, 0, 0, 1], shape: [4])
        check([normal([2, 3, 4])]) { $0[0].maskedFill(mask, -3) }
    }

    // MARK: - Reductions

    func testSumGradient() {
        check([normal([2, 5, 4])]) { $0[0].sum(axis: 1) }
        check([normal([2, 5, 4])]) { $0[0].sum(axis: -1, keepDim: true) }
        check([normal([2, 5, 4])]) { $0[0].sum() }
    }

    func testMeanGradient() {
        check([normal([2, 5, 4])]) { $0[0].mean(axis: 1) }
        check([normal([2, 5, 4])]) { $0[0].mean() }
    }

    func testMaxGradient() { check([normal([2, 5, 4])]) { $0[0].max(axis: 1) } }
    func testLogSumExpGradient() { check([normal([2, 5, 4], std: 3)]) { $0[0].logSumExp(axis: 1) } }

    func testSoftmaxGradient() {
        check([normal([2, 5, 6], std: 2)]) { $0[0].softmax(axis: -1) }
        check([normal([2, 5, 6], std: 2)]) { $0[0].softmax(axis: 1) }
    }

    func testLogSoftmaxGradient() {
        check([normal([2, 5, 6], std: 2)]) { $0[0].logSoftmax(axis: -1) }
        check([normal([2, 5, 6], std: 2)]) { $0[0].logSoftmax(axis: 1) }
    }

    // MARK: - Shape ops

    /// Each view is followed by an elementwise op so the check sees its gradient routing.
    func testReshapeGradient() { check([normal([2, 3, 4])]) { $0[0].reshaped([4, -1]).tanh() } }
    func testTransposeGradient() { check([normal([2, 3, 4])]) { $0[0].transposed(0, 2).tanh() } }
    func testPermuteGradient() { check([normal([2, 3, 4])]) { $0[0].permuted([2, 0, 1]).tanh() } }
    func testReshapeOfATransposedViewGradient() { check([normal([2, 3, 4])]) { $0[0].transposed(1, 2).reshaped([2, 12]).tanh() } }
    func testSliceGradient() { check([normal([2, 5, 4])]) { $0[0].slice(axis: 1, 1..<4).tanh() } }
    func testExpandGradient() { check([normal([3, 1])]) { $0[0].expanded(to: [2, 3, 4]).tanh() } }
    func testSqueezeAndUnsqueezeGradient() { check([normal([3, 1, 4])]) { $0[0].squeezed(axis: 1).unsqueezed(axis: 0).tanh() } }

    func testConcatGradient() {
        check([normal([2, 3, 4]), normal([2, 2, 4]), normal([2, 1, 4])]) { Tensor.concat($0, axis: 1).tanh() }
    }

    func testSplitGradient() {
        check([normal([2, 5, 4])]) {
            let parts = $0[0].split(sizes: [2, 3], axis: 1)
            return Tensor.concat([parts[1].tanh(), parts[0] * 3], axis: 1)
        }
    }

    func testIndexSelectGradientWithRepeatedIndices() {
        let indices = Tensor(ints: [3, 0, 3, 1], shape: [4])
        check([normal([2, 5, 4])]) { $0[0].indexSelect(axis: 1, indices) }
        check([normal([5, 3])]) { $0[0].indexSelect(axis: 0, indices) }
    }

    func testGatherGradient() {
        let indices = Tensor(ints: [0, 4, 4, 2, 1, 1, 3, 0, 2, 2, 0, 4,
                                    1, 3, 0, 0, 4, 2, 2, 3, 3, 1, 1, 0], shape: [2, 3, 4])
        check([normal([2, 5, 4])]) { $0[0].gather(axis: 1, indices) }
    }

    // MARK: - Matrix products

    func testMatmulGradientInAllFourTransposeCombinations() {
        check([normal([5, 6]), normal([6, 4])]) { Tensor.matmul($0[0], $0[1]) }
        check([normal([6, 5]), normal([6, 4])]) { Tensor.matmul($0[0].transposed(), $0[1]) }
        check([normal([5, 6]), normal([4, 6])]) { Tensor.matmul($0[0], $0[1].transposed()) }
        check([normal([6, 5]), normal([4, 6])]) { Tensor.matmul($0[0].transposed(), $0[1].transposed()) }
    }

    func testBatchedMatmulGradient() {
        check([normal([2, 5, 6]), normal([2, 6, 4])]) { Tensor.matmul($0[0], $0[1]) }
        check([normal([2, 5, 6]), normal([2, 4, 6])]) { Tensor.matmul($0[0], $0[1].transposed(1, 2)) }
        check([normal([2, 6, 5]), normal([2, 6, 4])]) { Tensor.matmul($0[0].transposed(1, 2), $0[1]) }
    }

    func testMatmulWithASharedRightOperandGradient() {
        check([normal([2, 5, 6]), normal([6, 4])]) { Tensor.matmul($0[0], $0[1]) }
        check([normal([2, 6, 5]), normal([6, 4])]) { Tensor.matmul($0[0].transposed(1, 2), $0[1]) }
        check([normal([2, 5, 6]), normal([4, 6])]) { Tensor.matmul($0[0], $0[1].transposed()) }
    }

    func testLinearGradient() {
        check([normal([2, 5, 8]), normal([6, 8]), normal([6])]) { Tensor.linear($0[0], weight: $0[1], bias: $0[2]) }
        check([normal([2, 5, 8]), normal([6, 8])]) { Tensor.linear($0[0], weight: $0[1]) }
        // A transposed weight view ([in, out] storage) and a non-contiguous input.
        check([normal([5, 2, 8]), normal([8, 6])]) { Tensor.linear($0[0].transposed(0, 1), weight: $0[1].transposed()) }
    }

    // MARK: - Normalization

    func testRMSNormGradient() {
        check([normal([2, 5, 16]), uniform([16], 0.5, 1.5)]) { Tensor.rmsNorm($0[0], weight: $0[1], epsilon: 1e-6) }
    }

    func testLayerNormGradient() {
        check([normal([2, 5, 16], std: 2), uniform([16], 0.5, 1.5), normal([16])]) {
            Tensor.layerNorm($0[0], weight: $0[1], bias: $0[2], epsilon: 1e-5)
        }
    }

    // MARK: - Rotary

    private func tables(_ rotaryDim: Int) -> (cos: Tensor, sin: Tensor) {
        let positions = Tensor(ints: [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12], shape: [2, 6])
        let inverse = (0..<(rotaryDim / 2)).map { 1 / Float(Foundation.pow(10000, Double(2 * $0) / Double(rotaryDim))) }
        return Tensor.rotaryTables(positions: positions, inverseFrequencies: inverse)
    }

    func testRotateHalfRoPEGradient() {
        let full = tables(8), partial = tables(6)
        check([normal([2, 6, 2, 8])]) { Tensor.applyRotary($0[0], cos: full.cos, sin: full.sin, layout: .rotateHalf) }
        check([normal([2, 6, 2, 10])]) { Tensor.applyRotary($0[0], cos: partial.cos, sin: partial.sin, layout: .rotateHalf) }
    }

    func testInterleavedRoPEGradient() {
        let full = tables(8), partial = tables(6)
        check([normal([2, 6, 2, 8])]) { Tensor.applyRotary($0[0], cos: full.cos, sin: full.sin, layout: .interleaved) }
        check([normal([2, 6, 2, 10])]) { Tensor.applyRotary($0[0], cos: partial.cos, sin: partial.sin, layout: .interleaved) }
    }

    // MARK: - MLP, loss, embedding

    func testSwiGLUGradient() { check([normal([2, 5, 8], std: 2), normal([2, 5, 8])]) { Tensor.swiglu(gate: $0[0], up: $0[1]) } }

    func testCrossEntropyGradientWithIgnoredTargets() {
        let targets = Tensor(ints: [3, -100, 7, 0, 9, 9, 1, 2, -100, 4, 5, 6], shape: [2, 6])
        check([normal([2, 6, 10], std: 2)]) { Tensor.crossEntropy(logits: $0[0], targets: targets, reduction: .mean) }
        check([normal([2, 6, 10], std: 2)]) { Tensor.crossEntropy(logits: $0[0], targets: targets, reduction: .sum) }
        // Two losses of the same logits: the second backward adds to the gradient the first wrote (rows the one
        // ignores the other does not).
        let others = Tensor(ints: [-100, 1, 7, 2, -100, 0, 1, 8, 3, 4, 5, 6], shape: [2, 6])
        check([normal([2, 6, 10], std: 2)]) {
            Tensor.crossEntropy(logits: $0[0], targets: targets) + Tensor.crossEntropy(logits: $0[0], targets: others, reduction: .sum)
        }
    }

    func testEmbeddingGradientWithRepeatedIDs() {
        let ids = Tensor(ints: [4, 1, 4, 0, 6, 1, 1, 2], shape: [2, 4])
        check([normal([7, 5])]) { Tensor.embedding(ids, weight: $0[0]) }
    }

    // MARK: - A composite

    /// A small pre-norm block: embedding → RMSNorm → linear → SwiGLU → linear → residual → CE.
    func testSmallTransformerStyleChainGradient() {
        let ids = Tensor(ints: [1, 4, 2, 2, 0, 3], shape: [2, 3])
        let targets = Tensor(ints: [4, 2, -100, 0, 3, 1], shape: [2, 3])
        check([normal([5, 4]), uniform([4], 0.5, 1.5), normal([6, 4], std: 0.5), normal([4, 3], std: 0.5)]) { p in
            let h = Tensor.embedding(ids, weight: p[0])
            let n = Tensor.rmsNorm(h, weight: p[1], epsilon: 1e-6)
            let up = Tensor.linear(n, weight: p[2]).split(sizes: [3, 3], axis: -1)
            let mlp = Tensor.linear(Tensor.swiglu(gate: up[0], up: up[1]), weight: p[3])
            let logits = Tensor.linear(h + mlp, weight: p[0])     // tied embedding as the output head
            return Tensor.crossEntropy(logits: logits, targets: targets)
        }
    }
}
