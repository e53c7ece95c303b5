import CollieIO
import CollieTestSupport
import Foundation
import XCTest
@testable import CollieEngine
@testable import CollieModels

/// LoRA and prompt tuning against PEFT itself: adapters saved by `PeftModel.save_pretrained` and the logits,
/// losses, gradients and merged weights PEFT computes with them (scripts/fixtures/make_peft_fixtures.py, base model the
/// "llama_padded" fixture), and adapters Collie saves (scripts/checks/check_peft_roundtrip.py loads them in PEFT).
///
/// Tolerances are relative to the largest magnitude of the expected tensor: logits and loss 1e-5, gradients
/// 1e-4, merged weights 1e-6.
final class PEFTParityTests: XCTestCase {
    // MARK: - Adapters PEFT saved

    func testLoRAAdapterSavedByPEFTGivesPEFTLogitsLossAndGradients() throws {
        let model = try checkLoRA("lora")
        XCTAssertEqual(model.loraAdapters.count, 14, "2 layers × 7 projections")
        XCTAssertEqual(model.loraAdapters.first!.adapter.scaling, 2, "lora_alpha 8 / r 4")
    }

    func testRegexTargetModulesAdaptExactlyTheMatchingLayers() throws {
        let model = try checkLoRA("lora_regex")
        XCTAssertEqual(model.loraAdapters.map(\.path), [
            "model.layers.0.self_attn.k_proj", "model.layers.0.mlp.down_proj",
            "model.layers.1.self_attn.k_proj", "model.layers.1.mlp.down_proj",
        ])
        XCTAssertEqual(model.loraAdapters[0].adapter.scaling, 3 / 2.0.squareRoot(), accuracy: 1e-12, "rsLoRA: α/√r")
    }

    func testMergedWeightIsBasePlusScaledBAAsPEFTComputesItAndUnmergeRestoresIt() throws {
        let model = try LlamaForCausalLM.load(from: Self.fixture("llama_padded"))
        let base = Dictionary(uniqueKeysWithValues: model.namedParameters.map { ($0.key, $0.tensor.floats()) })
        try model.loadAdapter(from: Self.fixture("peft/lora"))
        let expected = try Self.expected("lora")
        let (ids, mask, _) = try Self.batch(expected)

        model.mergeLoRA()
        XCTAssertTrue(model.loraAdapters.allSatisfy(\.adapter.isMerged))
        for (path, adapter) in model.loraAdapters {
            let key = path + ".weight"
            let weight = model.namedParameters.first { $0.key == key }!.tensor
            assertClose(weight, try expected.tensor("merged." + key), relative: 1e-6, "merged \(key)")
            // W + scaling · B·A, computed here in double precision from the adapter's own A and B.
            let (out, inner) = (adapter.b.shape[0], adapter.a.shape[1]), r = adapter.a.shape[0]
            let a = adapter.a.doubles(), b = adapter.b.doubles(), w = base[key]!
            var reference = [Double](repeating: 0, count: out * inner)
            for i in 0..<out {
                for j in 0..<inner {
                    var sum = 0.0
                    for k in 0..<r { sum += b[i * r + k] * a[k * inner + j] }
                    reference[i * inner + j] = Double(w[i * inner + j]) + adapter.scaling * sum
                }
            }
            assertClose(weight, Tensor(doubles: reference, shape: [out, inner]), relative: 1e-6, "W + scaling·B·A \(key)")
        }
        XCTAssertThrowsError(try model.loadAdapter(from: Self.fixture("peft/lora")), "loading into merged weights") { error in
            XCTAssertTrue("\(error)".contains("unmerge them first"), "\(error)")
        }
        let merged = withNoGrad { model(ids, keyPaddingMask: mask) }
        assertClose(merged, try expected.tensor("merged_logits"), relative: 1e-5, "merged logits", mask: mask)
        assertClose(merged, try expected.tensor("logits"), relative: 1e-5, "merged logits = adapter logits", mask: mask)

        model.unmergeLoRA()
        XCTAssertFalse(model.loraAdapters.contains { $0.adapter.isMerged })
        for (key, tensor) in model.namedParameters {
            assertClose(tensor, Tensor(base[key]!, shape: tensor.shape), relative: 1e-6, "unmerged \(key)")
        }
        let unmerged = withNoGrad { model(ids, keyPaddingMask: mask) }
        assertClose(unmerged, try expected.tensor("logits"), relative: 1e-5, "unmerged logits", mask: mask)
    }

