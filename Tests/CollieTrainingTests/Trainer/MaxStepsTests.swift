import CollieTestSupport
import CollieTraining
import Foundation
import XCTest

/// `max_steps` as transformers' Trainer reads it: a positive value is the run's length in updates, the
/// learning-rate schedule's length too, whatever `train_epochs` says; 0 or less leaves `train_epochs` in charge.
final class MaxStepsTests: XCTestCase {
    /// Trains the adamw fixture (3 updates per epoch, 2 epochs) with `overrides`; returns the steps and epoch ends.
    private func run(_ overrides: [String]) throws -> (trainer: Trainer, steps: [TrainingStep], epochEnds: [Int]) {
        let config = try Fixtures.config("adamw", output: try temporaryFolder(for: self),
                                         overrides: ["eval_on_start=false", "eval_per_n_epochs=1"] + overrides)
        let setup = try TrainingSetup(config: config)
        let ends = ResumeAndCallbackTests.EpochEndRecorder()
        let recorder = RecordingMonitor()
        let trainer = try Trainer(config: config, model: setup.model, trainDataset: setup.trainDataset,
                                  evaluationDataset: setup.evaluationDataset, padTokenID: setup.padTokenID,
                                  monitors: [recorder], callbacks: [ends])
        try trainer.train()
        return (trainer, recorder.steps, ends.epochs)
    }

    func testMaxStepsStopsInsideAnEpochAndIsTheScheduleLength() throws {
        let run = try run(["max_steps=4", "train_epochs=100"])
        XCTAssertEqual(run.steps.map(\.step), [1, 2, 3, 4])
        XCTAssertEqual(run.steps.map(\.epoch), [0, 0, 0, 1])
        XCTAssertEqual(run.trainer.state.totalSteps, 4)
        XCTAssertEqual(run.steps.map(\.totalSteps), [4, 4, 4, 4])
        // Cosine over 4 updates with 2 warm-up steps: the rates of updates 0…3 (transformers' formula).
        let expected = [0.0, 0.5, 1.0, 0.5].map { 0.01 * $0 }
        for (step, rate) in zip(run.steps, expected) { XCTAssertEqual(step.learningRate, rate, accuracy: 1e-12) }
        XCTAssertEqual(run.epochEnds, [0], "the cut-short epoch 1 has no end hooks")
        XCTAssertEqual(run.trainer.state.evaluations.map(\.step), [3], "eval_per_n_epochs ran after epoch 0 only")
    }

    func testMaxStepsBeyondTrainEpochsLoopsOverTheDataAgain() throws {
        let run = try run(["max_steps=7", "train_epochs=1"])
        XCTAssertEqual(run.steps.map(\.step), Array(1...7))
        XCTAssertEqual(run.steps.map(\.epoch), [0, 0, 0, 1, 1, 1, 2])
        XCTAssertEqual(run.epochEnds, [0, 1])
    }

    func testZeroOrNegativeMaxStepsLeavesTrainEpochsInCharge() throws {
        for value in ["0", "-1"] {
            let run = try run(["max_steps=\(value)"])
            XCTAssertEqual(run.steps.map(\.step), Array(1...6), "max_steps=\(value)")
            XCTAssertEqual(run.epochEnds, [0, 1])
        }
    }
}
