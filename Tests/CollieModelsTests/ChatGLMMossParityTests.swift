import CollieIO
import CollieTestSupport
import Foundation
import XCTest
@testable import CollieEngine
@testable import CollieModels

/// ChatGLM2/ChatGLM3 and MOSS against their published remote code's arithmetic: tiny random models built by
/// scripts/fixtures/make_glm_moss_fixtures.py (a plain-PyTorch re-creation of modeling_chatglm.py and
/// modeling_moss.py, cross-checked there against transformers' GlmForCausalLM and CodeGenForCausalLM), loaded through
/// the production loader from each family's own checkpoint layout and config.json.
///
/// Tolerances as the LLaMA parity tests (float32 on both sides, relative to the largest magnitude of the expected
/// tensor): logits 1e-5, loss 1e-5, every gradient 1e-4. The tests print the largest differences they see.
final class ChatGLMMossParityTests: XCTestCase, FamilyParityFixtures {
    static let chatGLMVariants = ["chatglm2", "chatglm3_mha", "chatglm_mqa"]
    static let mossVariants = ["moss", "moss_full_rotary"]
    static var variants: [String] { chatGLMVariants + mossVariants }

    // MARK: - Logits, loss and gradients

    func testGroupedChatGLM2WithQKVBiasMatchesTheReference() throws {
        let model = try checkForwardAndBackward("chatglm2", as: ChatGLMForConditionalGeneration.self)
        let c = model.configuration
        XCTAssertEqual([c.attentionHeads, c.keyValueHeads, c.resolvedHeadDimension, c.rotaryDimension], [4, 2, 16, 8])
        XCTAssertEqual(c.chatGLM, ChatGLMSettings(multiQueryAttention: true))
        XCTAssertNotNil(model.layers[0].selfAttention.queryKeyValue.bias)
        XCTAssertNil(model.layers[0].selfAttention.dense.bias)
        XCTAssertEqual(model.layers[0].selfAttention.queryKeyValue.outFeatures, (4 + 2 * 2) * 16)
        XCTAssertEqual(c.inverseFrequencies().count, 4)   // half of each 16-wide head rotates: 4 pairs
    }

    func testPerHeadPackedChatGLM3WithLayerNormAndEveryBiasMatchesTheReference() throws {
        let model = try checkForwardAndBackward("chatglm3_mha", as: ChatGLMForConditionalGeneration.self)
        let c = model.configuration
        XCTAssertEqual(c.chatGLM, ChatGLMSettings(multiQueryAttention: false, residualFromNormalized: true, rmsNorm: false))
        XCTAssertEqual([c.keyValueHeads, c.resolvedHeadDimension], [4, 24])   // kv_channels · heads = 96 ≠ hidden 64
        XCTAssertEqual(c.ropeTheta, 40_000)
        XCTAssertNotNil(model.layers[1].mlp.dense4HToH.bias)
        XCTAssertNotNil(model.layers[1].inputLayernorm.layer?.bias)
    }

    func testMultiQueryChatGLMWithoutFinalNormMatchesTheReference() throws {
        let model = try checkForwardAndBackward("chatglm_mqa", as: ChatGLMForConditionalGeneration.self)
        XCTAssertEqual(model.configuration.keyValueHeads, 1)
        XCTAssertNil(model.finalLayernorm)
        XCTAssertNil(model.layers[0].selfAttention.queryKeyValue.bias)
    }

    func testMossWithPartialRotaryMatchesTheReference() throws {
        let model = try checkForwardAndBackward("moss", as: MossForCausalLM.self)
        let c = model.configuration
        XCTAssertEqual([c.attentionHeads, c.resolvedHeadDimension, c.rotaryDimension, c.intermediateSize], [4, 16, 8, 96])
        XCTAssertNotNil(model.lmHead.bias)
        XCTAssertNil(model.layers[0].attn.qkvProj.bias)
        XCTAssertNotNil(model.layers[0].mlp.fcIn.bias)
    }

