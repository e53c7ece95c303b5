import CollieTestSupport
import Foundation
import XCTest

/// Every config under examples/ runs, so none can rot: each is run by the `collie` executable as written, with only
/// the model swapped for the `tiny` preset at random (the real ones need scripts/setup.sh's download), the tokenizer
/// for LLaMA-2's with a ChatML template, and the run cut to two updates.
final class ExamplesCommandTests: XCTestCase {
    private static let examples = TestPaths.repository.appendingPathComponent("examples")

    /// LLaMA-2's tokenizer with SmolLM2's chat template (chat_template.jinja), for the examples with `chat_template: true`.
    private func chatTokenizer(in folder: URL) throws -> URL {
        let tokenizer = folder.appendingPathComponent("tokenizer")
        try FileManager.default.createDirectory(at: tokenizer, withIntermediateDirectories: true)
        for name in ["tokenizer.json", "tokenizer_config.json"] {
            try FileManager.default.createSymbolicLink(at: tokenizer.appendingPathComponent(name),
                                                       withDestinationURL: Fixtures.tokenizerFolder.appendingPathComponent(name))
        }
        let template = TestPaths.fixtures(of: "CollieTrainingTests").appendingPathComponent("chat_sft/chat_template.jinja")
        try FileManager.default.copyItem(at: template, to: tokenizer.appendingPathComponent("chat_template.jinja"))
        return tokenizer
    }

