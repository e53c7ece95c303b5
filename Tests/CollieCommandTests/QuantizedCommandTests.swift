import CollieEngine
import CollieTestSupport
import Foundation
import XCTest

/// `--quantized` / `--quantize` and the config keys `quantized:` / `quantize:` on the tiny quantized fixtures of
/// scripts/fixtures/make_quantized_model_fixtures.py (mixed.gguf: every block format Collie keeps; hf/: a float16
/// Hugging Face folder).
final class QuantizedCommandTests: XCTestCase {
    private static let fixtures = TestPaths.fixtures(of: "CollieModelsTests").appendingPathComponent("quantized-models")
    private static let mixed = fixtures.appendingPathComponent("mixed.gguf")
    private static let folder = fixtures.appendingPathComponent("hf")

    private func run(_ arguments: [String], in folder: URL, file: StaticString = #filePath, line: UInt = #line) throws
        -> ChildProcess.Result {
        let result = try CollieExecutable.run(arguments, in: folder, log: arguments[0], timeout: 120)
        XCTAssertEqual(result.status, 0, "collie \(arguments.joined(separator: " ")): \(result.errors)", file: file, line: line)
        return result
    }

    private func ids(_ output: String) throws -> [Int] {
        let record = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any], output)
        return try XCTUnwrap(record["ids"] as? [Int], output)
    }

    func testGenerateFromKeptBlocksAndFromQuantizeAtLoad() throws {
        let folder = try temporaryFolder(for: self)
        let greedy = ["generate", "--prompt-ids", "5,60,7,200", "--max-new-tokens", "8", "--json"]
        let dense = try ids(run(greedy + ["--model", Self.mixed.path], in: folder).output)
        let blocks = try ids(run(greedy + ["--model", Self.mixed.path, "--quantized"], in: folder).output)
        XCTAssertEqual(blocks.count, 8)
        // Blocks decode with float activations: the dequantized weights up to summation order.
        XCTAssertEqual(blocks.prefix(4), dense.prefix(4), "blocks \(blocks) vs dense \(dense)")
        let text = try run(["generate", "--model", Self.mixed.path, "--quantized", "--prompt", "To be", "--chat",
                            "--max-new-tokens", "3", "--json"], in: folder).output
        XCTAssertEqual(try ids(text).count, 3, text)
        let q8 = try ids(run(greedy + ["--model", Self.folder.path, "--quantize", "q8_0"], in: folder).output)
        XCTAssertEqual(q8.count, 8)
    }

    func testScoreOfKeptBlocksEqualsTheDenseScore() throws {
        let folder = try temporaryFolder(for: self)
        var generator = RandomGenerator(seed: 17)
        let data = folder.appendingPathComponent("records.jsonl")
        try writeTokenRecords(randomTokenRecords(count: 3, lengths: 6...12, using: &generator), to: data)
        func perplexity(_ extra: [String]) throws -> Double {
            let result = try run(["score", "--model", Self.mixed.path, "--data", data.path] + extra, in: folder)
            let line = try XCTUnwrap(result.errors.split(separator: "\n").last { $0.hasPrefix("perplexity") })
            return try XCTUnwrap(Double(line.split(separator: " ")[1]), String(line))
        }
        let dense = try perplexity([]), blocks = try perplexity(["--quantized"])
        XCTAssertEqual(blocks, dense, accuracy: 1e-5 * dense)
    }

    func testFlagsThatCannotWorkAreRefused() throws {
        let folder = try temporaryFolder(for: self)
        let base = ["generate", "--prompt-ids", "5,6", "--max-new-tokens", "1"]
        let cases: [([String], [String])] = [
            (["--model", Self.folder.path, "--quantized"], ["--quantized", "not a .gguf file", "--quantize"]),
            (["--model", Self.mixed.path, "--quantized", "--quantize", "q4_0"], ["not both"]),
            (["--model", Self.mixed.path, "--quantize", "q6_k"], ["no quantizer for q6_k"]),
            (["--model", Self.mixed.path, "--quantize", "q9"], ["q9"]),
        ]
        for (arguments, words) in cases {
            let result = try CollieExecutable.run(base + arguments, in: folder, log: "generate", timeout: 120)
            XCTAssertNotEqual(result.status, 0, arguments.joined(separator: " "))
            for word in words { XCTAssertTrue(result.errors.contains(word), "'\(word)' not in: \(result.errors)") }
        }
    }

    func testConfigKeysAreCheckedAndTrainingQuantizedWeightsNeedsAnAdapter() throws {
        let folder = try temporaryFolder(for: self)
        var generator = RandomGenerator(seed: 5)
        try writeTokenRecords(randomTokenRecords(count: 4, lengths: 6...10, using: &generator),
                              to: folder.appendingPathComponent("train.jsonl"))
        func train(_ lines: String) throws -> ChildProcess.Result {
            let config = folder.appendingPathComponent("config.yaml")
            try """
                train_data: train.jsonl
                record_format: tokens
                train_epochs: 1
                train_micro_batch_size: 2
                optimizer: {name: adamw, lr: 1.0e-3}
                output_dir: out
                \(lines)
                """.write(to: config, atomically: true, encoding: .utf8)
            return try CollieExecutable.run(["train", config.path], in: folder, log: "train", timeout: 120)
        }
        let cases: [(String, [String])] = [
            ("model: \(Self.folder.path)\nquantized: true", ["quantized", "not a .gguf file", "quantize:"]),
            ("model: \(Self.mixed.path)\nquantized: true\nquantize: q4_0", ["quantize", "not both"]),
            ("model: \(Self.mixed.path)\nquantize: q4_z", ["quantize", "q4_z", "q4_0"]),
            ("model: \(Self.mixed.path)\nquantized: true", ["quantized weights are frozen", "peft_config"]),
        ]
        for (lines, words) in cases {
            let result = try train(lines)
            XCTAssertNotEqual(result.status, 0, lines)
            let output = result.errors + result.output
            for word in words { XCTAssertTrue(output.contains(word), "'\(word)' not in: \(output)") }
        }
        // With an adapter the quantized model trains.
        let lora = try train("model: \(Self.mixed.path)\nquantized: true\n"
                             + "peft_config: {peft_type: LORA, r: 4, lora_alpha: 8, target_modules: [q_proj, v_proj]}")
        XCTAssertEqual(lora.status, 0, lora.errors)
    }
}
