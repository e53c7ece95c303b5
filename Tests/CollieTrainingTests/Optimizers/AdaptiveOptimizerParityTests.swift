import CollieEngine
import CollieTestSupport
import CollieTraining
import Foundation
import XCTest

/// Lion, Adan and SophiaG against their reference implementations (lion-pytorch; the authors'
/// Adan and SophiaG re-created in scripts/fixtures/make_memory_optimizer_fixtures.py): five steps on three
/// random parameters with gradients of mixed scale and learning rates changed between steps;
/// SophiaG refreshes its Hessian every k steps from a separate gradient.
final class AdaptiveOptimizerParityTests: XCTestCase {
    static let fixture = Fixture("adaptive")
    static let steps = 5
    /// As for SGD/AdamW (`OptimizerParityTests`); measured at most 6.7e-8.
    static let tolerance = 1e-6
    var fixture: Fixture { Self.fixture }

    func testLionMatchesLionPytorchStepForStep() {
        let cases = fixture.caseNames.filter { $0.hasPrefix("lion") }
        XCTAssertEqual(cases.count, 2)
        for name in cases { checkSteps(name) }
    }

    func testAdanMatchesTheReferenceStepForStep() {
        let cases = fixture.caseNames.filter { $0.hasPrefix("adan") }
        XCTAssertEqual(cases.count, 3)
        for name in cases { checkSteps(name) }
    }

    func testSophiaGMatchesTheReferenceWithHessianRefreshes() {
        let cases = fixture.caseNames.filter { $0.hasPrefix("sophiag") }
        XCTAssertEqual(cases.count, 2)
        for name in cases { checkSteps(name) }
    }

    func testWithoutAHessianRefreshSophiaGTakesSignSteps() {
        // h = 0: the ratio clips at 1 and every element moves by exactly lr (no decay).
        let p = Tensor([1, -1, 0.5], shape: [3])
        let sophia = SophiaG(parameters: [p], learningRate: 0.1, weightDecay: 0)
        p.grad = Tensor([2, -3, 0.001], shape: [3])
        sophia.step()
        XCTAssertEqual(p.floats(), [0.9, -0.9, 0.4])
    }

    func testResumingEachOptimizerContinuesBitForBit() throws {
        for name in ["lion_decay_betas", "adan_prox_decay", "sophiag_every2"] {
            let (uninterrupted, reference) = makeOptimizer(name)
            for step in 0..<Self.steps { takeStep(step, of: name, uninterrupted, reference) }
            let (first, parameters) = makeOptimizer(name)
            for step in 0..<2 { takeStep(step, of: name, first, parameters) }
            let folder = try temporaryFolder(for: self).appendingPathComponent(name)
            try first.save(to: folder)
            let (resumed, _) = makeOptimizer(name, parameters: parameters.map { $0.contiguousCopy() })
            try resumed.load(from: folder)
            XCTAssertEqual(resumed.stepCount, 2)
            for step in 2..<Self.steps { takeStep(step, of: name, resumed, resumed.parameters) }
            for (a, b) in zip(resumed.parameters, reference) {
                XCTAssertEqual(a.floats(), b.floats(), "\(name): resumed run differs from the uninterrupted one")
            }
        }
    }

    func testStateOfAnotherKindIsRefused() throws {
        let (lion, _) = makeOptimizer("lion_plain")
        let (adan, _) = makeOptimizer("adan_plain")
        XCTAssertThrowsError(try adan.load(lion.state())) { error in
            XCTAssertTrue("\(error)".contains("lion, not adan"), "\(error)")
        }
    }

    // MARK: - Running a case

    func makeOptimizer(_ name: String, parameters given: [Tensor]? = nil) -> (Optimizer, [Tensor]) {
        let parameters = given ?? (0...).prefix { fixture.has("\(name).init.\($0)") }.map { fixture.tensor("\(name).init.\($0)") }
        let lr = fixture.tensor("\(name).lr").doubles()[0]
        let p = { self.fixture.double(name, $0) }
        switch p("kind") {
        case 2:
            return (Lion(parameters: parameters, learningRate: lr, beta1: p("beta1"), beta2: p("beta2"),
                         weightDecay: p("weight_decay")), parameters)
        case 3:
            return (Adan(parameters: parameters, learningRate: lr, beta1: p("beta1"), beta2: p("beta2"), beta3: p("beta3"),
                         epsilon: p("eps"), weightDecay: p("weight_decay"), noProx: p("no_prox") != 0), parameters)
        default:
            return (SophiaG(parameters: parameters, learningRate: lr, beta1: p("beta1"), beta2: p("beta2"), rho: p("rho"),
                            weightDecay: p("weight_decay"), batchTokens: Int(p("bs"))), parameters)
        }
    }

    func takeStep(_ step: Int, of name: String, _ optimizer: Optimizer, _ parameters: [Tensor]) {
        optimizer.learningRate = fixture.tensor("\(name).lr").doubles()[step]
        for (i, p) in parameters.enumerated() { p.grad = fixture.tensor("\(name).grad.\(step).\(i)") }
        optimizer.step()
        if let sophia = optimizer as? SophiaG, fixture.has("\(name).hess_grad.\(step).0") {
            let saved = parameters.map(\.grad)
            for (i, p) in parameters.enumerated() { p.grad = fixture.tensor("\(name).hess_grad.\(step).\(i)") }
            sophia.updateHessian()
            for (p, g) in zip(parameters, saved) { p.grad = g }
        }
    }

    func checkSteps(_ name: String) {
        CollieTrainingTests.checkSteps(name, in: fixture, steps: Self.steps, tolerance: Self.tolerance,
                                        optimizer: makeOptimizer(name),
                                        takeStep: { takeStep($0, of: name, $1, $2) })
    }
}
