import CollieEngine
import CollieTestSupport
import Foundation
import XCTest

/// A run whose loss goes NaN (`optimizer.lr: 1e10`) skips those updates, stops with a clear error after
/// `Trainer.nonFiniteStepLimit` of them in a row, saves no model, and leaves checkpoints that resume.
final class NonFiniteTrainingCommandTests: XCTestCase {
    private func makeRun(_ folder: URL, optimizer: String = "adamw") throws -> URL {
        try writeFixtureRun(in: folder, records: 16, lengths: 6...8, settings: """
            train_epochs: 3
            train_micro_batch_size: 2
            optimizer: {name: \(optimizer), lr: 1.0e10}
            output_dir: out
            monitor_outputs: [csv]
            """)
    }

    func testDivergingRunStopsWithAClearErrorAndSavesNoModel() throws {
        for optimizer in ["adamw", "adalomo"] {
            let folder = try temporaryFolder(for: self)
            let config = try makeRun(folder, optimizer: optimizer)
            let result = try CollieExecutable.run(["train", config.path], in: folder)
            XCTAssertNotEqual(result.status, 0, "\(optimizer): \(result.output)")
            XCTAssertTrue(result.errors.contains("training diverged: the loss or the gradients were not finite for 5 updates in a row"),
                          "\(optimizer): \(result.errors)")
            XCTAssertTrue(result.output.contains("update skipped (1 in a row)"), result.output)
            XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("out/final").path),
                           "\(optimizer): no model is saved")
        }
    }

    func testCheckpointsOfSkippedUpdatesAreWrittenAndResume() throws {
        let folder = try temporaryFolder(for: self)
        let config = try makeRun(folder)
        let checkpoints = ["--set", "callbacks={checkpoint: {every_n_batches: 1, keep_last: 2}}"]
        let first = try CollieExecutable.run(["train", config.path] + checkpoints, in: folder)
        XCTAssertTrue(first.errors.contains("training diverged"), first.errors)
        XCTAssertFalse(first.errors.contains("EncodingError"), first.errors)
        let state = try String(contentsOf: folder.appendingPathComponent("out/checkpoint-5/trainer_state.json"), encoding: .utf8)
        XCTAssertTrue(state.contains("\"last_loss\" : \"NaN\""), state)

        let resumed = try CollieExecutable.run(["train", config.path, "--resume", "latest"] + checkpoints, in: folder,
                                               log: "resumed")
        XCTAssertTrue(resumed.output.contains("resuming from"), resumed.output + resumed.errors)
        XCTAssertTrue(resumed.errors.contains("training diverged"), resumed.errors)
    }
}
