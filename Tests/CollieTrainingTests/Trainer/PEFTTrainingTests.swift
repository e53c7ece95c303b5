import CollieEngine
import CollieIO
import CollieModels
import CollieTestSupport
import CollieTraining
import Foundation
import XCTest

/// Training with `peft_config` equals PEFT + torch (the trainer fixtures' AdamW run with a LoRA or prompt-tuning
/// adapter on the frozen model; scripts/fixtures/make_peft_fixtures.py), trains only the adapter, saves it in PEFT's format
/// and resumes exactly.
final class PEFTTrainingTests: XCTestCase {
    /// LoRA on q_proj, v_proj, down_proj (r 4, alpha 8), B starting nonzero: losses, gradient norms, evaluation
    /// losses and the trained A and B equal PEFT's.
    func testLoRATrainingMatchesPEFTAndTorch() throws {
        let trainer = try checkParity("lora_adamw", parameterTolerance: 5e-5)
        XCTAssertEqual(trainer.model.loraAdapters.count, 6, "2 layers × q_proj, v_proj, down_proj")
    }

    /// Prompt tuning with 3 virtual tokens.
    func testPromptTuningTrainingMatchesPEFTAndTorch() throws {
        let trainer = try checkParity("prompt_adamw", parameterTolerance: 5e-5)
        XCTAssertEqual(trainer.model.promptEmbedding?.virtualTokenCount, 3)
    }

    func testOnlyTheAdapterIsTrainedAndHasGradientStorage() throws {
        let output = try temporaryFolder(for: self)
        let setup = try TrainingSetup(config: try Fixtures.config("lora_adamw", output: output))
        let base = try LlamaForCausalLM.load(from: Fixtures.model)
        let trainer = try setup.makeTrainer(evaluators: [])
        let adapterCount = setup.model.adapterParameters.reduce(0) { $0 + $1.tensor.count }
        XCTAssertEqual(trainer.parameterBuffer.count, adapterCount, "the flat buffer holds the adapter only")
        XCTAssertEqual(adapterCount, 2 * (4 * (32 + 32) + 4 * (32 + 16) + 4 * (64 + 32)), "A [4, in] and B [out, 4] of q, v (2 KV heads) and down in 2 layers")
        try trainer.train()
        for ((key, trained), (_, original)) in zip(setup.model.namedParameters, base.namedParameters) {
            XCTAssertNil(trained.grad, "\(key) has gradient storage")
            XCTAssertEqual(trained.floats(), original.floats(), "\(key) changed")
        }
        XCTAssertTrue(setup.model.adapterParameters.allSatisfy { $0.tensor.grad != nil })
    }