    /// Runs `collie train examples/<name>` on the tiny preset for two updates; returns its output.
    private func train(_ name: String, _ extra: [String] = [], file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let folder = try temporaryFolder(for: self)
        let overrides = ["model=tiny", "tokenizer=\(try chatTokenizer(in: folder).path)", "max_steps=2", "max_length=96",
                         "sample_max_new_tokens=4", "output_dir=\(folder.appendingPathComponent("run").path)"] + extra
        let run = try CollieExecutable.run(["train", Self.examples.appendingPathComponent(name).path]
                                           + overrides.flatMap { ["--set", $0] }, in: folder, timeout: 600)
        XCTAssertEqual(run.status, 0, "\(name): \(run.errors)", file: file, line: line)
        XCTAssertTrue(run.output.contains("updates of"), run.output, file: file, line: line)
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent("run/final").path),
                      "\(name): final/", file: file, line: line)
        return run.output
    }

    func testTheAlpacaExampleTrainsInTheChatTemplateAndAnswersItsSamplePromptsBeforeAndAfter() throws {
        let output = try train("alpaca/config.yaml")
        XCTAssertTrue(output.contains("max_steps 2"), output)
        XCTAssertTrue(output.contains("eval perplexity"), output)
        XCTAssertEqual(output.components(separatedBy: "\n  before: ").count - 1, 3, output)
        XCTAssertEqual(output.components(separatedBy: "\n  after:  ").count - 1, 3, output)
        XCTAssertTrue(output.contains("prompt: Describe what type of animal is a koala."), output)
    }

    func testTheTinyAlpacaExampleTrains() throws {
        let output = try train("alpaca/tiny.yaml", ["tokenizer=\(Fixtures.tokenizerFolder.path)"])
        XCTAssertTrue(output.contains("eval perplexity"), output)
    }

    func testTheLoRAExampleTrainsAnAdapter() throws {
        let output = try train("lora/config.yaml")
        XCTAssertTrue(output.contains("peft: LoRA r 8"), output)
        XCTAssertTrue(output.contains("PEFT folder"), output)
    }

    func testThePromptTuningExampleTrainsVirtualTokens() throws {
        let output = try train("prompt_tuning/config.yaml")
        XCTAssertTrue(output.contains("peft: prompt tuning, 20 virtual tokens"), output)
    }

    func testTheOneSentenceOverfittingExampleTrains() throws {
        let output = try train("one_sentence_overfitting/config.yaml", ["tokenizer=\(Fixtures.tokenizerFolder.path)"])
        XCTAssertTrue(output.contains("prompt: Collie is a package for"), output)
    }

    /// The 7B recipe (bf16 weights drawn straight into bf16, AdaLomo, checkpointing, bf16 products) on the tiny preset;
    /// the 7B run itself is measured in docs/PERFORMANCE.md.
    func testTheSevenBExampleTrainsItsRecipeOnTheTinyPreset() throws {
        let output = try train("lomo_7b/config.yaml", ["tokenizer=\(Fixtures.tokenizerFolder.path)"])
        XCTAssertTrue(output.contains("mixed precision bf16"), output)
    }

    func testTheEvaluationExamplesRun() throws {
        for name in ["xsum-rouge", "wmt-bleu", "imdb-classification"] {
            let folder = try temporaryFolder(for: self)
            let run = try CollieExecutable.run(["eval", Self.examples.appendingPathComponent("eval/\(name).yaml").path,
                                                "--set", "output_dir=\(folder.appendingPathComponent("out").path)"],
                                               in: folder, log: name, timeout: 600)
            XCTAssertEqual(run.status, 0, "\(name): \(run.errors)")
            XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(run.output.utf8).drop { $0 != UInt8(ascii: "{") }) as? [String: Double],
                            "\(name): \(run.output)")
        }
    }

    /// The three steps of examples/expand_vocab/README.md, each cut to two updates: the base run, `collie vocab merge`
    /// (its printed counts and tokens per character), and continued pretraining of the grown folder with its merged
    /// tokenizer.
    func testTheExpandVocabExampleMergesGrowsAndContinuesPretraining() throws {
        let folder = try temporaryFolder(for: self)
        let repository = TestPaths.repository
        func train(_ name: String, _ overrides: [String]) throws -> String {
            let run = try CollieExecutable.run(["train", Self.examples.appendingPathComponent(name).path]
                                               + (overrides + ["max_steps=2"]).flatMap { ["--set", $0] }, in: folder, timeout: 600)
            XCTAssertEqual(run.status, 0, "\(name): \(run.errors)")
            return run.output
        }
        let base = folder.appendingPathComponent("base")
        _ = try train("expand_vocab/base.yaml", ["output_dir=\(base.path)"])
        let merged = folder.appendingPathComponent("merged")
        let merge = try CollieExecutable.run(["vocab", "merge",
                                              "--base", repository.appendingPathComponent("tokenizers/llama2-spm/tokenizer.model").path,
                                              "--add", repository.appendingPathComponent("tokenizers/chinese-sp/chinese_sp.model").path,
                                              "--model", base.appendingPathComponent("final").path, "--out", merged.path,
                                              "--measure", Self.examples.appendingPathComponent("expand_vocab/zh_text.jsonl").path],
                                             in: folder, timeout: 600)
        XCTAssertEqual(merge.status, 0, merge.errors)
        XCTAssertTrue(merge.output.contains("merged 32000 + 17953 new pieces = 49953 pieces"), merge.output)
        XCTAssertTrue(merge.output.contains("grown to 49953 rows"), merge.output)
        // The numbers of examples/expand_vocab/README.md (sentencepiece's, scripts/fixtures/make_vocab_merge_fixtures.py).
        XCTAssertTrue(merge.output.contains("218272 characters: 278034 tokens before (1.2738 per character), 131364 after "
                                            + "(0.6018 per character)"), merge.output)
        let output = try train("expand_vocab/config.yaml", ["model=\(merged.path)", "max_length=96",
                                                            "output_dir=\(folder.appendingPathComponent("run").path)"])
        XCTAssertTrue(output.contains("eval perplexity"), output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent("run/final/tokenizer.model").path))
    }

    /// A new example must get a test here (qlora/config.yaml keeps a GGUF file's blocks, so QLoRACommandTests runs it
    /// on a tiny GGUF instead of the tiny preset).
    func testEveryExampleConfigIsCovered() throws {
        let covered: Set<String> = ["alpaca/config.yaml", "alpaca/tiny.yaml", "lora/config.yaml", "prompt_tuning/config.yaml",
                                    "qlora/config.yaml", "lomo_7b/config.yaml",
                                    "one_sentence_overfitting/config.yaml", "eval/xsum-rouge.yaml", "eval/wmt-bleu.yaml",
                                    "eval/imdb-classification.yaml", "expand_vocab/base.yaml", "expand_vocab/config.yaml"]
        let found = try FileManager.default.subpathsOfDirectory(atPath: Self.examples.path).filter { $0.hasSuffix(".yaml") }
        XCTAssertEqual(Set(found), covered)
    }
}
