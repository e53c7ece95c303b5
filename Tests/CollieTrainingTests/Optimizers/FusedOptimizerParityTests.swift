import CollieEngine
import CollieModels
import CollieTestSupport
import CollieTraining
import Foundation
import XCTest

/// LOMO and AdaLomo against OpenLMLab's `lomo-optim` 0.1.1 on a tiny LLaMA (Fixtures/fused_model):
/// three fused-backward steps per case, with weight decay, clipping by value and clipping by the
/// global norm (two backward passes), each loss compared before its update and every parameter
/// after the last one (scripts/fixtures/make_memory_optimizer_fixtures.py).
final class FusedOptimizerParityTests: XCTestCase {
    static let fixture = Fixture("fused")
    static let steps = 3
    /// Relative to each tensor's scale; the model's forward/backward agree with transformers to
    /// ~1e-6 and three updates compound it.
    static let tolerance = 1e-4
    var fixture: Fixture { Self.fixture }

    func testLOMOMatchesLomoOptimStepForStep() throws {
        let cases = fixture.caseNames.filter { $0.hasPrefix("lomo") }
        XCTAssertEqual(cases.count, 3)
        for name in cases { try check(name) }
    }

    func testAdaLomoMatchesLomoOptimStepForStep() throws {
        let cases = fixture.caseNames.filter { $0.hasPrefix("adalomo") }
        XCTAssertEqual(cases.count, 3)
        for name in cases { try check(name) }
    }

    func testAtMostOneParameterGradientIsAliveDuringBackward() throws {
        for (name, checkpointing) in [("lomo_plain", false), ("adalomo_clips", false), ("lomo_plain", true)] {
            let model = try Self.loadModel()
            model.activationCheckpointing = checkpointing
            let parameters = model.parameters
            let largest = parameters.map { $0.count * 4 }.max()!
            var peak = 0, readyCount = 0
            // Registered before the optimizer's hooks, so each runs first when a gradient is ready:
            // it sees that gradient plus any other still alive.
            for p in parameters {
                p.onGradientReady { _ in
                    readyCount += 1
                    peak = max(peak, parameters.reduce(0) { $0 + ($1.grad.map { $0.count * $0.dtype.size } ?? 0) })
                }
            }
            let optimizer = makeOptimizer(name, parameters)
            for _ in 0..<2 { takeStep(name, model, optimizer) }
            XCTAssertGreaterThan(readyCount, 2 * parameters.count - 1, "every parameter's gradient became ready")
            XCTAssertLessThanOrEqual(peak, largest, "\(name): live gradient bytes \(peak) > largest parameter \(largest)")
            XCTAssertTrue(parameters.allSatisfy { $0.grad == nil }, "no gradient is left after the step")
            print("\(name), checkpointing \(checkpointing): peak live gradient bytes \(peak), largest parameter \(largest)")
        }
    }

    func testAdaLomoStateResumesExactly() throws {
        let name = "adalomo_clips"
        let reference = try Self.loadModel()
        let uninterrupted = makeOptimizer(name, reference.parameters)
        for _ in 0..<3 { takeStep(name, reference, uninterrupted) }

        let model = try Self.loadModel()
        let first = makeOptimizer(name, model.parameters)
        takeStep(name, model, first)
        let folder = try temporaryFolder(for: self).appendingPathComponent("adalomo")
        try first.save(to: folder)
        let saved = first.state().tensors
        XCTAssertEqual(saved.keys.filter { $0.hasSuffix(".exp_avg_sq_row") }.count, 16, "one row factor per matrix: 7 per layer, embeddings, lm_head")
        XCTAssertEqual(saved.keys.filter { $0.hasSuffix(".exp_avg_sq") }.count, 5, "one vector per norm weight")

        // A new process: fresh optimizer (the old one's hooks gone), parameters as the checkpoint holds them.
        for p in model.parameters { p.removeGradientReadyHooks() }
        let resumed = makeOptimizer(name, model.parameters)
        try resumed.load(from: folder)
        XCTAssertEqual(resumed.stepCount, 1)
        for _ in 0..<2 { takeStep(name, model, resumed) }
        let differing = zip(model.parameters, reference.parameters).filter { $0.floats() != $1.floats() }.count
        XCTAssertEqual(differing, 0, "parameters where the resumed AdaLomo differs from the uninterrupted run")
    }

