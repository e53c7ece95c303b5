import CollieIO
import CollieTestSupport
import Foundation
import XCTest
@testable import CollieEngine
@testable import CollieModels

/// InternLM (v1) and InternLM2 against their published remote code's arithmetic: tiny random models built by
/// scripts/fixtures/make_internlm_fixtures.py (a plain-PyTorch re-creation of modeling_internlm.py /
/// modeling_internlm2.py, itself cross-checked there against transformers' LlamaForCausalLM), loaded through the
/// production loader from the family's own checkpoint layout and config.json.
///
/// Tolerances as the LLaMA parity tests (float32 on both sides, relative to the largest magnitude of the expected
/// tensor): logits 1e-5, loss 1e-5, every gradient 1e-4. The tests print the largest differences they see.
final class InternLMParityTests: XCTestCase, FamilyParityFixtures {
    static let variants = ["internlm", "internlm2", "internlm2_dynamic", "internlm2_linear"]

    // MARK: - Logits, loss and gradients

    func testInternLMLogitsLossAndGradientsMatchTheReference() throws {
        let model = try checkForwardAndBackward("internlm", as: LlamaForCausalLM.self)
        let c = model.configuration
        XCTAssertEqual(c.modelType, .internlm)
        XCTAssertEqual(c.keyValueHeads, c.attentionHeads)
        XCTAssertEqual(c.ropeScaling, .dynamic(factor: 1))
        let keys = Set(model.namedParameters.map(\.key))
        for name in ["q_proj", "k_proj", "v_proj", "o_proj"] {
            XCTAssertTrue(keys.contains("model.layers.1.self_attn.\(name).bias"), name)
        }
        XCTAssertFalse(keys.contains { $0.contains("mlp") && $0.hasSuffix(".bias") })
        // The fixture's 12 tokens exceed max_position_embeddings 8: the dynamic NTK base is in effect.
        XCTAssertEqual(c.maxPositionEmbeddings, 8)
        XCTAssertNotEqual(c.inverseFrequencies(sequenceLength: 12), c.inverseFrequencies(sequenceLength: 8))
    }

    func testGQAInternLM2LogitsLossAndGradientsMatchTheReference() throws {
        let model = try checkForwardAndBackward("internlm2", as: InternLM2ForCausalLM.self)
        let c = model.configuration
        XCTAssertEqual([c.attentionHeads, c.keyValueHeads, c.hiddenSize], [4, 2, 64])
        XCTAssertEqual(c.ropeTheta, 1_000_000)
        XCTAssertEqual(c.ropeScaling, .none)
        XCTAssertFalse(c.attentionBias)
        XCTAssertEqual(model.layers[0].attention.wqkv.outFeatures, (4 + 2 * 2) * 16)
    }

    func testDynamicNTKInternLM2LogitsLossAndGradientsMatchTheReference() throws {
        let model = try checkForwardAndBackward("internlm2_dynamic", as: InternLM2ForCausalLM.self)
        let c = model.configuration
        XCTAssertEqual(c.ropeScaling, .dynamic(factor: 2))
        XCTAssertTrue(c.attentionBias)
        XCTAssertNotNil(model.layers[0].attention.wqkv.bias)
        XCTAssertNotNil(model.layers[0].attention.wo.bias)
        XCTAssertNotEqual(c.inverseFrequencies(sequenceLength: 12), c.inverseFrequencies(sequenceLength: 8))
    }

    func testLinearRopeTiedMQAInternLM2LogitsLossAndGradientsMatchTheReference() throws {
        let model = try checkForwardAndBackward("internlm2_linear", as: InternLM2ForCausalLM.self)
        let c = model.configuration
        XCTAssertEqual(c.ropeScaling, .linear(factor: 2))
        XCTAssertEqual(c.keyValueHeads, 1)
        XCTAssertTrue(c.tieWordEmbeddings)
        XCTAssertNil(model.output)
    }

    /// config.json's model_type picks the architecture (`PretrainedModel.architecture(of:)`).
    func testTheRegistryLoadsEachFamilysArchitecture() throws {
        XCTAssertTrue(try PretrainedModel.model(.folder(Self.folder("internlm"))) is LlamaForCausalLM)
        for variant in Self.variants.dropFirst() {
            XCTAssertTrue(try PretrainedModel.model(.folder(Self.folder(variant))) is InternLM2ForCausalLM, variant)
        }
    }

