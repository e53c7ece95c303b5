import CollieEngine
import CollieTestSupport
import Foundation
import XCTest

/// A .gguf file where a model folder goes: `collie convert`, `generate`, `score` and `train` take the tiny GGUF
/// fixture of scripts/fixtures/make_gguf_model_fixtures.py (a llama with a byte-level BPE tokenizer and a ChatML
/// chat template in its metadata).
final class GGUFCommandTests: XCTestCase {
    private static let model = ModelFixtures.folder("gguf-models").appendingPathComponent("llama.gguf")
    private static let tokenizerFiles = ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"]

    private func run(_ arguments: [String], in folder: URL, file: StaticString = #filePath, line: UInt = #line) throws
        -> String {
        let result = try CollieExecutable.run(arguments, in: folder, log: arguments[0], timeout: 120)
        XCTAssertEqual(result.status, 0, "collie \(arguments.joined(separator: " ")): \(result.errors)", file: file, line: line)
        return result.output
    }

    func testConvertWritesACompleteFolderThatGeneratesWhatTheGGUFFileGenerates() throws {
        let folder = try temporaryFolder(for: self)
        let out = folder.appendingPathComponent("converted")
        _ = try run(["convert", "--model", Self.model.path, "--out", out.path], in: folder)
        for name in ["config.json", "generation_config.json", "model.safetensors"] + Self.tokenizerFiles {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(name).path), name)
        }
        let template = try String(contentsOf: out.appendingPathComponent("chat_template.jinja"), encoding: .utf8)
        XCTAssertTrue(template.contains("<|im_start|>"), template)
        let greedy = ["generate", "--prompt-ids", "5,60,7,200", "--max-new-tokens", "6", "--json"]
        let fromGGUF = try run(greedy + ["--model", Self.model.path], in: folder)
        let fromFolder = try run(greedy + ["--model", out.path], in: folder)
        XCTAssertTrue(fromGGUF.contains("\"ids\""), fromGGUF)
        XCTAssertEqual(fromGGUF, fromFolder)
        // The folder's chat template and tokenizer give the GGUF file's chat prompt.
        let chat = ["generate", "--prompt", "To be, or not to be", "--chat", "--max-new-tokens", "3", "--json"]
        XCTAssertEqual(try run(chat + ["--model", Self.model.path], in: folder),
                       try run(chat + ["--model", out.path], in: folder))
        // collie tokenize reads the GGUF file's tokenizer as the folder's.
        let texts = folder.appendingPathComponent("texts.jsonl")
        try #"{"text": "To be, or not to be: that is the question."}"#.write(to: texts, atomically: true, encoding: .utf8)
        let ids = try run(["tokenize", "--tokenizer", Self.model.path, texts.path], in: folder)
        XCTAssertTrue(ids.contains("\"ids\""), ids)
        XCTAssertEqual(ids, try run(["tokenize", "--tokenizer", out.path, texts.path], in: folder))
    }

    func testGenerateWithTheChatTemplateOfTheGGUFMetadata() throws {
        let folder = try temporaryFolder(for: self)
        let output = try run(["generate", "--model", Self.model.path, "--prompt", "Hello", "--chat", "--json",
                              "--max-new-tokens", "4"], in: folder)
        let record = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any], output)
        let prompt = try XCTUnwrap(record["prompt_ids"] as? [Int])
        // <|im_start|> (1) user\nHello <|im_end|> (2) \n <|im_start|> assistant\n
        XCTAssertEqual(prompt.first, 1)
        XCTAssertEqual(prompt.filter { $0 == 1 }.count, 2, "\(prompt)")
        XCTAssertEqual(prompt.filter { $0 == 2 }.count, 1, "\(prompt)")
    }

    func testScoreTakesAGGUFFile() throws {
        let folder = try temporaryFolder(for: self)
        var generator = RandomGenerator(seed: 3)
        let data = folder.appendingPathComponent("records.jsonl")
        try writeTokenRecords(randomTokenRecords(count: 3, lengths: 5...9, using: &generator), to: data)
        let result = try CollieExecutable.run(["score", "--model", Self.model.path, "--data", data.path], in: folder,
                                              log: "score", timeout: 120)
        XCTAssertEqual(result.status, 0, result.errors)
        XCTAssertEqual(result.output.split(separator: "\n").count, 3, result.output)
        XCTAssertTrue(result.errors.contains("perplexity"), result.errors)
    }

    func testTrainFromAGGUFFileWritesTheTokenizerAndChatTemplateIntoCheckpointsAndFinal() throws {
        let folder = try temporaryFolder(for: self)
        var generator = RandomGenerator(seed: 5)
        try writeTokenRecords(randomTokenRecords(count: 8, lengths: 6...10, using: &generator),
                              to: folder.appendingPathComponent("train.jsonl"))
        let config = folder.appendingPathComponent("config.yaml")
        try """
            model: \(Self.model.path)
            train_data: train.jsonl
            record_format: tokens
            train_epochs: 1
            train_micro_batch_size: 4
            optimizer: {name: adamw, lr: 1.0e-3}
            output_dir: out
            callbacks: {checkpoint: {every_n_batches: 1}}
            """.write(to: config, atomically: true, encoding: .utf8)
        _ = try run(["train", config.path], in: folder)
        let out = folder.appendingPathComponent("out")
        for saved in ["checkpoint-1", "checkpoint-2", "final"] {
            for name in Self.tokenizerFiles + ["config.json"] {
                XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("\(saved)/\(name)").path),
                              "\(saved)/\(name)")
            }
        }
        // final/ is a folder the commands load alone, chat template included.
        _ = try run(["generate", "--model", out.appendingPathComponent("final").path, "--prompt", "Hi", "--chat",
                     "--max-new-tokens", "2"], in: folder)
    }
}
