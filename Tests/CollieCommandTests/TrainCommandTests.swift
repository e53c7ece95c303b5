import CollieEngine
import CollieIO
import CollieModels
import CollieTestSupport
import CollieTraining
import Foundation
import XCTest

/// `collie train` as a user runs it: killed with SIGKILL and resumed, killed while writing a checkpoint, and
/// given bad configs (clear error, non-zero exit, nothing written).
final class TrainCommandTests: XCTestCase {
    /// A run of 96 records of random ids on the fixture model: 3 epochs × 24 updates (micro-batch 2 ×
    /// accumulation 2), shuffled per epoch, a checkpoint every 5 updates.
    private func makeRun(_ folder: URL, extra: String = "") throws -> URL {
        try writeFixtureRun(in: folder, records: 96, lengths: 6...20, seed: 11, settings: """
            shuffle: true
            seed: 3
            train_epochs: 3
            train_micro_batch_size: 2
            gradient_accumulation_steps: 2
            optimizer: {name: adamw, lr: 1.0e-2, weight_decay: 0.01}
            lr_scheduler: {type: cosine, warmup_steps: 3}
            max_grad_norm: 1.0
            output_dir: out
            monitor_outputs: [csv]
            callbacks: {checkpoint: {every_n_batches: 5, keep_last: 2}}
            \(extra)
            """)
    }

    /// The step log's rows without the timing columns (step, epoch, loss, learning rate, gradient norm, tokens).
    private func loggedSteps(_ output: URL) throws -> [String] {
        let text = try String(contentsOf: output.appendingPathComponent("monitors.csv"), encoding: .utf8)
        return text.split(separator: "\n").dropFirst().map { $0.split(separator: ",").prefix(6).joined(separator: ",") }
    }

    private func rowCount(_ output: URL) -> Int {
        guard let text = try? String(contentsOf: output.appendingPathComponent("monitors.csv"), encoding: .utf8) else { return 0 }
        return text.split(separator: "\n").count - 1
    }

