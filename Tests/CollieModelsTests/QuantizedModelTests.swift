import CollieIO
import CollieTestSupport
import Foundation
import XCTest
@testable import CollieEngine
@testable import CollieModels

/// Models whose linear layers keep quantized blocks (`WeightQuantization`): tiny llamas quantized by llama.cpp's own
/// ggml library (scripts/fixtures/make_quantized_model_fixtures.py), loaded with their blocks kept or quantized at
/// load, held against the same file loaded dense, against transformers, and against ggml's quantizer byte for byte.
final class QuantizedModelTests: XCTestCase {
    /// float32 on both sides, relative to the largest logit.
    static let logitTolerance: Float = 1e-5

    static func url(_ name: String) -> URL {
        ModelFixtures.folder("quantized-models").appendingPathComponent(name)
    }

    /// mixed.gguf's block formats per layer and linear weight (o_proj of layer 1 is F16: dense).
    static let mixedFormats: [[String: BlockFormat?]] = [
        ["self_attn.q_proj": .q8_0, "self_attn.k_proj": .q4_0, "self_attn.v_proj": .q4_1, "self_attn.o_proj": .q4_K,
         "mlp.gate_proj": .q6_K, "mlp.up_proj": .q5_0, "mlp.down_proj": .q5_1],
        ["self_attn.q_proj": .q5_K, "self_attn.k_proj": .q6_K, "self_attn.v_proj": .q8_0, "self_attn.o_proj": nil,
         "mlp.gate_proj": .q4_1, "mlp.up_proj": .q4_K, "mlp.down_proj": .q4_0],
    ]

    // MARK: - Kept blocks

    func testKeptBlocksGiveTheLogitsOfTheDenseLoadAndOfTransformers() throws {
        let url = Self.url("mixed.gguf")
        let quantized = try PretrainedModel.model(.at(url), quantization: .keepBlocks)
        let dense = try PretrainedModel.model(.at(url))
        for (path, layer) in quantized.namedLinearLayers {
            let parts = path.split(separator: ".")
            guard parts.count == 5, let block = Int(parts[2]) else {
                XCTAssertEqual(path, "lm_head")
                XCTAssertEqual(layer.quantizedWeight?.format, .q6_K, "the untied output projection keeps its blocks")
                continue
            }
            let expected = Self.mixedFormats[block][parts[3...].joined(separator: ".")] ?? nil
            XCTAssertEqual(layer.quantizedWeight?.format, expected, path)
        }
        XCTAssertEqual(quantized.embedTokens.quantizedWeight?.format, .q8_0, "the token embedding keeps its blocks")
        XCTAssertTrue(quantized.isQuantized)
        XCTAssertFalse(dense.isQuantized)
        // Only dense tensors are parameters: 13 quantized weights of 14 linear weights in the blocks, the output
        // projection and the embedding are not.
        XCTAssertEqual(dense.namedParameters.count - quantized.namedParameters.count, 15)
        XCTAssertFalse(quantized.namedParameters.contains { $0.key == "model.layers.0.self_attn.q_proj.weight" })
        XCTAssertTrue(quantized.namedParameters.contains { $0.key == "model.layers.1.self_attn.o_proj.weight" })

        let expected = try SafeTensorsFile(url: Self.url("mixed.expected.safetensors"))
        let ids = try expected.tensor("input_ids")
        let fromBlocks = withNoGrad { quantized(ids).floats() }
        assertClose(fromBlocks, withNoGrad { dense(ids).floats() }, "blocks vs dense load")
        assertClose(fromBlocks, try expected.tensor("logits").floats(), "blocks vs transformers")
    }

    func testKeptWeightsDequantizeToTheDenseLoadsWeights() throws {
        let url = Self.url("mixed.gguf")
        let quantized = try PretrainedModel.model(.at(url), quantization: .keepBlocks)
        let dense = try PretrainedModel.model(.at(url))
        for ((path, layer), (_, reference)) in zip(quantized.namedLinearLayers, dense.namedLinearLayers) {
            // q/k rows put back in Hugging Face's order on blocks equal the unpermuted floats exactly.
            XCTAssertEqual(layer.floatWeight().floats(), reference.floatWeight().floats(), path)
        }
    }

