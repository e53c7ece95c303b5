import CollieIO
import CollieTestSupport
import Foundation
import XCTest
@testable import CollieEngine
@testable import CollieModels

/// ChatGLM-6B (GLM-6B, ChatGLM v1) against its published remote code's arithmetic: a tiny random model built by
/// scripts/fixtures/make_chatglm6b_fixtures.py (a plain-PyTorch re-creation of chatglm-6b's modeling_chatglm.py),
/// loaded through the production loader from the checkpoint's own layout and config.json.
///
/// The fixture's two rows are prompts in GLM's form — row 0 ends in [gMASK] sop, row 1 has [MASK] inside its context —
/// followed by an answer; labels are -100 through sop. Tolerances as the LLaMA parity tests (float32 on both sides,
/// relative to the largest magnitude of the expected tensor): logits 1e-5, loss 1e-5, every gradient 1e-4.
final class ChatGLM6BParityTests: XCTestCase, FamilyParityFixtures {
    static let variants = ["chatglm6b"]
    /// The fixture's special tokens (config.json): [MASK], [gMASK], sop (bos), eop (eos).
    static let (mask, gmask, sop, eop) = (140, 141, 144, 145)

    static func model() throws -> ChatGLM6BForConditionalGeneration {
        try XCTUnwrap(try PretrainedModel.model(.folder(folder("chatglm6b"))) as? ChatGLM6BForConditionalGeneration)
    }

    // MARK: - Logits, loss and gradients

    func testChatGLM6BMatchesTheReference() throws {
        let model = try checkForwardAndBackward("chatglm6b", as: ChatGLM6BForConditionalGeneration.self)
        let c = model.configuration
        XCTAssertEqual([c.attentionHeads, c.keyValueHeads, c.resolvedHeadDimension, c.rotaryDimension, c.intermediateSize],
                       [4, 4, 16, 8, 96])
        XCTAssertEqual(c.chatGLM6B, ChatGLM6BSettings(maskTokenID: 140, gmaskTokenID: 141))
        XCTAssertNil(c.chatGLM)
        XCTAssertEqual([c.bosTokenID, c.padTokenID], [144, 3])
        XCTAssertEqual(c.eosTokenIDs, [145])
        XCTAssertEqual(model.inverseFrequencies.count, 4)   // each 8-wide half of a head: 4 pairs
        XCTAssertNotNil(model.layers[0].attention.queryKeyValue.bias)
        XCTAssertNotNil(model.layers[1].mlp.dense4HToH.bias)
        XCTAssertNil(model.lmHead.bias)
    }

    /// The positions the model reads from the ids are the remote code's position_ids [B, 2, T]: 0, 1, … over the
    /// context, then the mask's index; block positions 0 over the context, then 1, 2, ….
    func testPositionsFromTheIDsAreTheRemoteCodes() throws {
        let model = try Self.model()
        let expected = try SafeTensorsFile(url: Self.folder("chatglm6b").appendingPathComponent("expected.safetensors"))
        let positions = try XCTUnwrap(model.positions(of: try expected.tensor("input_ids").contiguousCopy(), keyPaddingMask: nil))
        XCTAssertEqual(positions.shape, [2, 2, 12])
        XCTAssertEqual(positions.ints(), try expected.tensor("position_ids").contiguousCopy().ints())

        let row = ChatGLM6BPositions([7, 8, Self.gmask, Self.sop, 9, 10], settings: model.configuration.chatGLM6B!, sop: Self.sop)
        XCTAssertEqual(row.positions, [0, 1, 2, 2, 2, 2])
        XCTAssertEqual(row.blockPositions, [0, 0, 0, 1, 2, 3])
        let plain = ChatGLM6BPositions([7, 8, 9], settings: model.configuration.chatGLM6B!, sop: Self.sop)
        XCTAssertEqual(plain.positions, [0, 0, 0], "a row without sop is all generated span")
        XCTAssertEqual(plain.blockPositions, [1, 2, 3])
    }