    func testBFloat16ParametersAreUpdatedInFloat32AndRoundedBack() {
        let w = Tensor([1, 2, 3, 4], shape: [2, 2]).contiguousCopy(dtype: .bfloat16)
        w.requiresGrad = true
        let lomo = LOMO(parameters: [w], learningRate: 0.5)
        lomo.attachToBackward()
        (w * Tensor([0.25, 0.25, 0.25, 0.25], shape: [2, 2])).sum().backward()
        lomo.step()
        XCTAssertEqual(w.dtype, .bfloat16)
        XCTAssertEqual(w.floats(), [0.875, 1.875, 2.875, 3.875])
        XCTAssertNil(w.grad)
    }

    /// Empty parameters (a matrix with no rows, a vector with no values) are left alone by LOMO and AdaLomo — in
    /// float32 and bf16 — while the others beside them are updated exactly as without them.
    func testEmptyParametersAreSkippedAndTheOthersUpdated() {
        for dtype in [DType.float32, .bfloat16] {
            for makeOptimizer in [{ LOMO(parameters: $0, learningRate: 0.5) as FusedBackwardOptimizer },
                                  { AdaLomo(parameters: $0, learningRate: 0.5) as FusedBackwardOptimizer }] {
                /// w after one step of `makeOptimizer` over w and `others`, the loss Σ w/4 + Σ others.
                func stepped(with others: [Tensor]) -> (w: Tensor, optimizer: FusedBackwardOptimizer) {
                    let w = Tensor([1, 2, 3, 4], shape: [2, 2]).contiguousCopy(dtype: dtype)
                    for p in [w] + others { p.requiresGrad = true }
                    let optimizer = makeOptimizer([w] + others)
                    optimizer.attachToBackward()
                    others.reduce((w * Tensor([0.25, 0.25, 0.25, 0.25], shape: [2, 2])).sum()) { $0 + $1.sum() }.backward()
                    optimizer.step()
                    return (w, optimizer)
                }
                let noRows = Tensor.zeros([0, 3]).contiguousCopy(dtype: dtype), empty = Tensor.zeros([0]).contiguousCopy(dtype: dtype)
                let (w, optimizer) = stepped(with: [noRows, empty])
                XCTAssertTrue(w.floats().allSatisfy { $0 < 4 } && w.floats() != [1, 2, 3, 4], "\(dtype) \(optimizer)")
                XCTAssertEqual(w.floats(), stepped(with: []).w.floats(), "\(dtype) \(optimizer): the same update alone")
                XCTAssertEqual(noRows.shape, [0, 3])
                XCTAssertEqual(empty.count, 0)
            }
        }
    }

    func testFloat16ParametersScaleTheLossAndSkipAnOverflowedStep() {
        let w = Tensor([1, 2], shape: [2]).contiguousCopy(dtype: .float16)
        w.requiresGrad = true
        let lomo = LOMO(parameters: [w], learningRate: 0.5)
        lomo.attachToBackward()
        XCTAssertEqual(lomo.lossScale, 65536)
        // An infinite gradient: the update is skipped and the scale halves.
        (w * Tensor([Float.infinity, 1], shape: [2]) * lomo.lossScale).sum().backward()
        lomo.step()
        XCTAssertEqual(w.floats(), [1, 2])
        XCTAssertEqual(lomo.lossScale, 32768)
        // A finite one: the gradient is unscaled before the update (w − 0.5 · 0.25), and the scale stays.
        (w * Tensor([0.25, 0.25], shape: [2]) * lomo.lossScale).sum().backward()
        lomo.step()
        XCTAssertEqual(w.floats(), [0.875, 1.875])
        XCTAssertEqual(lomo.lossScale, 32768)
    }

