import CollieEngine
import CollieTestSupport
import CollieTraining
import Foundation
import XCTest

/// SGD and AdamW against torch.optim (single-tensor path, float32): five steps on three random
/// parameters per hyper-parameter setting, with gradients of mixed scale, learning rates changed
/// between steps and parameters that miss a gradient at some steps (torch skips them).
///
/// Measured against torch 2.15 on an AVX-512 CPU: SGD parameters and momentum buffers, and every
/// AdamW moment, are bit-identical; AdamW parameters are identical except where torch's
/// vectorized sqrt rounds the other way (adamw_betas: max 3.7e-9 absolute, 6.6e-7 relative to
/// the tensor's scale). The tolerance is 1e-6 relative (`Difference`).
final class OptimizerParityTests: XCTestCase {
    static let fixture = Fixture("optimizers")
    static let steps = 5
    static let tolerance = 1e-6

    var fixture: Fixture { Self.fixture }

    func testSGDMatchesTorchStepForStep() {
        let cases = fixture.caseNames.filter { $0.hasPrefix("sgd") }
        XCTAssertEqual(cases.count, 5)
        for name in cases { checkSteps(name) }
    }

    func testAdamWMatchesTorchStepForStep() {
        let cases = fixture.caseNames.filter { $0.hasPrefix("adamw") }
        XCTAssertEqual(cases.count, 4)
        for name in cases { checkSteps(name) }
    }

    func testStateAfterFiveStepsMatchesTorchState() {
        for name in fixture.caseNames {
            let (optimizer, parameters) = makeOptimizer(name)
            for step in 0..<Self.steps { takeStep(step, of: name, optimizer, parameters) }
            let state = optimizer.state()
            var difference = Difference()
            for i in parameters.indices {
                for slot in ["momentum_buffer", "exp_avg", "exp_avg_sq"] where fixture.has("\(name).state.\(i).\(slot)") {
                    guard let mine = state.tensors["\(i).\(slot)"] else { XCTFail("\(name): no \(i).\(slot)"); continue }
                    difference.compare(mine, fixture.tensor("\(name).state.\(i).\(slot)"))
                }
                if fixture.has("\(name).state.\(i).step") {
                    XCTAssertEqual(state.tensors["\(i).step"]?.ints(), fixture.tensor("\(name).state.\(i).step").ints(),
                                   "\(name) parameter \(i) step count")
                }
            }
            print("\(name) state: \(difference)")
            XCTAssertLessThan(difference.maxRelative, Self.tolerance, "\(name) state: \(difference)")
            XCTAssertEqual(state.metadata.stepCount, Self.steps)
        }
    }

    func testParametersWithoutAGradientAreNeitherMovedNorCounted() {
        let (optimizer, parameters) = makeOptimizer("adamw_varying_lr")
        for step in 0..<Self.steps { takeStep(step, of: "adamw_varying_lr", optimizer, parameters) }
        // Parameter 1 missed step 2 and parameter 2 step 0 (see make_optimizer_fixtures.py).
        XCTAssertEqual((optimizer as! AdamW).parameterStepCounts, [5, 4, 4])

        let frozen = Tensor([1, 2], shape: [2])
        let sgd = SGD(parameters: [frozen], learningRate: 0.1, momentum: 0.9, weightDecay: 0.1)
        sgd.step()
        XCTAssertEqual(frozen.floats(), [1, 2])
        XCTAssertTrue(sgd.state().tensors.isEmpty, "no momentum buffer before the first gradient")
    }

    func testResumingFromASavedFolderContinuesBitForBit() throws {
        for name in ["sgd_dampening", "sgd_nesterov", "adamw_varying_lr", "adamw_betas"] {
            let (uninterrupted, reference) = makeOptimizer(name)
            for step in 0..<Self.steps { takeStep(step, of: name, uninterrupted, reference) }

            let (first, parameters) = makeOptimizer(name)
            for step in 0..<3 { takeStep(step, of: name, first, parameters) }
            let folder = try temporaryFolder(for: self).appendingPathComponent("step-3")
            try first.save(to: folder)
            XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent("optimizer.json").path))