    func testGreedyContinuationFromBlocksEqualsFromDequantizedWeights() throws {
        // q8_0 (quantized at load): identical ids.
        let q8 = try PretrainedModel.model(.at(Self.url("hf")), quantization: .quantize(.q8_0))
        let q8Agreement = try Tensor.withQuantizedActivations(.float) {
            try agreement(q8, prompt: [5, 60, 7, 200, 31], tokens: 24)
        }
        XCTAssertEqual(q8Agreement, 1, "q8_0: greedy ids from blocks differ from those of the dequantized weights")
        // The mixed 4- to 6-bit file: reported, and the first tokens must agree.
        let mixed = try PretrainedModel.model(.at(Self.url("mixed.gguf")), quantization: .keepBlocks)
        let mixedAgreement = try Tensor.withQuantizedActivations(.float) {
            try agreement(mixed, prompt: [5, 60, 7, 200, 31], tokens: 24)
        }
        XCTAssertGreaterThanOrEqual(mixedAgreement, 0.25)
        // llama.cpp's arithmetic (8-bit activations): reported.
        let int8 = try Tensor.withQuantizedActivations(.int8) {
            (try agreement(q8, prompt: [5, 60, 7, 200, 31], tokens: 24),
             try agreement(mixed, prompt: [5, 60, 7, 200, 31], tokens: 24))
        }
        print("greedy agreement over 24 tokens, blocks vs dequantized weights: float activations q8_0 \(q8Agreement), "
              + "mixed \(mixedAgreement); 8-bit activations q8_0 \(int8.0), mixed \(int8.1)")
    }

    func testSavingAndExportingWriteTheDequantizedWeights() throws {
        let quantized = try PretrainedModel.model(.at(Self.url("mixed.gguf")), quantization: .keepBlocks)
        let folder = try temporaryFolder(for: self)
        try quantized.save(to: folder.appendingPathComponent("hf"))
        try quantized.saveGGUF(to: folder.appendingPathComponent("f32.gguf"), outputType: .f32, name: "mixed",
                               tokenizerMetadata: [])
        let ids = try SafeTensorsFile(url: Self.url("mixed.expected.safetensors")).tensor("input_ids")
        let expected = withNoGrad { quantized(ids).floats() }
        for saved in ["hf", "f32.gguf"] {
            let model = try PretrainedModel.model(.at(folder.appendingPathComponent(saved)))
            XCTAssertEqual(model.namedParameters.count, quantized.savedWeights().count, saved)
            assertClose(withNoGrad { model(ids).floats() }, expected, "saved as \(saved)")
        }
    }

    // MARK: - Quantized at load

    func testQuantizeAtLoadEqualsGGMLsQuantizerByteForByte() throws {
        for format in [BlockFormat.q8_0, .q4_0, .q4_1, .q4_K] {
            let quantized = try PretrainedModel.model(.at(Self.url("hf")), quantization: .quantize(format))
            let reference = try PretrainedModel.model(.at(Self.url("hf_\(format.rawValue).gguf")), quantization: .keepBlocks)
            var compared = 0
            for ((path, layer), (_, expected)) in zip(quantized.namedLinearLayers, reference.namedLinearLayers) {
                let a = try XCTUnwrap(layer.quantizedWeight, "\(format) \(path)")
                let b = try XCTUnwrap(expected.quantizedWeight, "\(format) \(path)")
                XCTAssertEqual(a.format, format)
                XCTAssertEqual(a.byteCount, b.byteCount, "\(format) \(path)")
                XCTAssertEqual(memcmp(a.storage.data, b.storage.data, a.byteCount), 0, "\(format) \(path): bytes differ")
                compared += 1
            }
            XCTAssertEqual(compared, 7, "\(format)")
        }
    }

    func testQuantizeRefusesInputsThatAreNotWholeBlocks() throws {
        // gguf-models/llama.gguf has hidden size 64: not a multiple of Q4_K's 256 values.
        let url = ModelFixtures.folder("gguf-models").appendingPathComponent("llama.gguf")
        XCTAssertThrowsError(try PretrainedModel.model(.at(url), quantization: .quantize(.q4_K))) { error in
            for word in ["q4_k", "256", "blk.0.attn_q.weight", "q8_0"] {
                XCTAssertTrue("\(error)".contains(word), "'\(word)' not in: \(error)")
            }
        }
        XCTAssertThrowsError(try PretrainedModel.model(.at(url), quantization: .quantize(.q6_K))) { error in
            XCTAssertTrue("\(error)".contains("no quantizer for q6_k"), "\(error)")
        }
    }

