import CollieEvaluation
import CollieGeneration
import CollieTestSupport
import CollieTokenizers
import CollieTraining
import Foundation
import XCTest

/// `chat_template: true` (`ChatFormat`, rendered by `ChatTemplate` through CollieEvaluation): Alpaca records become
/// one-turn chats whose tokens and masks equal transformers' `apply_chat_template` (fixtures in CollieTrainingTests:
/// scripts/fixtures/make_chat_sft_fixtures.py, Qwen2's tokenizer, SmolLM2's ChatML).
final class ChatFormatTests: XCTestCase {
    private struct Expected: Decodable {
        let tokens: [Int]
        let promptLength: Int
        enum CodingKeys: String, CodingKey { case tokens, promptLength = "prompt_length" }
    }

    private let folder = TestPaths.fixtures(of: "CollieTrainingTests").appendingPathComponent("chat_sft")

    private func chatFormat() throws -> (ChatFormat, Tokenizer) {
        let tokenizer = try Tokenizer(contentsOf: TestPaths.tokenizers.appendingPathComponent("qwen2"))
        let template = try ChatTemplate(String(contentsOf: folder.appendingPathComponent("chat_template.jinja"), encoding: .utf8))
        return (ChatFormat(template: template, tokenizer: tokenizer), tokenizer)
    }

    func testChatExamplesEqualApplyChatTemplateWithThePromptMasked() throws {
        let (format, tokenizer) = try chatFormat()
        let expected = try JSONDecoder().decode([Expected].self, from: Data(contentsOf: folder.appendingPathComponent("expected.json")))
        let (_, records) = try TrainingRecord.load(from: folder.appendingPathComponent("records.json"), format: .alpaca)
        let dataset = try TrainingDataset(records: records, tokenizer: tokenizer, chatFormat: format)
        XCTAssertEqual(dataset.count, expected.count)
        for (example, expected) in zip(dataset, expected) {
            XCTAssertEqual(example.tokens, expected.tokens, "the whole conversation, no BOS/EOS added")
            XCTAssertEqual(example.labels, [Int](repeating: -100, count: expected.promptLength)
                           + expected.tokens[expected.promptLength...], "only the reply and its turn end are trained")
        }
        // The trained part is the reply and the template's turn end.
        let trained = dataset[0].labels.filter { $0 != -100 }
        XCTAssertTrue(try tokenizer.decode(trained, skipSpecialTokens: false).hasSuffix("<|im_end|>\n"))
    }

    func testSplitSeparatesThePromptFromTheReplyAndItsTurnEnd() throws {
        let (format, _) = try chatFormat()
        let (prompt, response) = try format.split(user: "Hi", assistant: "Hello!")
        XCTAssertEqual(prompt, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
                       + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
        XCTAssertEqual(response, "Hello!<|im_end|>\n")
        XCTAssertEqual(ChatFormat.userMessage(instruction: "Sum", input: "1 2"), "Sum\n\n1 2")
        XCTAssertEqual(ChatFormat.userMessage(instruction: "Sum", input: ""), "Sum")
    }

    func testATemplateThatDoesNotStartWithThePromptIsANamedError() throws {
        let tokenizer = try Tokenizer(contentsOf: TestPaths.tokenizers.appendingPathComponent("qwen2"))
        // Puts the last message first: the conversation no longer starts with the prompt.
        let reversed = try ChatTemplate("{% for m in messages|reverse %}{{ m['content'] }};{% endfor %}")
        let (_, records) = try TrainingRecord.load(from: folder.appendingPathComponent("records.json"), format: .alpaca)
        XCTAssertThrowsError(try TrainingDataset(records: records, tokenizer: tokenizer,
                                                 chatFormat: ChatFormat(template: reversed, tokenizer: tokenizer))) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("records.json:") && text.contains("chat_template"), text)
        }
    }

    func testChatTemplateIsRefusedForTextRecords() throws {
        let (format, tokenizer) = try chatFormat()
        let file = try temporaryFolder(for: self).appendingPathComponent("text.jsonl")
        try #"{"text": "plain text"}"#.write(to: file, atomically: true, encoding: .utf8)
        let (_, records) = try TrainingRecord.load(from: file, format: .text)
        XCTAssertThrowsError(try TrainingDataset(records: records, tokenizer: tokenizer, chatFormat: format)) { error in
            XCTAssertTrue("\(error)".contains("chat_template"), "\(error)")
        }
    }

    /// `chat_template: true` with ChatGLM3's tokenizer, which has no template: the turns are laid out by its role
    /// tokens (`ChatFormat.roleTokens`) instead of refusing.
    func testChatGLM3TokenizerWithoutATemplateTrainsTurnsByRoleTokens() throws {
        let run = try temporaryFolder(for: self)
        try #"[{"instruction": "你好", "input": "", "output": "Hello there"}]"#
            .write(to: run.appendingPathComponent("data.json"), atomically: true, encoding: .utf8)
        let yaml = run.appendingPathComponent("config.yaml")
        try """
            model: tiny
            tokenizer: \(TestPaths.tokenizers.appendingPathComponent("chatglm3").path)
            train_data: data.json
            chat_template: true
            """.write(to: yaml, atomically: true, encoding: .utf8)
        let setup = try TrainingSetup.load(config: CollieConfig.load(from: yaml), source: yaml.path)
        XCTAssertEqual(setup.chatFormat?.usesRoleTokens, true)
        let example = setup.trainDataset[0]
        XCTAssertEqual(Array(example.tokens.prefix(3)), [601, 603, 606], "[gMASK] sop <|user|>")
        XCTAssertEqual(example.tokens.last, 2, "</s> ends the reply")
        let assistant = try XCTUnwrap(example.tokens.firstIndex(of: 607))
        XCTAssertTrue(example.labels[...assistant].allSatisfy { $0 == -100 }, "the prompt through <|assistant|> is masked")
        XCTAssertEqual(Array(example.labels[(assistant + 1)...]), Array(example.tokens[(assistant + 1)...]))
    }
}