    /// Padding takes no position and is never attended: each row of a padded batch (right-padded, then
    /// left-padded) has the logits it has alone (within 1e-5 of their largest magnitude).
    func testPaddedRowsHaveTheLogitsTheyHaveAlone() throws {
        let model = try Self.model()
        let short = [11, 12, Self.gmask, Self.sop, 13, 14], long = [21, Self.mask, 22, 23, 24, Self.sop, 25, 26, 27]
        let v = model.configuration.vocabularySize
        func alone(_ row: [Int]) -> [Float] { withNoGrad { model(Tensor(ints: row, shape: [1, row.count])).floats() } }
        for leftPadding in [false, true] {
            let pad = [Int](repeating: 3, count: long.count - short.count)
            let padded = leftPadding ? pad + short : short + pad
            let attend = (leftPadding ? pad.map { _ in 0.0 } + short.map { _ in 1.0 } : short.map { _ in 1.0 } + pad.map { _ in 0.0 })
                + long.map { _ in 1.0 }
            let logits = withNoGrad {
                model(Tensor(ints: padded + long, shape: [2, long.count]),
                      keyPaddingMask: Tensor(attend.map(Float.init), shape: [2, long.count])).floats()
            }
            let offset = leftPadding ? pad.count : 0
            let row0 = Array(logits[(offset * v)..<((offset + short.count) * v)])
            let row1 = Array(logits[(long.count * v)...])
            for (row, reference) in [(row0, alone(short)), (row1, alone(long))] {
                let difference = zip(row, reference).map { abs($0 - $1) }.max()! / reference.map(abs).max()!
                XCTAssertLessThan(difference, 1e-5, "left padding: \(leftPadding)")
            }
        }
    }

    /// config.json's model_type chatglm with position_encoding_2d picks this architecture; ChatGLM2/3's still theirs.
    func testTheRegistryTellsChatGLM6BFromChatGLM2() throws {
        XCTAssertTrue(try PretrainedModel.model(.folder(Self.folder("chatglm6b"))) is ChatGLM6BForConditionalGeneration)
        XCTAssertTrue(try PretrainedModel.model(.folder(Self.folder("chatglm2"))) is ChatGLMForConditionalGeneration)
        XCTAssertEqual(String(describing: ChatGLM6BForConditionalGeneration.blockType), "GLMBlock")
    }

    // MARK: - Decoding

    /// Greedy decoding of a prompt ending in [gMASK] sop with the KV cache (new tokens at the mask's position, block
    /// positions 2, 3, …, as prepare_inputs_for_generation gives them) picks the same tokens as full forward passes,
    /// whose logits the cached steps equal; a left-padded batch of two decodes each row as it decodes alone.
    func testGreedyDecodingWithTheKVCacheEqualsDecodingWithout() throws {
        let model = try Self.model()
        let v = model.configuration.vocabularySize, newTokens = 12
        func decode(_ prompts: [[Int]]) -> (tokens: [[Int]], logits: [[[Float]]]) {
            let width = prompts.map(\.count).max()!
            let rows = prompts.map { Array(repeating: 3, count: width - $0.count) + $0 }
            let attend = prompts.map { Array(repeating: false, count: width - $0.count) + Array(repeating: true, count: $0.count) }
            let cache = KVCache(model: model, batchSize: prompts.count, tokens: width + newTokens)
            var logits = model.nextTokenLogits(rows, attend: attend, cache: cache).floats()
            var tokens = prompts, steps: [[[Float]]] = prompts.map { _ in [] }
            for step in 0..<newTokens {
                let next = prompts.indices.map { r in Self.argmax(Array(logits[(r * v)..<((r + 1) * v)])) }
                for r in prompts.indices {
                    steps[r].append(Array(logits[(r * v)..<((r + 1) * v)]))
                    tokens[r].append(next[r])
                }
                if step < newTokens - 1 { logits = model.nextTokenLogits(next.map { [$0] }, cache: cache).floats() }
            }
            return (tokens, steps)
        }
        let prompts = [[5, 17, 42, 88, Self.gmask, Self.sop], [9, Self.mask, 30, 31, 32, 60, 61, Self.sop]]
        var alone: [[Int]] = []
        for prompt in prompts {
            let (tokens, logits) = decode([prompt])
            let full = withNoGrad { model(Tensor(ints: tokens[0], shape: [1, tokens[0].count])) }.floats()
            var maxError: Float = 0
            for (step, cached) in logits[0].enumerated() {
                let position = prompt.count - 1 + step
                let row = Array(full[(position * v)..<((position + 1) * v)])
                maxError = max(maxError, zip(row, cached).map { abs($0 - $1) }.max()!)
                XCTAssertEqual(Self.argmax(row), tokens[0][position + 1], "step \(step)")
            }
            print("[decoding] chatglm6b: \(newTokens) greedy tokens, max |cached - full| logit \(maxError)")
            XCTAssertLessThan(maxError, 1e-4)
            alone.append(tokens[0])
        }
        XCTAssertEqual(decode(prompts).tokens, alone)
    }