    // MARK: - Decoding

    /// Greedy decoding with the KV cache picks the same tokens as full forward passes, and every cached step's
    /// logits equal the full forward pass's over the whole sequence — past max_position_embeddings in the dynamic
    /// NTK variants (the cache's rotary base is that of its capacity, the full pass's that of its length: the same
    /// sequence length here).
    func testGreedyDecodingWithTheKVCacheEqualsDecodingWithout() throws {
        try checkGreedyDecodingWithTheKVCacheEqualsDecodingWithout()
    }

    // MARK: - Saving

    /// A saved model is a folder in the family's own layout: config.json with the family's fields, the same tensor
    /// names, wqkv written packed with the fixture's bytes; it reloads to identical logits.
    func testSaveWritesTheFamilysLayoutAndReloadsIdentically() throws {
        for variant in Self.variants {
            let model = try PretrainedModel.model(.folder(Self.folder(variant)))
            let folder = try temporaryFolder(for: self)
            try model.save(to: folder, dtype: .float32)

            let original = try CheckpointFolder(url: Self.folder(variant)), saved = try CheckpointFolder(url: folder)
            XCTAssertEqual(saved.names, original.names, variant)
            for name in original.names {
                XCTAssertEqual(try saved.tensor(name).floats(), try original.tensor(name).floats(), "\(variant): \(name)")
            }
            if variant != "internlm" {
                let wqkv = "model.layers.0.attention.wqkv.weight"
                XCTAssertEqual(saved.shape(of: wqkv), original.shape(of: wqkv))
                XCTAssertEqual(try Self.bytes(of: wqkv, in: saved), try Self.bytes(of: wqkv, in: original), variant)
            }

            let written = try Self.json(folder.appendingPathComponent("config.json"))
            let fixture = try Self.json(Self.folder(variant).appendingPathComponent("config.json"))
            XCTAssertEqual(written["model_type"] as? String, fixture["model_type"] as? String, variant)
            XCTAssertEqual(written["architectures"] as? [String], fixture["architectures"] as? [String], variant)
            XCTAssertEqual(written["bias"] as? Bool, fixture["bias"] as? Bool, variant)
            for key in ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size",
                        "max_position_embeddings"] {
                XCTAssertEqual(written[key] as? Int, fixture[key] as? Int, "\(variant): \(key)")
            }
            if variant == "internlm" {
                let rotary = try XCTUnwrap(written["rotary"] as? [String: Any])
                XCTAssertEqual(rotary["type"] as? String, "dynamic")
                XCTAssertEqual(rotary["base"] as? Double, 10_000)
                for key in ["rope_theta", "rope_scaling", "attention_bias", "num_key_value_heads", "head_dim"] {
                    XCTAssertNil(written[key], "internlm: \(key)")
                }
            } else {
                XCTAssertEqual(written["num_key_value_heads"] as? Int, fixture["num_key_value_heads"] as? Int, variant)
                XCTAssertEqual(written["rope_theta"] as? Double, (fixture["rope_theta"] as? NSNumber)?.doubleValue, variant)
                if let scaling = fixture["rope_scaling"] as? [String: Any] {
                    // Exactly {type, factor}: the remote code's validation rejects any other field.
                    let writtenScaling = try XCTUnwrap(written["rope_scaling"] as? [String: Any], variant)
                    XCTAssertEqual(Set(writtenScaling.keys), ["type", "factor"], variant)
                    XCTAssertEqual(writtenScaling["type"] as? String, scaling["type"] as? String, variant)
                    XCTAssertEqual(writtenScaling["factor"] as? Double, scaling["factor"] as? Double, variant)
                } else {
                    XCTAssertTrue(written["rope_scaling"] is NSNull, variant)
                }
                XCTAssertNil(written["attention_bias"], variant)
            }

            let reloaded = try PretrainedModel.model(.folder(folder))
            XCTAssertEqual(reloaded.configuration, { var c = model.configuration; c.torchDType = "float32"; return c }(), variant)
            let ids = Tensor(ints: (0..<24).map { ($0 * 37 + 5) % 128 }, shape: [2, 12])
            let (a, b) = withNoGrad { (reloaded(ids).floats(), model(ids).floats()) }
            XCTAssertEqual(a, b, variant)
        }
    }

    // MARK: - Adapters and quantization by the family's names

    /// LoRA's `all-linear` takes every block projection by InternLM2's names and leaves its output projection
    /// (`output`, not `lm_head`) alone, as PEFT does; the names select the packed wqkv as one layer.
    func testLoRASelectsInternLM2sOwnModules() throws {
        let model = try PretrainedModel.model(.folder(Self.folder("internlm2")))
        try model.addAdapter(.lora(LoRAConfiguration(rank: 4, alpha: 8, targetModules: .pattern("all-linear"))), seed: 1)
        let paths = Set(model.loraAdapters.map(\.path))
        XCTAssertEqual(paths, Set((0..<2).flatMap { i in
            ["attention.wqkv", "attention.wo", "feed_forward.w1", "feed_forward.w3", "feed_forward.w2"].map { "model.layers.\(i).\($0)" }
        }))
        let named = try PretrainedModel.model(.folder(Self.folder("internlm2")))
        try named.addAdapter(.lora(LoRAConfiguration(rank: 4, alpha: 8, targetModules: .names(["wqkv", "wo"]))), seed: 1)
        XCTAssertEqual(named.loraAdapters.map(\.path), ["model.layers.0.attention.wqkv", "model.layers.0.attention.wo",
                                                        "model.layers.1.attention.wqkv", "model.layers.1.attention.wo"])
    }

    /// `quantize: q8_0` quantizes InternLM2's block projections (wqkv, wo, w1, w3, w2) and keeps the embedding and
    /// `output` dense; its logits equal a dense model's holding the blocks' dequantized values.
    func testQuantizingAtLoadTakesInternLM2sBlockProjections() throws {
        let dense = try PretrainedModel.model(.folder(Self.folder("internlm2_linear")))
        let quantized = try PretrainedModel.model(.folder(Self.folder("internlm2_linear")), quantization: .quantize(.q8_0))
        XCTAssertEqual(quantized.namedLinearLayers.count, 10)   // tied: no output layer
        for ((path, q), (_, d)) in zip(quantized.namedLinearLayers, dense.namedLinearLayers) {
            let blocks = try XCTUnwrap(q.quantizedWeight, path)
            try XCTUnwrap(d.denseWeight, path).assignValues(from: blocks.dequantized())
        }
        XCTAssertNil(quantized.embedTokens.quantizedWeight)
        let ids = Tensor(ints: (0..<24).map { ($0 * 37 + 5) % 128 }, shape: [2, 12])
        let (a, b) = withNoGrad { (quantized(ids).floats(), dense(ids).floats()) }
        let difference = zip(a, b).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(difference / b.map(abs).max()!, 1e-5)
    }

    /// Configs in the form the hub's internlm-chat-7b and internlm2-chat-7b carry (remote-code fields, auto_map,
    /// fields Collie does not use) decode to the models they describe.
    func testConfigsInThePublishedFormDecode() throws {
        let v1 = """
        {"architectures": ["InternLMForCausalLM"], "auto_map": {"AutoConfig": "configuration_internlm.InternLMConfig"},
         "bias": true, "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 4096,
         "initializer_range": 0.02, "intermediate_size": 11008, "max_position_embeddings": 2048, "model_type": "internlm",
         "num_attention_heads": 32, "num_hidden_layers": 32, "pad_token_id": 0, "rms_norm_eps": 1e-06,
         "rotary": {"base": 10000, "type": "dynamic"}, "tie_word_embeddings": false, "torch_dtype": "float16",
         "transformers_version": "4.33.1", "use_cache": true, "vocab_size": 103168}
        """
        let c1 = try JSONDecoder().decode(LlamaConfiguration.self, from: Data(v1.utf8))
        XCTAssertEqual(c1.modelType, .internlm)
        XCTAssertEqual([c1.attentionHeads, c1.keyValueHeads, c1.resolvedHeadDimension], [32, 32, 128])
        XCTAssertTrue(c1.attentionBias && c1.hasQKVBias && c1.hasOutputBias)
        XCTAssertFalse(c1.mlpBias)
        XCTAssertEqual(c1.ropeTheta, 10_000)
        XCTAssertEqual(c1.ropeScaling, .dynamic(factor: 1))
        XCTAssertTrue(PretrainedModel.architecture(of: c1) == LlamaForCausalLM.self)

        let v2 = """
        {"architectures": ["InternLM2ForCausalLM"], "attn_implementation": "eager",
         "auto_map": {"AutoConfig": "configuration_internlm2.InternLM2Config"}, "bias": false, "bos_token_id": 1,
         "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
         "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "internlm2",
         "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "pad_token_id": 2,
         "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": {"type": "dynamic", "factor": 2.0},
         "rope_theta": 1000000, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "use_cache": true,
         "vocab_size": 92544}
        """
        let c2 = try JSONDecoder().decode(LlamaConfiguration.self, from: Data(v2.utf8))
        XCTAssertEqual(c2.modelType, .internlm2)
        XCTAssertEqual([c2.attentionHeads, c2.keyValueHeads, c2.resolvedHeadDimension], [32, 8, 128])
        XCTAssertFalse(c2.attentionBias)
        XCTAssertEqual(c2.ropeTheta, 1_000_000)
        XCTAssertEqual(c2.ropeScaling, .dynamic(factor: 2))
        XCTAssertEqual(c2.rmsNormEpsilon, 1e-5)
        XCTAssertTrue(PretrainedModel.architecture(of: c2) == InternLM2ForCausalLM.self)
        let wqkv = InternLM2ForCausalLM.parameterShapes(for: c2).first { $0.key == "model.layers.0.attention.wqkv.weight" }
        XCTAssertEqual(wqkv?.shape, [(32 + 2 * 8) * 128, 4096])
    }

    // MARK: - Errors

    func testHeadsThatDoNotDivideAreAnErrorNamingTheField() throws {
        let folder = try temporaryCopy(of: "internlm2")
        try editConfig(in: folder) { $0["num_key_value_heads"] = 3 }
        XCTAssertThrowsError(try PretrainedModel.model(.folder(folder))) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("config.json"), message)
            XCTAssertTrue(message.contains("num_attention_heads (4) must be a positive multiple of num_key_value_heads (3)"), message)
        }
        let v1 = try temporaryCopy(of: "internlm")
        try editConfig(in: v1) { $0["num_attention_heads"] = 5 }
        XCTAssertThrowsError(try PretrainedModel.model(.folder(v1))) { error in
            XCTAssertTrue("\(error)".contains("hidden_size (64) is not divisible by num_attention_heads (5)"), "\(error)")
        }
    }

    func testUnsupportedRotaryTypesAreErrorsNamingTheField() throws {
        let v1 = try temporaryCopy(of: "internlm")
        try editConfig(in: v1) { $0["rotary"] = ["base": 10000, "type": "yarn"] }
        XCTAssertThrowsError(try PretrainedModel.model(.folder(v1))) { error in
            XCTAssertTrue("\(error)".contains("rotary.type 'yarn'"), "\(error)")
        }
        let v2 = try temporaryCopy(of: "internlm2")
        try editConfig(in: v2) { $0["rope_scaling"] = ["type": "llama3", "factor": 8.0] }
        XCTAssertThrowsError(try PretrainedModel.model(.folder(v2))) { error in
            XCTAssertTrue("\(error)".contains("rope_scaling.type 'llama3'"), "\(error)")
        }
    }

    func testLLaMAKeysInAnInternLM2FolderAreAnErrorListingThem() throws {
        let folder = try temporaryCopy(of: "internlm2")
        let url = folder.appendingPathComponent("model.safetensors")
        let file = try SafeTensorsFile(url: url)
        let tensors = try file.names.sorted().map { name in
            (name.replacingOccurrences(of: "attention.wo", with: "self_attn.o_proj"), try file.tensor(name).contiguousCopy())
        }
        try SafeTensorsWriter.write(tensors, to: url)
        XCTAssertThrowsError(try PretrainedModel.model(.folder(folder))) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("missing: model.layers.0.attention.wo.weight"), message)
            XCTAssertTrue(message.contains("unexpected: model.layers.0.self_attn.o_proj.weight"), message)
        }
    }
}
