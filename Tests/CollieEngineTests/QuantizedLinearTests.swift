import CCollieKernels
import XCTest
@testable import CollieEngine
import CollieTestSupport

/// `Tensor.linear(_:quantized:bias:)` equals `Tensor.linear` on the dequantized weight — forward, dX and db, at every
/// kernel level and format — on BLAS tiles for training and on the block kernels while decoding.
final class QuantizedLinearTests: XCTestCase {
    /// Output counts that are odd, one crossing the 128-row tiles; 512 columns are whole blocks of every format.
    private let outCounts = [7, 131]
    private let columns = 512

    /// Each element within 1e-5 of the sum of its terms' magnitudes (`magnitude`: the same product on |a| and |b|),
    /// float32 rounding in any summation order.
    private func assertClose(_ got: [Float], _ expected: [Float], magnitude: [Float], _ message: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, expected.count, message, file: file, line: line)
        for (k, (a, b)) in zip(got, expected).enumerated() where abs(a - b) > 1e-5 * max(magnitude[k], 1e-30) {
            XCTFail("\(message): \(a) vs \(b) (terms \(magnitude[k]))", file: file, line: line)
            return
        }
    }

    private func absolute(_ t: Tensor) -> Tensor { Tensor(t.floats().map(abs), shape: t.shape) }

    /// |x|·|W|ᵀ + |b|: the size of the terms of each output of linear.
    private func magnitude(_ x: Tensor, _ weight: Tensor, _ bias: Tensor?) -> [Float] {
        withNoGrad { Tensor.linear(absolute(x), weight: absolute(weight), bias: bias.map(absolute)).floats() }
    }

    func testForwardAndBackwardEqualDequantizedLinear() {
        var generator = RandomGenerator(seed: 5)
        for format in BlockFormat.allCases {
            for (index, out) in outCounts.enumerated() {
                let matrix = randomQuantizedMatrix(format, rows: out, columns: columns, seed: UInt64(index))
                let dense = matrix.dequantized()
                let bias = Tensor.normal([out], generator: &generator)
                for rows in [1, 7, 33, 300] where rows * out <= 10_000 {
                    let x = Tensor.normal([rows, columns], generator: &generator)
                    let gradient = Tensor.normal([rows, out], generator: &generator)
                    // Every level for one shape (the tiles' dequantization); the others at the highest level.
                    let highest = collie_kernel_level()
                    forEachKernelLevel { level in
                        guard (rows, out) == (7, 131) || level == highest else { return }
                        let (qx, qb) = (x.contiguousCopy(), bias.contiguousCopy())
                        qx.requiresGrad = true; qb.requiresGrad = true
                        let y = Tensor.linear(qx, quantized: matrix, bias: qb)
                        y.backward(gradient: gradient)
                        let (dx, db) = (x.contiguousCopy(), bias.contiguousCopy())
                        dx.requiresGrad = true; db.requiresGrad = true
                        let reference = Tensor.linear(dx, weight: dense, bias: db)
                        reference.backward(gradient: gradient)
                        let message = "\(format) \(rows)×\(columns)→\(out) at level \(level)"
                        assertClose(y.floats(), reference.floats(), magnitude: magnitude(x, dense, bias),
                                    "forward, " + message)
                        assertClose(qx.grad!.floats(), dx.grad!.floats(),
                                    magnitude: magnitude(gradient, dense.transposed(0, 1).contiguous(), nil),
                                    "dX, " + message)
                        assertClose(qb.grad!.floats(), db.grad!.floats(),
                                    magnitude: magnitude(Tensor.ones([1, rows]), absolute(gradient).transposed(0, 1).contiguous(), nil),
                                    "db, " + message)
                    }
                }
            }
        }
    }

    func testDecodingEqualsDequantizedLinear() {
        var generator = RandomGenerator(seed: 9)
        for format in BlockFormat.allCases {
            let matrix = randomQuantizedMatrix(format, rows: 37, columns: columns, seed: 3)
            let dense = matrix.dequantized()
            let bias = Tensor.normal([37], generator: &generator)
            forEachKernelLevel { level in
                for rows in 1...Tensor.decodingRowLimit {
                    let x = Tensor.normal([rows, columns], generator: &generator)
                    let fast = withNoGrad { Tensor.withDecodingKernels { Parallel.withSpinningWorkers {
                        Tensor.withQuantizedActivations(.float) {
                            Tensor.decodingLinears(x, weights: [.quantized(matrix)], biases: [bias])
                        }
                    } } }
                    let reference = withNoGrad { Tensor.linear(x, weight: dense, bias: bias) }
                    assertClose(fast?[0].floats() ?? [], reference.floats(), magnitude: magnitude(x, dense, bias),
                                "\(format) rows \(rows) at level \(level)")
                }
            }
        }
    }

    func testDecodingMixesDenseAndQuantizedWeights() throws {
        var generator = RandomGenerator(seed: 11)
        let quantized = randomQuantizedMatrix(.q4_K, rows: 70, columns: columns, seed: 1)
        let dense = Tensor.normal([40, columns], generator: &generator)
        let x = Tensor.normal([3, columns], generator: &generator)
        let outputs = try XCTUnwrap(withNoGrad { Tensor.withDecodingKernels {
            Tensor.decodingLinears(x, weights: [.quantized(quantized), .dense(dense)], biases: [nil, nil])
        } })
        let widened = quantized.dequantized()
        assertClose(outputs[0].floats(), Tensor.linear(x, weight: widened).detach().floats(),
                    magnitude: magnitude(x, widened, nil), "quantized")
        assertClose(outputs[1].floats(), Tensor.linear(x, weight: dense).detach().floats(),
                    magnitude: magnitude(x, dense, nil), "dense")
    }

    func testPermutingRowsMovesWholeRows() {
        let matrix = randomQuantizedMatrix(.q5_1, rows: 6, columns: 64, seed: 2)
        let order = [3, 0, 5, 1, 4, 2]
        let permuted = matrix.permutingRows(order).dequantized().floats()
        let original = matrix.dequantized().floats()
        for (i, source) in order.enumerated() {
            XCTAssertEqual(Array(permuted[(i * 64)..<(i * 64 + 64)]), Array(original[(source * 64)..<(source * 64 + 64)]))
        }
    }

    func testQuantizingEqualsGGMLByteForByte() throws {
        for format in BlockFormat.allCases where format.isQuantizable {
            let weights = try QuantizedFixture.weights(format)
            let (expected, _) = try QuantizedFixture.matrix(format)
            let matrix = try QuantizedMatrix(quantizing: weights, as: format)
            XCTAssertEqual([matrix.rows, matrix.columns], weights.shape)
            let got = UnsafeRawBufferPointer(start: matrix.storage.data, count: matrix.byteCount)
            let reference = UnsafeRawBufferPointer(start: expected.storage.data, count: matrix.byteCount)
            XCTAssertEqual(Array(got), Array(reference), "\(format)")
            // A bf16 weight is quantized from its float32 values.
            let bf16 = try QuantizedMatrix(quantizing: weights.contiguousCopy(dtype: .bfloat16), as: format)
            let widened = try QuantizedMatrix(quantizing: weights.contiguousCopy(dtype: .bfloat16).contiguousCopy(dtype: .float32), as: format)
            XCTAssertEqual(Array(UnsafeRawBufferPointer(start: bf16.storage.data, count: bf16.byteCount)),
                           Array(UnsafeRawBufferPointer(start: widened.storage.data, count: widened.byteCount)))
        }
    }

    func testBadShapesThrowQuantizationError() {
        let storage = TensorStorage(byteCount: 100)
        XCTAssertThrowsError(try QuantizedMatrix(format: .q4_0, rows: 2, columns: 48, storage: storage)) {
            XCTAssertEqual($0 as? QuantizationError, .columnsNotWholeBlocks(format: .q4_0, columns: 48))
        }
        XCTAssertThrowsError(try QuantizedMatrix(format: .q4_0, rows: 3, columns: 64, storage: storage)) {
            XCTAssertEqual($0 as? QuantizationError, .storageTooSmall(format: .q4_0, rows: 3, columns: 64, byteCount: 100))
        }
        XCTAssertThrowsError(try QuantizedMatrix(format: .q8_0, rows: Int.max / 2, columns: 64, storage: storage)) {
            XCTAssertNotNil($0 as? QuantizationError)
        }
        XCTAssertThrowsError(try QuantizedMatrix(format: .q8_0, rows: -1, columns: 64, storage: storage))
        XCTAssertThrowsError(try QuantizedMatrix(quantizing: Tensor.zeros([2, 64]), as: .q6_K)) {
            XCTAssertEqual($0 as? QuantizationError, .notQuantizable(.q6_K))
        }
        XCTAssertThrowsError(try QuantizedMatrix(quantizing: Tensor.zeros([2, 40]), as: .q8_0)) {
            XCTAssertEqual($0 as? QuantizationError, .columnsNotWholeBlocks(format: .q8_0, columns: 40))
        }
        XCTAssertNoThrow(try QuantizedMatrix(format: .q4_0, rows: 5, columns: 32, storage: storage))
    }
}

