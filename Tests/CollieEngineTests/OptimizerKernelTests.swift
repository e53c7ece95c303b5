import CCollieKernels
import CollieEngine
import Foundation
import XCTest
import CollieTestSupport

/// The optimizers' update loops in C (`collie_optimizers.h`) compute, at every kernel level, exactly what the Swift loops
/// they replaced computed: each reference below is such a loop, as it stood in CollieTraining/Optimizers, and the
/// results must agree bit for bit (training runs are compared bit for bit elsewhere).
final class OptimizerKernelTests: XCTestCase {
    /// 12 vectors of 16 lanes and a tail of 11.
    private let count = 203

    /// Normal values times `scale`, with exact zeros, a negative zero and a subnormal among them.
    private func values(_ seed: UInt64, scale: Float = 1, nonnegative: Bool = false) -> [Float] {
        var generator = RandomGenerator(seed: seed)
        var result = (0..<count).map { _ in Float(generator.nextNormal()) * scale }
        result[3] = 0
        result[17] = -0.0
        result[40] = 1e-40
        result[count - 2] = 0
        return nonnegative ? result.map { Swift.abs($0) } : result
    }

    private func assertSameBits(_ got: [Float], _ expected: [Float], _ what: String,
                                file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, expected.count, what, file: file, line: line)
        for i in got.indices where got[i].bitPattern != expected[i].bitPattern && !(got[i].isNaN && expected[i].isNaN) {
            XCTFail("\(what): element \(i) is \(got[i]), the Swift loop gives \(expected[i])", file: file, line: line)
            return
        }
    }

    func testAdamWUpdateMatchesTheSwiftLoopAtEveryLevel() {
        for (beta1, weightDecay) in [(0.9, 0.01), (0.3, 0.0)] {   // both ends of the lerp; with and without decay
            let lr = 1e-3, beta2 = 0.999, epsilon = 1e-8, t = 3.0
            let decay = Float(1 - lr * weightDecay), applyDecay = weightDecay != 0
            let weight1 = Float(1 - beta1), weight1Complement = weight1 - 1
            let b2 = Float(beta2), weight2 = Float(1 - beta2), eps = Float(epsilon)
            let correction2Root = Float((1 - Foundation.pow(beta2, t)).squareRoot())
            let negativeStepSize = Float(-(lr / (1 - Foundation.pow(beta1, t))))
            let g = values(1, scale: 1e-2)
            var w = values(2), m = values(3, scale: 1e-2), v = values(4, scale: 1e-4, nonnegative: true)
            for i in 0..<count {
                if applyDecay { w[i] *= decay }
                let difference = g[i] - m[i]
                m[i] = weight1 < 0.5 ? m[i].addingProduct(weight1, difference)
                                     : g[i].addingProduct(weight1Complement, difference)
                v[i] = (v[i] * b2).addingProduct(weight2 * g[i], g[i])
                let denominator = v[i].squareRoot() / correction2Root + eps
                w[i] += negativeStepSize * m[i] / denominator
            }
            let scalars = collie_adamw_step(apply_decay: applyDecay ? 1 : 0, decay: decay, weight1: weight1,
                                            weight1_complement: weight1Complement, beta2: b2, weight2: weight2,
                                            correction2_root: correction2Root, epsilon: eps,
                                            negative_step_size: negativeStepSize)
            forEachKernelLevel { level in
                var kw = values(2), km = values(3, scale: 1e-2), kv = values(4, scale: 1e-4, nonnegative: true)
                collie_adamw_update_f32(&kw, g, &km, &kv, count, scalars)
                let what = "AdamW β1 \(beta1) λ \(weightDecay), level \(level)"
                assertSameBits(kw, w, what + ": w"); assertSameBits(km, m, what + ": m"); assertSameBits(kv, v, what + ": v")
            }
        }
    }

    func testDescentMatchesLOMOAndAdaLomoAtEveryLevel() {
        let g = values(5, scale: 1e-2)
        for (applyDecay, divisor) in [(false, Float(1)), (true, 1), (true, 1.7)] {
            let decay: Float = 0.999, negativeLR: Float = -1e-3
            var w = values(6)
            for i in 0..<count {
                if applyDecay { w[i] *= decay }
                // LOMO's loop used g itself; AdaLomo's divides its update by the clipping divisor.
                w[i] = w[i].addingProduct(negativeLR, divisor == 1 ? g[i] : g[i] / divisor)
            }
            forEachKernelLevel { level in
                var kw = values(6)
                collie_descend_f32(&kw, g, count, applyDecay ? 1 : 0, decay, negativeLR, divisor)
                assertSameBits(kw, w, "descent decay \(applyDecay) divisor \(divisor), level \(level)")
            }
        }
    }

    func testAdaLomoMomentMatchesTheSwiftLoopAtEveryLevel() {
        let g = values(7, scale: 1e-2)
        let beta: Float = 0.2, oneMinusBeta: Float = 0.8, eps1: Float = 1e-30
        var v = values(8, scale: 1e-4, nonnegative: true), u = [Float](repeating: 0, count: count)
        for i in 0..<count {
            v[i] = (v[i] * beta).addingProduct(oneMinusBeta, g[i] * g[i] + eps1)
            u[i] = 1 / v[i].squareRoot() * g[i]
        }
        forEachKernelLevel { level in
            var kv = values(8, scale: 1e-4, nonnegative: true), ku = [Float](repeating: 0, count: count)
            collie_adalomo_moment_f32(&kv, g, &ku, count, beta, oneMinusBeta, eps1)
            assertSameBits(kv, v, "AdaLomo v, level \(level)"); assertSameBits(ku, u, "AdaLomo u, level \(level)")
        }
    }

    /// Σ term(j) over j < n as the kernels add it: 8 interleaved partial sums in double, combined pairwise.
    private func interleavedSum(_ n: Int, _ term: (Int) -> Double) -> Double {
        var partial = [Double](repeating: 0, count: 8)
        for j in 0..<n { partial[j % 8] += term(j) }
        return ((partial[0] + partial[4]) + (partial[1] + partial[5])) + ((partial[2] + partial[6]) + (partial[3] + partial[7]))
    }

    /// AdaLomo's matrix statistics (its gradient as 7 rows × 29 columns: 3 groups of 8 and a tail of 5 per row) and its
    /// row-at-a-time descent give, at every level, the bits of their definitions: per row Σ(g² + ε₁) and per column
    /// Σ(g² + ε₁) (rows in order) in double, per row Σu² for u = rowFactor·columnFactor·g, and w updated by that u.
    func testAdaLomoMatrixKernelsMatchTheirDefinitionsAtEveryLevel() {
        let rows = 7, columns = 29, eps1: Float = 1e-30
        let g = values(11, scale: 1e-2)
        let rowFactors = Array(values(12, nonnegative: true).prefix(rows)).map { $0 + 0.5 }
        let columnFactors = Array(values(13, nonnegative: true).prefix(columns)).map { $0 + 0.5 }
        let term = { (i: Int, j: Int) in Double(g[i * columns + j] * g[i * columns + j] + eps1) }
        let rowSums = (0..<rows).map { i in interleavedSum(columns) { term(i, $0) } }
        var columnSums = [Double](repeating: 0, count: columns)
        for i in 0..<rows { for j in 0..<columns { columnSums[j] += term(i, j) } }
        let u = { (i: Int, j: Int) in Double(rowFactors[i] * columnFactors[j] * g[i * columns + j]) }
        let updateSquares = (0..<rows).map { i in interleavedSum(columns) { u(i, $0) * u(i, $0) } }
        let w = values(14)
        let weightSquares = interleavedSum(count) { Double(w[$0]) * Double(w[$0]) }
        let decay: Float = 0.999, negativeLR: Float = -1e-3, divisor: Float = 1.7
        var descended = w
        for i in 0..<rows {
            for j in 0..<columns {
                descended[i * columns + j] *= decay
                descended[i * columns + j] = descended[i * columns + j]
                    .addingProduct(negativeLR, rowFactors[i] * columnFactors[j] * g[i * columns + j] / divisor)
            }
        }
        forEachKernelLevel { level in
            var kRows = [Double](repeating: .nan, count: rows), kColumns = [Double](repeating: .nan, count: columns)
            var kSquares = [Double](repeating: .nan, count: rows), kWeight = Double.nan
            collie_adalomo_row_sums_f32(g, rows, columns, eps1, &kRows)
            g.withUnsafeBufferPointer { g in   // two column ranges, as two threads split them
                kColumns.withUnsafeMutableBufferPointer { sums in
                    collie_adalomo_column_sums_f32(g.baseAddress!, rows, columns, 10, eps1, sums.baseAddress!)
                    collie_adalomo_column_sums_f32(g.baseAddress! + 10, rows, columns, columns - 10, eps1,
                                                   sums.baseAddress! + 10)
                }
            }
            collie_adalomo_update_squares_f32(g, rows, columns, rowFactors, columnFactors, &kSquares)
            collie_square_sum_f32(w, count, &kWeight)
            var kw = w
            kw.withUnsafeMutableBufferPointer { kw in
                g.withUnsafeBufferPointer { g in
                    for i in 0..<rows {
                        collie_adalomo_descend_row_f32(kw.baseAddress! + i * columns, g.baseAddress! + i * columns,
                                                       columns, rowFactors[i], columnFactors, 1, decay, negativeLR,
                                                       divisor)
                    }
                }
            }
            XCTAssertEqual(kRows.map(\.bitPattern), rowSums.map(\.bitPattern), "row sums, level \(level)")
            XCTAssertEqual(kColumns.map(\.bitPattern), columnSums.map(\.bitPattern), "column sums, level \(level)")
            XCTAssertEqual(kSquares.map(\.bitPattern), updateSquares.map(\.bitPattern), "Σu² per row, level \(level)")
            XCTAssertEqual(kWeight.bitPattern, weightSquares.bitPattern, "Σw², level \(level)")
            assertSameBits(kw, descended, "AdaLomo row descent, level \(level)")
        }
    }

    /// The in-backward optimizers' overflow check: one infinity or NaN anywhere — first block, last element, past
    /// the first 4096 — makes a gradient non-finite; the largest finite values, subnormals and zeros do not.
    func testAllFiniteFindsEveryNonFiniteValueAtEveryLevel() {
        let n = 9000
        let clean = (0..<n).map { i in [Float.greatestFiniteMagnitude, -1e-40, 0, -0.0, 3][i % 5] }
        forEachKernelLevel { level in
            var finite: Int32 = -1
            collie_all_finite_f32(clean, n, &finite)
            XCTAssertEqual(finite, 1, "finite values, level \(level)")
            collie_all_finite_f32(clean, 0, &finite)
            XCTAssertEqual(finite, 1, "no values, level \(level)")
            for (index, bad) in [(0, Float.infinity), (n - 1, -Float.infinity), (4100, Float.nan), (8191, -Float.nan)] {
                var values = clean
                values[index] = bad
                collie_all_finite_f32(values, n, &finite)
                XCTAssertEqual(finite, 0, "\(bad) at \(index), level \(level)")
            }
        }
    }

    func testLionUpdateMatchesTheSwiftLoopAtEveryLevel() {
        let g = values(9, scale: 1e-2)
        let decay: Float = 0.999, negativeLR: Float = -1e-4, b1: Float = 0.9, c1: Float = 0.1, b2: Float = 0.99, c2: Float = 0.01
        var w = values(10), m = values(11, scale: 1e-2)
        for i in 0..<count {
            w[i] *= decay
            let interpolated = (m[i] * b1).addingProduct(g[i], c1)
            let sign: Float = interpolated > 0 ? 1 : (interpolated < 0 ? -1 : 0)
            w[i] = w[i].addingProduct(sign, negativeLR)
            m[i] = (m[i] * b2).addingProduct(g[i], c2)
        }
        forEachKernelLevel { level in
            var kw = values(10), km = values(11, scale: 1e-2)
            collie_lion_update_f32(&kw, g, &km, count, decay, b1, c1, b2, c2, negativeLR)
            assertSameBits(kw, w, "Lion w, level \(level)"); assertSameBits(km, m, "Lion m, level \(level)")
        }
    }

    func testSGDUpdateMatchesTheSwiftLoopInEveryModeAtEveryLevel() {
        let g = values(12, scale: 1e-2)
        let negativeLearningRate: Float = -1e-2, decay: Float = 1e-4, mu: Float = 0.9, gradientWeight: Float = 0.75
        // (weight decay, momentum, first step of the buffer, Nesterov)
        for (applyDecay, momentum, isFirst, nesterov) in [(false, false, false, false), (true, false, false, false),
                                                          (true, true, true, false), (false, true, false, false),
                                                          (true, true, false, true)] {
            var w = values(13), buffer = values(14, scale: 1e-2)
            for i in 0..<count {
                var d = g[i]
                if applyDecay { d = d.addingProduct(decay, w[i]) }
                if momentum {
                    buffer[i] = isFirst ? d : (buffer[i] * mu).addingProduct(gradientWeight, d)
                    d = nesterov ? d.addingProduct(mu, buffer[i]) : buffer[i]
                }
                w[i] = w[i].addingProduct(negativeLearningRate, d)
            }
            let scalars = collie_sgd_step(apply_decay: applyDecay ? 1 : 0, decay: decay, momentum: momentum ? 1 : 0,
                                          first: isFirst ? 1 : 0, nesterov: nesterov ? 1 : 0, mu: mu,
                                          gradient_weight: gradientWeight, negative_lr: negativeLearningRate)
            forEachKernelLevel { level in
                var kw = values(13), kb = values(14, scale: 1e-2)
                if momentum { collie_sgd_update_f32(&kw, g, &kb, count, scalars) }
                else { collie_sgd_update_f32(&kw, g, nil, count, scalars) }
                let what = "SGD decay \(applyDecay) momentum \(momentum) first \(isFirst) nesterov \(nesterov), level \(level)"
                assertSameBits(kw, w, what + ": w")
                if momentum { assertSameBits(kb, buffer, what + ": buffer") }
            }
        }
    }

    func testSophiaGUpdateAndHessianMatchTheSwiftLoopsAtEveryLevel() {
        let g = values(15, scale: 1e-2)
        let decay: Float = 0.99999, negativeLR: Float = -1e-4, b1: Float = 0.965, c1: Float = 0.035
        let scale: Float = 0.04 * 5120, b2: Float = 0.99, c2: Float = 0.01
        var h = values(16, scale: 1e-6, nonnegative: true)
        h[5] = 0   // |m| / 1e-15 clips to 1
        var w = values(17), m = values(18, scale: 1e-2)
        for i in 0..<count {
            w[i] *= decay
            m[i] = (m[i] * b1).addingProduct(g[i], c1)
            let ratio = min(abs(m[i]) / (scale * h[i] + 1e-15), 1)
            let sign: Float = m[i] > 0 ? 1 : (m[i] < 0 ? -1 : 0)
            w[i] = w[i].addingProduct(sign * ratio, negativeLR)
        }
        var hessian = h
        for i in 0..<count { hessian[i] = (hessian[i] * b2).addingProduct(c2 * g[i], g[i]) }
        forEachKernelLevel { level in
            var kw = values(17), km = values(18, scale: 1e-2), kh = h
            collie_sophia_update_f32(&kw, g, &km, h, count, decay, b1, c1, scale, negativeLR)
            collie_sophia_hessian_f32(&kh, g, count, b2, c2)
            assertSameBits(kw, w, "SophiaG w, level \(level)"); assertSameBits(km, m, "SophiaG m, level \(level)")
            assertSameBits(kh, hessian, "SophiaG Hessian, level \(level)")
        }
    }

    func testAdanUpdateMatchesTheSwiftLoopAtEveryLevel() {
        let g = values(19, scale: 1e-2)
        let (lr, beta1, beta2, beta3, weightDecay, t) = (1e-3, 0.98, 0.92, 0.99, 0.02, 2.0)
        let b1 = Float(beta1), c1 = Float(1 - beta1), b2 = Float(beta2), c2 = Float(1 - beta2)
        let b3 = Float(beta3), c3 = Float(1 - beta3), eps: Float = 1e-8
        let bias3Root = Float((1 - Foundation.pow(beta3, t)).squareRoot())
        let stepSize = Float(-(lr / (1 - Foundation.pow(beta1, t))))
        let diffStepSize = Float(-(lr * beta2 / (1 - Foundation.pow(beta2, t))))
        let decay = Float(1 - lr * weightDecay), proximal = Float(1 + lr * weightDecay)
        for (first, noProx) in [(true, false), (false, false), (false, true)] {
            var w = values(20), m = values(21, scale: 1e-2), n = values(22, scale: 1e-4, nonnegative: true)
            var v = values(23, scale: 1e-3), previous = values(24, scale: 1e-2)
            for i in 0..<count {
                if first { previous[i] = -g[i] }
                let d = previous[i] + g[i]
                m[i] = (m[i] * b1).addingProduct(g[i], c1)
                v[i] = (v[i] * b2).addingProduct(d, c2)
                let nesterov = (d * b2) + g[i]
                n[i] = (n[i] * b3).addingProduct(c3 * nesterov, nesterov)
                let denominator = n[i].squareRoot() / bias3Root + eps
                if noProx { w[i] *= decay }
                w[i] = w[i].addingProduct(stepSize, m[i] / denominator)
                w[i] = w[i].addingProduct(diffStepSize, v[i] / denominator)
                if !noProx { w[i] /= proximal }
                previous[i] = -g[i]
            }
            let scalars = collie_adan_step(first: first ? 1 : 0, no_prox: noProx ? 1 : 0, b1: b1, c1: c1, b2: b2, c2: c2,
                                           b3: b3, c3: c3, bias3_root: bias3Root, epsilon: eps, step_size: stepSize,
                                           difference_step_size: diffStepSize, decay: decay, proximal: proximal)
            forEachKernelLevel { level in
                var kw = values(20), km = values(21, scale: 1e-2), kn = values(22, scale: 1e-4, nonnegative: true)
                var kv = values(23, scale: 1e-3), kp = values(24, scale: 1e-2)
                collie_adan_update_f32(&kw, g, &km, &kn, &kv, &kp, count, scalars)
                let what = "Adan first \(first) no_prox \(noProx), level \(level)"
                assertSameBits(kw, w, what + ": w"); assertSameBits(km, m, what + ": m")
                assertSameBits(kn, n, what + ": n"); assertSameBits(kv, v, what + ": v")
                assertSameBits(kp, previous, what + ": previous")
            }
        }
    }
}
