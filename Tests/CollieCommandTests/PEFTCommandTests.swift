import CollieTestSupport
import Foundation
import XCTest

/// `collie train`, `convert` and `score` with a PEFT adapter.
final class PEFTCommandTests: XCTestCase {
    /// `collie train` with `peft_config` writes the adapter as final/; `collie convert --adapter` merges it into a
    /// full model whose scores equal `collie score --adapter`'s on the base.
    func testCommandLineTrainsMergesAndScoresAnAdapter() throws {
        let folder = try temporaryFolder(for: self)
        let config = folder.appendingPathComponent("config.yaml")
        try String(contentsOf: Fixtures.folder.appendingPathComponent("lora_adamw/config.yaml"), encoding: .utf8)
            .replacingOccurrences(of: "../", with: Fixtures.folder.path + "/")
            .write(to: config, atomically: true, encoding: .utf8)
        let train = try CollieExecutable.run(["train", config.path, "--set", "tokenizer=\(Fixtures.tokenizerFolder.path)",
                                           "--set", "train_epochs=1"], in: folder)
        XCTAssertEqual(train.status, 0, train.errors)
        XCTAssertTrue(train.output.contains("peft: LoRA r 4"), train.output)
        let final = folder.appendingPathComponent("output/final")
        XCTAssertTrue(FileManager.default.fileExists(atPath: final.appendingPathComponent("adapter_model.safetensors").path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("output/base_model").path),
                       "a folder model is its own base")

        let merged = folder.appendingPathComponent("merged")
        let convert = try CollieExecutable.run(["convert", "--model", Fixtures.model.path, "--adapter", final.path,
                                             "--out", merged.path], in: folder, log: "convert")
        XCTAssertEqual(convert.status, 0, convert.errors)
        let data = Fixtures.folder.appendingPathComponent("eval.jsonl")
        func score(_ arguments: [String]) throws -> [Double] {
            let result = try CollieExecutable.run(["score", "--data", data.path] + arguments, in: folder, log: "score")
            XCTAssertEqual(result.status, 0, result.errors)
            return result.output.split(separator: "\n").compactMap {
                (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["nll"] as? Double
            }
        }
        let adapted = try score(["--model", Fixtures.model.path, "--adapter", final.path])
        let mergedScores = try score(["--model", merged.path])
        let base = try score(["--model", Fixtures.model.path])
        XCTAssertEqual(adapted.count, 3)
        for (a, m) in zip(adapted, mergedScores) { XCTAssertEqual(a, m, accuracy: 1e-5) }
        XCTAssertNotEqual(adapted, base, "the trained adapter changes the scores")
    }
}