    func testMossWithWholeHeadRotaryMatchesTheReference() throws {
        let model = try checkForwardAndBackward("moss_full_rotary", as: MossForCausalLM.self)
        let c = model.configuration
        XCTAssertEqual([c.attentionHeads, c.resolvedHeadDimension, c.rotaryDimension, c.intermediateSize], [8, 8, 8, 256])
    }

    /// config.json's model_type picks the architecture (`PretrainedModel.architecture(of:)`).
    func testTheRegistryLoadsEachFamilysArchitecture() throws {
        for variant in Self.chatGLMVariants {
            XCTAssertTrue(try PretrainedModel.model(.folder(Self.folder(variant))) is ChatGLMForConditionalGeneration, variant)
        }
        for variant in Self.mossVariants {
            XCTAssertTrue(try PretrainedModel.model(.folder(Self.folder(variant))) is MossForCausalLM, variant)
        }
    }

    // MARK: - Decoding

    /// Greedy decoding with the KV cache picks the same tokens as full forward passes, and every cached step's
    /// logits equal the full forward pass's.
    func testGreedyDecodingWithTheKVCacheEqualsDecodingWithout() throws {
        try checkGreedyDecodingWithTheKVCacheEqualsDecodingWithout()
    }

    // MARK: - The paths around the blocks

    /// What the protocol's extensions do for every architecture works for these (and ChatGLM-6B): the parameters lie unit after
    /// unit (ZeRO-3 gathers them per unit), activation checkpointing gives bit-identical loss and gradients, and
    /// bf16-stored weights compute as their float32 values.
    func testCheckpointingUnitsAndBFloat16WeightsWorkForEachFamily() throws {
        let ids = Tensor(ints: (0..<24).map { ($0 * 37 + 5) % 128 }, shape: [2, 12])
        for variant in Self.variants + ["chatglm6b"] {
            let model = try PretrainedModel.model(.folder(Self.folder(variant)))
            XCTAssertEqual(model.parameterUnits?.count, model.blockCount + 2, variant)

            func lossAndGradients(_ m: any CausalLanguageModel) -> (Float, [[Float]]) {
                let loss = m.loss(ids: ids, labels: ids)
                loss.backward()
                defer { for p in m.parameters { p.grad = nil } }
                return (loss.item, m.parameters.map { $0.grad!.floats() })
            }
            let plain = lossAndGradients(model)
            model.activationCheckpointing = true
            let recomputed = lossAndGradients(model)
            model.activationCheckpointing = false
            XCTAssertEqual(plain.0, recomputed.0, variant)
            XCTAssertEqual(plain.1, recomputed.1, variant)

            let half = try PretrainedModel.model(.folder(Self.folder(variant)))
            _ = ParameterBuffer(half.parameters, dtype: .bfloat16)
            for (p, h) in zip(model.parameters, half.parameters) {
                p.pointer(as: Float.self).update(from: h.floats(), count: p.count)   // the bf16-rounded values
            }
            let (a, b) = withNoGrad { (half(ids).floats(), model(ids).floats()) }
            XCTAssertEqual(a, b, variant)
        }
    }

    // MARK: - Saving

