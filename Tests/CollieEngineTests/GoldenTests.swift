import XCTest
@testable import CollieEngine

/// Every op against PyTorch: outputs and input gradients for the inputs, upstream gradient and
/// parameters stored in Fixtures/ops.safetensors by scripts/fixtures/make_engine_fixtures.py.
///
/// For a case `name`, the test loads `name.<input>` (differentiable inputs as leaves that require
/// a gradient), runs the Swift op, compares it with `name.out`, backpropagates
/// `loss = sum(out · name.gout)` and compares each leaf's gradient with `name.grad.<input>`.
///
/// Tolerance: float32 results must agree to `1e-5 × max|expected|` (a few float32 ulps of the
/// largest element; the shapes are small, so summation-order differences stay far below it).
/// Exceptions are stated at the case. Scalar parameters (axes, exponents, eps, ...) are read from
/// the fixture's `name.p.*` entries, so the script and the tests cannot drift apart.
final class GoldenTests: XCTestCase {
    /// Default float32 tolerance, relative to the largest expected magnitude.
    static let tolerance = 1e-5

    // MARK: - Unary elementwise

    func testExpMatchesTorch() { assertUnaryMatchesTorch("exp") { $0.exp() } }
    func testLogMatchesTorch() { assertUnaryMatchesTorch("log") { $0.log() } }
    func testSqrtMatchesTorch() { assertUnaryMatchesTorch("sqrt") { $0.sqrt() } }
    func testRsqrtMatchesTorch() { assertUnaryMatchesTorch("rsqrt") { $0.rsqrt() } }
    func testTanhMatchesTorch() { assertUnaryMatchesTorch("tanh") { $0.tanh() } }
    func testSigmoidMatchesTorch() { assertUnaryMatchesTorch("sigmoid") { $0.sigmoid() } }
    func testSiLUMatchesTorch() { assertUnaryMatchesTorch("silu") { $0.silu() } }
    func testExactGELUMatchesTorch() { assertUnaryMatchesTorch("gelu") { $0.gelu(approximateTanh: false) } }
    func testTanhApproximateGELUMatchesTorch() { assertUnaryMatchesTorch("gelu_tanh") { $0.gelu(approximateTanh: true) } }
    func testNegationMatchesTorch() { assertUnaryMatchesTorch("neg") { -$0 } }
    func testAbsMatchesTorch() { assertUnaryMatchesTorch("abs") { $0.abs() } }

    func testPowWithFractionalExponentMatchesTorch() {
        let exponent = OpsFixture.double("pow", "exponent")   // 2.5, on positive inputs
        assertUnaryMatchesTorch("pow") { $0.pow(exponent) }
    }

    func testPowWithAWholeExponentAcceptsNegativeBasesLikeTorch() {
        let exponent = OpsFixture.double("pow_int", "exponent")   // 3, on inputs of both signs
        assertUnaryMatchesTorch("pow_int") { $0.pow(exponent) }
    }

    func testClampMatchesTorch() {
        let lo = OpsFixture.double("clamp", "min"), hi = OpsFixture.double("clamp", "max")
        assertUnaryMatchesTorch("clamp") { $0.clamp(min: lo, max: hi) }
        let floor = OpsFixture.double("clamp_min", "min")
        assertUnaryMatchesTorch("clamp_min") { $0.clamp(min: floor) }
    }

    // MARK: - Binary arithmetic with broadcasting

    /// Cases per op: equal shapes; [2,3,4] with [4]; [2,3,4] with [2,1,4]; [3,1] with [2,1,4].
    private static let broadcastCases = ["same", "row", "mid", "both"]

    func testAdditionBroadcastsLikeTorch() {
        for c in Self.broadcastCases { assertMatchesTorch("add_\(c)", differentiable: ["a", "b"]) { $0["a"]! + $0["b"]! } }
    }

    func testSubtractionBroadcastsLikeTorch() {
        for c in Self.broadcastCases { assertMatchesTorch("sub_\(c)", differentiable: ["a", "b"]) { $0["a"]! - $0["b"]! } }
    }

    func testMultiplicationBroadcastsLikeTorch() {
        for c in Self.broadcastCases { assertMatchesTorch("mul_\(c)", differentiable: ["a", "b"]) { $0["a"]! * $0["b"]! } }
    }

    func testDivisionBroadcastsLikeTorch() {
        for c in Self.broadcastCases { assertMatchesTorch("div_\(c)", differentiable: ["a", "b"]) { $0["a"]! / $0["b"]! } }
    }

