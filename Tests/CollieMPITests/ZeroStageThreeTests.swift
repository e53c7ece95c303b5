import CollieEngine
import CollieModels
@testable import CollieTraining
import CollieTestSupport
import XCTest

/// ZeRO stage 3 in one process: the model's parameters live only in the shard (here: all of them) and are
/// gathered per unit around its forward and backward; training equals plain training, and between steps the
/// parameters are not bound.
final class ZeroStageThreeTests: XCTestCase {
    static let model = TestPaths.fixtures(of: "CollieTrainingTests").appendingPathComponent("model")

    private func train(stage: Int, checkpointing: Bool) throws -> (losses: [Float], parameters: [Float]) {
        let model = try LlamaForCausalLM.load(from: Self.model)
        model.activationCheckpointing = checkpointing
        let buffer = ParameterBuffer(model.parameters)
        let units = try XCTUnwrap(model.parameterUnits)
        XCTAssertEqual(units.count, model.configuration.hiddenLayers + 2)
        let group = DataParallelGroup(communicator: SingleProcessCommunicator(), stage: stage, buffer: buffer,
                                      units: stage == 3 ? units : nil)
        if stage == 3 { model.parameterUnitHooks = group }
        let optimizer = AdamW(parameters: group.optimizerParameters, learningRate: 1e-2, epsilon: 1e-6)
        var losses: [Float] = []
        for global in InBackwardDataParallelRankTests.batches() {
            let predicted = NextTokenLoss.predictedCount(global.nextTokenTargets(for: model))
            group.beginBackward(last: true)
            let loss = global.summedNegativeLogLikelihood(of: model, targets: global.nextTokenTargets(for: model)) / Double(predicted)
            loss.backward()
            group.endBackward()
            losses.append(loss.item)
            _ = group.clipGradients(maxNorm: 1)
            optimizer.step()
            group.finishStep()
            group.zeroGradients()
            if stage == 3 {
                XCTAssertEqual(model.parameters[0].storage.byteCount, 0, "parameters are released between steps")
            }
        }
        group.gatherAll()
        return (losses, model.parameters.flatMap { $0.floats() })
    }

    func testStageThreeTrainsAsPlainTraining() throws {
        for checkpointing in [false, true] {
            let plain = try train(stage: 0, checkpointing: checkpointing)
            let sharded = try train(stage: 3, checkpointing: checkpointing)
            XCTAssertEqual(sharded.losses, plain.losses, "checkpointing \(checkpointing)")
            XCTAssertEqual(sharded.parameters, plain.parameters, "checkpointing \(checkpointing)")
            XCTAssertNotEqual(plain.losses.first, plain.losses.last)
        }
    }

    func testInBackwardOptimizersAtStageThreeKeepTheirUpdatesInTheShard() throws {
        for kind in InBackwardDataParallelRankTests.Kind.allCases {
            let batches = InBackwardDataParallelRankTests.batches()
            let reference = try LlamaForCausalLM.load(from: Self.model)
            let expected = InBackwardDataParallelRankTests.train(reference, kind: kind, group: SingleProcessCommunicator(),
                                                                 batches: batches)
            let model = try LlamaForCausalLM.load(from: Self.model)
            let losses = InBackwardDataParallelRankTests.train(model, kind: kind, group: SingleProcessCommunicator(),
                                                               stage: 3, batches: batches)
            XCTAssertEqual(losses, expected, "\(kind)")
            XCTAssertEqual(model.parameters.flatMap { $0.floats() }, reference.parameters.flatMap { $0.floats() }, "\(kind)")
        }
    }
}