extension QuantizedLinearTests {
    /// With 8-bit activations decoding runs llama.cpp's integer dot products: near the float result, not equal to it.
    func testInt8ActivationsRunTheQ8Kernels() {
        var generator = RandomGenerator(seed: 13)
        for format in BlockFormat.allCases {
            let matrix = randomQuantizedMatrix(format, rows: 37, columns: 512, seed: 4)
            let x = Tensor.normal([2, 512], generator: &generator)
            let run = { (activations: QuantizedActivations) in
                withNoGrad { Tensor.withDecodingKernels { Tensor.withQuantizedActivations(activations) {
                    Tensor.linear(x, quantized: matrix).floats()
                } } }
            }
            let (float, int8) = (run(.float), run(.int8))
            XCTAssertEqual(Tensor.quantizedActivations, .automatic, "the default")
            XCTAssertNotEqual(float, int8, "\(format): the int8 path was not taken")
            let reference = withNoGrad { Tensor.linear(x, weight: matrix.dequantized()).floats() }
            let scale = reference.map(abs).max()!
            for (a, b) in zip(int8, reference) {
                XCTAssertEqual(a, b, accuracy: 0.05 * scale, "\(format)")
            }
        }
    }

    /// By default one input row (batch-1 decoding, bound by reading the blocks) takes the 8-bit kernels and more
    /// rows (bound by arithmetic) the float ones; only with AVX512_BF16 (kernel level 4) do the 32-value formats take
    /// bfloat16 from 2 rows, Q4_1 from 1, while the K-quants keep int8 / float; Q8_0 takes int8 at any count from
    /// AVX-512 VNNI (level 3) up. An explicit choice holds for any count.
    func testAutomaticActivationsPickBFloat16OnlyAtLevel4() {
        let picks: [BlockFormat: [Int: QuantizedActivations]] = [
            .q4_1: [1: .bfloat16, 2: .bfloat16, 8: .bfloat16],
            .q4_0: [1: .int8, 2: .bfloat16, 8: .bfloat16],
            .q4_K: [1: .int8, 2: .float, 8: .float],
            .q8_0: [1: .int8, 2: .int8, 8: .int8],
        ]
        var generator = RandomGenerator(seed: 17)
        for (format, atLevel4) in picks {
            let matrix = randomQuantizedMatrix(format, rows: 40, columns: 256, seed: 5)
            forEachKernelLevel { level in
                for rows in [1, 2, 8] {
                    let x = Tensor.normal([rows, 256], generator: &generator)
                    let run = { (activations: QuantizedActivations) in
                        withNoGrad { Tensor.withDecodingKernels { Tensor.withQuantizedActivations(activations) {
                            Tensor.linear(x, quantized: matrix).floats()
                        } } }
                    }
                    let expected = level >= 4 || (level == 3 && format == .q8_0) ? atLevel4[rows]!
                        : rows == 1 ? .int8 : .float
                    let message = "\(format), \(rows) rows at level \(level)"
                    XCTAssertEqual(QuantizedActivations.automatic.resolved(rows: rows, format: format, level: level),
                                   expected, message)
                    // Where the pair dot product is slower than the FMA, level 4 picks as level 3 does.
                    XCTAssertEqual(QuantizedActivations.automatic.resolved(rows: rows, format: format, level: level,
                                                                           pairs: false),
                                   level >= 3 && format == .q8_0 ? .int8 : rows == 1 ? .int8 : .float, message)
                    XCTAssertEqual(run(.automatic), run(expected), message)
                    XCTAssertNotEqual(run(.int8), run(.float), message)
                    XCTAssertNotEqual(run(.bfloat16), run(.float), message)
                }
            }
        }
    }

