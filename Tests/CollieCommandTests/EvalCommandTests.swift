import CollieMetrics
import CollieTestSupport
import Foundation
import XCTest

/// `collie eval CONFIG` prints its evaluators' metrics as JSON and writes them, with the decoded outputs, to the output
/// folder; a config with nothing to evaluate is an error.
final class EvalCommandTests: XCTestCase {
    func testEvalCommandPrintsMetricsAndWritesResults() throws {
        let folder = try temporaryFolder(for: self)
        try """
            {"text": "The cat sat", "target": "on the mat"}
            {"text": "Hello", "target": "world"}
            """.write(to: folder.appendingPathComponent("gen.jsonl"), atomically: true, encoding: .utf8)
        try """
            {"input": "Good. Sentiment:", "output": [" negative", " positive"], "target": 1}
            {"input": "Bad. Sentiment:", "output": [" negative", " positive"], "target": 0}
            """.write(to: folder.appendingPathComponent("cls.jsonl"), atomically: true, encoding: .utf8)
        try """
            model: tiny
            tokenizer: \(Fixtures.tokenizerFolder.path)
            max_length: 64
            output_dir: out
            monitor_outputs: [csv]
            evaluators:
              - {name: gen, type: generation, data: gen.jsonl, metrics: [bleu, rouge, decode], generation: {max_new_tokens: 2}}
              - {name: cls, type: classification, data: cls.jsonl}
            """.write(to: folder.appendingPathComponent("eval.yaml"), atomically: true, encoding: .utf8)
        let run = try CollieExecutable.run(["eval", "eval.yaml"], in: folder)
        XCTAssertEqual(run.status, 0, run.errors)
        let printed = try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Double]
        XCTAssertEqual(Set(printed?.keys.filter { $0.hasPrefix("cls/") } ?? []),
                       ["cls/accuracy", "cls/f1_macro", "cls/f1_micro", "cls/precision_macro", "cls/recall_macro"])
        XCTAssertNotNil(printed?["gen/bleu"])
        XCTAssertNotNil(printed?["gen/rougeLsum"])
        let saved = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("out/eval_results.json")))
        XCTAssertEqual(saved as? [String: Double], printed)
        XCTAssertEqual(try DecodedOutputs.read(from: folder.appendingPathComponent("out/gen.decoded.jsonl")).map(\.target),
                       ["on the mat", "world"])
        let csv = try String(contentsOf: folder.appendingPathComponent("out/monitors.evaluation.csv"), encoding: .utf8)
        XCTAssertTrue(csv.contains("cls/accuracy"), csv)

        try "model: tiny\ntokenizer: \(Fixtures.tokenizerFolder.path)\n".write(to: folder.appendingPathComponent("empty.yaml"),
                                                                               atomically: true, encoding: .utf8)
        let empty = try CollieExecutable.run(["eval", "empty.yaml"], in: folder, log: "empty")
        XCTAssertEqual(empty.status, 1)
        XCTAssertTrue(empty.errors.contains("evaluators: nothing to evaluate"), empty.errors)
    }
}
