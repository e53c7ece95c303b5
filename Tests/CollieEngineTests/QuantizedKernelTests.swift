import CCollieKernels
import XCTest
@testable import CollieEngine
import CollieTestSupport

/// The C kernels on GGML blocks (collie_quantized.h, float-activation half) at every kernel level: dequantization
/// equals gguf's `quants.dequantize` bit for bit, and the decoding product equals the dequantized float product.
final class QuantizedKernelTests: XCTestCase {
    func testBlockSizesMatchGGML() {
        let expected: [BlockFormat: (Int32, Int, Int)] = [
            .q4_0: (2, 32, 18), .q4_1: (3, 32, 20), .q5_0: (6, 32, 22), .q5_1: (7, 32, 24), .q8_0: (8, 32, 34),
            .q4_K: (12, 256, 144), .q5_K: (13, 256, 176), .q6_K: (14, 256, 210),
        ]
        for format in BlockFormat.allCases {
            let (type, elements, bytes) = expected[format]!
            XCTAssertEqual(format.ggmlType, type)
            XCTAssertEqual(BlockFormat(ggmlType: type), format)
            XCTAssertEqual(format.blockElements, elements)
            XCTAssertEqual(format.blockBytes, bytes)
            XCTAssertEqual(collie_block_row_bytes(type, 2 * elements), 2 * bytes)
        }
        XCTAssertNil(BlockFormat(ggmlType: 0))
        XCTAssertNil(BlockFormat(ggmlType: 10))   // Q2_K: read by CollieIO, not a kernel format
        XCTAssertEqual(collie_block_elements(10), 0)
    }

    func testDequantizeRowsEqualsGGUFBitForBit() throws {
        for format in BlockFormat.allCases {
            let (matrix, values) = try QuantizedFixture.matrix(format)
            forEachKernelLevel { level in
                let got = matrix.dequantized().floats()
                XCTAssertEqual(got.map(\.bitPattern), values.map(\.bitPattern), "\(format) at level \(level)")
                // A row range starts at its own row.
                let tail = matrix.dequantized(rows: 5..<matrix.rows).floats()
                XCTAssertEqual(tail.map(\.bitPattern), Array(values[(5 * matrix.columns)...]).map(\.bitPattern),
                               "\(format) rows 5… at level \(level)")
            }
        }
    }

    /// With one-hot inputs the product picks single weights, so it shows the values the kernel decodes in registers:
    /// gguf's bits, at every level.
    func testFloatGEMVDecodesGGUFValuesExactly() throws {
        for format in BlockFormat.allCases {
            let (matrix, values) = try QuantizedFixture.matrix(format)
            let (out, columns) = (matrix.rows, matrix.columns)
            for picks in [[0], [17, 255, 300], [511, 32, 1, 256, 100, 7, 63, 480, 2]] {
                var x = [Float](repeating: 0, count: picks.count * columns)
                for (r, i) in picks.enumerated() { x[r * columns + i] = 1 }
                forEachKernelLevel { level in
                    var y = [Float](repeating: .nan, count: picks.count * out)
                    collie_qgemv_f32(format.ggmlType, matrix.storage.data, x, &y, columns, out, picks.count, 0, out)
                    for (r, i) in picks.enumerated() {
                        for o in 0..<out {
                            XCTAssertEqual(y[r * out + o].bitPattern, (values[o * columns + i] + 0).bitPattern,
                                           "\(format) w[\(o), \(i)] at level \(level)")
                        }
                    }
                }
            }
        }
    }

    func testFloatGEMVEqualsDequantizedProduct() throws {
        var generator = RandomGenerator(seed: 17)
        for format in BlockFormat.allCases {
            let (matrix, values) = try QuantizedFixture.matrix(format)
            let (out, columns) = (matrix.rows, matrix.columns)
            for rows in [1, 2, 3, 5, 8, 11, 16] {
                let x = Tensor.normal([rows, columns], generator: &generator).floats()
                // Reference in double: Σ w·x, and Σ |w·x| for the tolerance.
                var reference = [Double](repeating: 0, count: rows * out), magnitude = reference
                for r in 0..<rows {
                    for o in 0..<out {
                        for i in 0..<columns {
                            let p = Double(values[o * columns + i]) * Double(x[r * columns + i])
                            reference[r * out + o] += p
                            magnitude[r * out + o] += abs(p)
                        }
                    }
                }
                forEachKernelLevel { level in
                    var y = [Float](repeating: .nan, count: rows * out)
                    matrix.storage.data.withMemoryRebound(to: UInt8.self, capacity: matrix.byteCount) { w in
                        collie_qgemv_f32(format.ggmlType, w, x, &y, columns, out, rows, 0, out)
                    }
                    for k in 0..<rows * out {
                        XCTAssertEqual(Double(y[k]), reference[k], accuracy: 1e-5 * magnitude[k],
                                       "\(format) rows \(rows) element \(k) at level \(level)")
                    }
                    // A range of output rows writes only those.
                    var part = [Float](repeating: .nan, count: rows * out)
                    collie_qgemv_f32(format.ggmlType, matrix.storage.data, x, &part, columns, out, rows, 3, 7)
                    for r in 0..<rows {
                        for o in 0..<out {
                            XCTAssertEqual(part[r * out + o].isNaN, !(3..<7).contains(o), "\(format) range at level \(level)")
                        }
                    }
                }
            }
        }
    }
}