    func testPromptTuningSavedByPEFTGivesPEFTLogitsLossAndGradient() throws {
        let model = try LlamaForCausalLM.load(from: Self.fixture("llama_padded"))
        try model.loadAdapter(from: Self.fixture("peft/prompt"))
        let prompt = try XCTUnwrap(model.promptEmbedding)
        XCTAssertEqual(prompt.virtualTokenCount, 3)
        let expected = try Self.expected("prompt")
        let (ids, mask, labels) = try Self.batch(expected)
        let (b, t, n) = (ids.shape[0], ids.shape[1], 3)
        let virtualMask = Tensor(ints: (0..<b).flatMap { row in [1, 1, 1] + mask.ints()[(row * t)..<((row + 1) * t)] },
                                 shape: [b, n + t])

        let logits = prompt.logits(model, ids, keyPaddingMask: mask)
        XCTAssertEqual(logits.shape, [b, n + t, model.configuration.vocabularySize])
        assertClose(logits, try expected.tensor("logits"), relative: 1e-5, "logits", mask: virtualMask)
        // The model's own call gives the real tokens' logits only.
        let real = withNoGrad { model(ids, keyPaddingMask: mask) }
        XCTAssertEqual(real.shape, [b, t, model.configuration.vocabularySize])
        XCTAssertEqual(real.floats(), withNoGrad { logits.slice(axis: 1, n..<(n + t)).contiguous().floats() })

        // labels[:, 0] are real tokens here: the loss counts the last virtual token's prediction of them, which
        // only holds when the virtual tokens' own labels are −100 and sit in front.
        let prefixed = prompt.prefixedLabels(labels.ints(), batchSize: b)
        XCTAssertEqual(Array(prefixed[0..<n]), [-100, -100, -100])
        XCTAssertEqual(Array(prefixed[(n + t)..<(2 * n + t)]), [-100, -100, -100])
        let loss = Self.meanShiftedLoss(logits, labels: prefixed)
        assertClose(loss, try expected.tensor("loss"), relative: 1e-5, "loss")
        loss.backward()
        assertClose(try XCTUnwrap(prompt.embeddings.grad), try expected.tensor("grad.prompt_embeddings"),
                    relative: 1e-4, "grad prompt_embeddings")
        XCTAssertTrue(model.parameters.allSatisfy { $0.grad == nil && !$0.requiresGrad }, "the base model is frozen")
    }

    // MARK: - Adapters Collie saves

