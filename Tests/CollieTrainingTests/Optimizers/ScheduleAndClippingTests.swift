import CollieEngine
import CollieTraining
import Foundation
import XCTest

/// Learning-rate schedules against transformers' schedulers, and gradient clipping against
/// torch.nn.utils.clip_grad_norm_.
final class ScheduleTests: XCTestCase {
    static let fixture = Fixture("schedules")

    func schedule(_ name: String) -> LearningRateSchedule {
        let p = { Self.fixture.double(name, $0) }
        let kind: LearningRateSchedule.Kind = [.constant, .linear, .cosine][Int(p("kind"))]
        let warmup: LearningRateSchedule.Warmup = p("warmup_ratio") > 0 ? .ratio(p("warmup_ratio")) : .steps(Int(p("warmup_steps")))
        return LearningRateSchedule(kind: kind, baseLearningRate: p("base_lr"), totalSteps: Int(p("total_steps")),
                                    warmup: warmup, numberOfCycles: p("num_cycles"), minimumRatio: p("min_lr_rate"))
    }

    func testSchedulesMatchTransformersAtEveryStep() {
        let names = Self.fixture.caseNames
        XCTAssertEqual(names.count, 10)
        var worst = 0.0
        for name in names {
            let expected = Self.fixture.tensor("\(name).lr").doubles()
            var s = schedule(name)
            for (step, lr) in expected.enumerated() {
                XCTAssertEqual(s.learningRate(at: step), lr, accuracy: 1e-15, "\(name) step \(step)")
                XCTAssertEqual(s.currentLearningRate, s.learningRate(at: step))
                worst = max(worst, abs(s.learningRate(at: step) - lr))
                s.advance()
            }
        }
        print("schedules: max abs difference \(worst)")
    }

    func testWarmupRatioRoundsUpLikeTransformersTrainer() {
        let s = LearningRateSchedule(kind: .linear, baseLearningRate: 1, totalSteps: 25, warmup: .ratio(0.1))
        XCTAssertEqual(s.warmupSteps, 3)
        XCTAssertEqual(LearningRateSchedule(kind: .linear, baseLearningRate: 1, totalSteps: 100, warmup: .ratio(0.03)).warmupSteps, 3)
        XCTAssertEqual(s.learningRate(at: 0), 0)
        XCTAssertEqual(s.learningRate(at: 3), 1)
    }

    func testLinearAndCosineReachZeroAtTheEndAndStayThere() {
        for kind in [LearningRateSchedule.Kind.linear, .cosine] {
            let s = LearningRateSchedule(kind: kind, baseLearningRate: 2e-5, totalSteps: 10, warmup: .steps(2))
            XCTAssertEqual(s.learningRate(at: 10), 0, accuracy: 1e-20)
            XCTAssertEqual(s.learningRate(at: 50), kind == .linear ? 0 : s.learningRate(at: 50))
            XCTAssertGreaterThanOrEqual(s.learningRate(at: 50), 0)
        }
    }

    func testScheduleStateRoundTripsThroughJSON() throws {
        var s = LearningRateSchedule(kind: .cosine, baseLearningRate: 3e-4, totalSteps: 100, warmup: .ratio(0.05),
                                     minimumRatio: 0.1)
        for _ in 0..<17 { s.advance() }
        let data = try JSONEncoder().encode(s)
        let json = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        XCTAssertEqual(json["warmup"] as? [String: Double], ["ratio": 0.05])
        XCTAssertEqual(json["kind"] as? String, "cosine")
        let restored = try JSONDecoder().decode(LearningRateSchedule.self, from: data)
        XCTAssertEqual(restored, s)
        XCTAssertEqual(restored.step, 17)
        XCTAssertEqual(restored.currentLearningRate, s.learningRate(at: 17))
    }
}

final class GradientClippingTests: XCTestCase {
    static let fixture = Fixture("clipping")

    /// Parameters holding the case's gradients (nil where it has none).
    func parameters(_ name: String) -> [Tensor] {
        (0..<Int(Self.fixture.double(name, "count"))).map { i in
            let key = "\(name).grad.\(i)"
            let shape = Self.fixture.has(key) ? Self.fixture.tensor(key).shape : [1]
            let p = Tensor.zeros(shape)
            p.grad = Self.fixture.has(key) ? Self.fixture.tensor(key) : nil
            return p
        }
    }

    func check(_ name: String, _ parameters: [Tensor], norm: Double, _ difference: inout Difference) {
        let expectedNorm = Double(Self.fixture.tensor("\(name).total_norm").item)
        XCTAssertEqual(norm, expectedNorm, accuracy: 1e-6 * expectedNorm, name)
        for (i, p) in parameters.enumerated() where Self.fixture.has("\(name).clipped.\(i)") {
            difference.compare(p.grad!, Self.fixture.tensor("\(name).clipped.\(i)"))
        }
        XCTAssertLessThan(difference.maxRelative, 1e-6, "\(name): \(difference)")
    }

    func testClipByGlobalNormMatchesTorch() {
        var difference = Difference()
        for name in Self.fixture.caseNames {
            let ps = parameters(name)
            let norm = GradientClipping.clipByGlobalNorm(ps, maxNorm: Self.fixture.double(name, "max_norm"))
            check(name, ps, norm: norm, &difference)
            if name == "missing_gradient" { XCTAssertNil(ps[1].grad, "a missing gradient stays missing") }
        }
        print("clipping per parameter: \(difference)")
    }

    func testClippingTheFlatGradientBufferMatchesTorch() {
        var difference = Difference()
        for name in Self.fixture.caseNames where name != "missing_gradient" {
            let ps = parameters(name)
            let gradients = ps.map { $0.grad! }
            let buffer = ParameterBuffer(ps)
            buffer.attachGradients()
            for (p, g) in zip(ps, gradients) { p.grad!.pointer(as: Float.self).update(from: g.pointer(as: Float.self), count: g.count) }
            let norm = GradientClipping.clipByGlobalNorm(buffer, maxNorm: Self.fixture.double(name, "max_norm"))
            check(name, ps, norm: norm, &difference)
            XCTAssertTrue(ps[0].grad!.storage === buffer.gradients!.storage)
        }
        print("clipping flat buffer: \(difference)")
    }

    func testNoClippingLeavesGradientsUntouchedAndReturnsTheNorm() {
        let p = Tensor.zeros([2])
        p.grad = Tensor([3, 4], shape: [2])
        XCTAssertEqual(GradientClipping.clipByGlobalNorm([p], maxNorm: 10), 5)
        XCTAssertEqual(p.grad!.floats(), [3, 4])
        XCTAssertEqual(GradientClipping.clipByGlobalNorm([p], maxNorm: 2.5), 5)
        XCTAssertEqual(p.grad!.floats()[0], 1.5, accuracy: 1e-6)
        XCTAssertEqual(GradientClipping.globalNorm([Tensor.zeros([1])]), 0, "parameters without gradients count as zero")
    }

    func testNonFiniteNormIsReturnedForTheCallerToSkipTheStep() {
        let p = Tensor.zeros([2])
        p.grad = Tensor([.infinity, 1], shape: [2])
        XCTAssertFalse(GradientClipping.clipByGlobalNorm([p], maxNorm: 1).isFinite)
    }
}