    /// A saved model is a folder in the family's own layout: config.json with the family's fields, the same tensor
    /// names (ChatGLM's computed inv_freq buffer is not written), the packed projections with the fixture's bytes;
    /// it reloads to an equal configuration and identical logits.
    func testSaveWritesTheFamilysLayoutAndReloadsIdentically() throws {
        for variant in Self.variants {
            let model = try PretrainedModel.model(.folder(Self.folder(variant)))
            let folder = try temporaryFolder(for: self)
            try model.save(to: folder, dtype: .float32)

            let original = try CheckpointFolder(url: Self.folder(variant)), saved = try CheckpointFolder(url: folder)
            XCTAssertEqual(saved.names, original.names.subtracting(["transformer.rotary_pos_emb.inv_freq"]), variant)
            for name in saved.names {
                XCTAssertEqual(try Self.bytes(of: name, in: saved), try Self.bytes(of: name, in: original), "\(variant): \(name)")
            }

            let written = try Self.json(folder.appendingPathComponent("config.json"))
            let fixture = try Self.json(Self.folder(variant).appendingPathComponent("config.json"))
            let fields = variant.hasPrefix("chatglm")
                ? ["model_type", "num_layers", "padded_vocab_size", "hidden_size", "ffn_hidden_size", "kv_channels",
                   "num_attention_heads", "seq_length", "layernorm_epsilon", "rmsnorm",
                   "apply_residual_connection_post_layernorm", "post_layer_norm", "add_bias_linear", "add_qkv_bias",
                   "multi_query_attention", "original_rope", "tie_word_embeddings", "quantization_bit", "eos_token_id",
                   "pad_token_id"]
                : ["model_type", "architectures", "vocab_size", "n_positions", "n_ctx", "n_embd", "n_layer", "n_head",
                   "rotary_dim", "activation_function", "layer_norm_epsilon", "tie_word_embeddings", "wbits",
                   "bos_token_id", "eos_token_id"]
            for key in fields {
                XCTAssertEqual(written[key].map { "\($0)" }, fixture[key].map { "\($0)" }, "\(variant): \(key)")
            }
            if variant.hasPrefix("chatglm") {
                XCTAssertEqual((written["rope_ratio"] as? NSNumber)?.doubleValue,
                               (fixture["rope_ratio"] as? NSNumber)?.doubleValue ?? 1, variant)
                if fixture["multi_query_attention"] as? Bool == true {
                    XCTAssertEqual(written["multi_query_group_num"] as? Int, fixture["multi_query_group_num"] as? Int, variant)
                }
                XCTAssertNil(written["num_hidden_layers"], variant)
            } else {
                XCTAssertEqual(written["n_inner"] as? Int, (fixture["n_inner"] as? Int) ?? 4 * 64, variant)
                XCTAssertNil(written["hidden_size"], variant)
            }

            let reloaded = try PretrainedModel.model(.folder(folder))
            XCTAssertEqual(reloaded.configuration, { var c = model.configuration; c.torchDType = "float32"; return c }(), variant)
            let ids = Tensor(ints: (0..<24).map { ($0 * 37 + 5) % 128 }, shape: [2, 12])
            let (a, b) = withNoGrad { (reloaded(ids).floats(), model(ids).floats()) }
            XCTAssertEqual(a, b, variant)
        }
    }

    // MARK: - Adapters and quantization by the family's names

    /// LoRA's `all-linear` takes every block projection by ChatGLM's names (never `transformer.output_layer`), and
    /// explicit names select the packed query_key_value and `dense` (not dense_h_to_4h) as PEFT's suffix match does.
    func testLoRASelectsChatGLMsOwnModules() throws {
        let model = try PretrainedModel.model(.folder(Self.folder("chatglm2")))
        try model.addAdapter(.lora(LoRAConfiguration(rank: 4, alpha: 8, targetModules: .pattern("all-linear"))), seed: 1)
        XCTAssertEqual(Set(model.loraAdapters.map(\.path)), Set((0..<2).flatMap { i in
            ["self_attention.query_key_value", "self_attention.dense", "mlp.dense_h_to_4h", "mlp.dense_4h_to_h"]
                .map { "transformer.encoder.layers.\(i).\($0)" }
        }))
        let named = try PretrainedModel.model(.folder(Self.folder("chatglm2")))
        try named.addAdapter(.lora(LoRAConfiguration(rank: 4, alpha: 8, targetModules: .names(["query_key_value", "dense"]))), seed: 1)
        XCTAssertEqual(named.loraAdapters.map(\.path), (0..<2).flatMap { i in
            ["self_attention.query_key_value", "self_attention.dense"].map { "transformer.encoder.layers.\(i).\($0)" }
        })
        try checkAdapterTrainsAndRoundTrips(named, variant: "chatglm2")
    }

