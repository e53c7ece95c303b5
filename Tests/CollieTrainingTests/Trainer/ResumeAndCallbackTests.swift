import CollieEngine
import CollieIO
import CollieModels
import CollieTestSupport
import CollieTraining
import Foundation
import XCTest

/// Checkpoints resume exactly (in process: a callback throws to simulate a crash), and the checkpoint,
/// load-best-model and early-stop callbacks do what their settings say.
final class ResumeAndCallbackTests: XCTestCase {
    /// Records the epochs whose end the trainer announced.
    final class EpochEndRecorder: TrainerCallback {
        let name = "epoch_ends"
        private(set) var epochs: [Int] = []
        func onEpochEnd(_ trainer: Trainer, epoch: Int) throws { epochs.append(epoch) }
    }

    private let evaluateEveryUpdate = ["eval_per_n_steps=1", "eval_on_start=false"]

    /// Runs the adamw fixture with `overrides`; with `crashAfter`, a callback throws after that update.
    private func run(output: URL, overrides: [String], crashAfter: Int? = nil, resumeFrom: URL? = nil,
                     extra: [TrainerCallback] = []) throws -> (trainer: Trainer, steps: [TrainingStep]) {
        let config = try Fixtures.config("adamw", output: output, overrides: overrides)
        let setup = try TrainingSetup(config: config)
        var callbacks = try Trainer.makeCallbacks(config.callbacks) + extra
        if let crashAfter { callbacks.append(CrashCallback(after: crashAfter)) }
        let recorder = RecordingMonitor()
        let trainer = try Trainer(config: config, model: setup.model, trainDataset: setup.trainDataset,
                                  evaluationDataset: setup.evaluationDataset, padTokenID: setup.padTokenID,
                                  monitors: [recorder], callbacks: callbacks)
        if let resumeFrom { try trainer.resume(from: resumeFrom) }
        do {
            try trainer.train()
        } catch is CrashCallback.Crash {
            XCTAssertNotNil(crashAfter, "only the crash callback throws")
        }
        return (trainer, recorder.steps)
    }

    private func assertSameRun(_ resumed: (trainer: Trainer, steps: [TrainingStep]),
                               as full: (trainer: Trainer, steps: [TrainingStep]), from step: Int,
                               file: StaticString = #filePath, line: UInt = #line) {
        let tail = full.steps.filter { $0.step > step }
        XCTAssertEqual(resumed.steps.map(\.step), tail.map(\.step), file: file, line: line)
        XCTAssertEqual(resumed.steps.map(\.loss), tail.map(\.loss), "losses after the resume", file: file, line: line)
        XCTAssertEqual(resumed.steps.map(\.gradientNorm), tail.map(\.gradientNorm), file: file, line: line)
        XCTAssertEqual(resumed.steps.map(\.learningRate), tail.map(\.learningRate), file: file, line: line)
        XCTAssertEqual(resumed.trainer.state.evaluations, full.trainer.state.evaluations, file: file, line: line)
        for (a, b) in zip(resumed.trainer.model.parameters, full.trainer.model.parameters) {
            XCTAssertEqual(a.floats(), b.floats(), "parameters after the run", file: file, line: line)
        }
    }

    func testResumedRunReproducesTheUninterruptedRunExactly() throws {
        let overrides = ["callbacks={checkpoint: {every_n_batches: 2, keep_last: 2}}", "shuffle=true"]
        let full = try run(output: try temporaryFolder(for: self), overrides: overrides)
        XCTAssertEqual(full.steps.count, 6)

        let output = try temporaryFolder(for: self)
        let crashed = try run(output: output, overrides: overrides, crashAfter: 5)
        XCTAssertEqual(crashed.steps.count, 5)
        XCTAssertEqual(crashed.steps.map(\.loss), Array(full.steps.prefix(5).map(\.loss)))
        XCTAssertEqual(TrainingCheckpoint.checkpoints(in: output).map(\.step), [2, 4], "keep_last 2")
        let latest = try XCTUnwrap(TrainingCheckpoint.latest(in: output))
        let resumed = try run(output: output, overrides: overrides, resumeFrom: latest)
        assertSameRun(resumed, as: full, from: 4)
    }