    /// With bfloat16 activations decoding equals the dequantized weights times the activations rounded to bfloat16
    /// (plus the bias), at every kernel level, for every format and 1–16 input rows, in one call with a dense weight.
    func testBFloat16DecodingEqualsDequantizedTimesRoundedActivations() {
        var generator = RandomGenerator(seed: 19)
        for format in BlockFormat.allCases {
            let matrix = randomQuantizedMatrix(format, rows: 37, columns: columns, seed: 6)
            let dense = matrix.dequantized()
            let other = Tensor.normal([5, columns], generator: &generator)
            let bias = Tensor.normal([37], generator: &generator)
            forEachKernelLevel { level in
                for rows in [1, 2, 3, 8, 9, Tensor.decodingRowLimit] {
                    let x = Tensor.normal([rows, columns], generator: &generator)
                    let rounded = Tensor(x.floats().map { HalfPrecision.float(bfloat16: HalfPrecision.bfloat16Bits($0)) },
                                         shape: x.shape)
                    let fast = withNoGrad { Tensor.withDecodingKernels { Parallel.withSpinningWorkers {
                        Tensor.withQuantizedActivations(.bfloat16) {
                            Tensor.decodingLinears(x, weights: [.quantized(matrix), .dense(other)], biases: [bias, nil])
                        }
                    } } }
                    let reference = withNoGrad { Tensor.linear(rounded, weight: dense, bias: bias) }
                    let message = "\(format) rows \(rows) at level \(level)"
                    assertClose(fast?[0].floats() ?? [], reference.floats(), magnitude: magnitude(rounded, dense, bias),
                                message)
                    assertClose(fast?[1].floats() ?? [], withNoGrad { Tensor.linear(x, weight: other) }.floats(),
                                magnitude: magnitude(x, other, nil), "dense beside it, " + message)
                }
            }
        }
    }