    /// The same for MOSS's names: qkv_proj, out_proj, fc_in, fc_out; lm_head left alone by `all-linear`.
    func testLoRASelectsMossOwnModules() throws {
        let model = try PretrainedModel.model(.folder(Self.folder("moss")))
        try model.addAdapter(.lora(LoRAConfiguration(rank: 4, alpha: 8, targetModules: .pattern("all-linear"))), seed: 1)
        XCTAssertEqual(Set(model.loraAdapters.map(\.path)), Set((0..<2).flatMap { i in
            ["attn.qkv_proj", "attn.out_proj", "mlp.fc_in", "mlp.fc_out"].map { "transformer.h.\(i).\($0)" }
        }))
        let named = try PretrainedModel.model(.folder(Self.folder("moss")))
        try named.addAdapter(.lora(LoRAConfiguration(rank: 4, alpha: 8, targetModules: .names(["qkv_proj", "fc_out"]))), seed: 1)
        XCTAssertEqual(named.loraAdapters.map(\.path), (0..<2).flatMap { i in
            ["attn.qkv_proj", "mlp.fc_out"].map { "transformer.h.\(i).\($0)" }
        })
        try checkAdapterTrainsAndRoundTrips(named, variant: "moss")
    }

    /// `quantize: q8_0` quantizes the families' block projections (ChatGLM-6B's too) and keeps the embedding and
    /// output layer dense;
    /// the logits equal a dense model's holding the blocks' dequantized values.
    func testQuantizingAtLoadTakesTheBlockProjections() throws {
        for variant in ["chatglm2", "chatglm6b", "moss"] {
            let dense = try PretrainedModel.model(.folder(Self.folder(variant)))
            let quantized = try PretrainedModel.model(.folder(Self.folder(variant)), quantization: .quantize(.q8_0))
            let blockLayers = quantized.namedLinearLayers.filter { $0.path != quantized.configuration.outputProjectionPath }
            XCTAssertEqual(blockLayers.count, 8, variant)
            for ((path, q), (_, d)) in zip(quantized.namedLinearLayers, dense.namedLinearLayers) {
                if path == quantized.configuration.outputProjectionPath { XCTAssertNil(q.quantizedWeight); continue }
                let blocks = try XCTUnwrap(q.quantizedWeight, path)
                try XCTUnwrap(d.denseWeight, path).assignValues(from: blocks.dequantized())
            }
            let ids = Tensor(ints: (0..<24).map { ($0 * 37 + 5) % 128 }, shape: [2, 12])
            let (a, b) = withNoGrad { (quantized(ids).floats(), dense(ids).floats()) }
            let difference = zip(a, b).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(difference / b.map(abs).max()!, 1e-5, variant)
        }
    }

