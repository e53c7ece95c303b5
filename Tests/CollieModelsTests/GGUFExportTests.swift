import CollieEngine
import CollieIO
import CollieTestSupport
import Foundation
import XCTest
@testable import CollieModels

/// `saveGGUF` on the Hugging Face fixture models, read back with `GGUFFile`.
final class GGUFExportTests: XCTestCase {
    func export(_ variant: String, as type: GGUFOutputType) throws -> (LlamaForCausalLM, GGUFFile) {
        let model = try LlamaForCausalLM.load(from: ModelFixtures.folder(variant))
        let url = try temporaryFolder(for: self).appendingPathComponent("\(variant).gguf")
        try model.saveGGUF(to: url, outputType: type, name: variant)
        return (model, try GGUFFile(url: url))
    }

    /// The Hugging Face values of a GGUF tensor: dequantized and, for llama's q/k, unpermuted.
    func huggingFaceValues(_ file: GGUFFile, _ info: GGUFTensorInfo, _ model: LlamaForCausalLM) throws -> [Float] {
        let c = model.configuration
        let values = try file.floats(of: info)
        guard c.modelType != .qwen2 else { return values }
        if info.name.contains(".attn_q.") { return try GGUFRotaryPermutation.unpermuted(values, rows: info.shape[0], heads: c.attentionHeads) }
        if info.name.contains(".attn_k.") { return try GGUFRotaryPermutation.unpermuted(values, rows: info.shape[0], heads: c.keyValueHeads) }
        return values
    }

    func testFloat32ExportRoundTripsBitEqual() throws {
        for variant in ["llama_gqa", "llama_tied", "llama_bias", "qwen2", "mistral_sliding_window", "llama_rope_llama3"] {
            let (model, file) = try export(variant, as: .f32)
            var names = Set<String>()
            for (key, tensor) in model.namedParameters {
                let name = try XCTUnwrap(GGUFTensorNames.ggufName(forHuggingFaceName: key))
                names.insert(name)
                let info = try XCTUnwrap(file.tensorInfo(name), "\(variant): \(name)")
                XCTAssertEqual(info.type, .f32)
                XCTAssertEqual(info.shape, tensor.shape, "\(variant): \(name)")
                XCTAssertEqual(try huggingFaceValues(file, info, model).map(\.bitPattern), tensor.floats().map(\.bitPattern),
                               "\(variant): \(name)")
            }
            let extra = Set(file.tensors.map(\.name)).subtracting(names)
            XCTAssertEqual(extra, variant == "llama_rope_llama3" ? ["rope_freqs.weight"] : [], variant)
            XCTAssertEqual(file.tensorInfo("output.weight") == nil, model.configuration.tieWordEmbeddings, variant)
            let architecture = variant == "qwen2" ? "qwen2" : "llama"
            XCTAssertEqual(file["general.architecture"]?.string, architecture)
            XCTAssertEqual(file["general.file_type"]?.int, 0)
            XCTAssertEqual(file["\(architecture).block_count"]?.int, model.configuration.hiddenLayers)
            XCTAssertEqual(file["\(architecture).attention.head_count_kv"]?.int, model.configuration.keyValueHeads)
            XCTAssertEqual(file["\(architecture).rope.freq_base"]?.double, Double(Float(model.configuration.ropeTheta)))
        }
    }

    func testHalfPrecisionExportsKeepNormsInFloat32() throws {
        for type in [GGUFOutputType.f16, .bf16] {
            let (model, file) = try export("llama_gqa", as: type)
            for (key, tensor) in model.namedParameters {
                let info = try XCTUnwrap(file.tensorInfo(GGUFTensorNames.ggufName(forHuggingFaceName: key) ?? ""))
                let expected: [Float] = tensor.shape.count == 1 ? tensor.floats()
                    : tensor.floats().map { type == .f16 ? Float(Float16($0)) : Float(bitPattern: ($0.bitPattern + 0x7fff + ($0.bitPattern >> 16) & 1) & 0xffff_0000) }
                XCTAssertEqual(info.type, tensor.shape.count == 1 ? .f32 : type.weightType, key)
                XCTAssertEqual(try huggingFaceValues(file, info, model).map(\.bitPattern), expected.map(\.bitPattern), key)
            }
            XCTAssertEqual(file["general.file_type"]?.int, type == .f16 ? 1 : 32)
        }
    }

