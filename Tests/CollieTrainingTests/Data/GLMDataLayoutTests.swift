import CollieTestSupport
import CollieTokenizers
import CollieTraining
import Foundation
import XCTest

/// With ChatGLM-6B's tokenizer, prompt/answer records take THUDM's (and CoLLiE's) training layout: prompt,
/// `[gMASK]`, `<sop>`, answer, `<eop>`, the loss on the answer and `<eop>` only. With ChatGLM2's, `[gMASK] sop`
/// come first, as its tokenizer puts them, and the answer ends with `</s>`.
final class GLMDataLayoutTests: XCTestCase {
    let tokenizer = try! Tokenizer(contentsOf: TestPaths.tokenizers.appendingPathComponent("chatglm6b"))
    let gMASK = 141, sop = 144, eop = 145

    private func ids(_ text: String) -> [Int] { tokenizer.encode(text, addSpecialTokens: false) }

    func testAlpacaRecordPutsGMaskAndSopBetweenPromptAndAnswer() throws {
        let records = [TrainingRecord(.alpaca(instruction: "你好", input: "", output: "Hello there"))]
        let example = try TrainingDataset(records: records, tokenizer: tokenizer)[0]
        let prompt = ids(AlpacaTemplate.prompt(instruction: "你好", input: "")), answer = ids("Hello there")
        XCTAssertEqual(example.tokens, prompt + [gMASK, sop] + answer + [eop])
        XCTAssertEqual(example.labels, [Int](repeating: -100, count: prompt.count + 2) + answer + [eop])
    }

    func testInputOutputRecordTakesTheSameLayout() throws {
        let records = [TrainingRecord(.inputOutput(input: "问：1+1?", output: "答：2"))]
        let example = try TrainingDataset(records: records, tokenizer: tokenizer)[0]
        let prompt = ids("问：1+1?"), answer = ids("答：2")
        XCTAssertEqual(example.tokens, prompt + [gMASK, sop] + answer + [eop])
        XCTAssertEqual(example.labels, [Int](repeating: -100, count: prompt.count + 2) + answer + [eop])
    }

    func testBatchRowsKeepTheLayout() throws {
        let records = [TrainingRecord(.inputOutput(input: "a b", output: "c")),
                       TrainingRecord(.inputOutput(input: "hello world", output: "the end"))]
        let dataset = try TrainingDataset(records: records, tokenizer: tokenizer)
        let loader = try DataLoader(dataset: dataset, batchSize: 2, padder: Padder(tokenizer: tokenizer))
        let batch = loader.batch(at: .start)
        for row in 0..<2 {
            let example = dataset[batch.exampleIndices[row]]
            let tokens = Array(batch.tokens[(row * batch.length)...].prefix(example.tokens.count))
            XCTAssertEqual(tokens, example.tokens)
            let gMASKAt = try XCTUnwrap(tokens.firstIndex(of: gMASK))
            XCTAssertEqual(tokens[gMASKAt + 1], sop)
            XCTAssertEqual(tokens.last, eop)
            let labels = Array(batch.labels[(row * batch.length)...].prefix(example.tokens.count))
            XCTAssertTrue(labels[...(gMASKAt + 1)].allSatisfy { $0 == -100 }, "prompt, [gMASK] and <sop> are not trained")
            XCTAssertEqual(Array(labels[(gMASKAt + 2)...]), Array(tokens[(gMASKAt + 2)...]), "answer and <eop> are")
        }
    }

    func testTextRecordEndsWithGMaskAndSopAsTheWrapperEncodes() throws {
        let example = try TrainingDataset(records: [TrainingRecord(.text("hello"))], tokenizer: tokenizer)[0]
        XCTAssertEqual(example.tokens, ids("hello") + [gMASK, sop])
        XCTAssertEqual(SpecialTokens(tokenizer).suffix, [], "[gMASK] <sop> is the prompt suffix, not the text suffix")
    }

    func testChatGLM2AlpacaRecordStartsWithGMaskSopAndEndsWithEOS() throws {
        let glm2 = try Tokenizer(contentsOf: TestPaths.tokenizers.appendingPathComponent("chatglm2"))
        let records = [TrainingRecord(.alpaca(instruction: "你好", input: "", output: "Hello there"))]
        let example = try TrainingDataset(records: records, tokenizer: glm2)[0]
        let prompt = glm2.encode(AlpacaTemplate.prompt(instruction: "你好", input: ""), addSpecialTokens: false)
        let answer = glm2.encode("Hello there", addSpecialTokens: false)
        XCTAssertEqual(example.tokens, [601, 603] + prompt + answer + [2])
        XCTAssertEqual(example.labels, [Int](repeating: -100, count: prompt.count + 2) + answer + [2])
    }

    /// ChatGLM3 without a chat template: with `ChatFormat.roleTokens` an Alpaca record is one turn laid out by its role
    /// tokens, as its finetune demo trains it — `[gMASK] sop <|user|>` "\n" prompt `<|assistant|>` masked, "\n" reply
    /// `</s>` trained.
    func testChatGLM3TurnIsLaidOutByRoleTokens() throws {
        let glm3 = try Tokenizer(contentsOf: TestPaths.tokenizers.appendingPathComponent("chatglm3"))
        let records = [TrainingRecord(.alpaca(instruction: "你好", input: "", output: "Hello there"))]
        let example = try TrainingDataset(records: records, tokenizer: glm3, chatFormat: .roleTokens)[0]
        let masked = try glm3.chatGLM3Input([("user", "", "你好")])
        XCTAssertEqual(Array(masked.prefix(3)), [601, 603, 606], "[gMASK] sop <|user|>")
        XCTAssertEqual(masked.last, 607, "<|assistant|>")
        let trained = try glm3.chatGLM3Reply("Hello there")
        XCTAssertEqual(trained.last, 2, "the reply ends with </s>")
        XCTAssertEqual(example.tokens, masked + trained)
        XCTAssertEqual(example.labels, [Int](repeating: -100, count: masked.count) + trained)
        XCTAssertThrowsError(try TrainingDataset(records: records, tokenizer: tokenizer, chatFormat: .roleTokens),
                             "ChatGLM-6B's tokenizer has no role tokens")
    }
}