    func testWhereMatchesTorch() {
        let condition = OpsFixture.tensor("where.condition")   // int64 0/1, [2,3,4]; b is [4]
        assertMatchesTorch("where", differentiable: ["a", "b"]) { Tensor.where(condition, $0["a"]!, $0["b"]!) }
    }

    func testMaskedFillMatchesTorch() {
        let mask = OpsFixture.tensor("masked_fill.mask")       // int64 [3,4], broadcast over [2,3,4]
        let value = OpsFixture.double("masked_fill", "value")
        assertMatchesTorch("masked_fill", differentiable: ["x"]) { $0["x"]!.maskedFill(mask, value) }
    }

    // MARK: - Reductions

    func testSumAlongAnInnerAxisMatchesTorch() {
        let axis = OpsFixture.int("sum", "axis")
        assertMatchesTorch("sum", differentiable: ["x"]) { $0["x"]!.sum(axis: axis) }
        let last = OpsFixture.int("sum_keepdim", "axis")
        assertMatchesTorch("sum_keepdim", differentiable: ["x"]) { $0["x"]!.sum(axis: last, keepDim: true) }
    }

    func testMeanAlongAnInnerAxisMatchesTorch() {
        let axis = OpsFixture.int("mean", "axis")
        assertMatchesTorch("mean", differentiable: ["x"]) { $0["x"]!.mean(axis: axis) }
    }

    func testMaxAlongAnInnerAxisMatchesTorch() {
        let axis = OpsFixture.int("max", "axis")
        assertMatchesTorch("max", differentiable: ["x"]) { $0["x"]!.max(axis: axis) }
    }

    func testLogSumExpAlongAnInnerAxisMatchesTorch() {
        let axis = OpsFixture.int("logsumexp", "axis")
        assertMatchesTorch("logsumexp", differentiable: ["x"]) { $0["x"]!.logSumExp(axis: axis) }
    }

    func testArgmaxMatchesTorch() {
        let axis = OpsFixture.int("argmax", "axis")
        let result = OpsFixture.tensor("argmax.x").argmax(axis: axis)
        let expected = OpsFixture.tensor("argmax.out")
        XCTAssertEqual(result.dtype, .int64)
        XCTAssertEqual(result.shape, expected.shape)
        XCTAssertEqual(result.ints(), expected.ints())
    }

    func testSoftmaxMatchesTorchOnTheLastAndAMiddleAxis() {
        for c in ["softmax_last", "softmax_mid"] {
            let axis = OpsFixture.int(c, "axis")
            assertMatchesTorch(c, differentiable: ["x"]) { $0["x"]!.softmax(axis: axis) }
        }
    }

    func testLogSoftmaxMatchesTorchOnTheLastAndAMiddleAxis() {
        for c in ["log_softmax_last", "log_softmax_mid"] {
            let axis = OpsFixture.int(c, "axis")
            assertMatchesTorch(c, differentiable: ["x"]) { $0["x"]!.logSoftmax(axis: axis) }
        }
    }

    // MARK: - Shape ops

    func testReshapeMatchesTorch() {
        let shape = OpsFixture.ints("reshape", "shape")
        assertMatchesTorch("reshape", differentiable: ["x"]) { $0["x"]!.reshaped(shape) }
    }

    func testTransposeMatchesTorch() {
        let axes = OpsFixture.ints("transpose", "axes")
        assertMatchesTorch("transpose", differentiable: ["x"]) { $0["x"]!.transposed(axes[0], axes[1]) }
    }

    func testPermuteMatchesTorch() {
        let order = OpsFixture.ints("permute", "order")
        assertMatchesTorch("permute", differentiable: ["x"]) { $0["x"]!.permuted(order) }
    }

    func testReshapeOfATransposedViewMatchesTorch() {
        assertMatchesTorch("transpose_reshape", differentiable: ["x"]) { $0["x"]!.transposed(1, 2).reshaped([2, 12]) }
    }

    func testSliceMatchesTorch() {
        let axis = OpsFixture.int("slice", "axis")
        let range = OpsFixture.int("slice", "start")..<OpsFixture.int("slice", "end")
        assertMatchesTorch("slice", differentiable: ["x"]) { $0["x"]!.slice(axis: axis, range) }
    }

