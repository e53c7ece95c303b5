import Foundation
import XCTest
@testable import CollieEngine

/// The tape's contract: gradient-ready hooks, no-grad scopes, detach, accumulation across passes,
/// and views sharing storage.
final class AutogradTests: XCTestCase {
    private struct Layer {
        let weight: Tensor, bias: Tensor
        let name: String
    }

    /// A 3-layer chain of linears (8 → 6 → 5 → 4) with tanh between, and its input.
    private func makeChain(seed: UInt64 = 1) -> (x: Tensor, layers: [Layer]) {
        var g = RandomGenerator(seed: seed)
        let sizes = [8, 6, 5, 4]
        let layers = (0..<3).map { i -> Layer in
            let w = Tensor.normal([sizes[i + 1], sizes[i]], std: 0.5, generator: &g)
            let b = Tensor.normal([sizes[i + 1]], std: 0.1, generator: &g)
            w.requiresGrad = true
            b.requiresGrad = true
            return Layer(weight: w, bias: b, name: "layer\(i + 1)")
        }
        return (Tensor.normal([3, 8], generator: &g), layers)
    }

    private func forward(_ x: Tensor, _ layers: [Layer]) -> Tensor {
        var h = x
        for (i, layer) in layers.enumerated() {
            h = Tensor.linear(h, weight: layer.weight, bias: layer.bias)
            if i < layers.count - 1 { h = h.tanh() }
        }
        return (h * h).sum()
    }

    // MARK: - Gradient-ready hooks

    func testGradientReadyHooksFireOncePerBackwardInReverseLayerOrderWithTheFinalGradient() {
        let (x, layers) = makeChain()
        var fired: [(name: String, grad: [Float])] = []
        for layer in layers {
            layer.weight.onGradientReady { t in fired.append(("\(layer.name).weight", t.grad!.floats())) }
            layer.bias.onGradientReady { t in fired.append(("\(layer.name).bias", t.grad!.floats())) }
        }
        forward(x, layers).backward()

        XCTAssertEqual(fired.count, 6, "one call per parameter: \(fired.map(\.name))")
        XCTAssertEqual(Set(fired.map(\.name)).count, 6, "no parameter twice: \(fired.map(\.name))")
        // Layer 3's parameters are final first, layer 1's last.
        let layerOrder = fired.map { Int(String($0.name.dropFirst(5).prefix(1)))! }
        XCTAssertEqual(layerOrder, layerOrder.sorted(by: >), "hooks in reverse layer order: \(fired.map(\.name))")
        // The value a hook saw is the gradient left after the whole pass.
        for layer in layers {
            for (suffix, p) in [("weight", layer.weight), ("bias", layer.bias)] {
                let seen = fired.first { $0.name == "\(layer.name).\(suffix)" }
                XCTAssertEqual(seen?.grad, p.grad?.floats(), "\(layer.name).\(suffix)")
            }
        }

        // A second pass fires every hook once more (and only once).
        fired.removeAll()
        forward(x, layers).backward()
        XCTAssertEqual(fired.count, 6)
        XCTAssertEqual(Set(fired.map(\.name)).count, 6)
    }

    /// A tied weight (embedding table reused as the output head) is read by two ops; its hook
    /// fires once, after the second contribution, with their sum.
    func testHookOfATiedWeightFiresOnceWithTheSummedGradient() {
        var g = RandomGenerator(seed: 5)
        let table = Tensor.normal([7, 4], generator: &g)
        let ids = Tensor(ints: [1, 3, 3, 6, 0], shape: [5])
        let targets = Tensor(ints: [2, 2, 5, 0, 1], shape: [5])
        let tied = table.contiguousCopy()
        tied.requiresGrad = true
        var calls: [[Float]] = []
        tied.onGradientReady { t in calls.append(t.grad!.floats()) }
        let hidden = Tensor.embedding(ids, weight: tied).tanh()
        Tensor.crossEntropy(logits: Tensor.linear(hidden, weight: tied), targets: targets).backward()

        // The same graph with the two uses untied: the tied gradient is their sum.
        let input = table.contiguousCopy(), head = table.contiguousCopy()
        input.requiresGrad = true
        head.requiresGrad = true
        let untiedHidden = Tensor.embedding(ids, weight: input).tanh()
        Tensor.crossEntropy(logits: Tensor.linear(untiedHidden, weight: head), targets: targets).backward()
        let sum = zip(input.grad!.floats(), head.grad!.floats()).map { $0 + $1 }

        XCTAssertEqual(calls.count, 1, "the hook fires once per pass")
        XCTAssertEqual(calls.first ?? [], tied.grad!.floats(), "the hook saw the final gradient")
        for (a, b) in zip(calls.first ?? [], sum) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        XCTAssertNotEqual(head.grad!.floats(), sum, "both uses contributed")
    }