    // MARK: - Refusals

    func testKeepingBlocksOfAFolderIsRefused() throws {
        XCTAssertThrowsError(try PretrainedModel.model(.at(Self.url("hf")), quantization: .keepBlocks)) { error in
            XCTAssertTrue("\(error)".contains("GGUF file"), "\(error)")
        }
    }

    func testATypeCollieCannotKeepIsNamed() throws {
        // mixed.gguf with blk.0.ffn_down.weight stored as Q3_K.
        let source = try GGUFFile(url: Self.url("mixed.gguf"))
        var writer = GGUFWriter()
        for (key, value) in source.metadata { writer.set(key, value) }
        for info in source.tensors {
            if info.name == "blk.0.ffn_down.weight" {
                let bytes = info.elementCount / GGMLType.q3_K.blockSize * GGMLType.q3_K.bytesPerBlock
                writer.addTensor(name: info.name, shape: info.shape, type: .q3_K) { [UInt8](repeating: 0, count: bytes) }
            } else {
                writer.addTensor(name: info.name, shape: info.shape, type: info.type) { Array(source.bytes(of: info)) }
            }
        }
        let url = try temporaryFolder(for: self).appendingPathComponent("q3_k.gguf")
        try writer.write(to: url)
        XCTAssertNoThrow(try PretrainedModel.model(.at(url)), "dequantized, Q3_K loads")
        XCTAssertThrowsError(try PretrainedModel.model(.at(url), quantization: .keepBlocks)) { error in
            for word in [url.path, "blk.0.ffn_down.weight", "Q3_K", "cannot keep", "Q6_K"] {
                XCTAssertTrue("\(error)".contains(word), "'\(word)' not in: \(error)")
            }
        }
    }

    // MARK: - Helpers

    /// The fraction of `tokens` greedy ids (KV-cache decoding) that `model` and a dense copy of it, whose linear
    /// weights are its blocks dequantized, agree on before their first difference.
    private func agreement(_ model: any CausalLanguageModel, prompt: [Int], tokens: Int) throws -> Double {
        let copy = try XCTUnwrap(model as? LlamaForCausalLM)
        var initialization = Initialization.uninitializedWithoutLinearWeights
        let dense = LlamaForCausalLM(copy.configuration, initialization: &initialization)
        for ((_, layer), (_, source)) in zip(dense.namedLinearLayers, copy.namedLinearLayers) {
            layer.weight = .dense(source.floatWeight())
        }
        dense.embedTokens.weight = .dense(copy.embedTokens.weight.floatWeight())
        let values = Dictionary(uniqueKeysWithValues: copy.namedParameters.map { ($0.key, $0.tensor) })
        for (key, p) in dense.namedParameters where values[key] != nil { p.assignValues(from: values[key]!) }
        XCTAssertFalse(dense.isQuantized)
        let a = greedy(copy, prompt: prompt, tokens: tokens), b = greedy(dense, prompt: prompt, tokens: tokens)
        let same = zip(a, b).prefix { $0 == $1 }.count
        return Double(same) / Double(tokens)
    }

    private func greedy(_ model: LlamaForCausalLM, prompt: [Int], tokens: Int) -> [Int] {
        let cache = KVCache(model: model, batchSize: 1, tokens: prompt.count + tokens)
        var ids: [Int] = [], next = prompt
        for _ in 0..<tokens {
            let logits = model.nextTokenLogits([next], cache: cache).floats()
            let best = logits.indices.max { logits[$0] < logits[$1] } ?? 0
            ids.append(best)
            next = [best]
        }
        return ids
    }

    private func assertClose(_ actual: [Float], _ expected: [Float], _ what: String, file: StaticString = #filePath,
                             line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, what, file: file, line: line)
        let scale = expected.map(abs).max() ?? 1
        let difference = zip(actual, expected).map { abs($0 - $1) }.max() ?? .infinity
        print("\(what): max |Δlogit| \(difference) (scale \(scale))")
        XCTAssertLessThanOrEqual(difference, Self.logitTolerance * scale, what, file: file, line: line)
    }
}
