import CCollieKernels
import CollieEngine
import XCTest
import CollieTestSupport

/// Dropout's mask is a function of (seed, element index): drawn again in backward instead of stored, the same at every
/// kernel level, and independent from one seed to the next.
final class DropoutTests: XCTestCase {
    private func values(_ seed: UInt64, count: Int) -> [Float] {
        var generator = RandomGenerator(seed: seed)
        return (0..<count).map { _ in Float(generator.nextNormal()) + 3 }   // none is 0
    }

    func testDropsAboutPOfTheElementsAndScalesTheRestAtEveryLevel() {
        let count = 1 << 20, p = 0.3
        let mask = DropoutMask(probability: p, seed: 42)
        let x = values(1, count: count)
        let keep = Float(1 / (1 - p))
        var levels: [[Float]] = []
        forEachKernelLevel { _ in levels.append(withNoGrad { Tensor.dropout(Tensor(x, shape: [1024, 1024]), mask) }.floats()) }
        for (level, y) in levels.enumerated() { XCTAssertEqual(y, levels[0], "the same mask and values at level index \(level)") }
        let y = levels[0]
        var kept = 0
        for i in 0..<count {
            if mask.keeps(i) {
                kept += 1
                XCTAssertEqual(y[i], x[i] * keep, "kept element \(i) is scaled by 1/(1 − p)")
            } else {
                XCTAssertEqual(y[i], 0, "dropped element \(i)")
            }
            if y[i] != (mask.keeps(i) ? x[i] * keep : 0) { break }
        }
        // Binomial(2²⁰, 0.7): standard deviation 0.00045 of the fraction.
        XCTAssertEqual(Double(kept) / Double(count), 1 - p, accuracy: 0.003)
    }

    func testMasksOfDifferentSeedsAreIndependent() {
        let count = 1 << 18, p = 0.5
        let a = DropoutMask(probability: p, seed: 7), b = DropoutMask(probability: p, seed: 8)
        let c = DropoutMask(probability: p, seed: 7 | 1 << 40)
        var agreeAB = 0, agreeAC = 0, neighbours = 0, halves = 0
        for i in 0..<count {
            if a.keeps(i) == b.keeps(i) { agreeAB += 1 }
            if a.keeps(i) == c.keeps(i) { agreeAC += 1 }
            if a.keeps(i) == a.keeps(i + 1) { neighbours += 1 }
            if a.keeps(i) == a.keeps(i ^ 16) { halves += 1 }
        }
        // Independent masks with p = ½ agree on half the elements (standard deviation 0.001).
        XCTAssertEqual(Double(agreeAB) / Double(count), 0.5, accuracy: 0.005, "seeds 7 and 8")
        XCTAssertEqual(Double(agreeAC) / Double(count), 0.5, accuracy: 0.005, "seeds differing in the high word only")
        XCTAssertEqual(Double(neighbours) / Double(count), 0.5, accuracy: 0.005, "neighbouring elements")
        XCTAssertEqual(Double(halves) / Double(count), 0.5, accuracy: 0.005, "elements sharing a hash")
    }

    func testIndicesWhoseHashPassesTwoToTheThirtySecondContinueTheMask() {
        // Two elements share a 32-bit hash (element 32b + l and 32b + 16 + l: hash 16b + l), so the hash index passes
        // 2³² at element 2³³; the kernel runs the blocks on either side, and a partial block at each end, apart.
        let first: UInt64 = (1 << 33) - 45, seed: UInt64 = 3, count = 120
        let x = (0..<count).map { Float($0) + 1 }
        var y = [Float](repeating: -1, count: count)
        let threshold = UInt32(0.5 * 65536)
        collie_dropout_f32(x, &y, count, first, seed, threshold, 2)
        for i in 0..<count {
            XCTAssertEqual(y[i], collie_dropout_bits(seed, first + UInt64(i)) >= threshold ? 2 * x[i] : 0, "element \(i)")
        }
        XCTAssertNotEqual(collie_dropout_bits(seed, 1 << 33), collie_dropout_bits(seed, 0), "the high word counts")
        XCTAssertNotEqual(collie_dropout_bits(seed, 16), collie_dropout_bits(seed, 0), "two halves of one hash")
    }