    /// CoLLiE's `dropout` (masks a function of the seed, the update, the micro-batch and the data-parallel rank): a
    /// run that crashes resumes bit-identical to the uninterrupted one, activation checkpointing recomputes the same
    /// masks, evaluation runs without dropout, and the run differs from one without it.
    func testRunWithDropoutResumesExactlyAndEvaluatesWithoutIt() throws {
        let overrides = ["dropout=0.1", "callbacks={checkpoint: {every_n_batches: 2}}"]
        let full = try run(output: try temporaryFolder(for: self), overrides: overrides)
        XCTAssertEqual(full.steps.count, 6)
        let output = try temporaryFolder(for: self)
        _ = try run(output: output, overrides: overrides, crashAfter: 3)
        let resumed = try run(output: output, overrides: overrides, resumeFrom: output.appendingPathComponent("checkpoint-2"))
        assertSameRun(resumed, as: full, from: 2)
        let checkpointed = try run(output: try temporaryFolder(for: self), overrides: overrides + ["checkpointing=true"])
        XCTAssertEqual(checkpointed.steps.map(\.loss), full.steps.map(\.loss))
        for (a, b) in zip(checkpointed.trainer.model.parameters, full.trainer.model.parameters) {
            XCTAssertEqual(a.floats(), b.floats(), "parameters with activation checkpointing")
        }
        let plain = try run(output: try temporaryFolder(for: self), overrides: ["callbacks={checkpoint: {every_n_batches: 2}}"])
        XCTAssertNotEqual(plain.steps.map(\.loss), full.steps.map(\.loss), "dropout changes the run")
        // eval_on_start: the same weights evaluate alike with and without the dropout setting.
        XCTAssertEqual(full.trainer.state.evaluations.first, plain.trainer.state.evaluations.first)
        XCTAssertNotEqual(full.trainer.state.evaluations.last, plain.trainer.state.evaluations.last)
    }

    func testEveryOptimizerResumesExactlyWithItsSavedState() throws {
        // AdaLomo's factored moments, Lion's, Adan's and SophiaG's buffers travel in the checkpoint; LOMO clips
        // by the global norm in two backward passes; SophiaG refreshes its Hessian every 2 updates.
        let optimizers = ["{name: lomo, lr: 0.05, clip_grad_value: 0.5}", "{name: adalomo, lr: 0.01, weight_decay: 0.01}",
                          "{name: lion, lr: 0.0003}", "{name: adan, lr: 0.003}",
                          "{name: sophiag, lr: 0.003, hessian_update_interval: 2}"]
        for optimizer in optimizers {
            let overrides = ["callbacks={checkpoint: {every_n_batches: 2}}", "optimizer=\(optimizer)",
                             "gradient_accumulation_steps=1", "max_grad_norm=1"]
            let full = try run(output: try temporaryFolder(for: self), overrides: overrides)
            XCTAssertGreaterThan(full.steps.count, 6, optimizer)
            XCTAssertLessThan(full.steps.last!.loss, full.steps.first!.loss, "\(optimizer) lowers the loss")
            if optimizer.contains("lomo") {
                XCTAssertNotNil(full.steps.first?.gradientNorm, "\(optimizer): the norm pass reports the norm")
                XCTAssertNil(full.trainer.parameterBuffer.gradients, "\(optimizer): no flat gradient buffer")
            }
            let output = try temporaryFolder(for: self)
            _ = try run(output: output, overrides: overrides, crashAfter: 5)
            let latest = try XCTUnwrap(TrainingCheckpoint.latest(in: output))
            let resumed = try run(output: output, overrides: overrides, resumeFrom: latest)
            assertSameRun(resumed, as: full, from: 4)
        }
    }

    func testBFloat16WeightsTrainWithAdaLomoAndResumeExactly() throws {
        let overrides = ["callbacks={checkpoint: {every_n_batches: 2}}", "optimizer={name: adalomo, lr: 0.01}",
                         "gradient_accumulation_steps=1", "dtype=bfloat16", "checkpointing=true"]
        let full = try run(output: try temporaryFolder(for: self), overrides: overrides)
        XCTAssertTrue(full.trainer.model.parameters.allSatisfy { $0.dtype == .bfloat16 })
        XCTAssertEqual(full.trainer.parameterBuffer.values.storage.byteCount, full.trainer.model.parameterCount * 2)
        XCTAssertLessThan(full.steps.last!.loss, full.steps.first!.loss)
        let output = try temporaryFolder(for: self)
        _ = try run(output: output, overrides: overrides, crashAfter: 5)
        let resumed = try run(output: output, overrides: overrides, resumeFrom: try XCTUnwrap(TrainingCheckpoint.latest(in: output)))
        assertSameRun(resumed, as: full, from: 4)
    }

    /// A checkpoint taken at an epoch's last update resumes before the epoch's end: its evaluation and
    /// callbacks still run.
    func testResumeFromAnEpochsLastUpdateStillEndsThatEpoch() throws {
        let overrides = ["callbacks={checkpoint: {every_n_batches: 3}}", "eval_per_n_epochs=1"]
        let full = try run(output: try temporaryFolder(for: self), overrides: overrides)
        XCTAssertEqual(full.trainer.state.evaluations.map(\.step), [0, 3, 6])
        let output = try temporaryFolder(for: self)
        _ = try run(output: output, overrides: overrides, crashAfter: 4)
        let checkpoint = output.appendingPathComponent("checkpoint-3")
        let ends = EpochEndRecorder()
        let resumed = try run(output: output, overrides: overrides, resumeFrom: checkpoint, extra: [ends])
        assertSameRun(resumed, as: full, from: 3)
        XCTAssertEqual(ends.epochs, [0, 1], "epoch 0's end runs after the resume")
    }