    func testSavedAdapterIsAPEFTFolderThatReloadsWithTheSameLogits() throws {
        let output = try temporaryFolder(for: self)
        let config = try Fixtures.config("lora_adamw", output: output, overrides: ["train_epochs=1"])
        let setup = try TrainingSetup(config: config)
        let trainer = try setup.makeTrainer(evaluators: [])
        try trainer.train()
        let final = output.appendingPathComponent("final")
        try trainer.saveModel(to: final)
        // PEFT's files, and the tokenizer's beside them (as transformers' Trainer saves a tokenizer with its output).
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: final.path).sorted(),
                       ["adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "tokenizer_config.json"])
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: final.appendingPathComponent("adapter_config.json"))) as! [String: Any]
        XCTAssertEqual(json["base_model_name_or_path"] as? String, Fixtures.model.standardizedFileURL.path)
        XCTAssertEqual(json["peft_type"] as? String, "LORA")

        let reloaded = try LlamaForCausalLM.load(from: Fixtures.model)
        try reloaded.loadAdapter(from: final)
        let ids = Tensor(ints: (0..<20).map { 3 + $0 * 11 % 60 }, shape: [2, 10])
        XCTAssertEqual(withNoGrad { reloaded(ids).floats() }, withNoGrad { setup.model(ids).floats() })
        XCTAssertNotEqual(withNoGrad { reloaded(ids).floats() }, withNoGrad { try! LlamaForCausalLM.load(from: Fixtures.model)(ids).floats() },
                          "the adapter changes the output")
    }

    /// With LoRA dropout (masks drawn per update and micro-batch from the seed), a run that crashes and resumes
    /// from its checkpoint (the adapter in PEFT's layout + optimizer state) ends bit-identical.
    func testLoRARunWithDropoutResumesExactlyFromItsCheckpoint() throws {
        let overrides = ["peft_config.lora_dropout=0.1", "callbacks={checkpoint: {every_n_batches: 2}}"]
        let full = try run(output: try temporaryFolder(for: self), overrides: overrides)
        let output = try temporaryFolder(for: self)
        _ = try run(output: output, overrides: overrides, crashAfter: 3)
        let checkpoint = output.appendingPathComponent("checkpoint-2")
        XCTAssertTrue(FileManager.default.fileExists(atPath: checkpoint.appendingPathComponent("adapter_model.safetensors").path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: checkpoint.appendingPathComponent("model.safetensors").path),
                       "a PEFT checkpoint holds the adapter, not the frozen base model")
        let resumed = try run(output: output, overrides: overrides, resumeFrom: checkpoint)
        XCTAssertEqual(resumed.steps.map(\.loss), full.steps.filter { $0.step > 2 }.map(\.loss))
        for ((key, a), (_, b)) in zip(resumed.trainer.model.adapterParameters, full.trainer.model.adapterParameters) {
            XCTAssertEqual(a.floats(), b.floats(), key)
        }
        // Dropout changes the run: the same run without it has other losses.
        let plain = try run(output: try temporaryFolder(for: self), overrides: [])
        XCTAssertNotEqual(plain.steps.map(\.loss), full.steps.map(\.loss))
    }

    func testBadPEFTConfigsAreErrorsNamingTheKey() throws {
        let output = try temporaryFolder(for: self)
        for (override, expected) in [("peft_config.peft_type=IA3", "expected one of LORA, PROMPT_TUNING"),
                                     ("peft_config.lora_dropout=1.5", "lora_dropout: must be in [0, 1)"),
                                     ("peft_config.use_dora=true", "use_dora"),
                                     ("peft_config.rank=8", "peft_config.rank: unknown key"),
                                     ("peft_config.target_modules=[c_attn]", "matches none of the model's linear layers")] {
            XCTAssertThrowsError(try TrainingSetup(config: try Fixtures.config("lora_adamw", output: output, overrides: [override])),
                                 override) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(override): \(error)")
                XCTAssertTrue("\(error)".contains("peft_config"), "\(override): \(error)")
            }
        }
    }

    func testPEFTConfigSurvivesTheConfigsYAMLRoundTrip() throws {
        let output = try temporaryFolder(for: self)
        for overrides in [["peft_config.target_modules=.*\\.(q|v)_proj", "peft_config.use_rslora=true"],
                          ["peft_config={peft_type: PROMPT_TUNING, num_virtual_tokens: 5, prompt_tuning_init: TEXT, prompt_tuning_init_text: Answer briefly}"]] {
            let config = try Fixtures.config("lora_adamw", output: output, overrides: overrides)
            let url = output.appendingPathComponent("round-trip.yaml")
            try config.yamlString().write(to: url, atomically: true, encoding: .utf8)
            let again = try CollieConfig.load(from: url)
            XCTAssertEqual(again.peftConfig, config.peftConfig, "\(overrides)")
        }
        let lora = try Fixtures.config("lora_adamw", output: output, overrides: ["peft_config.target_modules=.*\\.(q|v)_proj"])
        guard case .lora(let settings) = lora.peftConfig else { return XCTFail("not LoRA") }
        XCTAssertEqual(settings.targetModules, .pattern(#".*\.(q|v)_proj"#))
        let prompt = try Fixtures.config("lora_adamw", output: output, overrides: [
            "peft_config={peft_type: PROMPT_TUNING, num_virtual_tokens: 5, prompt_tuning_init: TEXT, prompt_tuning_init_text: Answer briefly}"])
        // TEXT initialization tokenizes the text with the config's tokenizer (LLaMA-2's ids exceed this model's 64).
        XCTAssertThrowsError(try TrainingSetup(config: prompt)) { error in
            XCTAssertTrue("\(error)".contains("peft_config: prompt_tuning_init_text: a token id is outside the vocabulary (64)"),
                          "\(error)")
        }
    }

    /// `dtype: bfloat16` with LoRA keeps the frozen base in bf16 and the adapter in float32 (PEFT's
    /// autocast_adapter_dtype); the run follows the float32 one closely.
    func testLoRAOnABFloat16BaseKeepsTheAdapterInFloat32() throws {
        var losses: [[Double]] = []
        for dtype in ["float32", "bfloat16"] {
            let setup = try TrainingSetup(config: try Fixtures.config("lora_adamw", output: try temporaryFolder(for: self),
                                                                      overrides: ["dtype=\(dtype)"]))
            let recorder = RecordingMonitor()
            let trainer = try setup.makeTrainer(monitors: [recorder], evaluators: [])
            XCTAssertEqual(trainer.frozenBuffer?.dtype, dtype == "float32" ? .float32 : .bfloat16)
            XCTAssertEqual(trainer.parameterBuffer.dtype, .float32)
            XCTAssertTrue(setup.model.parameters.allSatisfy { $0.dtype == trainer.frozenBuffer?.dtype && $0.grad == nil })
            try trainer.train()
            losses.append(recorder.steps.map(\.loss))
        }
        XCTAssertNotEqual(losses[0], losses[1], "bf16 rounding changes the base weights")
        XCTAssertEqual(losses[0].count, losses[1].count)
        // bf16 base weights move each loss by at most 5.8e-4 here (measured); the bound leaves rounding room.
        for (a, b) in zip(losses[0], losses[1]) { XCTAssertEqual(a, b, accuracy: 2e-3) }
    }

    /// LOMO updates inside backward: with LoRA it updates the adapter only.
    func testLoRATrainsWithAnInBackwardOptimizer() throws {
        let output = try temporaryFolder(for: self)
        let config = try Fixtures.config("lora_adamw", output: output, overrides: [
            "optimizer={name: lomo, lr: 0.05}", "gradient_accumulation_steps=1", "train_epochs=1"])
        let setup = try TrainingSetup(config: config)
        let before = setup.model.adapterParameters.map { $0.tensor.floats() }
        let base = setup.model.namedParameters.map { $0.tensor.floats() }
        let recorder = RecordingMonitor()
        try setup.makeTrainer(monitors: [recorder], evaluators: []).train()
        XCTAssertEqual(recorder.steps.count, 5)
        XCTAssertTrue(recorder.steps.allSatisfy { $0.loss.isFinite })
        XCTAssertEqual(setup.model.namedParameters.map { $0.tensor.floats() }, base, "the base model is frozen")
        let after = setup.model.adapterParameters.map { $0.tensor.floats() }
        XCTAssertTrue(zip(before, after).allSatisfy { $0 != $1 }, "every adapter tensor moved")
    }

    // MARK: - Support

    private func checkParity(_ name: String, parameterTolerance: Float) throws -> Trainer {
        let output = try temporaryFolder(for: self)
        let setup = try TrainingSetup(config: try Fixtures.config(name, output: output))
        try setup.model.loadAdapter(from: Fixtures.folder.appendingPathComponent("\(name)/initial_adapter"))
        let recorder = RecordingMonitor()
        let trainer = try setup.makeTrainer(monitors: [recorder], evaluators: [])
        try trainer.train()
        let expected = try Fixtures.expected(name)

        let steps = recorder.steps
        let losses = try expected.tensor("losses").doubles(), norms = try expected.tensor("grad_norms").doubles()
        let rates = try expected.tensor("learning_rates").doubles()
        XCTAssertEqual(steps.count, losses.count, "updates")
        var lossDifference = 0.0, normDifference = 0.0
        for (index, step) in steps.enumerated() {
            lossDifference = max(lossDifference, abs(step.loss - losses[index]))
            normDifference = max(normDifference, abs((step.gradientNorm ?? .nan) - norms[index]) / max(norms[index], 1e-3))
            XCTAssertEqual(step.learningRate, rates[index], accuracy: 1e-15 + 1e-12 * rates[index])
        }
        XCTAssertLessThan(lossDifference, 2e-5, "losses \(steps.map(\.loss)) vs \(losses)")
        XCTAssertLessThan(normDifference, 1e-4, "gradient norms (relative)")
        let evaluations = trainer.state.evaluations
        XCTAssertEqual(evaluations.first!.metrics["loss"]!, try expected.tensor("eval_loss_before").doubles()[0], accuracy: 2e-5)
        XCTAssertEqual(evaluations.last!.metrics["loss"]!, try expected.tensor("eval_loss_after").doubles()[0], accuracy: 2e-5)

        let keys = expected.names.filter { $0.hasPrefix("param.") }.map { String($0.dropFirst(6)) }
        XCTAssertEqual(Set(trainer.model.adapterParameters.map(\.key)), Set(keys))
        var parameterDifference: Float = 0
        for (key, parameter) in trainer.model.adapterParameters {
            parameterDifference = max(parameterDifference, maxDifference(parameter, try expected.tensor("param." + key)))
        }
        print("\(name): max |Δ| loss \(lossDifference), relative grad norm \(normDifference), adapter parameter \(parameterDifference)")
        XCTAssertLessThan(parameterDifference, parameterTolerance, "adapter parameters after training")
        return trainer
    }

    private func run(output: URL, overrides: [String], crashAfter: Int? = nil,
                     resumeFrom: URL? = nil) throws -> (trainer: Trainer, steps: [TrainingStep]) {
        let config = try Fixtures.config("lora_adamw", output: output, overrides: overrides)
        let setup = try TrainingSetup(config: config)
        var callbacks = try Trainer.makeCallbacks(config.callbacks)
        if let crashAfter { callbacks.append(CrashCallback(after: crashAfter)) }
        let recorder = RecordingMonitor()
        let trainer = try Trainer(config: config, model: setup.model, trainDataset: setup.trainDataset,
                                  evaluationDataset: setup.evaluationDataset, padTokenID: setup.padTokenID,
                                  monitors: [recorder], callbacks: callbacks)
        if let resumeFrom { try trainer.resume(from: resumeFrom) }
        do { try trainer.train() } catch is CrashCallback.Crash {}
        return (trainer, recorder.steps)
    }
}