    func testRunKilledMidEpochResumesWithTheUninterruptedLosses() throws {
        let reference = try temporaryFolder(for: self)
        let config = try makeRun(reference)
        let full = try CollieExecutable.run(["train", config.path], in: reference)
        XCTAssertEqual(full.status, 0, full.errors)
        let expected = try loggedSteps(reference.appendingPathComponent("out"))
        XCTAssertEqual(expected.count, 72)

        let folder = try temporaryFolder(for: self)
        let killedConfig = try makeRun(folder)
        let output = folder.appendingPathComponent("out")
        let process = try CollieExecutable.start(["train", killedConfig.path], in: folder, log: "killed")
        let reached = process.wait { rowCount(output) >= 33 }
        process.kill()
        XCTAssertTrue(reached, "the run ended before step 33")
        let killedAt = rowCount(output)
        XCTAssertLessThan(killedAt, 48, "killed in the second epoch (updates 25–48)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: output.appendingPathComponent("final").path))
        let latest = try XCTUnwrap(TrainingCheckpoint.checkpoints(in: output).last)
        XCTAssertTrue(latest.step >= 30 && latest.step % 5 == 0, "latest complete checkpoint \(latest.step)")

        let resumed = try CollieExecutable.run(["train", killedConfig.path, "--resume", "latest"], in: folder, log: "resumed")
        XCTAssertEqual(resumed.status, 0, resumed.errors)
        XCTAssertTrue(resumed.output.contains("resuming from"), resumed.output)
        XCTAssertEqual(try loggedSteps(output), expected, "losses, learning rates and gradient norms of every update")
        let weights = { (run: URL) in FileManager.default.contents(atPath: run.appendingPathComponent("out/final/model.safetensors").path) }
        XCTAssertNotNil(weights(folder))
        XCTAssertEqual(weights(folder), weights(reference), "the final models are byte for byte equal")
    }

    func testMixedPrecisionBF16TrainsCloseToFloat32AndSaysSo() throws {
        func losses(_ extra: String) throws -> (losses: [Double], output: String) {
            let folder = try temporaryFolder(for: self)
            let run = try CollieExecutable.run(["train", try makeRun(folder, extra: "max_steps: 6\n" + extra).path], in: folder)
            XCTAssertEqual(run.status, 0, run.errors)
            let rows = try loggedSteps(folder.appendingPathComponent("out"))
            return (rows.map { Double($0.split(separator: ",")[2])! }, run.output)
        }
        let float32 = try losses("")
        let bf16 = try losses("mixed_precision: bf16")
        XCTAssertTrue(bf16.output.contains("mixed precision bf16: matrix products with bfloat16 operands"), bf16.output)
        XCTAssertFalse(float32.output.contains("mixed precision"), float32.output)
        XCTAssertEqual(bf16.losses.count, 6)
        XCTAssertNotEqual(bf16.losses, float32.losses, "bf16 operands change the losses")
        for (a, b) in zip(bf16.losses, float32.losses) { XCTAssertEqual(a, b, accuracy: 2e-2 * abs(b)) }
    }

    /// `dtype: bfloat16` with AdaLomo (the 7B recipe, examples/lomo_7b, on the fixture model): the final model is
    /// written in bf16, as `save_pretrained` writes a bf16 model — half the bytes of float32, every value kept.
    func testBFloat16WeightsAreSavedInBFloat16() throws {
        let folder = try temporaryFolder(for: self)
        let config = try makeRun(folder, extra: "max_steps: 2\ndtype: bfloat16\nmixed_precision: bf16")
        let run = try CollieExecutable.run(["train", config.path, "--set", "optimizer.name=adalomo", "--set", "optimizer.lr=1e-3",
                                            "--set", "optimizer.weight_decay=0", "--set", "gradient_accumulation_steps=1"], in: folder)
        XCTAssertEqual(run.status, 0, run.errors)
        let final = folder.appendingPathComponent("out/final")
        let configuration = try LlamaConfiguration.load(from: final)
        XCTAssertEqual(configuration.torchDType, "bfloat16")
        let weights = try SafeTensorsFile(url: final.appendingPathComponent("model.safetensors"))
        XCTAssertFalse(weights.entries.isEmpty)
        XCTAssertTrue(weights.entries.values.allSatisfy { $0.dtype == .bf16 }, "\(weights.entries.values.map(\.dtype))")
        let model = try LlamaForCausalLM.load(from: final)
        XCTAssertEqual(weights.entries.values.reduce(0) { $0 + $1.range.count }, model.parameterCount * 2)
    }

    func testKillDuringACheckpointWriteLeavesThePreviousCheckpointLoadable() throws {
        let folder = try temporaryFolder(for: self)
        let config = try makeRun(folder)
        let output = folder.appendingPathComponent("out")
        // The process sleeps in the middle of writing checkpoint-10 (model written, optimizer not yet).
        let process = try CollieExecutable.start(["train", config.path], in: folder, log: "killed",
                                                 environment: ["COLLIE_TEST_PAUSE_WRITING": "checkpoint-10"])
        let partial = { () -> URL? in
            let names = (try? FileManager.default.contentsOfDirectory(atPath: output.path)) ?? []
            return names.first { $0.hasPrefix(".checkpoint-10.partial-") }.map { output.appendingPathComponent($0) }
        }
        let inWrite = process.wait {
            partial().map { FileManager.default.fileExists(atPath: $0.appendingPathComponent("model.safetensors").path) } ?? false
        }
        process.kill()
        XCTAssertTrue(inWrite, "never saw checkpoint-10 being written")

        XCTAssertEqual(TrainingCheckpoint.checkpoints(in: output).map(\.step), [5], "only the complete checkpoint counts")
        let previous = output.appendingPathComponent("checkpoint-5")
        XCTAssertNoThrow(try LlamaForCausalLM.load(from: previous))
        XCTAssertNoThrow(try OptimizerState(contentsOf: previous))
        let setup = try TrainingSetup(config: try CollieConfig.load(from: config))
        let trainer = try setup.makeTrainer(evaluators: [])
        XCTAssertNoThrow(try trainer.resume(from: previous))
        XCTAssertEqual(trainer.state.globalStep, 5)

        let resumed = try CollieExecutable.run(["train", config.path, "--resume", "latest"], in: folder, log: "resumed")
        XCTAssertEqual(resumed.status, 0, resumed.errors)
        XCTAssertNil(partial(), "the interrupted write's leftovers are removed")
        XCTAssertEqual(try loggedSteps(output).count, 72)
        XCTAssertNoThrow(try LlamaForCausalLM.load(from: output.appendingPathComponent("final")))
    }

    // MARK: - Errors: message, exit status, nothing written

    private func assertFails(_ arguments: [String], in folder: URL, mentioning fragments: [String],
                             file: StaticString = #filePath, line: UInt = #line) throws {
        let result = try CollieExecutable.run(arguments, in: folder)
        XCTAssertNotEqual(result.status, 0, "exit status", file: file, line: line)
        for fragment in fragments {
            XCTAssertTrue(result.errors.contains(fragment), "'\(fragment)' not in: \(result.errors)", file: file, line: line)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("out").path),
                       "nothing written", file: file, line: line)
    }