    /// Configs in the form the hub's chatglm2-6b, chatglm3-6b-32k and moss-moon-003-sft carry decode to the models
    /// they describe.
    func testConfigsInThePublishedFormDecode() throws {
        let glm = """
        {"_name_or_path": "THUDM/chatglm3-6b-32k", "model_type": "chatglm", "architectures": ["ChatGLMModel"],
         "auto_map": {"AutoConfig": "configuration_chatglm.ChatGLMConfig"}, "add_bias_linear": false,
         "add_qkv_bias": true, "apply_query_key_layer_scaling": true, "apply_residual_connection_post_layernorm": false,
         "attention_dropout": 0.0, "attention_softmax_in_fp32": true, "bias_dropout_fusion": true,
         "ffn_hidden_size": 13696, "fp32_residual_connection": false, "hidden_dropout": 0.0, "hidden_size": 4096,
         "kv_channels": 128, "layernorm_epsilon": 1e-05, "rope_ratio": 50, "multi_query_attention": true,
         "multi_query_group_num": 2, "num_attention_heads": 32, "num_layers": 28, "original_rope": true,
         "padded_vocab_size": 65024, "post_layer_norm": true, "rmsnorm": true, "seq_length": 32768,
         "use_cache": true, "torch_dtype": "float16", "transformers_version": "4.30.2", "tie_word_embeddings": false,
         "eos_token_id": 2, "pad_token_id": 0}
        """
        let c = try JSONDecoder().decode(LlamaConfiguration.self, from: Data(glm.utf8))
        XCTAssertEqual(c.modelType, .chatglm)
        XCTAssertEqual([c.attentionHeads, c.keyValueHeads, c.resolvedHeadDimension, c.rotaryDimension], [32, 2, 128, 64])
        XCTAssertEqual(c.ropeTheta, 500_000)
        XCTAssertEqual(c.maxPositionEmbeddings, 32768)
        XCTAssertTrue(c.hasQKVBias)
        XCTAssertTrue(PretrainedModel.architecture(of: c) == ChatGLMForConditionalGeneration.self)
        let qkv = ChatGLMForConditionalGeneration.parameterShapes(for: c)
            .first { $0.key == "transformer.encoder.layers.0.self_attention.query_key_value.weight" }
        XCTAssertEqual(qkv?.shape, [4608, 4096])
        XCTAssertEqual(ChatGLMForConditionalGeneration.parameterShapes(for: c).reduce(0) { $0 + $1.shape.reduce(1, *) },
                       6_243_584_000)   // ChatGLM2/3-6B's parameter count

        let moss = """
        {"_name_or_path": "fnlp/moss-moon-003-sft", "activation_function": "gelu_new",
         "architectures": ["MossForCausalLM"], "attn_pdrop": 0.0, "auto_map": {"AutoConfig": "configuration_moss.MossConfig"},
         "bos_token_id": 106028, "embd_pdrop": 0.0, "eos_token_id": 106068, "gradient_checkpointing": false,
         "initializer_range": 0.02, "layer_norm_epsilon": 1e-05, "model_type": "moss", "n_ctx": 2048, "n_embd": 6144,
         "n_head": 24, "n_inner": null, "n_layer": 34, "n_positions": 2048, "resid_pdrop": 0.0, "rotary_dim": 64,
         "scale_attn_weights": true, "summary_activation": null, "summary_first_dropout": 0.1,
         "summary_proj_to_labels": true, "summary_type": "cls_index", "summary_use_proj": true,
         "tie_word_embeddings": false, "tokenizer_class": "GPT2Tokenizer", "torch_dtype": "float16",
         "transformers_version": "4.25.1", "use_cache": true, "vocab_size": 107008}
        """
        let m = try JSONDecoder().decode(LlamaConfiguration.self, from: Data(moss.utf8))
        XCTAssertEqual(m.modelType, .moss)
        XCTAssertEqual([m.attentionHeads, m.resolvedHeadDimension, m.rotaryDimension, m.intermediateSize], [24, 256, 64, 24576])
        XCTAssertEqual(m.eosTokenIDs, [106068])
        XCTAssertTrue(PretrainedModel.architecture(of: m) == MossForCausalLM.self)
        XCTAssertEqual(MossForCausalLM.parameterShapes(for: m).reduce(0) { $0 + $1.shape.reduce(1, *) },
                       16_717_980_160)   // transformers CodeGenForCausalLM of this config (meta device): 16.7B
    }

    // MARK: - Errors

    func testBadChatGLMConfigsAreErrorsNamingTheField() throws {
        let cases: [(edit: (inout [String: Any]) -> Void, message: String)] = [
            ({ $0["multi_query_group_num"] = 3 }, "num_attention_heads (4) must be a multiple of multi_query_group_num (3)"),
            ({ $0["kv_channels"] = 18 }, "kv_channels must be a positive multiple of 4"),
            ({ $0.removeValue(forKey: "num_layers") }, "missing key 'num_layers'"),
            ({ $0["ffn_hidden_size"] = 0 }, "ffn_hidden_size must be in 1..."),
            ({ $0["rope_ratio"] = -1 }, "rope_ratio must be a finite number > 0"),
            ({ $0["pre_seq_len"] = 8 }, "pre_seq_len (8)"),
            ({ $0["layernorm_epsilon"] = -1 }, "layernorm_epsilon must be a finite number >= 0"),
        ]
        for (edit, message) in cases {
            let folder = try temporaryCopy(of: "chatglm2")
            try editConfig(in: folder, edit)
            XCTAssertThrowsError(try PretrainedModel.model(.folder(folder))) { error in
                XCTAssertTrue("\(error)".contains("config.json"), "\(error)")
                XCTAssertTrue("\(error)".contains(message), "\(error)")
            }
        }
    }

