import CollieIO
import CollieTestSupport
import Foundation
import XCTest
@testable import CollieModels

/// A folder saved from a `trust_remote_code` source (ChatGLM, InternLM, MOSS) carries the source's `auto_map` and
/// Python modules, so `transformers` loads it as it loaded the source; other sources gain nothing.
final class RemoteCodeTests: XCTestCase {
    private func json(_ url: URL) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    }

    /// A copy of a family fixture with the published folder's Python files beside it.
    private func sourceFolder(_ variant: String, modules: [String: String]) throws -> URL {
        let source = try temporaryFolder(for: self).appendingPathComponent(variant)
        try FileManager.default.copyItem(at: ModelFixtures.folder(variant), to: source)
        for (name, text) in modules { try Data(text.utf8).write(to: source.appendingPathComponent(name)) }
        return source
    }

    func testSavedFolderGetsTheSourcesAutoMapAndModules() throws {
        let modules = ["modeling_chatglm.py": "from .quantization import quantize\n", "configuration_chatglm.py": "# config\n",
                       "tokenization_chatglm.py": "# tokenizer\n", "quantization.py": "def quantize(): pass\n"]
        let source = try sourceFolder("chatglm2", modules: modules)
        let model = try PretrainedModel.model(.folder(source))
        let out = try temporaryFolder(for: self).appendingPathComponent("saved")
        try model.save(to: out, dtype: .float32)
        let withoutAutoMap = try json(out.appendingPathComponent("config.json"))
        XCTAssertNil(withoutAutoMap["auto_map"], "the configuration alone writes no auto_map")

        try RemoteCode.copy(from: source, to: out)
        var written = try json(out.appendingPathComponent("config.json"))
        let sourceMap = try XCTUnwrap(json(source.appendingPathComponent("config.json"))["auto_map"] as? [String: String])
        XCTAssertEqual(written.removeValue(forKey: "auto_map") as? [String: String], sourceMap)
        XCTAssertEqual(NSDictionary(dictionary: written), NSDictionary(dictionary: withoutAutoMap), "every other field kept")
        for (name, text) in modules {
            XCTAssertEqual(try String(contentsOf: out.appendingPathComponent(name), encoding: .utf8), text, name)
        }
        let reloaded = try PretrainedModel.model(.folder(out))
        XCTAssertEqual(reloaded.configuration.vocabularySize, model.configuration.vocabularySize)
    }

    func testAFolderWithoutAutoMapCopiesNothing() throws {
        let source = try sourceFolder("llama_mha", modules: ["train.py": "print('not remote code')\n"])
        let out = try temporaryFolder(for: self).appendingPathComponent("saved")
        try PretrainedModel.model(.folder(source)).save(to: out, dtype: .float32)
        let before = try Data(contentsOf: out.appendingPathComponent("config.json"))
        try RemoteCode.copy(from: source, to: out)
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("config.json")), before)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("train.py").path))
    }

    func testAMalformedAutoMapNamesTheFile() throws {
        let source = try sourceFolder("chatglm2", modules: [:])
        let config = source.appendingPathComponent("config.json")
        var object = try json(config)
        object["auto_map"] = ["not", "an", "object"]
        try JSONSerialization.data(withJSONObject: object).write(to: config)
        let out = try temporaryFolder(for: self)
        XCTAssertThrowsError(try RemoteCode.copy(from: source, to: out)) { error in
            XCTAssertTrue("\(error)".contains("config.json") && "\(error)".contains("auto_map"), "\(error)")
        }
    }
}
