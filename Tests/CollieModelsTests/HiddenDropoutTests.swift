import CollieIO
import CollieTestSupport
import Foundation
import XCTest
@testable import CollieEngine
@testable import CollieModels

/// CoLLiE's `dropout` (`CausalLanguageModel.setHiddenDropout`): in training, dropout on the attention's output before
/// o_proj and on the MLP's output before the residual add. Against transformers' LlamaForCausalLM with the same
/// masks applied by hooks at those two points (scripts/fixtures/make_dropout_fixtures.py, which recomputes Collie's
/// masks from the seed with the same integer hash), on the llama_bias fixture (biases on o_proj and down_proj, so the
/// MLP's dropped output includes its bias). Tolerances as `HuggingFaceParityTests`: logits and loss 1e-5, gradients
/// 1e-4, relative to the largest expected magnitude.
final class HiddenDropoutTests: XCTestCase {
    private static func fixture() throws -> (model: LlamaForCausalLM, expected: SafeTensorsFile, ids: Tensor, labels: Tensor) {
        let folder = HuggingFaceParityTests.folder("llama_bias")
        let expected = try SafeTensorsFile(url: folder.appendingPathComponent("dropout_expected.safetensors"))
        let batch = try HuggingFaceParityTests.expected("llama_bias")
        return (try LlamaForCausalLM.load(from: folder), expected, try batch.tensor("input_ids").contiguousCopy(),
                try batch.tensor("labels").contiguousCopy())
    }

    /// The model with the fixture's dropout, switched on.
    private static func training(_ model: LlamaForCausalLM, _ expected: SafeTensorsFile) throws -> HiddenDropout {
        let probability = try expected.tensor("dropout.probability").doubles()[0]
        let halves = try expected.tensor("dropout.seed").ints()
        let dropout = try XCTUnwrap(model.setHiddenDropout(probability))
        dropout.seed = UInt64(halves[0]) | UInt64(halves[1]) << 32
        dropout.isTraining = true
        return dropout
    }

    func testTrainingLogitsLossAndGradientsMatchTransformersWithTheSameMasks() throws {
        let (model, expected, ids, labels) = try Self.fixture()
        let plainLoss = withNoGrad { model.loss(ids: ids, labels: labels) }.item
        try Self.training(model, expected)
        var report = ParityReport("llama_bias with dropout 0.25")
        let logits = withNoGrad { model(ids) }
        report.compare(logits.doubles(), shape: logits.shape, try expected.tensor("logits").doubles(),
                       shape: try expected.tensor("logits").shape, relative: 1e-5, "logits")
        let loss = model.loss(ids: ids, labels: labels)
        report.compare([Double(loss.item)], shape: [], try expected.tensor("loss").doubles(), shape: [], relative: 1e-5, "loss")
        XCTAssertGreaterThan(abs(Double(loss.item - plainLoss)), 1e-2, "dropout changed nothing")
        loss.backward()
        for (key, parameter) in model.namedParameters {
            guard let gradient = parameter.grad else { XCTFail("\(key) has no gradient"); continue }
            let reference = try expected.tensor("grad." + key)
            report.compare(gradient.doubles(), shape: gradient.shape, reference.doubles(), shape: reference.shape,
                           relative: 1e-4, "grad " + key)
        }
        report.finish()
    }

    /// Outside training (evaluation, generation) the model computes what it does without dropout, bit for bit.
    func testDropoutIsOffOutsideTraining() throws {
        let (model, expected, ids, _) = try Self.fixture()
        let plain = withNoGrad { model(ids) }.floats()
        let dropout = try Self.training(model, expected)
        XCTAssertNotEqual(withNoGrad { model(ids) }.floats(), plain)
        dropout.isTraining = false
        XCTAssertEqual(withNoGrad { model(ids) }.floats(), plain)
        model.setHiddenDropout(0)
        XCTAssertNil(model.hiddenDropout)
        XCTAssertEqual(withNoGrad { model(ids) }.floats(), plain)
    }

    /// Every family drops out at its own two output projections, one pair per block: training changes the loss,
    /// backward reaches every output projection with finite, nonzero gradients, and outside training the logits are
    /// the plain model's, bit for bit. (Which two points, exactly, the LLaMA parity test above pins down.)
    func testEveryFamilyDropsOutAtItsBlocksOutputProjections() throws {
        for variant in ["internlm2", "chatglm2", "chatglm6b", "moss", "llama_mha"] {
            let folder = HuggingFaceParityTests.folder(variant)
            let expected = try SafeTensorsFile(url: folder.appendingPathComponent("expected.safetensors"))
            let ids = try expected.tensor("input_ids").contiguousCopy(), labels = try expected.tensor("labels").contiguousCopy()
            let model = try PretrainedModel.model(.at(folder))
            let plain = withNoGrad { model.loss(ids: ids, labels: labels) }.item
            let plainLogits = withNoGrad { model(ids) }.floats()
            let dropout = try XCTUnwrap(model.setHiddenDropout(0.3), variant)
            XCTAssertEqual(model.blockOutputProjections.count, model.configuration.hiddenLayers, variant)
            dropout.isTraining = true
            let loss = model.loss(ids: ids, labels: labels)
            XCTAssertGreaterThan(abs(Double(loss.item - plain)), 1e-3, "\(variant): dropout changed nothing")
            loss.backward()
            for (attention, mlp) in model.blockOutputProjections {
                for layer in [attention, mlp] {
                    let gradient = try XCTUnwrap(layer.denseWeight?.grad, variant).floats()
                    XCTAssertTrue(gradient.allSatisfy(\.isFinite) && gradient.contains { $0 != 0 }, variant)
                }
            }
            dropout.isTraining = false
            XCTAssertEqual(withNoGrad { model(ids) }.floats(), plainLogits, variant)
        }
    }

    /// A block that activation checkpointing recomputes in backward draws the same masks: the same loss and
    /// gradients, bit for bit.
    func testActivationCheckpointingRecomputesTheSameMasks() throws {
        func run(checkpointing: Bool) throws -> (loss: Float, gradients: [[Float]]) {
            let (model, expected, ids, labels) = try Self.fixture()
            try Self.training(model, expected)
            model.activationCheckpointing = checkpointing
            let loss = model.loss(ids: ids, labels: labels)
            loss.backward()
            return (loss.item, model.namedParameters.map { $0.tensor.grad!.floats() })
        }
        let (plain, checkpointed) = (try run(checkpointing: false), try run(checkpointing: true))
        XCTAssertEqual(plain.loss, checkpointed.loss)
        XCTAssertEqual(plain.gradients, checkpointed.gradients)
    }
}