    func testConcatMatchesTorch() {
        let axis = OpsFixture.int("concat", "axis")
        assertMatchesTorch("concat", differentiable: ["a", "b", "c"]) { Tensor.concat([$0["a"]!, $0["b"]!, $0["c"]!], axis: axis) }
    }

    func testSplitMatchesTorch() {
        let sizes = OpsFixture.ints("split", "sizes"), axis = OpsFixture.int("split", "axis")
        assertMatchesTorch("split", differentiable: ["x"], outputs: { $0["x"]!.split(sizes: sizes, axis: axis) })
    }

    func testIndexSelectWithRepeatedIndicesMatchesTorch() {
        let indices = OpsFixture.tensor("index_select.indices"), axis = OpsFixture.int("index_select", "axis")
        assertMatchesTorch("index_select", differentiable: ["x"]) { $0["x"]!.indexSelect(axis: axis, indices) }
    }

    func testGatherMatchesTorch() {
        let indices = OpsFixture.tensor("gather.indices"), axis = OpsFixture.int("gather", "axis")
        assertMatchesTorch("gather", differentiable: ["x"]) { $0["x"]!.gather(axis: axis, indices) }
    }

    // MARK: - Matrix products

    /// 2-D products with each operand plain or a transposed view (`.t()` in torch); the gradient
    /// is checked on the stored (untransposed) leaf.
    func testMatmulMatchesTorchInAllFourTransposeCombinations() {
        assertMatchesTorch("matmul_nn", differentiable: ["a", "b"]) { Tensor.matmul($0["a"]!, $0["b"]!) }
        assertMatchesTorch("matmul_tn", differentiable: ["a", "b"]) { Tensor.matmul($0["a"]!.transposed(), $0["b"]!) }
        assertMatchesTorch("matmul_nt", differentiable: ["a", "b"]) { Tensor.matmul($0["a"]!, $0["b"]!.transposed()) }
        assertMatchesTorch("matmul_tt", differentiable: ["a", "b"]) {
            Tensor.matmul($0["a"]!.transposed(), $0["b"]!.transposed())
        }
    }

    func testBatchedMatmulMatchesTorch() {
        assertMatchesTorch("matmul_batched", differentiable: ["a", "b"]) { Tensor.matmul($0["a"]!, $0["b"]!) }
        assertMatchesTorch("matmul_batched_bt", differentiable: ["a", "b"]) {
            Tensor.matmul($0["a"]!, $0["b"]!.transposed(1, 2))
        }
    }

    /// [B, M, K] × a shared [K, N]: the batch folded into M (contiguous a) or looped (transposed a).
    func testMatmulWithASharedRightOperandMatchesTorch() {
        assertMatchesTorch("matmul_shared", differentiable: ["a", "b"]) { Tensor.matmul($0["a"]!, $0["b"]!) }
        assertMatchesTorch("matmul_shared_at", differentiable: ["a", "b"]) {
            Tensor.matmul($0["a"]!.transposed(1, 2), $0["b"]!)
        }
    }

    func testLinearMatchesTorch() {
        assertMatchesTorch("linear", differentiable: ["x", "weight", "bias"]) {
            Tensor.linear($0["x"]!, weight: $0["weight"]!, bias: $0["bias"]!)
        }
    }

    func testLinearWithoutBiasMatchesTorch() {
        assertMatchesTorch("linear_nobias", differentiable: ["x", "weight"]) { Tensor.linear($0["x"]!, weight: $0["weight"]!) }
    }

    // MARK: - Normalization

    func testRMSNormMatchesTransformers() {
        let eps = OpsFixture.double("rms_norm", "eps")   // 1e-6, LlamaRMSNorm's default
        assertMatchesTorch("rms_norm", differentiable: ["x", "weight"]) {
            Tensor.rmsNorm($0["x"]!, weight: $0["weight"]!, epsilon: eps)
        }
    }

    func testLayerNormMatchesTorch() {
        let eps = OpsFixture.double("layer_norm", "eps")  // 1e-5, torch's default
        assertMatchesTorch("layer_norm", differentiable: ["x", "weight", "bias"]) {
            Tensor.layerNorm($0["x"]!, weight: $0["weight"]!, bias: $0["bias"]!, epsilon: eps)
        }
    }

    // MARK: - Rotary position embedding

