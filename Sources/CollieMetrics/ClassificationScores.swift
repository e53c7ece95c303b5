/// Precision, recall and F1 as scikit-learn's `precision_recall_fscore_support` computes them: labels are the
/// sorted union of true and predicted labels, a ratio with a zero denominator is 0 (`zero_division` default),
/// and F1 = 2·TP / (2·TP + FP + FN).
public struct ClassificationScores<Label: Hashable & Comparable>: Sendable where Label: Sendable {
    /// Scores of one label (sklearn's `average=None`), with its support (true occurrences).
    public struct PerLabel: Sendable {
        public var label: Label
        public var precision: Double
        public var recall: Double
        public var f1: Double
        public var support: Int
    }

    /// Per label, in sorted label order.
    public let perLabel: [PerLabel]
    /// Counts pooled over labels (`average="micro"`).
    public let micro: (precision: Double, recall: Double, f1: Double)
    /// Unweighted mean over labels (`average="macro"`).
    public let macro: (precision: Double, recall: Double, f1: Double)
    /// Fraction of exact matches (`accuracy_score`).
    public let accuracy: Double

    /// - Throws: `MetricsError` when the two lists differ in length.
    public init(predictions: [Label], references: [Label]) throws {
        guard predictions.count == references.count else {
            throw MetricsError("classification: \(predictions.count) predictions but \(references.count) references")
        }
        let labels = Set(predictions).union(references).sorted()
        var truePositives: [Label: Int] = [:], predicted: [Label: Int] = [:], actual: [Label: Int] = [:]
        var correct = 0
        for (prediction, reference) in zip(predictions, references) {
            predicted[prediction, default: 0] += 1
            actual[reference, default: 0] += 1
            if prediction == reference { truePositives[prediction, default: 0] += 1; correct += 1 }
        }
        func ratio(_ numerator: Double, _ denominator: Int) -> Double { denominator == 0 ? 0 : numerator / Double(denominator) }
        func scores(tp: Int, predicted: Int, actual: Int) -> (precision: Double, recall: Double, f1: Double) {
            (ratio(Double(tp), predicted), ratio(Double(tp), actual), ratio(2 * Double(tp), actual + predicted))
        }
        perLabel = labels.map { label in
            let s = scores(tp: truePositives[label] ?? 0, predicted: predicted[label] ?? 0, actual: actual[label] ?? 0)
            return PerLabel(label: label, precision: s.precision, recall: s.recall, f1: s.f1, support: actual[label] ?? 0)
        }
        micro = scores(tp: correct, predicted: predictions.count, actual: references.count)
        let count = Double(max(labels.count, 1))
        macro = (perLabel.reduce(0) { $0 + $1.precision } / count, perLabel.reduce(0) { $0 + $1.recall } / count,
                 perLabel.reduce(0) { $0 + $1.f1 } / count)
        accuracy = ratio(Double(correct), predictions.count)
    }
}

/// The fraction of predictions equal to their reference (`accuracy_score`; CoLLiE's `AccuracyMetric`).
public func accuracy<Label: Equatable>(predictions: [Label], references: [Label]) throws -> Double {
    guard predictions.count == references.count else {
        throw MetricsError("accuracy: \(predictions.count) predictions but \(references.count) references")
    }
    guard !predictions.isEmpty else { return 0 }
    return Double(zip(predictions, references).filter { $0 == $1 }.count) / Double(predictions.count)
}