    func testUnknownConfigKeyFailsNamingTheKeyFileAndLine() throws {
        let folder = try temporaryFolder(for: self)
        let config = try makeRun(folder, extra: "eval_per_n_step: 3")
        try assertFails(["train", config.path], in: folder,
                        mentioning: ["config.yaml:16: eval_per_n_step: unknown key (did you mean eval_per_n_steps?)"])
    }

    func testBadConfigValueFailsNamingTheKey() throws {
        let folder = try temporaryFolder(for: self)
        let config = try makeRun(folder)
        try assertFails(["train", config.path, "--set", "train_micro_batch_size=two"], in: folder,
                        mentioning: ["train_micro_batch_size", "expected an integer"])
        try assertFails(["train", config.path, "--set", "optimizer.lr=-1"], in: folder, mentioning: ["optimizer.lr"])
    }

    func testMissingDataFileFailsNamingTheKeyAndThePath() throws {
        let folder = try temporaryFolder(for: self)
        let config = try makeRun(folder)
        try assertFails(["train", config.path, "--set", "train_data=missing.jsonl"], in: folder,
                        mentioning: ["train_data", "missing.jsonl"])
        try assertFails(["train", folder.appendingPathComponent("absent.yaml").path], in: folder, mentioning: ["absent.yaml"])
    }

    func testMalformedRecordFailsNamingTheFileAndLine() throws {
        let folder = try temporaryFolder(for: self)
        let config = try makeRun(folder)
        let data = folder.appendingPathComponent("broken.jsonl")
        try "{\"tokens\": [5, 6, 7]}\n{\"tokens\": [8, 9, 10]}\n{\"tokens\": [5, 6,\n".write(to: data, atomically: true, encoding: .utf8)
        try assertFails(["train", config.path, "--set", "train_data=\(data.path)"], in: folder,
                        mentioning: ["train_data", "broken.jsonl:3"])
        try "{\"tokens\": [5, 6, 7]}\n{\"tokens\": [8, 900, 10]}\n".write(to: data, atomically: true, encoding: .utf8)
        try assertFails(["train", config.path, "--set", "train_data=\(data.path)"], in: folder,
                        mentioning: ["broken.jsonl:2", "id 900 is outside the model's vocabulary (64 ids)"])
    }

    func testResumeLatestWithoutACheckpointFails() throws {
        let folder = try temporaryFolder(for: self)
        let config = try makeRun(folder)
        try assertFails(["train", config.path, "--resume", "latest"], in: folder, mentioning: ["no complete checkpoint"])
    }

    func testASecondRunRefusesToMixWithAnEarlierRunsCheckpoints() throws {
        let folder = try temporaryFolder(for: self)
        let config = try makeRun(folder)
        let short = ["--set", "train_epochs=1"]
        XCTAssertEqual(try CollieExecutable.run(["train", config.path] + short, in: folder).status, 0)
        let again = try CollieExecutable.run(["train", config.path] + short, in: folder, log: "again")
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.errors.contains("--resume latest") && again.errors.contains("--overwrite"), again.errors)
        let over = try CollieExecutable.run(["train", config.path, "--overwrite"] + short, in: folder, log: "over")
        XCTAssertEqual(over.status, 0, over.errors)
    }
}
