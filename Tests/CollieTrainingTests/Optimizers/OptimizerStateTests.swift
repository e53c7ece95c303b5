import CollieEngine
import CollieTestSupport
import CollieTraining
import Foundation
import XCTest

/// Saving and restoring optimizer state: what is stored, and the errors for state that does not
/// belong to the optimizer it is loaded into.
final class OptimizerStateTests: XCTestCase {
    func named(_ name: String, _ values: [Float]) -> Tensor {
        let t = Tensor(values, shape: [values.count])
        t.name = name
        t.grad = Tensor(values.map { $0 * 0.5 - 0.25 }, shape: [values.count])
        return t
    }

    func testStateIsKeyedByParameterNamesWithTorchSlotNames() {
        let parameters = [named("model.norm.weight", [1, 2]), named("lm_head.weight", [3])]
        let adam = AdamW(parameters: parameters, learningRate: 0.1)
        adam.step()
        let state = adam.state()
        XCTAssertEqual(state.metadata.kind, .adamW)
        XCTAssertEqual(state.metadata.parameterKeys, ["model.norm.weight", "lm_head.weight"])
        XCTAssertEqual(Set(state.tensors.keys), ["model.norm.weight.exp_avg", "model.norm.weight.exp_avg_sq",
                                                 "model.norm.weight.step", "lm_head.weight.exp_avg",
                                                 "lm_head.weight.exp_avg_sq", "lm_head.weight.step"])
        XCTAssertEqual(state.metadata.hyperparameters, ["beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01])

        let sgd = SGD(parameters: parameters, learningRate: 0.1, momentum: 0.9)
        sgd.step()
        XCTAssertEqual(Set(sgd.state().tensors.keys), ["model.norm.weight.momentum_buffer", "lm_head.weight.momentum_buffer"])
    }

    func testUnnamedOrDuplicateParametersAreKeyedByIndex() {
        XCTAssertEqual(OptimizerState.parameterKeys(for: [Tensor([1], shape: [1]), Tensor([2], shape: [1])]), ["0", "1"])
        XCTAssertEqual(OptimizerState.parameterKeys(for: [named("w", [1]), named("w", [2])]), ["0", "1"])
    }

    func testSavedFolderHoldsJSONMetadataAndSafetensors() throws {
        let adam = AdamW(parameters: [named("w", [1, 2, 3])], learningRate: 0.125, beta2: 0.95, weightDecay: 0.1)
        adam.step()
        adam.step()
        let folder = try temporaryFolder(for: self)
        try adam.save(to: folder)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("optimizer.json"))) as! [String: Any]
        XCTAssertEqual(json["kind"] as? String, "adamw")
        XCTAssertEqual(json["stepCount"] as? Int, 2)
        XCTAssertEqual(json["learningRate"] as? Double, 0.125)
        let loaded = try OptimizerState(contentsOf: folder)
        XCTAssertEqual(loaded.metadata, adam.state().metadata)
        XCTAssertEqual(loaded.tensors["w.exp_avg"]?.floats(), adam.state().tensors["w.exp_avg"]?.floats())
        XCTAssertEqual(loaded.tensors["w.step"]?.ints(), [2])
    }

    func testLoadingRestoresStepCountAndLearningRate() throws {
        let adam = AdamW(parameters: [named("w", [1, 2])], learningRate: 0.3)
        adam.step()
        let fresh = AdamW(parameters: [named("w", [1, 2])], learningRate: 0.001)
        try fresh.load(adam.state())
        XCTAssertEqual(fresh.stepCount, 1)
        XCTAssertEqual(fresh.parameterStepCounts, [1])
        XCTAssertEqual(fresh.learningRate, 0.3)
    }

    func testLoadingStateOfAnotherOptimizerKindFails() {
        let sgd = SGD(parameters: [named("w", [1])], learningRate: 0.1)
        sgd.step()
        let adam = AdamW(parameters: [named("w", [1])])
        XCTAssertThrowsError(try adam.load(sgd.state())) { error in
            XCTAssertEqual((error as? OptimizerStateError)?.message, "the state is of sgd, not adamw")
        }
    }

    func testLoadingStateWithOtherHyperparametersFailsNamingThem() {
        let a = AdamW(parameters: [named("w", [1])], weightDecay: 0.01)
        a.step()
        let b = AdamW(parameters: [named("w", [1])], weightDecay: 0.1)
        XCTAssertThrowsError(try b.load(a.state())) { error in
            XCTAssertEqual((error as? OptimizerStateError)?.message,
                           "weight_decay is 0.01 in the saved state but 0.1 in this optimizer")
        }
    }

    func testLoadingStateOfOtherParametersFailsNamingTheFirstDifference() {
        let a = SGD(parameters: [named("a", [1]), named("b", [1])], learningRate: 0.1, momentum: 0.5)
        a.step()
        let b = SGD(parameters: [named("a", [1]), named("c", [1])], learningRate: 0.1, momentum: 0.5)
        XCTAssertThrowsError(try b.load(a.state())) { error in
            XCTAssertEqual((error as? OptimizerStateError)?.message,
                           "the saved state is for other parameters: 'b' saved where this optimizer has 'c'")
        }
        let c = SGD(parameters: [named("a", [1, 2]), named("b", [1])], learningRate: 0.1, momentum: 0.5)
        XCTAssertThrowsError(try c.load(a.state())) { error in
            XCTAssertEqual((error as? OptimizerStateError)?.message,
                           "state tensor 'a.momentum_buffer' is float32 [1], expected float32 [2]")
        }
    }

    func testLoadingAFolderWithoutStateFailsNamingTheFile() throws {
        let folder = try temporaryFolder(for: self)
        XCTAssertThrowsError(try AdamW(parameters: []).load(from: folder)) { error in
            XCTAssertTrue("\(error)".contains("optimizer.json"), "\(error)")
        }
    }

    func testLoadedStateIsCopiedNotShared() throws {
        let a = SGD(parameters: [named("w", [1, 2])], learningRate: 0.1, momentum: 0.9)
        a.step()
        let state = a.state()
        let b = SGD(parameters: [named("w", [1, 2])], learningRate: 0.1, momentum: 0.9)
        try b.load(state)
        let before = state.tensors["w.momentum_buffer"]!.floats()
        b.step()
        XCTAssertEqual(state.tensors["w.momentum_buffer"]!.floats(), before, "b's steps must not write into a's buffers")
    }
}