    // MARK: - Saving

    /// A saved model is a folder in chatglm-6b's layout: config.json with its fields, the same tensor names (the
    /// computed rotary_emb.inv_freq buffers are not written) with the fixture's bytes; it reloads to an equal
    /// configuration and identical logits.
    func testSaveWritesChatGLM6BsLayoutAndReloadsIdentically() throws {
        let model = try Self.model()
        let folder = try temporaryFolder(for: self)
        try model.save(to: folder, dtype: .float32)

        let original = try CheckpointFolder(url: Self.folder("chatglm6b")), saved = try CheckpointFolder(url: folder)
        XCTAssertEqual(saved.names, original.names.filter { !$0.hasSuffix("rotary_emb.inv_freq") })
        XCTAssertEqual(original.names.count - saved.names.count, 2)
        for name in saved.names {
            XCTAssertEqual(try Self.bytes(of: name, in: saved), try Self.bytes(of: name, in: original), name)
        }
        let written = try Self.json(folder.appendingPathComponent("config.json"))
        let fixture = try Self.json(Self.folder("chatglm6b").appendingPathComponent("config.json"))
        for key in ["model_type", "vocab_size", "hidden_size", "num_layers", "num_attention_heads", "inner_hidden_size",
                    "layernorm_epsilon", "max_sequence_length", "position_encoding_2d", "bos_token_id", "eos_token_id",
                    "mask_token_id", "gmask_token_id", "pad_token_id", "quantization_bit", "architectures"] {
            XCTAssertEqual(written[key].map { "\($0)" }, fixture[key].map { "\($0)" }, key)
        }
        XCTAssertNil(written["padded_vocab_size"])
        XCTAssertNil(written["auto_map"])

        let reloaded = try PretrainedModel.model(.folder(folder))
        XCTAssertEqual(reloaded.configuration, model.configuration)
        let ids = try SafeTensorsFile(url: Self.folder("chatglm6b").appendingPathComponent("expected.safetensors"))
            .tensor("input_ids").contiguousCopy()
        let (a, b) = withNoGrad { (reloaded(ids).floats(), model(ids).floats()) }
        XCTAssertEqual(a, b)
    }

    // MARK: - The paths around the blocks

    /// Activation checkpointing recomputes the prefix attention to identical loss and gradients on GLM-form rows,
    /// LoRA's `all-linear` takes the block projections by chatglm-6b's names (never lm_head), and prompt tuning, whose
    /// virtual tokens have no place in GLM's positions, is refused. (Units and bfloat16 weights: ChatGLMMossParityTests.)
    func testCheckpointingLoRAAndPromptTuningOnChatGLM6B() throws {
        let model = try Self.model()
        let expected = try SafeTensorsFile(url: Self.folder("chatglm6b").appendingPathComponent("expected.safetensors"))
        let ids = try expected.tensor("input_ids").contiguousCopy(), labels = try expected.tensor("labels").contiguousCopy()
        var runs: [(loss: Float, gradients: [[Float]])] = []
        for checkpointing in [false, true] {
            model.activationCheckpointing = checkpointing
            let loss = model.loss(ids: ids, labels: labels)
            loss.backward()
            runs.append((loss.item, model.parameters.map { $0.grad!.floats() }))
            for p in model.parameters { p.grad = nil }
        }
        XCTAssertEqual(runs[0].loss, runs[1].loss)
        XCTAssertEqual(runs[0].gradients, runs[1].gradients)

        let adapted = try Self.model()
        try adapted.addAdapter(.lora(LoRAConfiguration(rank: 4, alpha: 8, targetModules: .pattern("all-linear"))), seed: 1)
        XCTAssertEqual(Set(adapted.loraAdapters.map(\.path)), Set((0..<2).flatMap { i in
            ["attention.query_key_value", "attention.dense", "mlp.dense_h_to_4h", "mlp.dense_4h_to_h"]
                .map { "transformer.layers.\(i).\($0)" }
        }))
        XCTAssertThrowsError(try Self.model().addAdapter(.promptTuning(PromptTuningConfiguration(virtualTokenCount: 4)))) { error in
            XCTAssertTrue("\(error)".contains("prompt tuning is not supported for ChatGLM-6B"), "\(error)")
        }
    }

