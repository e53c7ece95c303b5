import CollieEngine
import CollieModels
import CollieTestSupport
import Foundation
import XCTest

/// `collie score` on inputs that used to give misleading output: an empty file (perplexity 1.0), a record longer
/// than the model's positions (scored silently), a model with NaN weights (`"nll": -nan`, not JSON).
final class ScoreCommandTests: XCTestCase {
    private func score(_ records: String, model: URL = Fixtures.model, in folder: URL) throws -> ChildProcess.Result {
        let data = folder.appendingPathComponent("records.jsonl")
        try records.write(to: data, atomically: true, encoding: .utf8)
        return try CollieExecutable.run(["score", "--model", model.path, "--data", data.path], in: folder)
    }

    func testAnEmptyFileIsAnError() throws {
        let folder = try temporaryFolder(for: self)
        let result = try score("\n", in: folder)
        XCTAssertNotEqual(result.status, 0, result.errors)
        XCTAssertTrue(result.errors.contains("records.jsonl: no records to score"), result.errors)
    }

    func testARecordLongerThanTheModelsPositionsIsScoredWithAWarning() throws {
        let folder = try temporaryFolder(for: self)
        // The fixture model has 64 positions.
        let result = try score("{\"tokens\": \((0..<70).map { $0 % 64 })}\n{\"tokens\": [1, 2, 3]}\n", in: folder)
        XCTAssertEqual(result.status, 0, result.errors)
        XCTAssertTrue(result.errors.contains("record 1 has 70 tokens, more than the model's 64 positions"), result.errors)
        XCTAssertFalse(result.errors.contains("record 2 "), result.errors)
        XCTAssertEqual(result.output.split(separator: "\n").count, 2)
    }

    func testANonFiniteModelStillWritesJSON() throws {
        let folder = try temporaryFolder(for: self)
        let model = try LlamaForCausalLM.load(from: Fixtures.model)
        let weight = model.parameters[0]
        weight.pointer(as: Float.self).update(repeating: .nan, count: weight.count)
        let broken = folder.appendingPathComponent("broken")
        try model.save(to: broken)

        let result = try score("{\"tokens\": [1, 2, 3]}\n", model: broken, in: folder)
        XCTAssertEqual(result.status, 0, result.errors)
        let line = try XCTUnwrap(result.output.split(separator: "\n").first)
        let record = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], String(line))
        XCTAssertTrue(record["nll"] is NSNull, String(line))
        XCTAssertTrue(result.errors.contains("NaN or infinite NLL (written as null)"), result.errors)
    }

    /// `--activations` scores one token at a time through the KV cache: on dense weights the same NLLs as the forward
    /// pass, up to summation order.
    func testScoringThroughTheDecodingPathMatchesTheForwardPass() throws {
        let folder = try temporaryFolder(for: self)
        let records = "{\"tokens\": [1, 5, 9, 2, 33, 7, 7, 40]}\n{\"tokens\": [3, 60, 12]}\n"
        func nlls(_ options: [String]) throws -> [Double] {
            let data = folder.appendingPathComponent("records.jsonl")
            try records.write(to: data, atomically: true, encoding: .utf8)
            let result = try CollieExecutable.run(["score", "--model", Fixtures.model.path, "--data", data.path] + options,
                                                  in: folder)
            XCTAssertEqual(result.status, 0, result.errors)
            return try result.output.split(separator: "\n").map { line in
                try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["nll"] as? Double)
            }
        }
        let forward = try nlls([]), decoded = try nlls(["--activations", "float"])
        XCTAssertEqual(forward.count, 2)
        XCTAssertEqual(decoded.count, 2)
        for (a, b) in zip(forward, decoded) { XCTAssertEqual(a, b, accuracy: 1e-4 * abs(a)) }
    }
}