    /// Quantized tensors are `GGMLQuantization`'s bytes (byte-equal to gguf's quantize) of the permuted weights; the
    /// token embedding stays Q8_0 below 8 bits, and rows that are not whole blocks fall back to F16.
    func testQuantizedExportStoresQuantizedPermutedRows() throws {
        for type in [GGUFOutputType.q8_0, .q4_0, .q4_1, .q5_0, .q5_1] {
            let (model, file) = try export("llama_gqa", as: type)
            for (key, tensor) in model.namedParameters {
                let name = try XCTUnwrap(GGUFTensorNames.ggufName(forHuggingFaceName: key))
                let info = try XCTUnwrap(file.tensorInfo(name))
                let shape = tensor.shape
                var expectedType = shape.count == 1 ? GGMLType.f32 : name == "token_embd.weight" || name == "output.weight" ? .q8_0 : type.weightType
                if shape.count > 1, shape[1] % expectedType.blockSize != 0 { expectedType = .f16 }
                XCTAssertEqual(info.type, expectedType, "\(type) \(name)")
                var values = tensor.floats()
                if key.contains("q_proj") { values = try GGUFRotaryPermutation.permuted(values, rows: shape[0], heads: model.configuration.attentionHeads) }
                if key.contains("k_proj") { values = try GGUFRotaryPermutation.permuted(values, rows: shape[0], heads: model.configuration.keyValueHeads) }
                let expected = try values.withUnsafeBufferPointer { try GGMLQuantization.quantize($0, as: expectedType, rowLength: shape.last ?? 1) }
                XCTAssertEqual(Array(file.bytes(of: info)), expected, "\(type) \(name)")
            }
        }
    }

    /// Export → load through the production GGUF loader (`PretrainedModel.model(.gguf)`): the same parameters, bit
    /// for bit, in f32 (and f16/bf16 values survive exactly), with the same configuration (llama_bias: the biases'
    /// presence gives attention_bias and mlp_bias back).
    func testExportLoadsBackThroughTheGGUFLoader() throws {
        for (variant, type) in [("llama_gqa", GGUFOutputType.f32), ("llama_tied", .f32), ("qwen2", .f32),
                                ("llama_rope_llama3", .f32), ("llama_bias", .f32), ("llama_gqa", .bf16),
                                ("llama_mha", .f16)] {
            let model = try LlamaForCausalLM.load(from: ModelFixtures.folder(variant))
            let url = try temporaryFolder(for: self).appendingPathComponent("\(variant).gguf")
            try model.saveGGUF(to: url, outputType: type, name: variant)
            let loaded = try PretrainedModel.model(.gguf(url))
            let original = Dictionary(uniqueKeysWithValues: model.namedParameters.map { ($0.key, $0.tensor) })
            XCTAssertEqual(loaded.namedParameters.map(\.key), model.namedParameters.map(\.key), variant)
            for (key, tensor) in loaded.namedParameters {
                let expected = try XCTUnwrap(original[key]).floats().map { value -> Float in
                    guard tensor.shape.count > 1 else { return value }
                    switch type {
                    case .f16: return Float(Float16(value))
                    case .bf16: return Float(bitPattern: (value.bitPattern + 0x7fff + (value.bitPattern >> 16) & 1) & 0xffff_0000)
                    default: return value
                    }
                }
                XCTAssertEqual(tensor.floats().map(\.bitPattern), expected.map(\.bitPattern), "\(variant) \(key)")
            }
            XCTAssertEqual(loaded.configuration.ropeScaling, model.configuration.ropeScaling, variant)
            XCTAssertEqual(loaded.configuration.tieWordEmbeddings, model.configuration.tieWordEmbeddings, variant)
            XCTAssertEqual(loaded.configuration.attentionBias, model.configuration.attentionBias, variant)
            XCTAssertEqual(loaded.configuration.mlpBias, model.configuration.mlpBias, variant)
        }
    }

