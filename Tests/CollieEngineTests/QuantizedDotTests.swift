import CCollieKernels
@testable import CollieEngine
import XCTest
import CollieTestSupport

/// The 8-bit activation half of the quantized kernels against llama.cpp's ggml (Fixtures/quantized-q8):
/// collie_quantize_activations equals ggml-cpu's from_float (x86 quantize_row_q8_0 / q8_1, quantize_row_q8_K) byte
/// for byte, and collie_qgemv_q8 equals ggml_vec_dot_<format>_<q8> (the x86 kernels llama.cpp runs, and the generic C)
/// at every kernel level, for every format, 1–16 input rows and odd row ranges.
final class QuantizedDotTests: XCTestCase {
    private let manifest = QuantizedQ8Fixtures.manifest

    func testActivationQuantizationMatchesGGMLCPU() {
        let x = QuantizedQ8Fixtures.floats("dot-x.f32")
        forEachKernelLevel { level in
            for name in manifest.formats {
                let format = QuantizedQ8Fixtures.typeCodes[name]!
                let expected = QuantizedQ8Fixtures.bytes("dot-xq-\(name).bin")
                let rowBytes = collie_activation_row_bytes(format, manifest.in)
                XCTAssertEqual(rowBytes * manifest.rows, expected.count, name)
                var got = [UInt8](repeating: 0xAA, count: expected.count)
                collie_quantize_activations(format, x, &got, manifest.in, manifest.rows)
                if let first = zip(got, expected).enumerated().first(where: { $0.element.0 != $0.element.1 }) {
                    XCTFail("level \(level), \(name): byte \(first.offset) (row \(first.offset / rowBytes)) is "
                        + "\(first.element.0), ggml wrote \(first.element.1)")
                }
            }
        }
    }

    func testQGemvQ8MatchesGGMLVecDotAtEveryLevel() {
        forEachKernelLevel { level in
            for name in manifest.formats {
                // ggml's generic Q5_0 kernel in the llama.cpp build the fixtures come from gives other numbers than its
                // x86 kernel (as if its codes − 16 were unsigned); the x86 kernel, which llama.cpp runs, is the peer.
                let references = ["dot-y-\(name).f32"] + (name == "q5_0" ? [] : ["dot-y-generic-\(name).f32"])
                for reference in references {
                    for rows in [1, 2, 3, 5, 8, 9, 16] {
                        for range in [0..<manifest.out, 2..<5, 6..<7] {
                            check(name, against: reference, rows: rows, range: range, level: level)
                        }
                    }
                }
            }
        }
    }

    /// y[r, o] for o in `range` within 1e-6 of the reference relative to the row's largest |y| (integer sums are
    /// exact; only the order the per-block float products are added differs), and untouched outside `range`. Row 3
    /// (blocks of 127 and exact .5 ties, so large integer sums that cancel) gets 3e-6: 1.3e-6 is observed there.
    private func check(_ name: String, against reference: String, rows: Int, range: Range<Int>, level: Int32) {
        let format = QuantizedQ8Fixtures.typeCodes[name]!
        let (out, inFeatures) = (manifest.out, manifest.in)
        let weights = QuantizedQ8Fixtures.bytes("dot-w-\(name).bin")
        let activations = QuantizedQ8Fixtures.bytes("dot-xq-\(name).bin")
        let expected = QuantizedQ8Fixtures.floats(reference)
        var y = [Float](repeating: .nan, count: rows * out)
        collie_qgemv_q8(format, weights, activations, &y, inFeatures, out, rows, range.lowerBound, range.upperBound)
        for r in 0..<rows {
            let scale = (0..<out).map { abs(expected[r * out + $0]) }.max()! * (r == 3 ? 3 : 1)
            for o in 0..<out {
                let got = y[r * out + o]
                guard range.contains(o) else {
                    XCTAssertTrue(got.isNaN, "level \(level), \(name): wrote y[\(r), \(o)] outside \(range)")
                    continue
                }
                XCTAssertEqual(got, expected[r * out + o], accuracy: 1e-6 * scale,
                               "level \(level), \(name) vs \(reference), \(rows) rows: y[\(r), \(o)]")
            }
        }
    }

