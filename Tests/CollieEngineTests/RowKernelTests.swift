import CCollieKernels
import CollieEngine
import XCTest
import CollieTestSupport

/// The float32 row kernels of RMS norm, layer norm and rotary embedding (`collie_rows.h`) compute, at every kernel
/// level, exactly their definitions written out below in Swift — row sums as 16 interleaved partial sums combined
/// pairwise — bit for bit, so a step's norms give the same bits on every machine.
final class RowKernelTests: XCTestCase {
    /// 12 vectors of 16 lanes and a tail of 11.
    private let columns = 203
    private let rows = 3

    private func values(_ seed: UInt64, count: Int, scale: Float = 1, offset: Float = 0) -> [Float] {
        var generator = RandomGenerator(seed: seed)
        return (0..<count).map { _ in Float(generator.nextNormal()) * scale + offset }
    }

    /// Σ term(j) over j < n as collie_rows.h adds it.
    private func interleavedSum(_ n: Int, _ term: (Int) -> Float) -> Float {
        var partial = [Float](repeating: 0, count: 16)
        for j in 0..<n { partial[j % 16] += term(j) }
        let q = (0..<8).map { partial[$0] + partial[$0 + 8] }
        let r = (0..<4).map { q[$0] + q[$0 + 4] }
        return (r[0] + r[2]) + (r[1] + r[3])
    }

    private func assertSameBits(_ got: [Float], _ expected: [Float], _ what: String,
                                file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, expected.count, what, file: file, line: line)
        for i in got.indices where got[i].bitPattern != expected[i].bitPattern {
            XCTFail("\(what): element \(i) is \(got[i]), the definition gives \(expected[i])", file: file, line: line)
            return
        }
    }

    func testNormRowsAndTheirBackwardMatchTheDefinitionAtEveryLevel() {
        let c = columns, epsilon: Float = 1e-5
        let x = values(1, count: rows * c, scale: 2, offset: 0.3), w = values(2, count: c, offset: 1)
        let bias = values(3, count: c, scale: 0.1), g = values(4, count: rows * c, scale: 0.01)
        for (centered, hasBias) in [(false, false), (true, true), (true, false)] {
            var y = [Float](repeating: 0, count: rows * c), r = [Float](repeating: 0, count: rows)
            var means = [Float](repeating: 0, count: rows), dx = y
            var dw = [Float](repeating: 0, count: c), db = dw
            for row in 0..<rows {
                let xr = Array(x[row * c..<(row + 1) * c]), gr = Array(g[row * c..<(row + 1) * c])
                let mean = centered ? interleavedSum(c) { xr[$0] } / Float(c) : 0
                let inverse = 1 / (interleavedSum(c) { (xr[$0] - mean) * (xr[$0] - mean) } / Float(c) + epsilon)
                    .squareRoot()
                r[row] = inverse
                means[row] = mean
                for j in 0..<c {
                    y[row * c + j] = hasBias ? (xr[j] - mean) * inverse * w[j] + bias[j] : w[j] * ((xr[j] - mean) * inverse)
                    dw[j] += gr[j] * ((xr[j] - mean) * inverse)
                    db[j] += gr[j]
                }
                let meanG = centered ? interleavedSum(c) { gr[$0] * w[$0] } / Float(c) : 0
                let meanGX = interleavedSum(c) { gr[$0] * w[$0] * ((xr[$0] - mean) * inverse) } / Float(c)
                for j in 0..<c {
                    dx[row * c + j] = inverse * (gr[j] * w[j] - meanG - (xr[j] - mean) * inverse * meanGX)
                }
            }
            forEachKernelLevel { level in
                let what = "\(centered ? "layer" : "RMS") norm\(hasBias ? " with bias" : ""), level \(level)"
                var ky = [Float](repeating: .nan, count: rows * c), kr = [Float](repeating: .nan, count: rows)
                var kMeans = kr, kdx = ky
                var kdw = [Float](repeating: 0, count: c), kdb = kdw
                x.withUnsafeBufferPointer { px in
                    ky.withUnsafeMutableBufferPointer { py in
                        kr.withUnsafeMutableBufferPointer { pr in
                            kMeans.withUnsafeMutableBufferPointer { pm in
                                // Two row ranges, as two threads split them.
                                for (start, count) in [(0, 1), (1, rows - 1)] {
                                    collie_norm_rows_f32(px.baseAddress! + start * c, w, hasBias ? bias : nil,
                                                         py.baseAddress! + start * c, pr.baseAddress! + start,
                                                         centered ? pm.baseAddress! + start : nil, count, c, epsilon,
                                                         centered ? 1 : 0)
                                }
                            }
                        }
                    }
                }
                assertSameBits(ky, y, what + ": y")
                assertSameBits(kr, r, what + ": 1/σ")
                if centered { assertSameBits(kMeans, means, what + ": means") }
                kdb.withUnsafeMutableBufferPointer { pdb in
                    collie_norm_backward_rows_f32(x, w, g, kr, centered ? kMeans : nil, rows, c, &kdx, &kdw,
                                                  centered ? pdb.baseAddress : nil)
                }
                assertSameBits(kdx, dx, what + ": dx")
                assertSameBits(kdw, dw, what + ": dw")
                if centered { assertSameBits(kdb, db, what + ": db") }
                // Without dx, only the parameter gradients are added.
                var onlyWeight = [Float](repeating: 0, count: c)
                collie_norm_backward_rows_f32(x, w, g, kr, centered ? kMeans : nil, rows, c, nil, &onlyWeight, nil)
                assertSameBits(onlyWeight, dw, what + ": dw without dx")
            }
        }
    }

    func testRotaryMatchesTheDefinitionForBothLayoutsAndItsInverseAtEveryLevel() {
        let heads = 3, dim = 40
        let x = values(5, count: heads * dim)
        for half in [20, 12] {   // full and partial rotary
            let cos = values(6, count: half), sin = values(7, count: half)
            for interleaved in [false, true] {
                for sign: Float in [1, -1] {
                    var expected = x
                    for head in 0..<heads {
                        let base = head * dim
                        for i in 0..<half {
                            let (ia, ib) = interleaved ? (2 * i, 2 * i + 1) : (i, i + half)
                            let a = x[base + ia], b = x[base + ib], s = sign * sin[i]
                            expected[base + ia] = a * cos[i] - b * s
                            expected[base + ib] = b * cos[i] + a * s
                        }
                    }
                    forEachKernelLevel { level in
                        var got = [Float](repeating: .nan, count: heads * dim)
                        collie_rotary_f32(x, &got, cos, sin, heads, dim, half, sign, interleaved ? 1 : 0)
                        assertSameBits(got, expected, "rotary, half \(half), interleaved \(interleaved), sign \(sign), level \(level)")
                    }
                }
            }
        }
    }
}