    func testTheOutputProjectionTakesBFloat16OrFloatActivationsUnlessInt8IsAskedFor() {
        let matrix = randomQuantizedMatrix(.q8_0, rows: 40, columns: 256, seed: 6)
        var generator = RandomGenerator(seed: 18)
        let x = Tensor.normal([1, 256], generator: &generator)
        let run = { (activations: QuantizedActivations, asOutput: Bool) in
            withNoGrad { Tensor.withDecodingKernels { Tensor.withQuantizedActivations(activations) {
                asOutput ? Tensor.withOutputProjectionActivations { Tensor.linear(x, quantized: matrix).floats() }
                    : Tensor.linear(x, quantized: matrix).floats()
            } } }
        }
        forEachKernelLevel { level in
            XCTAssertEqual(run(.automatic, true), run(level >= 4 ? .bfloat16 : .float, false),
                           "automatic at level \(level): bfloat16 with AVX512_BF16, else float, for the logits")
            XCTAssertEqual(run(.int8, true), run(.int8, false), "int8 asked for: llama.cpp's arithmetic everywhere")
            XCTAssertEqual(run(.float, true), run(.float, false))
            XCTAssertNotEqual(run(.automatic, true), run(.automatic, false), "one row of Q8_0 is int8 elsewhere")
        }
        if collie_kernel_level() >= 4 {   // where the pair dot product is slower than the FMA: float
            defer { _ = collie_gemm_set_bf16_pairs(-1) }
            XCTAssertEqual(collie_gemm_set_bf16_pairs(0), 0)
            XCTAssertEqual(run(.automatic, true), run(.float, false))
        }
    }
}
