import CollieIO
import CollieModels
import CollieTestSupport
import Foundation
import XCTest
@testable import CollieEngine

/// QLoRA from the command line, on the tiny GGUF whose projections are Q8_0, Q4_0, Q4_1, Q4_K and Q6_K blocks
/// (Tests/CollieModelsTests/Fixtures/qlora, scripts/fixtures/make_qlora_fixtures.py): `collie train` with
/// examples/qlora's config, `collie generate` with an unmerged adapter, and `collie convert --adapter` on the
/// quantized base, which must write what merging into the dequantized model writes.
final class QLoRACommandTests: XCTestCase {
    static let fixtures = ModelFixtures.folder("qlora")
    static let gguf = fixtures.appendingPathComponent("qlora.gguf")
    static let adapter = fixtures.appendingPathComponent("initial_lora")
    static let examples = TestPaths.repository.appendingPathComponent("examples")

    /// examples/qlora/config.yaml as written, with the model swapped for the fixture (its tokenizer and ChatML
    /// template come from the GGUF metadata) and the run cut to two updates.
    func testTheQLoRAExampleTrainsAPEFTAdapterOnTheBlocks() throws {
        let folder = try temporaryFolder(for: self)
        let run = folder.appendingPathComponent("run")
        let overrides = ["model=\(Self.gguf.path)", "max_steps=2", "max_length=64", "sample_max_new_tokens=4",
                         "eval_batch_size=25", "output_dir=\(run.path)"]
        let train = try CollieExecutable.run(["train", Self.examples.appendingPathComponent("qlora/config.yaml").path]
                                             + overrides.flatMap { ["--set", $0] }, in: folder, timeout: 600)
        XCTAssertEqual(train.status, 0, train.errors)
        XCTAssertTrue(train.output.contains("peft: LoRA r 8"), train.output)
        XCTAssertTrue(train.output.contains("updates of"), train.output)
        let final = run.appendingPathComponent("final")
        for name in ["adapter_config.json", "adapter_model.safetensors"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: final.appendingPathComponent(name).path), name)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: final.appendingPathComponent("model.safetensors").path),
                       "the frozen base is not saved")
        let file = try SafeTensorsFile(url: final.appendingPathComponent("adapter_model.safetensors"))
        XCTAssertEqual(file.names.count, 2 * 14, "A and B of 2 layers × 7 projections")
        XCTAssertTrue(file.names.contains("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"))
        // The trained adapter loads onto the quantized base and changes its output.
        let model = try PretrainedModel.model(.gguf(Self.gguf), adapter: .folder(final), quantization: .keepBlocks)
        let ids = Tensor(ints: Array(3..<15), shape: [1, 12])
        let base = try PretrainedModel.model(.gguf(Self.gguf), quantization: .keepBlocks)
        XCTAssertNotEqual(withNoGrad { model(ids) }.floats(), withNoGrad { base(ids) }.floats())
    }

    /// Greedy decoding on blocks with an unmerged adapter (the adapter's output added to each quantized layer's)
    /// equals decoding the dequantized model with the same adapter.
    func testGenerationWithAnUnmergedAdapterOnBlocksEqualsTheDequantizedModel() throws {
        let folder = try temporaryFolder(for: self)
        var outputs: [String] = []
        for flags in [["--quantized"], []] {
            let run = try CollieExecutable.run(["generate", "--model", Self.gguf.path, "--adapter", Self.adapter.path,
                                                "--prompt", "To be, or not", "--max-new-tokens", "12", "--activations", "float"] + flags,
                                               in: folder, log: "generate\(flags.joined())")
            XCTAssertEqual(run.status, 0, run.errors)
            outputs.append(run.output)
        }
        XCTAssertFalse(outputs[0].isEmpty)
        XCTAssertEqual(outputs[0], outputs[1])
    }

    /// `collie convert --quantized --adapter` merges into the dequantized weights layer by layer: the Hugging Face
    /// folder it writes equals the one merging into the model loaded dense writes (and gives PEFT's
    /// merge_and_unload logits); the GGUF re-export (q4_1) equals the dense path's byte for byte.
    func testConvertMergesAnAdapterIntoTheDequantizedBase() throws {
        let folder = try temporaryFolder(for: self)
        func convert(_ out: String, _ extra: [String]) throws -> URL {
            let url = folder.appendingPathComponent(out)
            let run = try CollieExecutable.run(["convert", "--model", Self.gguf.path, "--adapter", Self.adapter.path,
                                                "--out", url.path] + extra, in: folder, log: "convert-\(out)")
            XCTAssertEqual(run.status, 0, run.errors)
            XCTAssertTrue(run.output.contains("merging 14 LoRA adapters"), run.output)
            return url
        }
        let fromBlocks = try convert("blocks", ["--quantized"]), fromDense = try convert("dense", [])
        let weights = "model.safetensors"
        XCTAssertEqual(try Data(contentsOf: fromBlocks.appendingPathComponent(weights)),
                       try Data(contentsOf: fromDense.appendingPathComponent(weights)))
        let expected = try SafeTensorsFile(url: Self.fixtures.appendingPathComponent("expected.safetensors"))
        let merged = try PretrainedModel.model(.folder(fromBlocks))
        let ids = try expected.tensor("input_ids").contiguousCopy()
        let logits = withNoGrad { merged(ids) }
        let reference = try expected.tensor("merged_logits").contiguous().floats(), actual = logits.contiguous().floats()
        let scale = reference.map(abs).max()!
        XCTAssertLessThanOrEqual(zip(actual, reference).map { abs($0 - $1) }.max()! / scale, 1e-5, "merged logits vs PEFT")

        let q41Blocks = try convert("blocks.gguf", ["--quantized", "--outtype", "q4_1"])
        let q41Dense = try convert("dense.gguf", ["--outtype", "q4_1"])
        XCTAssertEqual(try Data(contentsOf: q41Blocks), try Data(contentsOf: q41Dense))
        let types = try GGUFFile(url: q41Blocks).tensors.filter { $0.name.hasPrefix("blk.0.attn_q") }.map(\.type)
        XCTAssertEqual(types, [.q4_1])
    }

    func testConvertRefusesToMergeAPromptTuningAdapterOnBlocks() throws {
        let folder = try temporaryFolder(for: self)
        let run = try CollieExecutable.run(["convert", "--model", Self.gguf.path, "--quantized", "--adapter",
                                            Self.fixtures.appendingPathComponent("initial_prompt").path,
                                            "--out", folder.appendingPathComponent("out").path], in: folder)
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.errors.contains("only LoRA merges into weights"), run.errors)
    }
}
