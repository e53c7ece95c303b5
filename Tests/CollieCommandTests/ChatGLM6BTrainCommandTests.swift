import CollieModels
import CollieTestSupport
import CollieTokenizers
import CollieTraining
import Foundation
import XCTest

/// `collie train` on Alpaca records with a ChatGLM-6B model and its tokenizer folder: the examples take the
/// layout prompt, `[gMASK]`, `<sop>`, answer, `<eop>`, training runs, and the saved folder carries the tokenizer.
final class ChatGLM6BTrainCommandTests: XCTestCase {
    func testAlpacaRecordsTrainWithGMaskSopLayout() throws {
        let folder = try temporaryFolder(for: self)
        let tokenizerFolder = TestPaths.tokenizers.appendingPathComponent("chatglm6b")
        let records: [(instruction: String, output: String)] = [("你好", "Hello!"), ("Say hi.", "hi\tthere"),
                                                                  ("问：什么是机器学习？", "答：学习。")]
        let lines = try records.map { record in
            String(decoding: try JSONSerialization.data(withJSONObject: ["instruction": record.instruction, "input": "",
                                                                         "output": record.output]), as: UTF8.self)
        }
        try lines.joined(separator: "\n").write(to: folder.appendingPathComponent("train.jsonl"), atomically: true, encoding: .utf8)
        let config = folder.appendingPathComponent("config.yaml")
        try """
            model: \(ModelFixtures.folder("chatglm6b").path)
            tokenizer: \(tokenizerFolder.path)
            train_data: train.jsonl
            record_format: alpaca
            train_epochs: 1
            max_steps: 2
            train_micro_batch_size: 2
            optimizer: {name: adamw, lr: 1.0e-2}
            output_dir: out
            """.write(to: config, atomically: true, encoding: .utf8)
        let result = try CollieExecutable.run(["train", config.path], in: folder, log: "chatglm6b-alpaca")
        XCTAssertEqual(result.status, 0, result.errors)

        let tokenizer = try Tokenizer(contentsOf: tokenizerFolder)
        let expectedTokens = records.map { record in
            tokenizer.encode(AlpacaTemplate.prompt(instruction: record.instruction, input: ""), addSpecialTokens: false).count
                + 2 + tokenizer.encode(record.output, addSpecialTokens: false).count + 1
        }.reduce(0, +)
        XCTAssertTrue(result.output.contains("data: 3 training examples (alpaca, \(expectedTokens.formatted()) tokens"),
                      result.output)
        let saved = try Tokenizer(contentsOf: folder.appendingPathComponent("out/final"))
        XCTAssertEqual(saved.format, .chatGLM6B, "final/ carries ice_text.model and tokenizer_config.json")
        XCTAssertEqual(saved.encode("你好"), tokenizer.encode("你好"))
    }
}
