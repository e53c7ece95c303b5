import CollieIO
import CollieTestSupport
import Foundation
import XCTest
@testable import CollieEngine
@testable import CollieModels

/// GGUF files used as models: tiny models written by PyPI's `gguf` as llama.cpp's convert_hf_to_gguf.py lays them
/// out (scripts/fixtures/make_gguf_model_fixtures.py), loaded through `PretrainedModel`, held against the logits of
/// the transformers model they came from (which transformers' own GGUF loading reproduces exactly) and against
/// the config.json transformers derives from the same metadata.
final class GGUFModelTests: XCTestCase {
    /// float32 on both sides, relative to the largest expected logit.
    static let logitTolerance: Float = 1e-5

    static func url(_ name: String) -> URL {
        ModelFixtures.folder("gguf-models").appendingPathComponent(name)
    }

    // MARK: - Logits

    func testLlamaGGUFLogitsMatchTransformers() throws {
        let model = try checkLogits("llama")
        XCTAssertFalse(model.configuration.tieWordEmbeddings)
        XCTAssertEqual([model.configuration.attentionHeads, model.configuration.keyValueHeads], [4, 2])
    }

    func testQwen2GGUFWithBiasesAndTiedEmbeddingsLogitsMatchTransformers() throws {
        let model = try checkLogits("qwen2")
        XCTAssertEqual(model.configuration.modelType, .qwen2)
        XCTAssertTrue(model.configuration.tieWordEmbeddings)
        XCTAssertTrue(model.namedParameters.contains { $0.key == "model.layers.1.self_attn.k_proj.bias" })
    }

    func testLlama3RopeFactorsTensorBecomesLlama3ScalingAndLogitsMatch() throws {
        let model = try checkLogits("llama3_rope")
        XCTAssertEqual(model.configuration.ropeScaling,
                       .llama3(factor: 8, lowFrequencyFactor: 1, highFrequencyFactor: 16, originalMaxPositions: 8192))
    }

    // MARK: - Configuration

    func testConfigurationFromMetadataEqualsTransformersConfig() throws {
        for variant in ["llama", "qwen2", "llama3_rope"] {
            var expected = try JSONDecoder().decode(LlamaConfiguration.self,
                                                    from: Data(contentsOf: Self.url("\(variant).config.json")))
            expected.torchDType = nil
            // GGUF stores the epsilon as float32 (llama3_rope's reference is the source model's config.json).
            expected.rmsNormEpsilon = Double(Float(expected.rmsNormEpsilon))
            let actual = try LlamaConfiguration(gguf: GGUFFile(url: Self.url("\(variant).gguf")))
            XCTAssertEqual(actual, expected, variant)
        }
    }

    func testSavedConfigurationRoundTripsThroughConfigJSON() throws {
        let configuration = try LlamaConfiguration(gguf: GGUFFile(url: Self.url("llama3_rope.gguf")))
        let decoded = try JSONDecoder().decode(LlamaConfiguration.self, from: JSONEncoder().encode(configuration))
        XCTAssertEqual(decoded, configuration)
    }

    // MARK: - Files from strangers

    func testUnknownArchitectureIsNamedWithTheSupportedOnes() throws {
        try assertLoadFails("broken_architecture", mentioning: ["general.architecture", "gpt2", "llama", "qwen2"])
    }

    func testMissingTensorIsNamedByItsGGUFName() throws {
        try assertLoadFails("broken_missing_tensor", mentioning: ["missing", "blk.0.ffn_down.weight"])
    }

    func testTensorOfTheWrongShapeIsNamed() throws {
        try assertLoadFails("broken_shape", mentioning: ["blk.0.attn_k.weight", "[32, 32]", "[16, 32]"])
    }

    func testMissingMetadataKeyIsNamed() throws {
        try assertLoadFails("broken_missing_key", mentioning: ["llama.block_count", "missing"])
    }

    func testMinimalFileWithoutTokenizerLoads() throws {
        let model = try PretrainedModel.model(.at(Self.url("valid_minimal.gguf")))
        XCTAssertEqual(model.configuration.vocabularySize, 320)
        XCTAssertFalse(model.configuration.tieWordEmbeddings)
    }

    func testSourceAtAPathPicksGGUFByExtension() {
        guard case .gguf = PretrainedModel.Source.at(URL(fileURLWithPath: "/m/SmolLM2.Q4_1.GGUF")) else {
            return XCTFail("a .gguf path is a GGUF source")
        }
        guard case .folder = PretrainedModel.Source.at(URL(fileURLWithPath: "/m/llama")) else {
            return XCTFail("another path is a folder")
        }
    }

    // MARK: - Helpers

    @discardableResult
    private func checkLogits(_ variant: String, file: StaticString = #filePath, line: UInt = #line) throws
        -> LlamaForCausalLM {
        let loaded = try PretrainedModel.model(.at(Self.url("\(variant).gguf")))
        let model = try XCTUnwrap(loaded as? LlamaForCausalLM, file: file, line: line)
        let expected = try SafeTensorsFile(url: Self.url("\(variant).expected.safetensors"))
        let ids = try expected.tensor("input_ids")
        let reference = try expected.tensor("logits").floats()
        let logits = withNoGrad { model(ids).floats() }
        XCTAssertEqual(logits.count, reference.count, file: file, line: line)
        let scale = reference.map(abs).max() ?? 1
        let difference = zip(logits, reference).map { abs($0 - $1) }.max() ?? .infinity
        print("\(variant): max |Δlogit| \(difference) (scale \(scale))")
        XCTAssertLessThanOrEqual(difference, Self.logitTolerance * scale, variant, file: file, line: line)
        return model
    }

    private func assertLoadFails(_ variant: String, mentioning words: [String], file: StaticString = #filePath,
                                 line: UInt = #line) throws {
        let url = Self.url("\(variant).gguf")
        XCTAssertThrowsError(try PretrainedModel.model(.at(url)), file: file, line: line) { error in
            let message = "\(error)"
            for word in [url.path] + words {
                XCTAssertTrue(message.contains(word), "'\(word)' not in: \(message)", file: file, line: line)
            }
        }
    }
}
