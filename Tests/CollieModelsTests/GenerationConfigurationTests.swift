import CollieIO
import CollieModels
import CollieTestSupport
import Foundation
import XCTest

/// generation_config.json: what a saved model gets, and how the files transformers writes are read.
final class GenerationConfigurationTests: XCTestCase {
    private func read(_ json: String) throws -> GenerationConfiguration? {
        let folder = try temporaryFolder(for: self)
        try Data(json.utf8).write(to: folder.appendingPathComponent(GenerationConfiguration.fileName))
        return try GenerationConfiguration.load(fromFolder: folder)
    }

    func testSavedModelGetsTheConfigsSpecialTokenIDsMarkedAsDerived() throws {
        let model = LlamaForCausalLM(LlamaConfiguration(hiddenSize: 8, intermediateSize: 16, hiddenLayers: 1, attentionHeads: 2,
                                                        keyValueHeads: 2, vocabularySize: 32, maxPositionEmbeddings: 16,
                                                        bosTokenID: 1, eosTokenIDs: [2], padTokenID: 0))
        let folder = try temporaryFolder(for: self)
        try model.save(to: folder)
        let data = try Data(contentsOf: folder.appendingPathComponent("generation_config.json"))
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(json.keys.sorted(), ["_from_model_config", "bos_token_id", "eos_token_id", "pad_token_id"])
        XCTAssertEqual(json["_from_model_config"] as? Bool, true)
        XCTAssertEqual(json["bos_token_id"] as? Int, 1)
        XCTAssertEqual(json["eos_token_id"] as? Int, 2, "one id is written as a number, as transformers does")
        XCTAssertEqual(json["pad_token_id"] as? Int, 0)
        XCTAssertEqual(try GenerationConfiguration.load(fromFolder: folder),
                       GenerationConfiguration(bosTokenID: 1, eosTokenIDs: [2], padTokenID: 0, fromModelConfig: true))
    }

    func testSeveralOrNoEndOfSequenceIDsAreWrittenAsAListOrLeftOut() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let several = GenerationConfiguration(bosTokenID: 128000, eosTokenIDs: [128001, 128009])
        XCTAssertEqual(String(decoding: try encoder.encode(several), as: UTF8.self),
                       #"{"bos_token_id":128000,"eos_token_id":[128001,128009]}"#)
        XCTAssertEqual(String(decoding: try encoder.encode(GenerationConfiguration()), as: UTF8.self), "{}")
    }

    func testTransformersFilesAreReadWithTheirEndOfSequenceIDs() throws {
        XCTAssertEqual(try read(#"{"eos_token_id": 2, "temperature": 0.6, "transformers_version": "4.40"}"#)?.eosTokenIDs, [2])
        XCTAssertEqual(try read(#"{"eos_token_id": [128001, 128008, 128009], "do_sample": true}"#)?.eosTokenIDs,
                       [128001, 128008, 128009])
        XCTAssertEqual(try read(#"{"bos_token_id": 1, "eos_token_id": null, "pad_token_id": null}"#),
                       GenerationConfiguration(bosTokenID: 1))
        let fixture = try GenerationConfiguration.load(fromFolder: HuggingFaceParityTests.folder("llama_mha"))
        XCTAssertEqual(fixture, GenerationConfiguration(bosTokenID: 1, eosTokenIDs: [2], fromModelConfig: true), "a file transformers wrote")
        XCTAssertNil(try GenerationConfiguration.load(fromFolder: try temporaryFolder(for: self)), "no file")
    }

    func testUnreadableFileIsAnErrorNamingIt() throws {
        for (json, fragment) in [(#"{"eos_token_id": "</s>"}"#, "eos_token_id"), ("[1, 2]", "JSON object"), ("{", "not a valid")] {
            XCTAssertThrowsError(try read(json)) { error in
                let message = "\(error)"
                XCTAssertTrue(message.contains("generation_config.json") && message.contains(fragment), message)
            }
        }
    }
}