    // MARK: - Configs

    /// chatglm-6b's published config.json decodes to the model it describes.
    func testThePublishedConfigDecodes() throws {
        let json = """
        {"_name_or_path": "THUDM/chatglm-6b", "architectures": ["ChatGLMModel"],
         "auto_map": {"AutoConfig": "configuration_chatglm.ChatGLMConfig",
                      "AutoModel": "modeling_chatglm.ChatGLMForConditionalGeneration",
                      "AutoModelForSeq2SeqLM": "modeling_chatglm.ChatGLMForConditionalGeneration"},
         "bos_token_id": 130004, "eos_token_id": 130005, "mask_token_id": 130000, "gmask_token_id": 130001,
         "pad_token_id": 3, "hidden_size": 4096, "inner_hidden_size": 16384, "layernorm_epsilon": 1e-05,
         "max_sequence_length": 2048, "model_type": "chatglm", "num_attention_heads": 32, "num_layers": 28,
         "position_encoding_2d": true, "torch_dtype": "float16", "transformers_version": "4.27.1", "use_cache": true,
         "vocab_size": 130528}
        """
        let c = try JSONDecoder().decode(LlamaConfiguration.self, from: Data(json.utf8))
        XCTAssertEqual(c.modelType, .chatglm)
        XCTAssertEqual(c.chatGLM6B, ChatGLM6BSettings(maskTokenID: 130_000, gmaskTokenID: 130_001))
        XCTAssertEqual([c.attentionHeads, c.resolvedHeadDimension, c.rotaryDimension, c.intermediateSize], [32, 128, 64, 16384])
        XCTAssertEqual(c.bosTokenID, 130_004)
        XCTAssertTrue(PretrainedModel.architecture(of: c) == ChatGLM6BForConditionalGeneration.self)
        let shapes = ChatGLM6BForConditionalGeneration.parameterShapes(for: c)
        XCTAssertEqual(shapes.first { $0.key == "transformer.layers.27.attention.query_key_value.weight" }?.shape, [12288, 4096])
        // 28 blocks of 201,379,840 parameters, two 130,528 × 4096 tables and the final norm.
        XCTAssertEqual(shapes.reduce(0) { $0 + $1.shape.reduce(1, *) }, 6_707_929_088)
    }

    func testBadChatGLM6BConfigsAreErrorsNamingTheField() throws {
        let cases: [(edit: (inout [String: Any]) -> Void, message: String)] = [
            ({ $0["position_encoding_2d"] = false }, "position_encoding_2d = false"),
            ({ $0["num_attention_heads"] = 32 }, "hidden_size / num_attention_heads (64 / 32) must be a whole multiple of 4"),
            ({ $0["pre_seq_len"] = 8 }, "pre_seq_len (8)"),
            ({ $0.removeValue(forKey: "num_layers") }, "missing key 'num_layers'"),
            ({ $0["inner_hidden_size"] = 0 }, "inner_hidden_size must be in 1..."),
            ({ $0["layernorm_epsilon"] = -1 }, "layernorm_epsilon must be a finite number >= 0"),
            ({ $0["gmask_token_id"] = -2 }, "gmask_token_id must be >= 0"),
        ]
        for (edit, message) in cases {
            let folder = try temporaryCopy(of: "chatglm6b")
            try editConfig(in: folder, edit)
            XCTAssertThrowsError(try PretrainedModel.model(.folder(folder))) { error in
                XCTAssertTrue("\(error)".contains("config.json"), "\(error)")
                XCTAssertTrue("\(error)".contains(message), "\(error)")
            }
        }
    }
}
