import CollieTestSupport
import Foundation
import XCTest

/// `collie generate --json` prints what its help promises for every kind of prompt: `prompt_ids`, `ids`, `text` and
/// `finish_reason`.
final class GenerateCommandTests: XCTestCase {
    private func chatModel(in folder: URL) throws -> URL { try ModelFixtures.linkedChatModel(in: folder) }

    private func generate(_ arguments: [String], in folder: URL) throws -> Any {
        let result = try CollieExecutable.run(["generate"] + arguments + ["--json", "--max-new-tokens", "4"], in: folder,
                                              timeout: 120)
        XCTAssertEqual(result.status, 0, result.errors)
        return try JSONSerialization.jsonObject(with: Data(result.output.utf8))
    }

    func testJSONHasPromptIDsIDsTextAndFinishReasonForTextChatAndIDPrompts() throws {
        let folder = try temporaryFolder(for: self)
        let model = try chatModel(in: folder).path
        let keys: Set<String> = ["prompt_ids", "ids", "text", "finish_reason"]
        var records: [[String: Any]] = []
        for arguments in [["--prompt", "Hello"], ["--prompt", "Hello", "--chat"]] {
            let record = try XCTUnwrap(try generate(["--model", model] + arguments, in: folder) as? [String: Any])
            XCTAssertEqual(Set(record.keys), keys, "\(arguments)")
            XCTAssertFalse(try XCTUnwrap(record["prompt_ids"] as? [Int]).isEmpty)
            XCTAssertTrue((1...4).contains(try XCTUnwrap(record["ids"] as? [Int]).count))
            XCTAssertNotNil(record["text"] as? String)
            XCTAssertTrue(["stop", "length"].contains(try XCTUnwrap(record["finish_reason"] as? String)))
            records.append(record)
        }
        // The chat prompt is the template's rendering, longer than the bare text.
        XCTAssertGreaterThan((records[1]["prompt_ids"] as? [Int])?.count ?? 0, (records[0]["prompt_ids"] as? [Int])?.count ?? 0)

        // The same prompt as ids: the same greedy ids and, decoded with the folder's tokenizer, the same text.
        let promptIDs = try XCTUnwrap(records[0]["prompt_ids"] as? [Int]).map(String.init).joined(separator: ",")
        let fromIDs = try XCTUnwrap(try generate(["--model", model, "--prompt-ids", promptIDs], in: folder) as? [String: Any])
        XCTAssertEqual(Set(fromIDs.keys), keys)
        XCTAssertEqual(fromIDs["ids"] as? [Int], records[0]["ids"] as? [Int])
        XCTAssertEqual(fromIDs["text"] as? String, records[0]["text"] as? String)
        XCTAssertEqual(fromIDs["finish_reason"] as? String, records[0]["finish_reason"] as? String)
    }

    func testABatchOfIDPromptsWithoutATokenizerHasNullTexts() throws {
        let folder = try temporaryFolder(for: self)
        let batch = try XCTUnwrap(try generate(["--model", Fixtures.model.path, "--prompt-ids", "1,5,9", "--prompt-ids", "1,7"],
                                               in: folder) as? [[String: Any]])
        XCTAssertEqual(batch.count, 2)
        for (record, prompt) in zip(batch, [[1, 5, 9], [1, 7]]) {
            XCTAssertEqual(Set(record.keys), ["prompt_ids", "ids", "text", "finish_reason"])
            XCTAssertEqual(record["prompt_ids"] as? [Int], prompt)
            XCTAssertFalse(try XCTUnwrap(record["ids"] as? [Int]).isEmpty)
            XCTAssertTrue(record["text"] is NSNull, "no tokenizer in the folder: text is null")
        }
    }
}
