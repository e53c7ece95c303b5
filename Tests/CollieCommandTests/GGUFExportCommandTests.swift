import CollieIO
import CollieTestSupport
import Foundation
import XCTest

/// `collie convert --out model.gguf`: the server tests' tiny chat model with the LLaMA-2 tokenizer.
final class GGUFExportCommandTests: XCTestCase {
    func chatModel(in folder: URL) throws -> URL {
        let model = folder.appendingPathComponent("chat-model")
        try FileManager.default.copyItem(at: TestPaths.fixtures(of: "CollieServerTests").appendingPathComponent("chat-model"),
                                         to: model)
        try FileManager.default.copyItem(at: TestPaths.llama2Tokenizer.appendingPathComponent("tokenizer.json"),
                                         to: model.appendingPathComponent("tokenizer.json"))
        return model
    }

    /// The export carries the tokenizer and scores as the folder does (f32 exactly; q8_0 within quantization).
    func testConvertWritesAGGUFFileThatScoresLikeTheFolder() throws {
        let folder = try temporaryFolder(for: self)
        let model = try chatModel(in: folder)
        let records = folder.appendingPathComponent("records.jsonl")
        try Data(#"{"tokens": [1, 450, 4996, 17354, 1701, 29916, 432, 17204, 975, 278, 17366, 11203]}"#.utf8).write(to: records)
        func nll(_ model: String) throws -> Double {
            let result = try CollieExecutable.run(["score", "--model", model, "--data", records.path], in: folder, log: "score")
            XCTAssertEqual(result.status, 0, result.errors)
            let line = try XCTUnwrap(result.output.split(separator: "\n").first)
            return try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["nll"] as? Double)
        }
        let reference = try nll(model.path)
        for (type, tolerance) in [("f32", 0.0), ("q8_0", 0.02)] {
            let out = folder.appendingPathComponent("model-\(type).gguf")
            let convert = try CollieExecutable.run(["convert", "--model", model.path, "--out", out.path, "--outtype", type],
                                                   in: folder, log: "convert")
            XCTAssertEqual(convert.status, 0, convert.errors)
            let file = try GGUFFile(url: out)
            XCTAssertEqual(file["general.architecture"]?.string, "llama")
            XCTAssertEqual(file["tokenizer.ggml.model"]?.string, "llama")
            XCTAssertEqual(file["tokenizer.ggml.tokens"]?.array?.count, 32000)
            XCTAssertEqual(file.tensorInfo("blk.0.attn_norm.weight")?.type, .f32)
            XCTAssertEqual(try nll(out.path), reference, accuracy: tolerance * abs(reference), type)
        }
    }

    func testOuttypeNeedsAGGUFDestinationAndAKnownType() throws {
        let folder = try temporaryFolder(for: self)
        let model = try chatModel(in: folder)
        let folderOut = try CollieExecutable.run(["convert", "--model", model.path, "--out", folder.appendingPathComponent("o").path,
                                                  "--outtype", "q8_0"], in: folder, timeout: 60)
        XCTAssertNotEqual(folderOut.status, 0)
        XCTAssertTrue(folderOut.errors.contains(".gguf"), folderOut.errors)
        let unknown = try CollieExecutable.run(["convert", "--model", model.path, "--out", folder.appendingPathComponent("o.gguf").path,
                                                "--outtype", "q4_k"], in: folder, timeout: 60)
        XCTAssertNotEqual(unknown.status, 0)
        XCTAssertTrue(unknown.errors.contains("q4_k"), unknown.errors)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("o.gguf").path))
    }
}