    /// A row-parallel rank holds some columns of every row: it draws the whole tensor's mask over them.
    func testAWindowOfColumnsGetsTheWholeTensorsMaskThere() {
        let whole = values(6, count: 50 * 40)
        let mask = DropoutMask(probability: 0.4, seed: 12)
        let dropped = withNoGrad { Tensor.dropout(Tensor(whole, shape: [50, 40]), mask) }.floats()
        for (offset, width) in [(0, 20), (20, 20), (16, 12)] {
            let part = (0..<50).flatMap { row in whole[(row * 40 + offset)..<(row * 40 + offset + width)] }
            var window = mask
            window.columns = .init(offset: offset, total: 40)
            let got = withNoGrad { Tensor.dropout(Tensor(part, shape: [50, width]), window) }.floats()
            let expected = (0..<50).flatMap { row in dropped[(row * 40 + offset)..<(row * 40 + offset + width)] }
            XCTAssertEqual(got, expected, "columns \(offset) ..< \(offset + width)")
        }
    }

    func testBackwardMultipliesTheGradientByTheSameMask() {
        let mask = DropoutMask(probability: 0.25, seed: 11)
        let x = Tensor(doubles: values(2, count: 4096).map(Double.init), shape: [64, 64])
        x.requiresGrad = true
        let upstream = values(3, count: 4096).map(Double.init)
        let y = Tensor.dropout(x, mask)
        (y * Tensor(doubles: upstream, shape: [64, 64])).sum().backward()
        let gradient = x.grad!.doubles()
        for i in 0..<4096 { XCTAssertEqual(gradient[i], mask.keeps(i) ? upstream[i] / 0.75 : 0, accuracy: 1e-12) }
    }

    /// The fused product equals dropout followed by linear, forward and both gradients, bit for bit.
    func testLinearDroppingOutEqualsDropoutThenLinear() {
        let mask = DropoutMask(probability: 0.2, seed: 5)
        var generator = RandomGenerator(seed: 4)
        let xValues = Tensor.normal([3, 40, 96], generator: &generator).floats()
        let wValues = Tensor.normal([8, 96], generator: &generator).floats()
        let upstream = Tensor.normal([3, 40, 8], generator: &generator)
        var results: [(y: [Float], dx: [Float], dw: [Float])] = []
        for fused in [false, true] {
            let x = Tensor(xValues, shape: [3, 40, 96]), w = Tensor(wValues, shape: [8, 96])
            x.requiresGrad = true
            w.requiresGrad = true
            let y = fused ? Tensor.linear(x, droppingOut: mask, weight: w) : .linear(.dropout(x, mask), weight: w)
            (y * upstream).sum().backward()
            results.append((y.floats(), x.grad!.floats(), w.grad!.floats()))
        }
        XCTAssertEqual(results[1].y, results[0].y)
        XCTAssertEqual(results[1].dx, results[0].dx)
        XCTAssertEqual(results[1].dw, results[0].dw)
        XCTAssertTrue(results[1].dx.contains(0), "dropped inputs get no gradient")
    }

    /// A weight in another dtype than the input is converted first, as `linear` does, and gets its gradient in its own.
    func testLinearDroppingOutConvertsAWeightOfAnotherDtype() {
        let mask = DropoutMask(probability: 0.5, seed: 2)
        var generator = RandomGenerator(seed: 6)
        let xValues = Tensor.normal([5, 16], generator: &generator).floats().map(Double.init)
        let w = Tensor.normal([3, 16], generator: &generator)
        w.requiresGrad = true
        let x = Tensor(doubles: xValues, shape: [5, 16])
        let y = Tensor.linear(x, droppingOut: mask, weight: w)
        XCTAssertEqual(y.dtype, .float64)
        let expected = withNoGrad { Tensor.linear(.dropout(x, mask), weight: w.to(.float64)) }.doubles()
        XCTAssertEqual(y.doubles(), expected)
        y.sum().backward()
        XCTAssertEqual(w.grad?.dtype, .float32)
        XCTAssertEqual(w.grad?.shape, [3, 16])
    }

    /// Three products of one input, each with its own mask, keep that input and nothing else of their inputs' size
    /// for backward (dropout followed by linear keeps a dropped-out copy per product).
    func testLinearDroppingOutKeepsOnlyItsInputForBackward() {
        var generator = RandomGenerator(seed: 8)
        let x = Tensor.normal([256, 256], generator: &generator)   // 256 KB: pooled, so counted
        x.requiresGrad = true
        let weights = (0..<3).map { _ in Tensor.normal([4, 256], generator: &generator) }
        for w in weights { w.requiresGrad = true }
        let before = StoragePool.shared.liveBytes
        let outputs = weights.enumerated().map { i, w in
            Tensor.linear(x, droppingOut: DropoutMask(probability: 0.1, seed: UInt64(i)), weight: w)
        }
        XCTAssertEqual(StoragePool.shared.liveBytes, before, "outputs of 4 KB are not pooled; nothing of x's size is kept")
        outputs.reduce(Tensor.zeros([256, 4]), +).sum().backward()
        XCTAssertNotNil(weights[2].grad)
        XCTAssertNotNil(x.grad)
    }
}
