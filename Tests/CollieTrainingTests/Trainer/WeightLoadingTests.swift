import CollieEngine
import CollieIO
import CollieTraining
import Foundation
import CollieTestSupport
import XCTest

/// `Trainer.loadWeights(from:)` (resume, load-best-model) restores weights in place: tensor by tensor into the
/// parameters where they live, from single or sharded safetensors, with mismatches named by file and key.
final class WeightLoadingTests: XCTestCase {
    private func makeTrainer(_ overrides: [String] = []) throws -> Trainer {
        let config = try Fixtures.config("adamw", output: try temporaryFolder(for: self), overrides: overrides)
        let setup = try TrainingSetup(config: config)
        return try Trainer(config: config, model: setup.model, trainDataset: setup.trainDataset,
                           evaluationDataset: setup.evaluationDataset, padTokenID: setup.padTokenID)
    }

    func testLoadWeightsRestoresTheSavedValuesInsideTheFlatBuffer() throws {
        for dtype in ["float32", "bfloat16"] {
            let trainer = try makeTrainer(["dtype=\(dtype)"])
            let folder = try temporaryFolder(for: self).appendingPathComponent("saved")
            try trainer.saveModel(to: folder)
            let saved = trainer.model.parameters.map { $0.floats() }
            for p in trainer.model.parameters { p.assignValues(from: .zeros(p.shape)) }
            try trainer.loadWeights(from: folder)
            XCTAssertEqual(trainer.model.parameters.map { $0.floats() }, saved, dtype)
            let buffer = trainer.parameterBuffer.values.storage
            XCTAssertTrue(trainer.model.parameters.allSatisfy { $0.storage === buffer }, "\(dtype): still in the flat buffer")
        }
    }

    func testShardedWeightsOfAnotherShapeNameTheFileAndTheKey() throws {
        let trainer = try makeTrainer()
        var tensors = trainer.model.namedParameters.map { ($0.key, $0.tensor.detach().contiguousCopy()) }
        let key = tensors[tensors.count - 1].0
        tensors[tensors.count - 1].1 = .zeros([2, 3])
        let folder = try temporaryFolder(for: self)
        try SafeTensorsWriter.writeSharded(tensors, to: folder, maxShardBytes: 4096)
        let index = try JSONSerialization.jsonObject(
            with: Data(contentsOf: folder.appendingPathComponent("model.safetensors.index.json"))) as? [String: Any]
        let file = try XCTUnwrap((index?["weight_map"] as? [String: String])?[key])
        XCTAssertNotEqual(file, "model.safetensors", "the weights are sharded")
        XCTAssertThrowsError(try trainer.loadWeights(from: folder)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains(folder.appendingPathComponent(file).path), message)
            XCTAssertTrue(message.contains("'\(key)' has shape [2, 3]"), message)
        }
    }

    func testMissingWeightsAreListed() throws {
        let trainer = try makeTrainer()
        let named = trainer.model.namedParameters
        let folder = try temporaryFolder(for: self)
        try SafeTensorsWriter.write(named.dropFirst().map { ($0.key, $0.tensor.detach().contiguousCopy()) },
                                    to: folder.appendingPathComponent("model.safetensors"))
        XCTAssertThrowsError(try trainer.loadWeights(from: folder)) { error in
            XCTAssertTrue("\(error)".contains("missing: \(named[0].key)"), "\(error)")
        }
    }
}