    /// The 8-bit activations cost a little accuracy against float activations on the same blocks; this bounds it per
    /// format (‖y_q8 − y_float‖ / ‖y_float‖ over the random rows) and prints it.
    func testQGemvQ8IsCloseToFloatActivations() {
        for name in manifest.formats {
            let format = QuantizedQ8Fixtures.typeCodes[name]!
            let (out, rows) = (manifest.out, manifest.rows)
            var y = [Float](repeating: 0, count: rows * out)
            collie_qgemv_q8(format, QuantizedQ8Fixtures.bytes("dot-w-\(name).bin"),
                            QuantizedQ8Fixtures.bytes("dot-xq-\(name).bin"), &y, manifest.in, out, rows, 0, out)
            let exact = QuantizedQ8Fixtures.floats("dot-y-float-\(name).f32")
            var worst = 0.0
            for r in 0..<rows where r != 1 && r != 3 {  // row 1 is zero, row 3 is the ties row (not random)
                var difference = 0.0, norm = 0.0
                for o in 0..<out {
                    difference += pow(Double(y[r * out + o] - exact[r * out + o]), 2)
                    norm += pow(Double(exact[r * out + o]), 2)
                }
                worst = max(worst, (difference / norm).squareRoot())
            }
            print("qgemv_q8 \(name): relative error against float activations ≤ \(String(format: "%.2e", worst))")
            XCTAssertLessThan(worst, 2e-2, name)
            XCTAssertTrue(y[1 * out..<2 * out].allSatisfy { $0 == 0 }, "a zero input row gives zeros")
        }
    }

    /// Q8_0 against Q8_0 activations equals Σ_blocks d_w·d_x·Σ q_w·q_x (integers exact, float64 products) within the
    /// float rounding of the kernels' partial products (each ≤ a block's Σ |q_w·q_x|, one rounding per term and
    /// sum: (blocks + 20)·2⁻²⁴ of Σ |d_w·d_x|·Σ |q_w·q_x|), at every kernel level, for 1–16 input rows, output ranges, and inputs of 1…19
    /// blocks: the wide kernel's groups of 8 blocks, its tail pairs and an odd last block (levels 3 and 4), codes of
    /// −128 (the xor to unsigned), and a row of saturated activations (the largest integer sums).
    func testQ8_0EqualsIntegerSumsForEveryRowCountAndTail() {
        var generator = RandomGenerator(seed: 23)
        let out = 11
        for blocks in [1, 2, 3, 7, 8, 9, 10, 16, 17, 18, 19] {
            let columns = 32 * blocks
            let matrix = randomQuantizedMatrix(.q8_0, rows: out, columns: columns, seed: UInt64(blocks))
            let w = matrix.storage.data.assumingMemoryBound(to: UInt8.self)
            for o in 0..<out { w[o * blocks * 34 + 2 + o % 32] = 0x80 }  // a code of −128 in each weight row
            var x = (0..<16 * columns).map { _ in Float(generator.nextUnit() * 2 - 1) }
            for c in 0..<columns { x[2 * columns + c] = c % 3 == 0 ? -5 : 5 }  // row 2: every code ±127
            let rowBytes = collie_activation_row_bytes(BlockFormat.q8_0.ggmlType, columns)
            var xq = [UInt8](repeating: 0, count: 16 * rowBytes)
            collie_quantize_activations(BlockFormat.q8_0.ggmlType, x, &xq, columns, 16)
            // The exact products and their magnitudes, per input row and output.
            var exact = [Double](repeating: 0, count: 16 * out), magnitude = exact
            for r in 0..<16 {
                for o in 0..<out {
                    for b in 0..<blocks {
                        let wb = w + (o * blocks + b) * 34, xb = r * rowBytes + b * 34
                        var (sum, absolute) = (0, 0)
                        for j in 0..<32 {
                            let product = Int(Int8(bitPattern: wb[2 + j])) * Int(Int8(bitPattern: xq[xb + 2 + j]))
                            (sum, absolute) = (sum + product, absolute + abs(product))
                        }
                        let dw = Double(Float16(bitPattern: UInt16(wb[0]) | UInt16(wb[1]) << 8))
                        let dx = Double(Float16(bitPattern: UInt16(xq[xb]) | UInt16(xq[xb + 1]) << 8))
                        exact[r * out + o] += dw * dx * Double(sum)
                        magnitude[r * out + o] += abs(dw * dx) * Double(absolute)
                    }
                }
            }
            forEachKernelLevel { level in
                for rows in 1...16 {
                    for range in [0..<out, 3..<8, 10..<11] {
                        var y = [Float](repeating: .nan, count: rows * out)
                        xq.withUnsafeBytes {
                            collie_qgemv_q8(BlockFormat.q8_0.ggmlType, w, $0.baseAddress, &y, columns, out, rows, range.lowerBound,
                                            range.upperBound)
                        }
                        for r in 0..<rows {
                            for o in 0..<out {
                                let got = y[r * out + o], message = "level \(level), \(blocks) blocks, \(rows) rows, \(range): y[\(r), \(o)]"
                                guard range.contains(o) else { XCTAssertTrue(got.isNaN, message); continue }
                                XCTAssertEqual(Double(got), exact[r * out + o],
                                               accuracy: 6e-8 * Double(blocks + 20) * magnitude[r * out + o], message)
                            }
                        }
                    }
                }
            }
        }
    }
}