    // MARK: - Logits handed over to cross-entropy

    private func crossEntropyCase() -> (values: Tensor, targets: Tensor, gradient: [Float]) {
        var g = RandomGenerator(seed: 9)
        let values = Tensor.normal([6, 50], std: 3, generator: &g)
        let targets = Tensor(ints: [3, Tensor.ignoreIndex, 49, 0, 7, 7], shape: [6])
        let plain = values.contiguousCopy()
        plain.requiresGrad = true
        Tensor.crossEntropy(logits: plain, targets: targets).backward()
        return (values, targets, plain.grad!.floats())
    }

    /// Logits handed over (`consumingLogits`) become their own gradient, in their own memory: forward writes it
    /// (one exp per logit, the row still in cache), backward hands it on. The same loss, and the gradient within
    /// float rounding of the one computed from kept logits.
    func testHandedOverLogitsBecomeTheirGradientInTheirOwnMemory() {
        let (values, targets, gradient) = crossEntropyCase()
        let plainLoss = Tensor.crossEntropy(logits: values, targets: targets).item
        let logits = values.contiguousCopy()
        logits.requiresGrad = true
        let memory = logits.storage.data
        let loss = Tensor.crossEntropy(logits: logits, targets: targets, consumingLogits: true)
        XCTAssertEqual(loss.item, plainLoss, accuracy: 1e-6)
        XCTAssertNotEqual(logits.floats(), values.floats(), "forward wrote the gradient over the logits")
        loss.backward()
        XCTAssertEqual(logits.grad!.storage.data, memory, "the gradient took the logits' memory")
        let got = logits.grad!.floats()
        for (g, want) in zip(got, gradient) { XCTAssertEqual(g, want, accuracy: 1e-7) }
        XCTAssertEqual(Array(got[50..<100]), [Float](repeating: 0, count: 50), "an ignored row's gradient is 0")
    }

    /// A summed loss divided by its count (the trainer's) expects the gradient 1/count: given as `expectedGradient`,
    /// backward passes the buffer on as it is; any other gradient that arrives (the loss scaled, a mean expected as
    /// 1) is still the right one, the buffer rescaled.
    func testHandedOverLogitsTakeWhateverGradientArrives() {
        let (values, targets, gradient) = crossEntropyCase()
        for (expected, multiplier) in [(1.0 / 5, 1.0), (1.0, 1.0), (1.0 / 5, 3.0), (2.0, -0.5)] {
            let logits = values.contiguousCopy()
            logits.requiresGrad = true
            let summed = Tensor.crossEntropy(logits: logits, targets: targets, reduction: .sum, consumingLogits: true,
                                             expectedGradient: expected)
            (summed / 5.0 * multiplier).backward()   // 5 counted targets: the mean, times multiplier
            for (g, want) in zip(logits.grad!.floats(), gradient) {
                XCTAssertEqual(g, want * Float(multiplier), accuracy: 1e-7, "expected \(expected), × \(multiplier)")
            }
        }
    }

    /// Handed-over logits are left as they are where something may still read them: a view shares their memory.
    /// With the graph kept for a second pass, that pass hands on the same gradient again.
    func testHandedOverLogitsStayWhereAViewReadsThemAndASecondPassAddsTheSameGradient() {
        let (values, targets, gradient) = crossEntropyCase()
        let logits = values.contiguousCopy()
        logits.requiresGrad = true
        let view = logits.detach().reshaped([300])
        Tensor.crossEntropy(logits: logits, targets: targets, consumingLogits: true).backward()
        XCTAssertEqual(view.floats(), values.floats(), "the view still reads the logits")
        XCTAssertEqual(logits.grad!.floats(), gradient)

        let kept = values.contiguousCopy()
        kept.requiresGrad = true
        let loss = Tensor.crossEntropy(logits: kept, targets: targets, consumingLogits: true)
        loss.backward(retainGraph: true)
        loss.backward()
        for (twice, once) in zip(kept.grad!.floats(), gradient) { XCTAssertEqual(twice, 2 * once, accuracy: 1e-6) }
    }

