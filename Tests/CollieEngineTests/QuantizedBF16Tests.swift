import CCollieKernels
import XCTest
@testable import CollieEngine
import CollieTestSupport

/// The bfloat16-activation kernels on quantized blocks: collie_activations_to_bf16 rounds as HalfPrecision does, and
/// collie_qgemv_bf16 equals the dequantized weights times the rounded activations (float64 sums) at every kernel level
/// (AVX512_BF16's vdpbf16ps at level 4, plain C below), for every format, 1–16 input rows and odd row ranges.
final class QuantizedBF16Tests: XCTestCase {
    /// Two K-quant super-blocks, sixteen 32-value groups per row.
    private let columns = 512
    private let out = 13

    func testActivationRoundingMatchesHalfPrecisionAtEveryLevel() {
        var generator = RandomGenerator(seed: 21)
        var x = (0..<1000).map { _ in Float(generator.nextUnit() * 2 - 1) * 10 }
        // Ties to even both ways, the largest finite values, infinities, subnormals, signed zeros.
        x += [1 + 0x1p-8, 1 + 3 * 0x1p-8, -(1 + 0x1p-8), .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
              .infinity, -.infinity, .leastNonzeroMagnitude, -.leastNormalMagnitude, 0, -0.0]
        let expected = x.map { HalfPrecision.bfloat16Bits($0) }
        forEachKernelLevel { level in
            var got = [UInt16](repeating: 0, count: x.count)
            collie_activations_to_bf16(x, &got, x.count)
            XCTAssertEqual(got, expected, "level \(level)")
            var nan: UInt16 = 0
            collie_activations_to_bf16([Float.nan], &nan, 1)
            XCTAssertTrue(HalfPrecision.float(bfloat16: nan).isNaN, "level \(level): NaN stays NaN")
        }
    }

    func testQGemvBF16EqualsDequantizedTimesRoundedActivationsAtEveryLevel() {
        var generator = RandomGenerator(seed: 23)
        let x = (0..<Tensor.decodingRowLimit * columns).map { _ in Float(generator.nextUnit() * 2 - 1) }
        var xb = [UInt16](repeating: 0, count: x.count)
        collie_activations_to_bf16(x, &xb, x.count)
        for format in BlockFormat.allCases {
            let matrix = randomQuantizedMatrix(format, rows: out, columns: columns, seed: 7)
            let (expected, magnitude) = reference(matrix, xb, rows: Tensor.decodingRowLimit)
            forEachKernelLevel { level in
                for rows in 1...Tensor.decodingRowLimit {
                    for range in [0..<out, 3..<8, 5..<6, 1..<out] {
                        var y = [Float](repeating: .nan, count: rows * out)
                        collie_qgemv_bf16(format.ggmlType, matrix.storage.data, xb, &y, columns, out, rows,
                                          range.lowerBound, range.upperBound)
                        let message = "level \(level), \(format), \(rows) rows, outputs \(range)"
                        assertEqual(y, expected, magnitude: magnitude, rows: rows, range: range, message)
                    }
                }
            }
        }
    }

    /// y[r, o] = Σᵢ dequantized(w)[o, i] · bf16(x)[r, i] in float64, and Σᵢ |w·x| per output (the tolerance's scale).
    private func reference(_ matrix: QuantizedMatrix, _ xb: [UInt16], rows: Int) -> ([Double], [Double]) {
        let weights = matrix.dequantized().floats()
        var y = [Double](repeating: 0, count: rows * out), magnitude = y
        for r in 0..<rows {
            for o in 0..<out {
                for i in 0..<columns {
                    let term = Double(weights[o * columns + i]) * Double(HalfPrecision.float(bfloat16: xb[r * columns + i]))
                    y[r * out + o] += term
                    magnitude[r * out + o] += abs(term)
                }
            }
        }
        return (y, magnitude)
    }

    /// Every output in `range` within 1e-5 of the reference relative to Σ|w·x| (float32 sums in any order); every
    /// output outside it untouched (still NaN).
    private func assertEqual(_ y: [Float], _ expected: [Double], magnitude: [Double], rows: Int, range: Range<Int>,
                             _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        for r in 0..<rows {
            for o in 0..<out {
                let got = y[r * out + o]
                guard range.contains(o) else {
                    if !got.isNaN {
                        XCTFail("\(message): wrote y[\(r), \(o)] outside the range", file: file, line: line)
                        return
                    }
                    continue
                }
                let (want, scale) = (expected[r * out + o], magnitude[r * out + o])
                if !(abs(Double(got) - want) <= 1e-5 * max(scale, 1e-30)) {
                    XCTFail("\(message): y[\(r), \(o)] = \(got), reference \(want) (Σ|w·x| \(scale))", file: file,
                            line: line)
                    return
                }
            }
        }
    }
}
