import CollieTestSupport
import CollieTokenizers
import CollieTraining
import Foundation
import XCTest

final class DatasetTests: XCTestCase {
    let tokenizer = Fixtures.tokenizer
    let bos = 1, eos = 2

    /// Writes `text` to a file in a fresh folder.
    private func file(_ name: String, _ text: String) throws -> URL {
        let url = try temporaryFolder(for: self).appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url
    }

    private func datasetError(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> DatasetError? {
        do {
            try body()
            XCTFail("expected a DatasetError", file: file, line: line)
        } catch let error as DatasetError {
            return error
        } catch {
            XCTFail("expected a DatasetError, got \(error)", file: file, line: line)
        }
        return nil
    }

    private func ids(_ text: String) -> [Int] { tokenizer.encode(text, addSpecialTokens: false) }

    // MARK: - Record formats

    func testTextRecordTrainsEveryTokenAfterBOS() throws {
        let url = try file("text.jsonl", #"{"text": "Hello world"}"# + "\n" + #"{"text": "The cat sat."}"#)
        let dataset = try TrainingDataset.load(from: url, tokenizer: tokenizer)
        XCTAssertEqual(dataset.format, .text)
        XCTAssertEqual(dataset.count, 2)
        XCTAssertEqual(dataset[0].tokens, [bos, 15043, 3186], "LLaMA-2 ids of \"Hello world\"")
        XCTAssertEqual(dataset[0].labels, dataset[0].tokens)
        XCTAssertEqual(dataset[0].trainedTokenCount, 2)
        XCTAssertEqual(dataset[1].location, RecordLocation(file: url.path, line: 2))
    }

    func testInputOutputRecordMasksTheInput() throws {
        let url = try file("io.json", #"[{"input": "Question: 2+2?", "output": "Answer: 4"}]"#)
        let dataset = try TrainingDataset.load(from: url, tokenizer: tokenizer)
        XCTAssertEqual(dataset.format, .inputOutput)
        let input = ids("Question: 2+2?"), output = ids("Answer: 4")
        XCTAssertEqual(dataset[0].tokens, [bos] + input + output, "BOS before the input; LLaMA-2 adds no EOS")
        XCTAssertEqual(dataset[0].labels, [Int](repeating: -100, count: 1 + input.count) + output)
        XCTAssertEqual(dataset[0].trainedTokenCount, output.count)
    }

    func testAlpacaRecordUsesThePromptTemplateAndTrainsResponseAndEOS() throws {
        let url = try file("alpaca.json", """
            [
              {"instruction": "Name a color.", "input": "", "output": "Blue."},
              {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"}
            ]
            """)
        let dataset = try TrainingDataset.load(from: url, tokenizer: tokenizer)
        XCTAssertEqual(dataset.format, .alpaca, "instruction/input/output is alpaca, not input_output")
        let noInput = "Below is an instruction that describes a task. Write a response that appropriately completes "
            + "the request.\n\n### Instruction:\nName a color.\n\n### Response:"
        let withInput = "Below is an instruction that describes a task, paired with an input that provides further "
            + "context. Write a response that appropriately completes the request.\n\n### Instruction:\nAdd the "
            + "numbers.\n\n### Input:\n2 and 3\n\n### Response:"
        XCTAssertEqual(AlpacaTemplate.prompt(instruction: "Name a color.", input: ""), noInput)
        XCTAssertEqual(AlpacaTemplate.prompt(instruction: "Add the numbers.", input: "2 and 3"), withInput)
        for (example, (prompt, response)) in zip(dataset, [(noInput, "Blue."), (withInput, "5")]) {
            let promptIDs = [bos] + ids(prompt), responseIDs = ids(response) + [eos]
            XCTAssertEqual(example.tokens, promptIDs + responseIDs)
            XCTAssertEqual(example.labels, [Int](repeating: -100, count: promptIDs.count) + responseIDs)
        }
    }

    func testTokenizerThatAddsEOSPutsItAfterTheOutputOnly() throws {
        let eosTokenizer = try Tokenizer(
            tokenizerJSON: Fixtures.tokenizerFolder.appendingPathComponent("tokenizer.json"),
            configuration: TokenizerConfiguration(addBOSToken: true, addEOSToken: true, bosToken: "<s>", eosToken: "</s>"))
        let records = [TrainingRecord(.inputOutput(input: "Q", output: "A"))]
        let example = try TrainingDataset(records: records, tokenizer: eosTokenizer)[0]
        XCTAssertEqual(example.tokens, [bos] + ids("Q") + ids("A") + [eos])
        XCTAssertEqual(example.labels, [-100] + ids("Q").map { _ in -100 } + ids("A") + [eos])
        let text = try TrainingDataset(records: [TrainingRecord(.text("Hello"))], tokenizer: eosTokenizer)[0]
        XCTAssertEqual(text.tokens, [bos, 15043, eos])
        let alpaca = try TrainingDataset(records: [TrainingRecord(.alpaca(instruction: "Hi", input: "", output: "Yo"))],
                                         tokenizer: eosTokenizer)[0]
        XCTAssertEqual(alpaca.tokens.suffix(ids("Yo").count + 1), ids("Yo") + [eos], "one EOS, not two")
    }

    func testPromptMaskingCountsOnlyOutputTokens() throws {
        let url = try file("alpaca.jsonl", #"{"instruction": "Say hi.", "output": "Hi there, friend!"}"#)
        let example = try TrainingDataset.load(from: url, format: .alpaca, tokenizer: tokenizer)[0]
        let response = ids("Hi there, friend!")
        XCTAssertEqual(example.trainedTokenCount, response.count + 1, "the response and EOS, nothing of the prompt")
        XCTAssertEqual(Array(example.labels.suffix(response.count + 1)), response + [eos])
        XCTAssertTrue(example.labels.dropLast(response.count + 1).allSatisfy { $0 == -100 })
    }

    func testPreTokenizedRecordKeepsTokensAndLabels() throws {
        let url = try file("tokens.jsonl", """
            {"tokens": [1, 15043, 3186]}
            {"tokens": [1, 15043, 3186, 2], "labels": [-100, -100, 3186, 2]}
            """)
        let dataset = try TrainingDataset.load(from: url, tokenizer: tokenizer)
        XCTAssertEqual(dataset.format, .tokens)
        XCTAssertEqual(dataset[0], TrainingExample(tokens: [1, 15043, 3186], labels: [1, 15043, 3186],
                                                   location: RecordLocation(file: url.path, line: 1)))
        XCTAssertEqual(dataset[1].labels, [-100, -100, 3186, 2])
        XCTAssertEqual(dataset[1].trainedTokenCount, 2)
    }

    func testTokenOutsideTheVocabularyNamesTheLine() throws {
        let url = try file("tokens.jsonl", "{\"tokens\": [1, 2, 3]}\n\n{\"tokens\": [1, 32000]}\n")
        let error = try XCTUnwrap(datasetError { _ = try TrainingDataset.load(from: url, tokenizer: tokenizer) })
        XCTAssertEqual(error.location?.line, 3)
        XCTAssertEqual(error.description, "\(url.path):3: token id 32000 (tokens[1]) is outside the vocabulary (32000 ids)")
    }

    func testLabelsOfTheWrongLengthNameTheLine() throws {
        let url = try file("tokens.jsonl", "{\"tokens\": [1, 2, 3], \"labels\": [1, 2]}\n")
        let error = try XCTUnwrap(datasetError { _ = try TrainingDataset.load(from: url, tokenizer: tokenizer) })
        XCTAssertEqual(error.location?.line, 1)
        XCTAssertTrue(error.message.contains("\"labels\" has 2 values but \"tokens\" has 3"), error.message)
    }

    func testTruncationKeepsTheFirstMaxLengthTokens() throws {
        let text = String(repeating: "word ", count: 50)
        let url = try file("text.jsonl", "{\"text\": \"\(text)\"}\n{\"text\": \"short\"}\n")
        let dataset = try TrainingDataset.load(from: url, tokenizer: tokenizer, maxLength: 16)
        XCTAssertEqual(dataset[0].tokens, Array(tokenizer.encode(text).prefix(16)))
        XCTAssertEqual(dataset[0].labels.count, 16)
        XCTAssertEqual(dataset.truncatedCount, 1)
    }

    func testExampleWhoseOutputIsCutAwayIsSkipped() throws {
        let url = try file("io.jsonl", """
            {"input": "\(String(repeating: "long prompt ", count: 20))", "output": "yes"}
            {"input": "q", "output": "a"}
            """)
        let dataset = try TrainingDataset.load(from: url, tokenizer: tokenizer, maxLength: 8)
        XCTAssertEqual(dataset.count, 1)
        XCTAssertEqual(dataset.skippedCount, 1)
        XCTAssertEqual(dataset[0].location?.line, 2)
    }

    // MARK: - Format detection

    func testFormatIsDetectedFromTheFirstRecordsKeys() throws {
        XCTAssertEqual(try RecordFormat.detect(keys: ["text", "id"]), .text)
        XCTAssertEqual(try RecordFormat.detect(keys: ["input", "output"]), .inputOutput)
        XCTAssertEqual(try RecordFormat.detect(keys: ["instruction", "input", "output"]), .alpaca)
        XCTAssertEqual(try RecordFormat.detect(keys: ["instruction", "output"]), .alpaca)
        XCTAssertEqual(try RecordFormat.detect(keys: ["tokens", "labels"]), .tokens)
        XCTAssertEqual(try RecordFormat.detect(keys: ["text", "target"], among: RecordFormat.evaluationFormats), .generation)
        XCTAssertEqual(try RecordFormat.detect(keys: ["input", "output", "target"], among: RecordFormat.evaluationFormats),
                       .classification)
    }

    func testAmbiguousOrUnknownKeysAreAnError() throws {
        let url = try file("mixed.jsonl", #"{"text": "a", "input": "b", "output": "c"}"#)
        let error = try XCTUnwrap(datasetError { _ = try TrainingDataset.load(from: url, tokenizer: tokenizer) })
        XCTAssertEqual(error.location?.line, 1)
        XCTAssertTrue(error.message.contains("fit several record formats (text, input_output); set record_format"),
                      error.message)
        XCTAssertNoThrow(try TrainingDataset.load(from: url, format: .text, tokenizer: tokenizer))
        let unknown = try XCTUnwrap(datasetError { _ = try RecordFormat.detect(keys: ["prompt", "completion"]) })
        XCTAssertTrue(unknown.message.contains("fit no record format"), unknown.message)
    }

    func testMissingOrMistypedFieldNamesTheLine() throws {
        let url = try file("io.jsonl", "{\"input\": \"a\", \"output\": \"b\"}\n{\"input\": \"a\", \"output\": 3}\n")
        let error = try XCTUnwrap(datasetError { _ = try TrainingDataset.load(from: url, tokenizer: tokenizer) })
        XCTAssertEqual(error.description, "\(url.path):2: \"output\" must be a string, got the number 3")
        let missing = try file("io.jsonl", "{\"input\": \"a\", \"output\": \"b\"}\n{\"input\": \"a\"}\n")
        XCTAssertEqual(datasetError { _ = try TrainingDataset.load(from: missing, tokenizer: tokenizer) }?.description,
                       "\(missing.path):2: missing \"output\"")
    }

    // MARK: - Malformed files

    func testMalformedJSONLLineGivesFileAndLineNumber() throws {
        let url = try file("bad.jsonl", "{\"text\": \"one\"}\n{\"text\": \"two\"}\n{\"text\": \"three\"\n{\"text\": \"four\"}\n")
        let error = try XCTUnwrap(datasetError { _ = try TrainingDataset.load(from: url, tokenizer: tokenizer) })
        XCTAssertEqual(error.location, RecordLocation(file: url.path, line: 3))
        XCTAssertTrue(error.description.hasPrefix("\(url.path):3: malformed JSON"), error.description)
    }

    func testMalformedRecordInAJSONArrayGivesTheLineItStartsOn() throws {
        let url = try file("bad.json", "[\n  {\"text\": \"one\"},\n  {\"text\": \"two\",\n   \"x\": tru},\n  {\"text\": \"3\"}\n]\n")
        let error = try XCTUnwrap(datasetError { _ = try TrainingDataset.load(from: url, tokenizer: tokenizer) })
        XCTAssertEqual(error.location?.line, 3)
        let unclosed = try file("bad.json", "[\n  {\"text\": \"one\"},\n  {\"text\": \"two\"}\n")
        XCTAssertTrue(datasetError { _ = try TrainingDataset.load(from: unclosed, tokenizer: tokenizer) }?.message
                      .contains("not closed") ?? false)
    }

    func testSyntaxErrorNamesTheRecordsLineAndTheErrorsPlace() throws {
        let url = try file("bad.json", "[\n  {\"text\": \"one\"},\n  {\"text\": \"two\",\n   \"x\": [1 2]},\n  {\"text\": \"3\"}\n]\n")
        let error = try XCTUnwrap(datasetError { _ = try TrainingDataset.load(from: url, tokenizer: tokenizer) })
        XCTAssertEqual(error.description, "\(url.path):3: malformed JSON: expected ',' or ']' in an array at [1].x[0] (line 4)")
        let line = try file("bad.jsonl", "{\"text\": \"one\"} {\"text\": \"two\"}\n")
        XCTAssertEqual(datasetError { _ = try TrainingDataset.load(from: line, tokenizer: tokenizer) }?.description,
                       "\(line.path):1: malformed JSON: unexpected text after the JSON value")
    }

    func testStringThatIsNotUTF8IsAnError() throws {
        let url = try file("latin1.jsonl", "")
        try Data("{\"text\": \"caf".utf8 + [0xE9] + "\"}\n".utf8).write(to: url)
        XCTAssertEqual(datasetError { _ = try TrainingDataset.load(from: url, tokenizer: tokenizer) }?.description,
                       "\(url.path):1: \"text\" is not valid UTF-8")
    }

    func testMistypedValueIsDescribedAsWritten() throws {
        let whole = try file("tokens.jsonl", "{\"tokens\": [1, 2.0, 3e0]}\n")
        XCTAssertEqual(try TrainingRecord.load(from: whole).records[0].content, .tokens([1, 2, 3], labels: nil),
                       "whole numbers count as integers, as JSONDecoder reads them")
        let url = try file("tokens.jsonl", "{\"tokens\": [1, 2.5]}\n")
        XCTAssertEqual(datasetError { _ = try TrainingDataset.load(from: url, tokenizer: tokenizer) }?.description,
                       "\(url.path):1: \"tokens\"[1] must be an integer, got the number 2.5")
        let list = try file("tokens.jsonl", "{\"tokens\": \"1 2\"}\n")
        XCTAssertEqual(datasetError { _ = try TrainingDataset.load(from: list, tokenizer: tokenizer) }?.description,
                       "\(list.path):1: \"tokens\" must be a list of integers, got a string")
    }

    func testRecordThatIsNotAnObjectIsAnError() throws {
        let url = try file("bad.jsonl", "{\"text\": \"one\"}\n[1, 2]\n")
        let error = try XCTUnwrap(datasetError { _ = try TrainingDataset.load(from: url, tokenizer: tokenizer) })
        XCTAssertEqual(error.description, "\(url.path):2: a record must be a JSON object {…}, got a list")
    }

    func testEmptyDatasetIsAnError() throws {
        for text in ["", "\n  \n", "[]", " [ ] "] {
            let url = try file("empty.json", text)
            let error = try XCTUnwrap(datasetError { _ = try TrainingDataset.load(from: url, tokenizer: tokenizer) })
            XCTAssertEqual(error.description, "\(url.path): the dataset has no records", text)
        }
    }

    // MARK: - Evaluation records

    func testGenerationRecordsLoadWithOneOrSeveralTargets() throws {
        let url = try file("gen.jsonl", """
            {"text": "Translate: chat", "target": "cat"}
            {"text": "Translate: chien", "target": ["dog", "hound"]}
            {"text": "Continue:"}
            """)
        XCTAssertEqual(try GenerationRecord.load(from: url).map(\.targets), [["cat"], ["dog", "hound"], []])
        XCTAssertEqual(try GenerationRecord.load(from: url)[2].location?.line, 3)
    }

    func testClassificationRecordsLoadAndCheckTheTargetIndex() throws {
        let url = try file("cls.json", #"[{"input": "The movie was great.", "output": [" negative", " positive"], "target": 1}]"#)
        XCTAssertEqual(try ClassificationRecord.load(from: url),
                       [ClassificationRecord(input: "The movie was great.", options: [" negative", " positive"], target: 1,
                                             location: RecordLocation(file: url.path, line: 1))])
        let bad = try file("cls.jsonl", "{\"input\": \"x\", \"output\": [\"a\", \"b\"], \"target\": 2}\n")
        XCTAssertEqual(datasetError { _ = try ClassificationRecord.load(from: bad) }?.location?.line, 1)
        let flag = try file("cls.jsonl", "{\"input\": \"x\", \"output\": [\"a\", \"b\"], \"target\": true}\n")
        XCTAssertEqual(datasetError { _ = try ClassificationRecord.load(from: flag) }?.message,
                       "\"target\" must be an integer, got a boolean")
    }

    // MARK: - The bundled example data

    func testBundledAlpacaDemoTokenizes() throws {
        let url = TestPaths.repository.appendingPathComponent("data/alpaca_en_demo.json")
        let dataset = try TrainingDataset.load(from: url, tokenizer: tokenizer, maxLength: 512)
        XCTAssertEqual(dataset.format, .alpaca)
        XCTAssertEqual(dataset.count + dataset.skippedCount, 999)
        XCTAssertTrue(dataset.allSatisfy { $0.tokens.count <= 512 && $0.tokens.first == 1 })
    }
}