    func testNonFiniteGradientNeverReachesAFloat32Parameter() {
        // Without a norm pass: the parameters whose gradients came before the NaN keep their update, the rest of
        // the pass updates nothing; with one (clip_grad_norm), nothing is updated.
        for clip in [nil, 1.0] as [Double?] {
            let w = Tensor([1, 2], shape: [2]), v = Tensor([3, 4], shape: [2])
            w.requiresGrad = true
            v.requiresGrad = true
            let lomo = LOMO(parameters: [w, v], learningRate: 0.5, clipGradNorm: clip)
            lomo.attachToBackward()
            let loss = (w * Tensor([Float.nan, 1], shape: [2])).sum() + (v * Tensor([1, 1], shape: [2])).sum()
            let applied = lomo.update(from: loss)
            XCTAssertTrue((w.floats() + v.floats()).allSatisfy(\.isFinite), "clip \(String(describing: clip))")
            XCTAssertEqual(w.floats(), [1, 2], "the parameter with the NaN gradient is unchanged")
            if clip == nil {
                XCTAssertTrue(applied)
                XCTAssertTrue(lomo.lastUpdatePassMetNonFinite)
            } else {
                XCTAssertFalse(applied, "the norm pass saw the NaN: the update is skipped")
                XCTAssertEqual(v.floats(), [3, 4])
            }
        }
    }

    // MARK: - Running a case

    static func loadModel() throws -> LlamaForCausalLM {
        guard let url = Bundle.module.url(forResource: "fused_model", withExtension: nil, subdirectory: "Fixtures") else {
            throw XCTSkip("Fixtures/fused_model is missing; run scripts/fixtures/make_memory_optimizer_fixtures.py")
        }
        let model = try LlamaForCausalLM.load(from: url)
        for p in model.parameters { p.requiresGrad = true }
        return model
    }

    func makeOptimizer(_ name: String, _ parameters: [Tensor]) -> FusedBackwardOptimizer {
        let p = { self.fixture.double(name, $0) }
        let clipNorm = p("clip_grad_norm") > 0 ? p("clip_grad_norm") : nil
        let clipValue = p("clip_grad_value") > 0 ? p("clip_grad_value") : nil
        let optimizer: FusedBackwardOptimizer = p("kind") == 0
            ? LOMO(parameters: parameters, learningRate: p("lr"), weightDecay: p("weight_decay"), clipGradNorm: clipNorm,
                   clipGradValue: clipValue)
            : AdaLomo(parameters: parameters, learningRate: p("lr"), weightDecay: p("weight_decay"), clipGradNorm: clipNorm,
                      clipGradValue: clipValue)
        optimizer.attachToBackward()
        return optimizer
    }

    @discardableResult
    func takeStep(_ name: String, _ model: LlamaForCausalLM, _ optimizer: FusedBackwardOptimizer) -> Float {
        let loss = model.loss(ids: fixture.tensor("\(name).input_ids"), labels: fixture.tensor("\(name).labels"))
        if optimizer.clipGradNorm != nil {
            XCTAssertTrue(optimizer.gatherGradientNorms { loss.backward(retainGraph: true) })
        }
        loss.backward()
        optimizer.step()
        return loss.item
    }

    func check(_ name: String) throws {
        let model = try Self.loadModel()
        let optimizer = makeOptimizer(name, model.parameters)
        let expectedLosses = fixture.tensor("\(name).losses").floats()
        for step in 0..<Self.steps {
            let loss = takeStep(name, model, optimizer)
            XCTAssertEqual(Double(loss), Double(expectedLosses[step]), accuracy: 1e-5 * Double(abs(expectedLosses[step])),
                           "\(name) loss at step \(step + 1)")
        }
        var difference = Difference()
        for (key, p) in model.namedParameters { difference.compare(p, fixture.tensor("\(name).param.\(key)")) }
        print("\(name): losses \(expectedLosses), parameters after 3 steps: \(difference)")
        XCTAssertLessThan(difference.maxRelative, Self.tolerance, "\(name): \(difference)")
    }
}