    /// A node keeps where its inputs' gradients go, not the inputs: values its backward does not read — a sum's
    /// operands, the input of a layer whose weight is frozen (LoRA's base) — are freed as soon as forward is done with
    /// them, and the gradients are still the whole graph's.
    func testInputsNoBackwardReadsAreFreedOnceForwardIsDoneWithThem() {
        let values: [Float] = [0.5, -1, 2, 0.25]
        let x = Tensor(values, shape: [2, 2])
        x.requiresGrad = true
        let frozen = Tensor([1, 2, 3, 4], shape: [2, 2])
        weak var sumOperand: TensorStorage?
        weak var frozenLayerInput: TensorStorage?
        let loss: Tensor
        do {
            let doubled = x * 2
            let h = (doubled + x.exp()) * 3
            sumOperand = doubled.storage
            frozenLayerInput = h.storage
            loss = Tensor.linear(h, weight: frozen).sum()
        }
        XCTAssertNil(sumOperand, "an operand of a sum is not kept for backward")
        XCTAssertNil(frozenLayerInput, "dX = dY·W does not read X")
        loss.backward()
        let columnSums: [Float] = [4, 6]   // dL/dh[i, j] = Σ_o W[o, j]
        for (i, v) in values.enumerated() {
            XCTAssertEqual(x.grad!.floats()[i], 3 * (2 + Foundation.exp(v)) * columnSums[i % 2], accuracy: 1e-5)
        }
    }

    // MARK: - Recording

    func testNoGradScopeRecordsNothing() {
        let (x, layers) = makeChain()
        let out = withNoGrad { forward(x, layers) }
        XCTAssertFalse(out.requiresGrad)
        XCTAssertTrue(out.isLeaf)
        XCTAssertFalse(GradMode.withNoGrad { GradMode.isEnabled })
        XCTAssertTrue(GradMode.isEnabled, "recording resumes after the scope")
        // And the same computation outside the scope does record.
        XCTAssertTrue(forward(x, layers).requiresGrad)
    }

    func testDetachStopsTheGradient() {
        var g = RandomGenerator(seed: 9)
        let x = Tensor.normal([4, 3], generator: &g)
        x.requiresGrad = true
        let frozen = x.detach()
        XCTAssertFalse(frozen.requiresGrad)
        XCTAssertTrue(frozen.isLeaf)
        XCTAssertEqual(frozen.floats(), x.floats())
        // d/dx Σ x · stop(x) = stop(x) = x (not 2x).
        (x * frozen).sum().backward()
        XCTAssertEqual(x.grad!.floats(), x.floats())
        // Detaching an intermediate cuts everything upstream of it.
        let y = x.tanh().detach()
        XCTAssertFalse(y.requiresGrad)
        XCTAssertTrue(y.isLeaf)
    }

    func testTwoBackwardPassesAccumulateTwiceTheGradient() {
        let (x, layers) = makeChain()
        forward(x, layers).backward()
        let once = layers.flatMap { [$0.weight.grad!.floats(), $0.bias.grad!.floats()] }
        forward(x, layers).backward()
        let twice = layers.flatMap { [$0.weight.grad!.floats(), $0.bias.grad!.floats()] }
        for (a, b) in zip(once, twice) {
            for (u, v) in zip(a, b) { XCTAssertEqual(v, 2 * u, accuracy: 1e-6 * Swift.max(1, Swift.abs(u))) }
        }
    }

    func testBackwardOnALeafSeedsItsGradient() {
        let x = Tensor([2], shape: [])
        x.requiresGrad = true
        var calls = 0
        x.onGradientReady { _ in calls += 1 }
        x.backward()
        XCTAssertEqual(x.grad?.floats(), [1])
        XCTAssertEqual(calls, 1)
    }