    func testResumeRefusesACheckpointOfADifferentSetup() throws {
        let output = try temporaryFolder(for: self)
        _ = try run(output: output, overrides: ["callbacks={checkpoint: {every_n_batches: 2}}"], crashAfter: 2)
        let checkpoint = output.appendingPathComponent("checkpoint-2")
        let config = try Fixtures.config("adamw", output: output, overrides: ["train_micro_batch_size=1"])
        let trainer = try TrainingSetup(config: config).makeTrainer(evaluators: [])
        XCTAssertThrowsError(try trainer.resume(from: checkpoint)) { error in
            XCTAssertTrue("\(error)".contains("batches per epoch"), "\(error)")
        }
        XCTAssertThrowsError(try trainer.resume(from: output)) { error in
            XCTAssertTrue("\(error)".contains("not a complete training checkpoint"), "\(error)")
        }
    }

    func testCheckpointCallbackKeepsTheLastKAndTheTopKByMetric() throws {
        let output = try temporaryFolder(for: self)
        let (trainer, _) = try run(output: output, overrides: evaluateEveryUpdate + [
            "callbacks={checkpoint: {every_n_batches: 1, keep_last: 2, top_k: 1, monitor: eval_loss, mode: min}}",
        ])
        let best = trainer.state.evaluations.min { $0.metrics["loss"]! < $1.metrics["loss"]! }!.step
        let kept = TrainingCheckpoint.checkpoints(in: output).map(\.step)
        XCTAssertEqual(Set(kept), Set([5, 6, best]), "last two plus the best (step \(best))")
        for step in kept {
            let folder = output.appendingPathComponent("checkpoint-\(step)")
            XCTAssertNoThrow(try LlamaForCausalLM.load(from: folder))
            XCTAssertNoThrow(try OptimizerState(contentsOf: folder))
        }
    }

    func testEarlyStopStopsWhenTheMetricHasNotImprovedForPatienceEvaluations() throws {
        let (trainer, steps) = try run(output: try temporaryFolder(for: self), overrides: evaluateEveryUpdate + [
            "callbacks={early_stop: {monitor: eval_loss, mode: min, patience: 1}}",
        ])
        // The first evaluation that does not improve on the best stops training right after its update.
        var best = Double.infinity
        var expectedStop: Int?
        for evaluation in trainer.state.evaluations {
            let loss = evaluation.metrics["loss"]!
            if loss < best { best = loss } else { expectedStop = evaluation.step; break }
        }
        let stop = try XCTUnwrap(expectedStop, "the fixture's eval loss rises at some update")
        XCTAssertTrue(trainer.state.stoppedEarly)
        XCTAssertEqual(steps.last?.step, stop)
        XCTAssertLessThan(stop, trainer.state.totalSteps)
    }

    func testLoadBestModelLoadsTheBestWeightsAtTheEnd() throws {
        let output = try temporaryFolder(for: self)
        let (trainer, _) = try run(output: output, overrides: evaluateEveryUpdate + [
            "callbacks={load_best_model: {monitor: eval_loss, mode: min}}",
        ])
        let best = trainer.state.evaluations.map { $0.metrics["loss"]! }.min()!
        XCTAssertNotEqual(trainer.state.evaluations.last!.metrics["loss"]!, best, "the fixture's last model is not the best")
        XCTAssertTrue(FileManager.default.fileExists(atPath: output.appendingPathComponent("best/model.safetensors").path))
        XCTAssertEqual(try trainer.evaluate()["loss"]!, best, "the model holds the best weights again")
    }

    func testUnknownMonitoredMetricIsAnError() throws {
        let config = try Fixtures.config("adamw", output: try temporaryFolder(for: self), overrides: [
            "callbacks={early_stop: {monitor: eval_los}}",
        ])
        XCTAssertThrowsError(try TrainingSetup(config: config).makeTrainer(evaluators: [])) { error in
            XCTAssertEqual("\(error)", "callbacks.early_stop.monitor: unknown metric 'eval_los' (did you mean eval_loss?); "
                           + "use one of eval_loss, eval_perplexity, loss")
        }
    }

    func testTheTinyAlpacaExampleConfigHoldsOutItsEvaluationRecords() throws {
        let url = TestPaths.repository.appendingPathComponent("examples/alpaca/tiny.yaml")
        let setup = try TrainingSetup(config: try CollieConfig.load(from: url), source: url.path)
        XCTAssertEqual(setup.evaluationDataset.map { $0.count + $0.skippedCount }, 50, "the last 5% of 999 records")
        XCTAssertEqual(setup.trainDataset.count + setup.trainDataset.skippedCount, 949)
        XCTAssertEqual(setup.model.configuration.vocabularySize, 32000)
        let prompt = try setup.promptIDs(for: "Give three tips for staying healthy.")
        XCTAssertEqual(prompt.first, 1, "BOS")
        XCTAssertEqual(try setup.tokenizer.decode(prompt, skipSpecialTokens: true),
                       AlpacaTemplate.prompt(instruction: "Give three tips for staying healthy.", input: ""))
    }
}