    func testRotateHalfRoPEMatchesTransformers() { assertRotaryMatches("rope_half", layout: .rotateHalf) }
    func testPartialRotateHalfRoPEMatchesTransformers() { assertRotaryMatches("rope_half_partial", layout: .rotateHalf) }
    func testInterleavedRoPEMatchesGPTJ() { assertRotaryMatches("rope_interleaved", layout: .interleaved) }
    func testPartialInterleavedRoPEMatchesGPTJ() { assertRotaryMatches("rope_interleaved_partial", layout: .interleaved) }

    /// Builds the tables with `rotaryTables` from the fixture's positions ([B, T]) and inverse
    /// frequencies (LlamaRotaryEmbedding's), checks them against torch's, then rotates with them.
    private func assertRotaryMatches(_ name: String, layout: RotaryLayout, file: StaticString = #filePath, line: UInt = #line) {
        let positions = OpsFixture.tensor("\(name).positions")
        let inverseFrequencies = OpsFixture.tensor("\(name).inv_freq").floats()
        XCTAssertEqual(2 * inverseFrequencies.count, OpsFixture.int(name, "rotary_dim"), file: file, line: line)
        let tables = Tensor.rotaryTables(positions: positions, inverseFrequencies: inverseFrequencies)
        // cos/sin of the same float32 angles; libm and torch's vectorized cos may differ by an ulp.
        assertClose(tables.cos, OpsFixture.tensor("\(name).cos"), relative: 1e-6, "\(name) cos table", file: file, line: line)
        assertClose(tables.sin, OpsFixture.tensor("\(name).sin"), relative: 1e-6, "\(name) sin table", file: file, line: line)
        assertMatchesTorch(name, differentiable: ["x"], file: file, line: line) {
            Tensor.applyRotary($0["x"]!, cos: tables.cos, sin: tables.sin, layout: layout)
        }
    }

    // MARK: - MLP, loss, embedding

    func testSwiGLUMatchesTorch() {
        assertMatchesTorch("swiglu", differentiable: ["gate", "up"]) { Tensor.swiglu(gate: $0["gate"]!, up: $0["up"]!) }
    }

    func testCrossEntropyWithIgnoredTargetsMatchesTorchForMeanAndSum() {
        for (name, reduction) in [("cross_entropy_mean", LossReduction.mean), ("cross_entropy_sum", .sum)] {
            let targets = OpsFixture.tensor("\(name).targets")   // [2, 6], three of them -100
            let ignore = OpsFixture.int(name, "ignore_index")
            XCTAssertEqual(ignore, Tensor.ignoreIndex)
            assertMatchesTorch(name, differentiable: ["logits"]) {
                Tensor.crossEntropy(logits: $0["logits"]!, targets: targets, ignoreIndex: ignore, reduction: reduction)
            }
        }
    }

    func testEmbeddingWithARepeatedIDMatchesTorch() {
        let ids = OpsFixture.tensor("embedding.ids")
        assertMatchesTorch("embedding", differentiable: ["weight"]) { Tensor.embedding(ids, weight: $0["weight"]!) }
    }

    // MARK: - 16-bit conversions

    /// Ties, subnormals, overflow to ±inf, ±0, ±inf and large values round bit-for-bit as torch's
    /// `.to(torch.bfloat16)`. NaNs are compared as NaNs only: torch's own bf16 NaN bits depend on
    /// the kernel path (0x7FC0 scalar, 0xFFFF in its AVX2/AVX-512 loops), so no pattern is canonical.
    func testBFloat16RoundingMatchesTorchBitForBit() {
        assertHalfPrecisionMatches("bf16", dtype: .bfloat16, isNaN: { $0 & 0x7F80 == 0x7F80 && $0 & 0x007F != 0 },
                                   direct: HalfPrecision.bfloat16Bits)
    }

    /// The same for IEEE half (`.to(torch.float16)`): fp16 overflow at 65520, its subnormals and ties.
    func testFloat16RoundingMatchesTorchBitForBit() {
        assertHalfPrecisionMatches("fp16", dtype: .float16, isNaN: { $0 & 0x7C00 == 0x7C00 && $0 & 0x03FF != 0 },
                                   direct: HalfPrecision.float16Bits)
    }

