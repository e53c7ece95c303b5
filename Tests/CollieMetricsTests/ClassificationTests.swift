import CollieMetrics
import XCTest

/// Precision, recall, F1 and accuracy equal scikit-learn's on random label sets (integers and strings, labels
/// that are only predicted, classes never predicted).
final class ClassificationTests: XCTestCase {
    enum Label: Decodable {
        case int(Int), string(String)
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let value = try? c.decode(Int.self) { self = .int(value) } else { self = .string(try c.decode(String.self)) }
        }
    }

    struct Case: Decodable {
        struct PerLabel: Decodable {
            var label: Label
            var precision: Double
            var recall: Double
            var f1: Double
            var support: Int
        }
        var references: [Label]
        var predictions: [Label]
        var accuracy: Double
        var micro: [Double]
        var macro: [Double]
        var per_label: [PerLabel]
    }

    private func check<L: Hashable & Comparable & Sendable>(_ predictions: [L], _ references: [L], _ expected: Case,
                                                           labels: [L], _ context: String) throws {
        let scores = try ClassificationScores(predictions: predictions, references: references)
        let tolerance = 1e-12
        XCTAssertEqual(scores.accuracy, expected.accuracy, accuracy: tolerance, context)
        XCTAssertEqual(try accuracy(predictions: predictions, references: references), expected.accuracy, accuracy: tolerance)
        XCTAssertEqual(scores.micro.precision, expected.micro[0], accuracy: tolerance, context)
        XCTAssertEqual(scores.micro.recall, expected.micro[1], accuracy: tolerance, context)
        XCTAssertEqual(scores.micro.f1, expected.micro[2], accuracy: tolerance, context)
        XCTAssertEqual(scores.macro.precision, expected.macro[0], accuracy: tolerance, context)
        XCTAssertEqual(scores.macro.recall, expected.macro[1], accuracy: tolerance, context)
        XCTAssertEqual(scores.macro.f1, expected.macro[2], accuracy: tolerance, context)
        XCTAssertEqual(scores.perLabel.map(\.label), labels, context)
        for (actual, wanted) in zip(scores.perLabel, expected.per_label) {
            XCTAssertEqual(actual.precision, wanted.precision, accuracy: tolerance, context)
            XCTAssertEqual(actual.recall, wanted.recall, accuracy: tolerance, context)
            XCTAssertEqual(actual.f1, wanted.f1, accuracy: tolerance, context)
            XCTAssertEqual(actual.support, wanted.support, context)
        }
    }

    func testPrecisionRecallF1MatchScikitLearn() throws {
        let cases = try fixture("classification.json", as: [Case].self)
        XCTAssertEqual(cases.count, 12)
        for (index, item) in cases.enumerated() {
            func ints(_ labels: [Label]) -> [Int] { labels.compactMap { if case .int(let v) = $0 { v } else { nil } } }
            func strings(_ labels: [Label]) -> [String] { labels.compactMap { if case .string(let v) = $0 { v } else { nil } } }
            if case .int = item.references[0] {
                try check(ints(item.predictions), ints(item.references), item, labels: ints(item.per_label.map(\.label)), "case \(index)")
            } else {
                try check(strings(item.predictions), strings(item.references), item,
                          labels: strings(item.per_label.map(\.label)), "case \(index)")
            }
        }
    }

    func testMismatchedLengthsAreAnError() {
        XCTAssertThrowsError(try ClassificationScores(predictions: [1, 2], references: [1])) { error in
            XCTAssertEqual("\(error)", "classification: 2 predictions but 1 references")
        }
    }
}