    func testFloat64ToFloat32ConversionPassesTheGradientBackInFloat64() {
        let x = Tensor(doubles: [1, 2, 3], shape: [3])
        x.requiresGrad = true
        (x.to(.float32) * Tensor([4, 5, 6], shape: [3])).sum().backward()
        XCTAssertEqual(x.grad?.dtype, .float64)
        XCTAssertEqual(x.grad?.doubles(), [4, 5, 6])
    }

    // MARK: - Views

    func testReshapeTransposeAndSliceAreViewsOfTheSameStorage() {
        let x = Tensor((0..<24).map(Float.init), shape: [2, 3, 4])
        let r = x.reshaped([6, 4])
        let t = x.transposed(0, 2)                // [4, 3, 2]
        let s = x.slice(axis: 1, 1..<3)           // [2, 2, 4]
        for v in [r, t, s] { XCTAssertTrue(v.storage === x.storage) }
        XCTAssertFalse(t.isContiguous)
        XCTAssertFalse(s.isContiguous)

        // Write through the base, read through each view.
        x.pointer(as: Float.self)[1 * 12 + 2 * 4 + 3] = 100     // x[1, 2, 3]
        XCTAssertEqual(r.floats()[5 * 4 + 3], 100)              // r[5, 3]
        XCTAssertEqual(t.floats()[(3 * 3 + 2) * 2 + 1], 100)    // t[3, 2, 1]
        XCTAssertEqual(s.floats()[(1 * 2 + 1) * 4 + 3], 100)    // s[1, 1, 3]

        // Write through a view (at its strided position), read through the base and the others.
        let tp = t.pointer(as: Float.self)                      // t[1, 0, 1] = x[1, 0, 1]
        tp[1 * t.strides[0] + 0 * t.strides[1] + 1 * t.strides[2]] = -7
        XCTAssertEqual(x.floats()[12 + 1], -7)
        XCTAssertEqual(r.floats()[3 * 4 + 1], -7)               // r[3, 1]
        let sp = s.pointer(as: Float.self)                      // s[0, 0, 2] = x[0, 1, 2]
        sp[2 * s.strides[2]] = 42
        XCTAssertEqual(x.floats()[4 + 2], 42)
        XCTAssertEqual(t.floats()[(2 * 3 + 1) * 2 + 0], 42)     // t[2, 1, 0]
    }

    // MARK: - Gradients handed to several inputs are never shared

    func testAGradientPassedThroughToSeveralInputsIsNotShared() {
        let a = leaf([1, 2]), b = leaf([3, 4]), c = leaf([5, 6])
        ((a * c) + (a + b)).sum().backward()
        XCTAssertEqual(a.grad!.floats(), [6, 7])
        XCTAssertEqual(b.grad!.floats(), [1, 1])
        XCTAssertEqual(c.grad!.floats(), [1, 2])
    }

    func testTwoPassesThroughAnAdditionAccumulateSeparatelyPerInput() {
        let p = leaf([1, 1]), q = leaf([2, 2])
        (p + q).sum().backward()
        (p + q).sum().backward()
        XCTAssertEqual(p.grad!.floats(), [2, 2])
        XCTAssertEqual(q.grad!.floats(), [2, 2])
    }

    func testBackwardLeavesTheCallersSeedGradientUntouched() {
        let r = leaf([1, 2])
        let seed = Tensor([10, 20], shape: [2])
        for _ in 0..<3 { r.reshaped([2, 1]).reshaped([2]).backward(gradient: seed) }
        XCTAssertEqual(r.grad!.floats(), [30, 60])
        XCTAssertEqual(seed.floats(), [10, 20])
    }

    func testMaxPropagatesNaNAndLogSumExpOfInfinityIsInfinity() {
        XCTAssertTrue(Tensor([.nan, 1], shape: [2]).max(axis: 0).item.isNaN)
        XCTAssertTrue(Tensor([1, .nan], shape: [2]).max(axis: 0).item.isNaN)
        XCTAssertEqual(Tensor([.infinity, 1], shape: [2]).logSumExp(axis: 0).item, .infinity)
    }

    private func leaf(_ values: [Float]) -> Tensor {
        let t = Tensor(values, shape: [values.count])
        t.requiresGrad = true
        return t
    }
}