    func testBadMossConfigsAreErrorsNamingTheField() throws {
        let cases: [(edit: (inout [String: Any]) -> Void, message: String)] = [
            ({ $0["n_head"] = 2 }, "n_head (2) must divide n_embd (64) and be a multiple of 4"),
            ({ $0["rotary_dim"] = 18 }, "rotary_dim must be even and in 2...16"),
            ({ $0["rotary_dim"] = NSNull() }, "rotary_dim must be given"),
            ({ $0["activation_function"] = "relu" }, "activation_function 'relu'"),
            ({ $0["wbits"] = 4 }, "wbits 4"),
            ({ $0["layer_norm_epsilon"] = -1 }, "layer_norm_epsilon must be a finite number >= 0"),
            ({ $0.removeValue(forKey: "n_embd") }, "missing key 'n_embd'"),
        ]
        for (edit, message) in cases {
            let folder = try temporaryCopy(of: "moss")
            try editConfig(in: folder, edit)
            XCTAssertThrowsError(try PretrainedModel.model(.folder(folder))) { error in
                XCTAssertTrue("\(error)".contains(message), "\(error)")
            }
        }
    }

    func testLLaMAKeysInAChatGLMFolderAreAnErrorListingThem() throws {
        let folder = try temporaryCopy(of: "chatglm2")
        let url = folder.appendingPathComponent("model.safetensors")
        let file = try SafeTensorsFile(url: url)
        let tensors = try file.names.sorted().map { name in
            (name.replacingOccurrences(of: "self_attention.dense", with: "self_attn.o_proj"), try file.tensor(name).contiguousCopy())
        }
        try SafeTensorsWriter.write(tensors, to: url)
        XCTAssertThrowsError(try PretrainedModel.model(.folder(folder))) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("missing: transformer.encoder.layers.0.self_attention.dense.weight"), message)
            XCTAssertTrue(message.contains("unexpected: transformer.encoder.layers.0.self_attn.o_proj.weight"), message)
        }
    }

    // MARK: - Support

    /// An adapter on the family's layers gets gradients (the base weights' stay unused by an optimizer over the
    /// adapter), and saved in PEFT's format it loads onto a fresh model of the same folder with identical logits.
    private func checkAdapterTrainsAndRoundTrips(_ model: any CausalLanguageModel, variant: String) throws {
        let ids = Tensor(ints: (0..<24).map { ($0 * 37 + 5) % 128 }, shape: [2, 12])
        for (path, adapter) in model.loraAdapters {
            adapter.b.assignValues(from: Tensor.full(adapter.b.shape, 0.01))   // PEFT starts B at 0: make it matter
            _ = path
        }
        let loss = model.loss(ids: ids, labels: ids)
        loss.backward()
        for (path, adapter) in model.loraAdapters {
            XCTAssertNotNil(adapter.a.grad, path)
            XCTAssertNotNil(adapter.b.grad, path)
        }
        let folder = try temporaryFolder(for: self)
        try model.saveAdapter(to: folder)
        let fresh = try PretrainedModel.model(.folder(Self.folder(variant)), adapter: .folder(folder))
        XCTAssertEqual(fresh.loraAdapters.map(\.path), model.loraAdapters.map(\.path))
        let (a, b) = withNoGrad { (fresh(ids).floats(), model(ids).floats()) }
        XCTAssertEqual(a, b, variant)
        let base = try PretrainedModel.model(.folder(Self.folder(variant)))
        XCTAssertNotEqual(withNoGrad { base(ids).floats() }, b, "the adapter changes the logits")
    }

}
