import CollieModels
import CollieTestSupport
import Foundation
import XCTest

/// `collie train`, `score` and `generate` on ChatGLM2, ChatGLM-6B and MOSS folders in their own layouts: full training with
/// AdaLomo and LoRA by the family's module names, the final folder written back in the family's layout.
final class FamilyTrainCommandTests: XCTestCase {
    private func run(_ variant: String, optimizer: String, extra: String = "") throws -> (folder: URL, output: String) {
        let folder = try temporaryFolder(for: self)
        let config = try writeFixtureRun(in: folder, records: 16, lengths: 6...14, seed: 7, model: ModelFixtures.folder(variant),
                                         settings: """
            train_epochs: 1
            max_steps: 4
            train_micro_batch_size: 2
            gradient_accumulation_steps: 1
            optimizer: \(optimizer)
            output_dir: out
            monitor_outputs: [csv]
            \(extra)
            """)
        let result = try CollieExecutable.run(["train", config.path], in: folder, log: variant)
        XCTAssertEqual(result.status, 0, "\(variant): \(result.errors)")
        return (folder, result.output)
    }

    func testAdaLomoTrainsEachFamilyAndSavesItsLayout() throws {
        for variant in ["chatglm2", "chatglm6b", "moss"] {
            let (folder, _) = try run(variant, optimizer: "{name: adalomo, lr: 1.0e-2}")
            let final = folder.appendingPathComponent("out/final")
            let saved = try LlamaConfiguration.load(from: final)
            let original = try LlamaConfiguration.load(from: ModelFixtures.folder(variant))
            XCTAssertEqual(saved.modelType, original.modelType, variant)
            let autoMap = { (folder: URL) in
                (try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("config.json"))) as? [String: Any])?["auto_map"] as? [String: String]
            }
            XCTAssertEqual(try autoMap(final), try autoMap(ModelFixtures.folder(variant)), "\(variant): the remote code's auto_map is kept")
            let trained = try PretrainedModel.model(.folder(final)), base = try PretrainedModel.model(.folder(ModelFixtures.folder(variant)))
            XCTAssertEqual(trained.namedParameters.map(\.key), base.namedParameters.map(\.key), variant)
            XCTAssertNotEqual(trained.namedParameters[1].tensor.floats(), base.namedParameters[1].tensor.floats(), variant)

            let generate = try CollieExecutable.run(["generate", "--model", final.path, "--prompt-ids", "5,60,7",
                                                     "--max-new-tokens", "4", "--json"], in: folder, log: "generate")
            XCTAssertEqual(generate.status, 0, "\(variant): \(generate.errors)")
            XCTAssertTrue(generate.output.contains("\"ids\""), generate.output)
        }
    }

    func testLoRAByTheFamilysModuleNamesTrains() throws {
        for (variant, targets) in [("chatglm2", "[query_key_value, dense_4h_to_h]"), ("chatglm6b", "[query_key_value, dense]"),
                                   ("moss", "[qkv_proj, fc_in]")] {
            let (folder, output) = try run(variant, optimizer: "{name: adamw, lr: 1.0e-2}", extra: """
                peft_config: {peft_type: LORA, r: 4, lora_alpha: 8, target_modules: \(targets)}
                """)
            XCTAssertTrue(output.contains("peft: LoRA r 4"), output)
            let adapter = folder.appendingPathComponent("out/final/adapter_model.safetensors")
            XCTAssertTrue(FileManager.default.fileExists(atPath: adapter.path), variant)
        }
    }
}