    private func assertHalfPrecisionMatches(_ name: String, dtype: DType, isNaN: (UInt16) -> Bool,
                                            direct: (Float) -> UInt16, file: StaticString = #filePath, line: UInt = #line) {
        let x = OpsFixture.tensor("\(name).x")
        let expected = OpsFixture.tensor("\(name).bits")
        XCTAssertEqual(expected.dtype, dtype, file: file, line: line)
        let converted = x.to(dtype)
        XCTAssertEqual(converted.dtype, dtype, file: file, line: line)
        let inputs = x.floats()
        let want = Array(UnsafeBufferPointer(start: expected.pointer(as: UInt16.self), count: expected.count))
        let got = Array(UnsafeBufferPointer(start: converted.pointer(as: UInt16.self), count: converted.count))
        let roundTrip = converted.to(.float32).floats(), wantRoundTrip = OpsFixture.tensor("\(name).roundtrip").floats()
        for i in 0..<inputs.count {
            let hex = String(inputs[i].bitPattern, radix: 16)
            if isNaN(want[i]) {
                XCTAssertTrue(isNaN(got[i]), "\(name) of NaN 0x\(hex) gave 0x\(String(got[i], radix: 16))", file: file, line: line)
                XCTAssertTrue(roundTrip[i].isNaN, file: file, line: line)
                continue
            }
            XCTAssertEqual(got[i], want[i], "\(name) of \(inputs[i]) (0x\(hex))", file: file, line: line)
            XCTAssertEqual(direct(inputs[i]), want[i], "HalfPrecision \(name) of \(inputs[i]) (0x\(hex))", file: file, line: line)
            XCTAssertEqual(roundTrip[i].bitPattern, wantRoundTrip[i].bitPattern, "\(name) round trip of \(inputs[i])",
                           file: file, line: line)
        }
        // The reader's widening of the stored 16-bit tensor agrees with torch's too.
        XCTAssertEqual(expected.floats().map(\.bitPattern).enumerated().filter { !isNaN(want[$0.offset]) }.map(\.element),
                       wantRoundTrip.map(\.bitPattern).enumerated().filter { !isNaN(want[$0.offset]) }.map(\.element),
                       file: file, line: line)
    }

    // MARK: - Helpers

    private func assertUnaryMatchesTorch(_ name: String, file: StaticString = #filePath, line: UInt = #line,
                                         _ op: (Tensor) -> Tensor) {
        assertMatchesTorch(name, differentiable: ["x"], file: file, line: line) { op($0["x"]!) }
    }
}

extension XCTestCase {
    /// Runs one golden case with a single output (`name.out`, `name.gout`).
    func assertMatchesTorch(_ name: String, differentiable: [String], tolerance: Double = GoldenTests.tolerance,
                            gradientTolerance: Double? = nil, file: StaticString = #filePath, line: UInt = #line,
                            _ op: ([String: Tensor]) -> Tensor) {
        assertMatchesTorch(name, differentiable: differentiable, tolerance: tolerance, gradientTolerance: gradientTolerance,
                           file: file, line: line, outputs: { [op($0)] })
    }

    /// Runs one golden case: loads the differentiable inputs as leaves, compares each output with
    /// `name.out` (or `name.out0`, `name.out1`, ... for several), backpropagates
    /// `Σ sum(out_i · gout_i)` and compares each leaf's gradient with `name.grad.<input>`.
    func assertMatchesTorch(_ name: String, differentiable: [String], tolerance: Double = GoldenTests.tolerance,
                            gradientTolerance: Double? = nil, file: StaticString = #filePath, line: UInt = #line,
                            outputs op: ([String: Tensor]) -> [Tensor]) {
        var leaves: [String: Tensor] = [:]
        for key in differentiable {
            let t = OpsFixture.tensor("\(name).\(key)", file: file, line: line)
            t.requiresGrad = true
            leaves[key] = t
        }
        let outs = op(leaves)
        let suffixes = outs.count == 1 ? [""] : outs.indices.map(String.init)
        var loss: Tensor?
        for (out, suffix) in zip(outs, suffixes) {
            assertClose(out, OpsFixture.tensor("\(name).out\(suffix)", file: file, line: line), relative: tolerance,
                        "\(name) output\(suffix)", file: file, line: line)
            let term = (out * OpsFixture.tensor("\(name).gout\(suffix)", file: file, line: line)).sum()
            loss = loss.map { $0 + term } ?? term
        }
        guard let loss, !differentiable.isEmpty else { return }
        loss.backward()
        for key in differentiable {
            guard let grad = leaves[key]!.grad else {
                XCTFail("\(name): no gradient reached \(key)", file: file, line: line)
                continue
            }
            assertClose(grad, OpsFixture.tensor("\(name).grad.\(key)", file: file, line: line),
                        relative: gradientTolerance ?? tolerance, "\(name) gradient of \(key)", file: file, line: line)
        }
    }
}