    /// A fixture folder with ChatGLM-6B's stand-in ice_text.model as its tokenizer.model (148 pieces, user-defined ones
    /// among them) and, where given, a tokenizer_config.json from gguf-models, exported in q8_0; and what llama.cpp's
    /// convert_hf_to_gguf.py made of the same folder (scripts/fixtures/make_gguf_internlm2_fixtures.py).
    private func exportBesideLlamaCpp(_ variant: String, tokenizerConfig: String?) throws -> (ours: GGUFFile, llamaCpp: GGUFFile) {
        let fixtures = ModelFixtures.folder("gguf-models")
        let folder = try temporaryFolder(for: self).appendingPathComponent(variant)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for name in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(at: ModelFixtures.folder(variant).appendingPathComponent(name),
                                             to: folder.appendingPathComponent(name))
        }
        try FileManager.default.copyItem(at: TestPaths.tokenizers.appendingPathComponent("chatglm6b/ice_text.model"),
                                         to: folder.appendingPathComponent("tokenizer.model"))
        if let tokenizerConfig {
            try FileManager.default.copyItem(at: fixtures.appendingPathComponent(tokenizerConfig),
                                             to: folder.appendingPathComponent("tokenizer_config.json"))
        }
        let model = try PretrainedModel.model(.folder(folder))
        let url = folder.appendingPathComponent("out.gguf")
        try model.saveGGUF(to: url, outputType: .q8_0, name: variant, tokenizerMetadata: GGUFTokenizerMetadata.metadata(
            for: folder, family: .init(model.configuration.modelType)))
        return (try GGUFFile(url: url), try GGUFFile(url: fixtures.appendingPathComponent("\(variant).llamacpp.q8_0.gguf")))
    }

    /// Every key but general.name, and every tensor's type, shape and bytes, equal.
    private func assertSameFile(_ ours: GGUFFile, _ reference: GGUFFile, _ label: String) throws {
        let keys = { (file: GGUFFile) in Set(file.metadata.map(\.key)).subtracting(["general.name"]) }
        XCTAssertEqual(keys(ours), keys(reference), label)
        for key in keys(reference).sorted() { XCTAssertEqual(ours[key], reference[key], "\(label): \(key)") }
        XCTAssertEqual(ours.tensors.map(\.name).sorted(), reference.tensors.map(\.name).sorted(), label)
        for info in reference.tensors {
            let mine = try XCTUnwrap(ours.tensorInfo(info.name), "\(label): \(info.name)")
            XCTAssertEqual(mine.type, info.type, "\(label): \(info.name)")
            XCTAssertEqual(mine.shape, info.shape, "\(label): \(info.name)")
            XCTAssertTrue(ours.bytes(of: mine).elementsEqual(reference.bytes(of: info)), "\(label): \(info.name): bytes differ")
        }
    }

    /// An InternLM2 folder exports as llama.cpp's converter converts it: wqkv split into permuted q, k and v, byte for
    /// byte in q8_0; the tokenizer as InternLM2Model.set_vocab writes it (user-defined pieces normal, added tokens in
    /// place, `<|im_end|>` the EOS, add_space_prefix).
    func testInternLM2ExportEqualsLlamaCppsConverter() throws {
        let (ours, reference) = try exportBesideLlamaCpp("internlm2", tokenizerConfig: "internlm2.tokenizer_config.json")
        try assertSameFile(ours, reference, "internlm2")
        XCTAssertEqual(ours["general.architecture"], .string("internlm2"))
        XCTAssertEqual(ours["tokenizer.ggml.eos_token_id"], .uint32(127), "<|im_end|> ends a chat model's reply")
    }

    /// An `internlm2` GGUF file loads as the LLaMA model it computes as: q, k and v unpermuted, logits equal to the
    /// InternLM2 folder's.
    func testInternLM2ExportLoadsBackAsLlamaWithTheSameLogits() throws {
        let internLM2 = try PretrainedModel.model(.folder(ModelFixtures.folder("internlm2")))
        let url = try temporaryFolder(for: self).appendingPathComponent("internlm2.gguf")
        try internLM2.saveGGUF(to: url, outputType: .f32, name: "internlm2")
        let loaded = try PretrainedModel.model(.gguf(url))
        XCTAssertTrue(loaded is LlamaForCausalLM)
        XCTAssertEqual(loaded.configuration.keyValueHeads, internLM2.configuration.keyValueHeads)
        let ids = Tensor(ints: [3, 17, 9, 44, 101, 5, 60, 2], shape: [1, 8])
        let want = withNoGrad { internLM2(ids).floats() }, got = withNoGrad { loaded(ids).floats() }
        let scale = want.map(abs).max() ?? 1
        XCTAssertLessThanOrEqual(zip(got, want).map { abs($0 - $1) }.max() ?? 0, 1e-5 * scale)
    }

    /// A LLaMA folder's tokenizer.model with user-defined pieces: written as normal tokens, as
    /// `_create_vocab_sentencepiece` does.
    func testLlamaExportWithUserDefinedPiecesEqualsLlamaCppsConverter() throws {
        let (ours, reference) = try exportBesideLlamaCpp("llama_mha", tokenizerConfig: nil)
        try assertSameFile(ours, reference, "llama_mha")
    }

    /// A ChatGLM2-shaped model (multi-query groups, q/k/v bias) with 640 padded ids and the ChatGLM3 stand-in tokenizer,
    /// saved as a Hugging Face folder and exported as llama.cpp's `chatglm`: the keys ChatGLMModel.set_gguf_parameters
    /// writes, tensors renamed and unpermuted (f32: bit-equal to the folder's), and the tokenizer as
    /// set_vocab_chatglm3 writes it. (llama.cpp itself runs such an export: README "GGUF export for llama.cpp".)
    func testChatGLMExportWritesLlamaCppsChatGLMArchitecture() throws {
        var configuration = try LlamaConfiguration.load(from: ModelFixtures.folder("chatglm2"))
        configuration.vocabularySize = 640
        let folder = try temporaryFolder(for: self).appendingPathComponent("glm")
        let model = ChatGLMForConditionalGeneration(configuration, seed: 3)
        try model.save(to: folder, dtype: .float32)
        for name in ["tokenizer.model", "tokenizer_config.json"] {
            try FileManager.default.copyItem(at: TestPaths.tokenizers.appendingPathComponent("chatglm3/\(name)"),
                                             to: folder.appendingPathComponent(name))
        }
        let url = folder.appendingPathComponent("glm.gguf")
        try model.saveGGUF(to: url, outputType: .f32, name: "glm",
                           tokenizerMetadata: GGUFTokenizerMetadata.metadata(for: folder, family: .chatGLM))
        let file = try GGUFFile(url: url)
        let expected: [(String, GGUFValue)] = [
            ("general.architecture", .string("chatglm")), ("chatglm.context_length", .uint32(64)),
            ("chatglm.embedding_length", .uint32(64)), ("chatglm.feed_forward_length", .uint32(96)),
            ("chatglm.block_count", .uint32(2)), ("chatglm.attention.head_count", .uint32(4)),
            ("chatglm.attention.head_count_kv", .uint32(2)), ("chatglm.attention.layer_norm_rms_epsilon", .float32(1e-5)),
            ("chatglm.rope.dimension_count", .uint32(8)), ("chatglm.rope.freq_base", .float32(10_000)),
            ("tokenizer.ggml.add_bos_token", .bool(false)), ("tokenizer.ggml.model", .string("llama")),
            ("tokenizer.ggml.pre", .string("chatglm-spm")), ("tokenizer.ggml.eos_token_id", .uint32(2)),
        ]
        for (key, value) in expected { XCTAssertEqual(file[key], value, key) }
        guard case .array(_, let tokens)? = file["tokenizer.ggml.tokens"], case .array(_, let types)? = file["tokenizer.ggml.token_type"] else {
            return XCTFail("no token list")
        }
        XCTAssertEqual(tokens.count, 640)
        XCTAssertEqual(Array(tokens.prefix(3)), ["<unk>", "<bos>", "<eos>"].map { .string($0) })
        XCTAssertEqual(Array(tokens[600..<609]), ["[MASK]", "[gMASK]", "[sMASK]", "sop", "eop", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>"].map { .string($0) })
        XCTAssertEqual(Array(types[600..<609]), Array(repeating: .int32(3), count: 9), "the special tokens are control tokens")
        XCTAssertEqual(tokens[609], .string("[PAD609]"))
        XCTAssertEqual(types[639], .int32(5))

        let weights = Dictionary(model.savedWeights().map { ($0.key, $0.values) }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(file.tensors.count, weights.count)
        for (key, values) in weights {
            let name = try XCTUnwrap(ChatGLMForConditionalGeneration.ggufName(forHuggingFaceName: key), key)
            let info = try XCTUnwrap(file.tensorInfo(name), name)
            XCTAssertEqual(try file.floats(of: info), values().floats(), name)
        }
        XCTAssertNotNil(file.tensorInfo("blk.1.attn_qkv.bias"))
        XCTAssertNotNil(file.tensorInfo("output_norm.weight"))
    }

    func testChatGLMConfigurationsLlamaCppCannotRunAreRefused() throws {
        for (variant, reason) in [("chatglm6b", "ChatGLM-6B"), ("chatglm3_mha", "multi_query_attention false")] {
            let model = try PretrainedModel.model(.folder(ModelFixtures.folder(variant)))
            let url = try temporaryFolder(for: self).appendingPathComponent("\(variant).gguf")
            XCTAssertThrowsError(try model.saveGGUF(to: url, outputType: .f32, name: variant), variant) {
                XCTAssertTrue("\($0)".contains(reason), "\($0)")
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: url.path), variant)
        }
    }

    func testInternLM2WithAttentionBiasesIsRefused() throws {
        let model = try PretrainedModel.model(.folder(ModelFixtures.folder("internlm2_dynamic")))
        let url = try temporaryFolder(for: self).appendingPathComponent("x.gguf")
        XCTAssertThrowsError(try model.saveGGUF(to: url, outputType: .f32, name: "x")) {
            XCTAssertTrue("\($0)".contains("attention biases"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path))
    }

    func testSizeLabelFollowsGGUF() {
        XCTAssertEqual(GGUFWriter.sizeLabel(parameterCount: 134_515_008), "135M")
        XCTAssertEqual(GGUFWriter.sizeLabel(parameterCount: 6_738_415_616), "6.7B")
        XCTAssertEqual(GGUFWriter.sizeLabel(parameterCount: 1_235_814_400), "1.2B")
        XCTAssertEqual(GGUFWriter.sizeLabel(parameterCount: 43_000), "43K")
    }
}
