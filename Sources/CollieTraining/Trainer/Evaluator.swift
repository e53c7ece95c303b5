import CollieModels

/// Scores a model on one evaluation set (CoLLiE's `Evaluator`): perplexity, generation metrics or
/// classification accuracy. `collie eval` runs evaluators on their own; a `Trainer` runs them on its evaluation
/// schedule, and their metrics reach the monitors (CSV, TensorBoard) with the trainer's own.
public protocol Evaluator: AnyObject {
    /// Prefix of this evaluator's metric names (`xsum` → `xsum/rouge1`).
    var name: String { get }
    /// Runs over the whole evaluation set and returns its metrics, unprefixed (`rouge1`, `bleu`, `accuracy`).
    func evaluate(_ model: any CausalLanguageModel) throws -> [String: Double]
}

extension Evaluator {
    /// The metrics of `evaluate(_:)` named `<name>/<metric>`.
    public func prefixedMetrics(_ model: any CausalLanguageModel) throws -> [String: Double] {
        Dictionary(uniqueKeysWithValues: try evaluate(model).map { ("\(name)/\($0.key)", $0.value) })
    }
}

/// Raised for evaluation input that cannot be used; the message names the evaluator, file and record.
public struct EvaluationError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
