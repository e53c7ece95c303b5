import CollieEngine
import CollieTestSupport
import CollieTraining
import Foundation
import XCTest

/// What the trainer does with what it cannot control: a monitor that cannot write, config numbers too large to
/// count with, and a resume whose seed or data changed.
final class TrainerRobustnessTests: XCTestCase {
    /// A monitor on a full disk: every write fails.
    final class FailingMonitor: TrainingMonitor {
        struct DiskFull: Error {}
        private(set) var calls = 0
        func record(_ event: TrainingEvent) throws { calls += 1; throw DiskFull() }
        func close() throws { throw DiskFull() }
    }

    private func makeTrainer(output: URL, overrides: [String] = [], monitors: [TrainingMonitor] = []) throws -> Trainer {
        let config = try Fixtures.config("adamw", output: output, overrides: overrides)
        let setup = try TrainingSetup(config: config)
        return try Trainer(config: config, model: setup.model, trainDataset: setup.trainDataset,
                           evaluationDataset: setup.evaluationDataset, padTokenID: setup.padTokenID, monitors: monitors)
    }

    func testAMonitorThatCannotWriteDoesNotStopTraining() throws {
        let failing = FailingMonitor(), recorder = RecordingMonitor()
        let trainer = try makeTrainer(output: try temporaryFolder(for: self), monitors: [failing, recorder])
        var lines: [String] = []
        trainer.logHandler = { lines.append($0) }
        XCTAssertNoThrow(try trainer.train())
        XCTAssertEqual(recorder.steps.count, trainer.state.totalSteps, "the other monitors got every step")
        XCTAssertEqual(failing.calls, recorder.events.count, "the failing monitor is still called")
        XCTAssertEqual(lines.filter { $0.hasPrefix("warning: a monitor could not write") }.count, 1, "\(lines)")
        trainer.closeMonitors()
        XCTAssertEqual(lines.last.map { $0.hasPrefix("warning: a monitor could not be closed") }, true)
    }

    func testHugeConfigNumbersAreClearErrorsOrWork() throws {
        let output = try temporaryFolder(for: self)
        let huge = String(Int.max)
        XCTAssertThrowsError(try makeTrainer(output: output, overrides: ["train_epochs=\(huge)"])) { error in
            XCTAssertTrue("\(error)".contains("train_epochs: \(huge) epochs"), "\(error)")
        }
        // One micro-batch holds every example, one update every epoch: the run is well defined.
        for key in ["train_micro_batch_size", "gradient_accumulation_steps", "eval_batch_size", "eval_per_n_steps",
                    "lr_scheduler.warmup_steps", "callbacks.checkpoint.every_n_batches", "max_length", "seed",
                    "eval_per_n_epochs"] {
            var overrides = ["\(key)=\(huge)", "train_epochs=1"]
            if key.hasPrefix("callbacks") { overrides.append("callbacks.checkpoint.keep_last=\(huge)") }
            let trainer = try makeTrainer(output: output, overrides: overrides)
            XCTAssertNoThrow(try trainer.train(), key)
            XCTAssertGreaterThan(trainer.state.globalStep, 0, key)
        }
        var schedule = LearningRateSchedule(kind: .linear, baseLearningRate: 1, totalSteps: Int.max, warmup: .ratio(1))
        XCTAssertEqual(schedule.warmupSteps, Int.max)
        XCTAssertEqual(schedule.advance(), 1 / Double(Int.max), "the first step of an Int.max-step warmup")
        XCTAssertEqual(BatchSampler(count: 5, batchSize: Int.max).batchesPerEpoch, 1)
    }

    func testResumeRefusesAChangedSeedOrChangedDataOfTheSameSize() throws {
        let output = try temporaryFolder(for: self)
        let first = try makeTrainer(output: output)
        let checkpoint = try first.saveCheckpoint()

        let reseeded = try makeTrainer(output: output, overrides: ["seed=7"])
        XCTAssertThrowsError(try reseeded.resume(from: checkpoint)) { error in
            XCTAssertTrue("\(error)".contains("the checkpoint was written with seed 0, this run has seed 7"), "\(error)")
        }

        // The same number of records, one token changed.
        let original = try String(contentsOf: Fixtures.folder.appendingPathComponent("train.jsonl"), encoding: .utf8)
        XCTAssertTrue(original.hasPrefix("{\"tokens\": [18, "))
        let changed = "{\"tokens\": [19, " + original.dropFirst("{\"tokens\": [18, ".count)
        let data = output.appendingPathComponent("changed.jsonl")
        try changed.write(to: data, atomically: true, encoding: .utf8)
        let otherData = try makeTrainer(output: output, overrides: ["train_data=\(data.path)"])
        XCTAssertEqual(otherData.state.trainingExamples, first.state.trainingExamples)
        XCTAssertThrowsError(try otherData.resume(from: checkpoint)) { error in
            XCTAssertTrue("\(error)".contains("the training data differs from the checkpoint's"), "\(error)")
        }
        XCTAssertNoThrow(try makeTrainer(output: output).resume(from: checkpoint), "the same setup resumes")
    }
}