            // A new process: fresh optimizer, parameters as the checkpoint holds them.
            let (resumed, _) = makeOptimizer(name, parameters: parameters.map { $0.contiguousCopy() })
            try resumed.load(from: folder)
            XCTAssertEqual(resumed.stepCount, 3)
            for step in 3..<Self.steps { takeStep(step, of: name, resumed, resumed.parameters) }
            for (a, b) in zip(resumed.parameters, reference) {
                XCTAssertEqual(a.floats(), b.floats(), "\(name): resumed run differs from the uninterrupted one")
            }
        }
    }

    func testZeroGradientsKeepsFlatGradientViews() {
        let a = Tensor([1, 2, 3], shape: [3]), b = Tensor([4, 5], shape: [2])
        a.requiresGrad = true; b.requiresGrad = true
        let buffer = ParameterBuffer([a, b])
        buffer.attachGradients()
        ((a * a).sum() + (b * b).sum()).backward()
        XCTAssertEqual(buffer.gradients!.floats(), [2, 4, 6, 8, 10])
        let optimizer = AdamW(parameters: buffer.parameters)
        optimizer.step()
        optimizer.zeroGradients()
        XCTAssertEqual(buffer.gradients!.floats(), [0, 0, 0, 0, 0])
        XCTAssertTrue(a.grad!.storage === buffer.gradients!.storage, "the gradient is still a view of the flat buffer")
        (a.sum() + b.sum()).backward()
        XCTAssertEqual(buffer.gradients!.floats(), [1, 1, 1, 1, 1])
    }

    /// A buffer large enough to be cleared in chunks on several threads is cleared whole, every parameter's part of it.
    func testZeroGradientsClearsALargeBufferEverywhere() {
        let parameters = [Tensor.ones([700_001]), Tensor.ones([3]), Tensor.ones([400_000])]   // 4.4 MB of gradients
        for p in parameters { p.requiresGrad = true }
        let buffer = ParameterBuffer(parameters)
        buffer.attachGradients()
        (parameters[0].sum() * 3 + parameters[1].sum() * 3 + parameters[2].sum() * 3).backward()
        XCTAssertTrue(buffer.gradients!.floats().allSatisfy { $0 == 3 })
        buffer.zeroGradients()
        XCTAssertTrue(buffer.gradients!.floats().allSatisfy { $0 == 0 })
        XCTAssertEqual(parameters.map { $0.grad!.floats().reduce(0, +) }, [0, 0, 0])
    }

    /// zeroGradients marks the flat gradients zero instead of clearing them: the next backward's products write over
    /// the previous step's values (a weight used twice adds its second product), and a gradient no backward wrote
    /// reads zero through `grad` and through the flat buffer.
    func testGradientsMarkedZeroAreWrittenOverAndReadAsZero() {
        let w = Tensor([1, 2, 3, 4, 5, 6], shape: [3, 2]), c = Tensor([7, 8], shape: [2]), d = Tensor([9], shape: [1])
        for p in [w, c, d] { p.requiresGrad = true }
        let buffer = ParameterBuffer([w, c, d])
        buffer.attachGradients()
        let x = Tensor([1, 0, 0, 1], shape: [2, 2]), y = Tensor([2, 1, 1, 3], shape: [2, 2])
        (Tensor.linear(x, weight: w).sum() + (c * c).sum() + d.sum()).backward()
        XCTAssertEqual(buffer.gradients!.floats(), [1, 1, 1, 1, 1, 1, 14, 16, 1])

        buffer.zeroGradients()
        Tensor.linear(y, weight: w).sum().backward()   // dW = column sums of y, in every row
        XCTAssertEqual(w.grad!.floats(), [3, 4, 3, 4, 3, 4], "written over the previous step's gradient, not added to it")
        XCTAssertEqual(buffer.gradients!.floats(), [3, 4, 3, 4, 3, 4, 0, 0, 0])
        XCTAssertEqual(c.grad!.floats(), [0, 0])

        buffer.zeroGradients()
        (Tensor.linear(y, weight: w).sum() + Tensor.linear(x, weight: w).sum()).backward()
        XCTAssertEqual(d.grad!.floats(), [0], "read through grad before the flat buffer")
        XCTAssertEqual(buffer.gradients!.floats(), [4, 5, 4, 5, 4, 5, 0, 0, 0])
        XCTAssertTrue(w.grad!.storage === buffer.gradients!.storage, "the gradient is still a view of the flat buffer")
    }

    // MARK: - Running a case

    /// The case's optimizer over fresh copies of its initial parameters (or over `parameters`).
    func makeOptimizer(_ name: String, parameters given: [Tensor]? = nil) -> (Optimizer, [Tensor]) {
        let parameters = given ?? (0...).prefix { fixture.has("\(name).init.\($0)") }.map { fixture.tensor("\(name).init.\($0)") }
        let lr = fixture.tensor("\(name).lr").doubles()[0]
        let p = { self.fixture.double(name, $0) }
        if p("kind") == 0 {
            return (SGD(parameters: parameters, learningRate: lr, momentum: p("momentum"), dampening: p("dampening"),
                        weightDecay: p("weight_decay"), nesterov: p("nesterov") != 0), parameters)
        }
        return (AdamW(parameters: parameters, learningRate: lr, beta1: p("beta1"), beta2: p("beta2"), epsilon: p("eps"),
                      weightDecay: p("weight_decay")), parameters)
    }

    /// Sets step `step`'s learning rate and gradients (nil where torch had none) and steps.
    func takeStep(_ step: Int, of name: String, _ optimizer: Optimizer, _ parameters: [Tensor]) {
        optimizer.learningRate = fixture.tensor("\(name).lr").doubles()[step]
        for (i, p) in parameters.enumerated() {
            let key = "\(name).grad.\(step).\(i)"
            p.grad = fixture.has(key) ? fixture.tensor(key) : nil
        }
        optimizer.step()
    }

    func checkSteps(_ name: String) {
        CollieTrainingTests.checkSteps(name, in: fixture, steps: Self.steps, tolerance: Self.tolerance,
                                        optimizer: makeOptimizer(name),
                                        takeStep: { takeStep($0, of: name, $1, $2) })
    }
}