    /// Saves a LoRA adapter (nonzero B, a regex target) and a prompt-tuning adapter and loads them back. With
    /// COLLIE_PEFT_EXPORT=DIR set the folders, inputs and Collie's logits go to DIR for
    /// `python3 scripts/checks/check_peft_roundtrip.py DIR`, which loads them with `PeftModel.from_pretrained`.
    func testAdaptersCollieSavesReloadWithIdenticalLogitsAndPEFTsConfigFields() throws {
        let export = ProcessInfo.processInfo.environment["COLLIE_PEFT_EXPORT"].map { URL(fileURLWithPath: $0) }
        let root = try export ?? temporaryFolder(for: self)
        let basePath = Self.fixture("llama_padded").path
        let expected = try Self.expected("lora")
        let (ids, mask, _) = try Self.batch(expected)

        let lora = LoRAConfiguration(rank: 3, alpha: 5, targetModules: .pattern(#"model\.layers\.1\..*_proj|.*\.(q_proj|up_proj)"#))
        let prompt = PromptTuningConfiguration(virtualTokenCount: 4)
        for (name, configuration) in [("lora", PEFTConfiguration.lora(lora)), ("prompt", .promptTuning(prompt))] {
            let model = try LlamaForCausalLM.load(from: Self.fixture("llama_padded"))
            try model.addAdapter(configuration, seed: 11)
            var generator = RandomGenerator(seed: 12)
            for (_, adapter) in model.loraAdapters {   // B starts at zero; make the adapter change the output
                let values = Tensor.normal(adapter.b.shape, std: 0.3, generator: &generator)
                adapter.b.pointer(as: Float.self).update(from: values.pointer(as: Float.self), count: values.count)
            }
            let folder = root.appendingPathComponent(name)
            try model.saveAdapter(to: folder, baseModelNameOrPath: basePath)
            let logits = withNoGrad { model.promptEmbedding.map { $0.logits(model, ids, keyPaddingMask: mask) } ?? model(ids, keyPaddingMask: mask) }
            try SafeTensorsWriter.write([("input_ids", ids), ("attention_mask", mask), ("logits", logits.contiguous())],
                                        to: root.appendingPathComponent("\(name).safetensors"))

            let json = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("adapter_config.json"))) as! [String: Any]
            XCTAssertEqual(json["task_type"] as? String, "CAUSAL_LM")
            XCTAssertEqual(json["base_model_name_or_path"] as? String, basePath)
            let file = try SafeTensorsFile(url: folder.appendingPathComponent("adapter_model.safetensors"))
            XCTAssertEqual(Set(file.names), Set(model.adapterParameters.map(\.key)))
            if name == "lora" {
                XCTAssertEqual(json["peft_type"] as? String, "LORA")
                XCTAssertEqual(json["r"] as? Int, 3)
                XCTAssertEqual(json["lora_alpha"] as? Double, 5)
                XCTAssertEqual(json["bias"] as? String, "none")
                XCTAssertEqual(json["fan_in_fan_out"] as? Bool, false)
                XCTAssertEqual(json["use_rslora"] as? Bool, false)
                XCTAssertEqual(model.loraAdapters.map(\.path), [
                    "model.layers.0.self_attn.q_proj", "model.layers.0.mlp.up_proj",
                    "model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.k_proj", "model.layers.1.self_attn.v_proj",
                    "model.layers.1.self_attn.o_proj", "model.layers.1.mlp.gate_proj", "model.layers.1.mlp.up_proj",
                    "model.layers.1.mlp.down_proj",
                ])
                XCTAssertTrue(file.names.contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"))
                XCTAssertEqual(try file.tensor("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight").shape, [32, 3])
            } else {
                XCTAssertEqual(json["peft_type"] as? String, "PROMPT_TUNING")
                XCTAssertEqual(json["num_virtual_tokens"] as? Int, 4)
                XCTAssertEqual(json["token_dim"] as? Int, 32)
                XCTAssertEqual(json["num_transformer_submodules"] as? Int, 1)
                XCTAssertEqual(file.names, ["prompt_embeddings"])
            }

            let reloaded = try LlamaForCausalLM.load(from: Self.fixture("llama_padded"))
            try reloaded.loadAdapter(from: folder)
            XCTAssertEqual(reloaded.peftConfiguration?.method, configuration.method)
            let again = withNoGrad { reloaded.promptEmbedding.map { $0.logits(reloaded, ids, keyPaddingMask: mask) } ?? reloaded(ids, keyPaddingMask: mask) }
            XCTAssertEqual(again.floats(), logits.floats(), "\(name): reloaded logits")
        }
    }

    // MARK: - Behaviour

    func testBaseWeightsAreFrozenAndOnlyAdapterGradientsAreAllocated() throws {
        let model = try LlamaForCausalLM.load(from: Self.fixture("llama_padded"))
        try model.addAdapter(.lora(LoRAConfiguration(rank: 2, alpha: 4)), seed: 1)
        let ids = Tensor(ints: (0..<16).map { 3 + $0 * 5 % 90 }, shape: [2, 8])
        model.loss(ids: ids, labels: ids).backward()
        for (key, parameter) in model.namedParameters {
            XCTAssertFalse(parameter.requiresGrad, key)
            XCTAssertNil(parameter.grad, "\(key) has a gradient")
        }
        XCTAssertEqual(model.trainableParameters.count, 2 * 14)
        XCTAssertEqual(model.trainableParameters.map(\.key), model.adapterParameters.map(\.key))
        for (key, parameter) in model.adapterParameters {
            XCTAssertNotNil(parameter.grad, key)
        }
        // B starts at zero, so A's gradient is zero and B's is not.
        let (_, first) = model.loraAdapters[0]
        XCTAssertTrue(first.a.grad!.floats().allSatisfy { $0 == 0 })
        XCTAssertTrue(first.b.grad!.floats().contains { $0 != 0 })
    }

    func testFreshLoRAStartsAsTheBaseModelWithPEFTsInitialization() throws {
        let model = try LlamaForCausalLM.load(from: Self.fixture("llama_padded"))
        let ids = Tensor(ints: (0..<16).map { 3 + $0 * 7 % 90 }, shape: [2, 8])
        let before = withNoGrad { model(ids).floats() }
        try model.addAdapter(.lora(LoRAConfiguration(rank: 4, alpha: 8)), seed: 3)
        XCTAssertEqual(withNoGrad { model(ids).floats() }, before, "B = 0: the adapter adds nothing")
        for (path, adapter) in model.loraAdapters {
            let bound = Float(1 / Double(adapter.a.shape[1]).squareRoot())
            let a = adapter.a.floats()
            XCTAssertTrue(a.allSatisfy { abs($0) <= bound }, path)
            XCTAssertGreaterThan(a.map(abs).max()!, bound * 0.8, "\(path): A ~ U(±1/√in)")
            XCTAssertTrue(adapter.b.floats().allSatisfy { $0 == 0 }, path)
        }
    }

    func testPromptTuningTextInitializationCopiesTheTextsTokenEmbeddingsRepeated() throws {
        let model = try LlamaForCausalLM.load(from: Self.fixture("llama_padded"))
        let prompt = PromptTuningConfiguration(virtualTokenCount: 5, initialization: .text, initializationText: "hi")
        try model.addAdapter(.promptTuning(prompt), promptTokenIDs: [1, 40, 7])
        let expected = withNoGrad { model.embedTokens(Tensor(ints: [1, 40, 7, 1, 40], shape: [5])) }
        XCTAssertEqual(model.promptEmbedding?.embeddings.floats(), expected.floats())
        guard case .promptTuning(let stored) = model.peftConfiguration else { return XCTFail("no prompt tuning") }
        XCTAssertEqual(stored.tokenDimension, 32)
        XCTAssertEqual(stored.layers, 2)
    }

    func testLoRADropoutActsOnlyWhileTrainingAndKeepsTheExpectation() throws {
        var generator = RandomGenerator(seed: 5)
        let adapter = LoRAAdapter(inFeatures: 64, outFeatures: 8, configuration: LoRAConfiguration(rank: 2, alpha: 2, dropout: 0.25),
                                  generator: &generator)
        adapter.a.pointer(as: Float.self).update(repeating: 1, count: adapter.a.count)
        adapter.b.pointer(as: Float.self).update(repeating: 1, count: adapter.b.count)
        let x = Tensor.ones([4000, 64])
        func delta() -> [Float] { withNoGrad { adapter(x, addingTo: .zeros([4000, 8])) }.floats() }   // the adapter's alone
        let clean = delta()
        XCTAssertEqual(delta(), clean, "no dropout outside training")
        adapter.isTraining = true
        let dropped = delta()
        XCTAssertNotEqual(dropped, clean)
        let mean = dropped.reduce(0, +) / Float(dropped.count), cleanMean = clean.reduce(0, +) / Float(clean.count)
        XCTAssertEqual(mean / cleanMean, 1, accuracy: 0.02, "inverted dropout keeps the mean")
        // About 25% of the inputs are dropped: with A = B = 1 each output is scaling (1) · r (2) · (kept inputs) / 0.75.
        let keptFraction = dropped.map { Double($0) * 0.75 / (2 * 64) }.reduce(0, +) / Double(dropped.count)
        XCTAssertEqual(keptFraction, 0.75, accuracy: 0.01)
        XCTAssertEqual(delta(), dropped, "the same seed draws the same mask (recomputation)")
        adapter.dropoutSeed = 9
        XCTAssertNotEqual(delta(), dropped, "a new seed draws a new mask")
    }

    /// Activation checkpointing recomputes each layer in backward; LoRA dropout draws the same masks there, so
    /// the gradients equal those of the run that keeps its activations.
    func testLoRADropoutGradientsAreTheSameWithActivationCheckpointing() throws {
        var gradients: [[[Float]]] = []
        for checkpointing in [false, true] {
            let model = try LlamaForCausalLM.load(from: Self.fixture("llama_padded"))
            try model.loadAdapter(from: Self.fixture("peft/lora"))
            for (_, adapter) in model.loraAdapters { XCTAssertEqual(adapter.dropout, 0) }
            let dropping = try LlamaForCausalLM.load(from: Self.fixture("llama_padded"))
            try dropping.addAdapter(.lora(LoRAConfiguration(rank: 4, alpha: 8, dropout: 0.3)), seed: 2)
            for ((_, a), (_, b)) in zip(dropping.loraAdapters, model.loraAdapters) {   // PEFT's nonzero A and B
                a.a.pointer(as: Float.self).update(from: b.a.pointer(as: Float.self), count: b.a.count)
                a.b.pointer(as: Float.self).update(from: b.b.pointer(as: Float.self), count: b.b.count)
            }
            dropping.activationCheckpointing = checkpointing
            dropping.setAdapterTraining(true)
            dropping.reseedAdapterDropout(seed: 77)
            let ids = Tensor(ints: (0..<20).map { 3 + $0 * 13 % 90 }, shape: [2, 10])
            dropping.loss(ids: ids, labels: ids).backward()
            gradients.append(dropping.adapterParameters.map { $0.tensor.grad!.floats() })
        }
        XCTAssertEqual(gradients[0], gradients[1])
    }

    func testModuleSelectionMatchesAsPEFTDoes() throws {
        let names = ModuleSelection.names(["q_proj", "mlp.up_proj"])
        XCTAssertTrue(try names.matches("model.layers.3.self_attn.q_proj"))
        XCTAssertTrue(try names.matches("q_proj"))
        XCTAssertTrue(try names.matches("model.layers.0.mlp.up_proj"))
        XCTAssertFalse(try names.matches("model.layers.0.self_attn.xq_proj"), "a suffix after a dot, not any suffix")
        XCTAssertFalse(try names.matches("model.layers.0.mlp.gate_proj"))
        let pattern = ModuleSelection.pattern(#".*\.layers\.[01]\.self_attn\.(q|v)_proj"#)
        XCTAssertTrue(try pattern.matches("model.layers.1.self_attn.v_proj"))
        XCTAssertFalse(try pattern.matches("model.layers.2.self_attn.v_proj"))
        XCTAssertFalse(try ModuleSelection.pattern("q_proj").matches("model.layers.0.self_attn.q_proj"), "re.fullmatch")
        XCTAssertTrue(try ModuleSelection.pattern("all-linear").matches("model.layers.0.mlp.down_proj"))
        XCTAssertFalse(try ModuleSelection.pattern("all-linear").matches("lm_head", isOutputProjection: true))
        XCTAssertThrowsError(try ModuleSelection.pattern("(unclosed").matches("q_proj"))

        let model = try LlamaForCausalLM.load(from: Self.fixture("llama_padded"))
        try model.addAdapter(.lora(LoRAConfiguration(targetModules: .names(["q_proj", "lm_head"]),
                                                     excludeModules: .pattern(#".*layers\.0\..*"#))))
        XCTAssertEqual(model.loraAdapters.map(\.path), ["model.layers.1.self_attn.q_proj", "lm_head"])
        let other = try LlamaForCausalLM.load(from: Self.fixture("llama_padded"))
        XCTAssertThrowsError(try other.addAdapter(.lora(LoRAConfiguration(targetModules: .names(["c_attn"]))))) { error in
            XCTAssertTrue("\(error)".contains("target_modules"), "\(error)")
        }
        // PEFT refuses a selection that takes in a module it cannot adapt (here model.layers.1.self_attn).
        XCTAssertThrowsError(try other.addAdapter(.lora(LoRAConfiguration(targetModules: .pattern(#"model\.layers\.1\..*"#))))) { error in
            XCTAssertTrue("\(error)".contains("model.layers.1.self_attn, which is not a linear layer"), "\(error)")
        }
        XCTAssertNil(other.peftConfiguration)
    }

    func testUnsupportedAdapterSettingsAndMismatchedTensorsAreErrorsNamingThem() throws {
        let folder = try temporaryFolder(for: self)
        let source = Self.fixture("peft/lora")
        for name in ["adapter_config.json", "adapter_model.safetensors"] {
            try FileManager.default.copyItem(at: source.appendingPathComponent(name), to: folder.appendingPathComponent(name))
        }
        let configURL = folder.appendingPathComponent("adapter_config.json")
        let original = try Data(contentsOf: configURL)
        for (field, value, expectedText) in [("use_dora", true as Any, "use_dora"), ("bias", "all", "bias"),
                                             ("rank_pattern", ["q_proj": 8], "rank_pattern"),
                                             ("task_type", "SEQ_2_SEQ_LM", "task_type"),
                                             ("peft_type", "IA3", "IA3")] {
            var json = try JSONSerialization.jsonObject(with: original) as! [String: Any]
            json[field] = value
            try JSONSerialization.data(withJSONObject: json).write(to: configURL)
            let model = try LlamaForCausalLM.load(from: Self.fixture("llama_padded"))
            XCTAssertThrowsError(try model.loadAdapter(from: folder), field) { error in
                XCTAssertTrue("\(error)".contains(expectedText) && "\(error)".contains("adapter_config.json"), "\(error)")
            }
        }
        var json = try JSONSerialization.jsonObject(with: original) as! [String: Any]
        json["r"] = 5
        try JSONSerialization.data(withJSONObject: json).write(to: configURL)
        XCTAssertThrowsError(try LlamaForCausalLM.load(from: Self.fixture("llama_padded")).loadAdapter(from: folder)) { error in
            XCTAssertTrue("\(error)".contains("lora_A.weight"), "\(error)")
        }
        json["r"] = 4
        json["target_modules"] = ["q_proj"]
        try JSONSerialization.data(withJSONObject: json).write(to: configURL)
        XCTAssertThrowsError(try LlamaForCausalLM.load(from: Self.fixture("llama_padded")).loadAdapter(from: folder)) { error in
            XCTAssertTrue("\(error)".contains("unexpected: base_model.model.model.layers.0.mlp.down_proj.lora_A.weight"), "\(error)")
        }
        XCTAssertThrowsError(try LlamaForCausalLM.load(from: Self.fixture("llama_padded")).loadAdapter(from: Self.fixture("llama_mha"))) { error in
            XCTAssertTrue("\(error)".contains("adapter_config.json"), "\(error)")
        }
    }

    // MARK: - Support

    /// Loads the base fixture and PEFT's adapter `variant`; compares logits, loss and adapter gradients.
    private func checkLoRA(_ variant: String, file: StaticString = #filePath, line: UInt = #line) throws -> LlamaForCausalLM {
        let model = try LlamaForCausalLM.load(from: Self.fixture("llama_padded"))
        try model.loadAdapter(from: Self.fixture("peft/" + variant))
        let expected = try Self.expected(variant)
        let (ids, mask, labels) = try Self.batch(expected)
        assertClose(withNoGrad { model(ids, keyPaddingMask: mask) }, try expected.tensor("logits"), relative: 1e-5,
                    "\(variant) logits", mask: mask, file: file, line: line)
        let loss = model.loss(ids: ids, labels: labels, keyPaddingMask: mask)
        assertClose(loss, try expected.tensor("loss"), relative: 1e-5, "\(variant) loss", file: file, line: line)
        loss.backward()
        let gradientKeys = expected.names.filter { $0.hasPrefix("grad.") }.map { String($0.dropFirst(5)) }
        XCTAssertEqual(Set(model.trainableParameters.map(\.key)), Set(gradientKeys), file: file, line: line)
        for (key, parameter) in model.trainableParameters {
            guard let gradient = parameter.grad else { XCTFail("\(key): no gradient", file: file, line: line); continue }
            assertClose(gradient, try expected.tensor("grad." + key), relative: 1e-4, "grad \(key)", file: file, line: line)
        }
        XCTAssertTrue(model.parameters.allSatisfy { $0.grad == nil }, "base parameters have no gradient", file: file, line: line)
        return model
    }

    /// Mean cross-entropy of logits [B, T, V] against labels shifted left by one (Hugging Face's shift).
    static func meanShiftedLoss(_ logits: Tensor, labels: [Int]) -> Tensor {
        let (b, t, v) = (logits.shape[0], logits.shape[1], logits.shape[2])
        var shifted = [Int](repeating: Tensor.ignoreIndex, count: b * t)
        for row in 0..<b { for i in 0..<(t - 1) { shifted[row * t + i] = labels[row * t + i + 1] } }
        return .crossEntropy(logits: logits.reshaped([b * t, v]), targets: Tensor(ints: shifted, shape: [b * t]))
    }

    /// `actual` within `relative × max|expected|` of `expected`; with `mask` [B, T], rows at masked positions
    /// of [B, T, V] tensors (padding, whose outputs are meaningless) are skipped.
    private func assertClose(_ actual: Tensor, _ expected: Tensor, relative: Double, _ what: String, mask: Tensor? = nil,
                             file: StaticString = #filePath, line: UInt = #line) {
        guard actual.count == expected.count else {
            XCTFail("\(what): shape \(actual.shape), expected \(expected.shape)", file: file, line: line)
            return
        }
        let a = actual.contiguous().doubles(), e = expected.contiguous().doubles()
        let keep = mask?.ints()
        let width = keep == nil ? 1 : e.count / keep!.count
        var scale = 0.0, difference = 0.0
        for i in 0..<e.count where keep?[i / width] != 0 {
            scale = max(scale, abs(e[i]))
            difference = max(difference, abs(a[i] - e[i]).isNaN ? .infinity : abs(a[i] - e[i]))
        }
        let ratio = scale > 0 ? difference / scale : difference
        XCTAssertLessThanOrEqual(ratio, relative, "\(what): max |difference| \(difference) vs max|expected| \(scale)",
                                 file: file, line: line)
    }

    static func fixture(_ name: String) -> URL {
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent(name)
    }

    static func expected(_ variant: String) throws -> SafeTensorsFile {
        try SafeTensorsFile(url: fixture("peft/\(variant).safetensors"))
    }

    static func batch(_ expected: SafeTensorsFile) throws -> (ids: Tensor, mask: Tensor, labels: Tensor) {
        (try expected.tensor("input_ids").contiguousCopy(), try expected.tensor("attention_mask").contiguousCopy(),
         try expected.tensor("labels").contiguousCopy())
    }
}
