import CollieMetrics
import CollieTestSupport
import Foundation
import XCTest

/// `collie metrics` prints sacrebleu's and scikit-learn's numbers as JSON and names the file of a mismatched line count.
final class MetricsCommandTests: XCTestCase {
    func testMetricsCommandPrintsSacrebleuScoresAndSklearnF1() throws {
        let folder = try temporaryFolder(for: self)
        func write(_ name: String, _ lines: [String]) throws {
            try (lines.joined(separator: "\n") + "\n").write(to: folder.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        // sacrebleu's README example (its test_bleu.py expects 48.530827 with the default settings).
        try write("hyp.txt", ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."])
        try write("ref1.txt", ["The dog bit the man.", "It was not unexpected.", "The man bit him first."])
        try write("ref2.txt", ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."])
        let bleu = try CollieExecutable.run(["metrics", "--metric", "bleu", "--predictions", "hyp.txt",
                                             "--references", "ref1.txt", "--references", "ref2.txt"], in: folder, log: "bleu")
        XCTAssertEqual(bleu.status, 0, bleu.errors)
        let bleuJSON = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(bleu.output.utf8)) as? [String: Any])
        XCTAssertEqual(try XCTUnwrap(bleuJSON["score"] as? Double), 48.530827, accuracy: 1e-6)

        try write("pred.jsonl", ["1", "0", "2", "2", "1"])
        try write("gold.jsonl", ["1", "1", "2", "0", "1"])
        let f1 = try CollieExecutable.run(["metrics", "--metric", "f1", "--predictions", "pred.jsonl",
                                           "--references", "gold.jsonl"], in: folder, log: "f1")
        XCTAssertEqual(f1.status, 0, f1.errors)
        let f1JSON = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(f1.output.utf8)) as? [String: Any])
        let scores = try ClassificationScores(predictions: [1, 0, 2, 2, 1], references: [1, 1, 2, 0, 1])
        // (Foundation's JSON reader on Linux may lose the last bit; the printed text is exact.)
        XCTAssertEqual(try XCTUnwrap((f1JSON["macro"] as? [String: Double])?["f1"]), scores.macro.f1, accuracy: 1e-15)
        XCTAssertTrue(f1.output.contains("\"f1\": \(scores.macro.f1)"), f1.output)
        XCTAssertEqual((f1JSON["per_class"] as? [[String: Any]])?.compactMap { $0["label"] as? Int }, [0, 1, 2])

        try write("short.txt", ["only one line"])
        let bad = try CollieExecutable.run(["metrics", "--metric", "rouge", "--predictions", "hyp.txt",
                                            "--references", "short.txt"], in: folder, log: "bad")
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.errors.contains("short.txt has 1 lines but hyp.txt has 3"), bad.errors)
    }
}
