import Foundation

/// Code that runs at fixed points of training (CoLLiE's `Callback`): the trainer calls every callback's hooks in
/// order. Every hook has a default that does nothing, so a callback implements only the ones it needs.
///
/// Order within one optimizer update: `onBatchBegin`, forward/backward/step, the `.step` event to monitors, an
/// evaluation if one is due by steps or, at an epoch's last update, by epochs (`onEvaluateBegin`,
/// `onEvaluateEnd`), then `onBatchEnd`; after an epoch's last update, `onEpochEnd`. A callback that keeps state
/// across a run (counters, best values, a list of saved checkpoints) returns it from `checkpointState()`; a
/// resumed run hands it back to `restore(checkpointState:)` before training continues.
public protocol TrainerCallback: AnyObject {
    /// A name unique among a trainer's callbacks; its saved state is `callback-<name>.json` in a checkpoint.
    var name: String { get }

    /// Before the first update (also when resuming).
    func onTrainBegin(_ trainer: Trainer) throws
    /// After the last update (or after a callback stopped training).
    func onTrainEnd(_ trainer: Trainer) throws
    /// Before the first batch of `epoch` (0-based).
    func onEpochBegin(_ trainer: Trainer, epoch: Int) throws
    /// After the last update of `epoch` and its evaluation, if one was due.
    func onEpochEnd(_ trainer: Trainer, epoch: Int) throws
    /// Before an optimizer update (its micro-batches are already read).
    func onBatchBegin(_ trainer: Trainer) throws
    /// After an optimizer update and its evaluation, if one was due. `step` is what monitors received.
    func onBatchEnd(_ trainer: Trainer, step: TrainingStep) throws
    /// Before an evaluation.
    func onEvaluateBegin(_ trainer: Trainer) throws
    /// After an evaluation, with its metrics (`loss`, `perplexity`).
    func onEvaluateEnd(_ trainer: Trainer, metrics: [String: Double]) throws
    /// After a training checkpoint was completed at `folder`.
    func onSaveCheckpoint(_ trainer: Trainer, folder: URL) throws
    /// After the trainer's state was restored from the checkpoint at `folder`.
    func onLoadCheckpoint(_ trainer: Trainer, folder: URL) throws

    /// State to save with a checkpoint (JSON), or nil when the callback has none.
    func checkpointState() throws -> Data?
    /// Restores what `checkpointState()` returned.
    func restore(checkpointState: Data) throws
}

extension TrainerCallback {
    public func onTrainBegin(_ trainer: Trainer) throws {}
    public func onTrainEnd(_ trainer: Trainer) throws {}
    public func onEpochBegin(_ trainer: Trainer, epoch: Int) throws {}
    public func onEpochEnd(_ trainer: Trainer, epoch: Int) throws {}
    public func onBatchBegin(_ trainer: Trainer) throws {}
    public func onBatchEnd(_ trainer: Trainer, step: TrainingStep) throws {}
    public func onEvaluateBegin(_ trainer: Trainer) throws {}
    public func onEvaluateEnd(_ trainer: Trainer, metrics: [String: Double]) throws {}
    public func onSaveCheckpoint(_ trainer: Trainer, folder: URL) throws {}
    public func onLoadCheckpoint(_ trainer: Trainer, folder: URL) throws {}
    public func checkpointState() throws -> Data? { nil }
    public func restore(checkpointState: Data) throws {}
}

/// A metric a callback watches, by name, and which direction is better.
///
/// `eval_loss` and `eval_perplexity` (or any `eval_<metric>`) are the latest evaluation's; `loss` is the latest
/// update's training loss.
public struct MonitoredMetric: Equatable, Sendable {
    public var name: String
    public var mode: CollieConfig.MetricMode

    public init(name: String, mode: CollieConfig.MetricMode) {
        self.name = name
        self.mode = mode
    }

    /// The metrics the trainer's own evaluation and training produce, under their monitored names. An
    /// evaluator's metric `<evaluator>/<metric>` (as the monitors name it) is monitored as `eval_<evaluator>/<metric>`.
    public static let knownNames = ["eval_loss", "eval_perplexity", "loss"]

    /// The evaluator an `eval_<evaluator>/<metric>` name refers to, nil for the trainer's own metrics.
    var evaluator: String? {
        guard name.hasPrefix("eval_"), let slash = name.firstIndex(of: "/"), name.index(after: slash) < name.endIndex else {
            return nil
        }
        return String(name[name.index(name.startIndex, offsetBy: "eval_".count)..<slash])
    }

    /// Throws unless `name` is a metric the trainer produces, or a metric of one of `evaluators` (by name).
    /// - Parameter keyPath: the config key that named it, for the error.
    func validate(keyPath: String, evaluators: [String] = []) throws {
        if Self.knownNames.contains(name) { return }
        if let evaluator, evaluators.contains(evaluator) { return }
        let choices = Self.knownNames + evaluators.map { "eval_\($0)/<metric>" }
        throw TrainerError("\(keyPath): unknown metric '\(name)'"
                           + Suggestion.hint(for: name, among: Self.knownNames)
                           + "; use one of " + choices.joined(separator: ", "))
    }

    /// The metric's current value in `state`, nil before it has one.
    /// - Throws: `TrainerError` when it is an evaluator's metric that the last evaluation did not produce (a
    ///   misspelt metric of a configured evaluator, which validation cannot know of).
    func value(in state: TrainerState) throws -> Double? {
        if name == "loss" { return state.lastLoss }
        guard name.hasPrefix("eval_") else { return nil }
        guard let metrics = state.lastEvaluation?.metrics else { return nil }
        let key = String(name.dropFirst("eval_".count))
        if let evaluator, metrics[key] == nil {
            let produced = metrics.keys.filter { $0.hasPrefix(evaluator + "/") }.sorted().map { "eval_" + $0 }
            throw TrainerError("monitored metric '\(name)': the evaluation produced "
                               + (produced.isEmpty ? "nothing from evaluator \(evaluator)" : produced.joined(separator: ", ")))
        }
        return metrics[key]
    }

    /// True when `candidate` is better than `best` (or there is no best yet).
    func isImprovement(_ candidate: Double, over best: Double?) -> Bool {
        guard let best else { return !candidate.isNaN }
        return mode.isImprovement(candidate, over: best)
    }
}

/// JSON coding for callback state.
enum CallbackStateCoding {
    static func encode<T: Encodable>(_ value: T) throws -> Data { try TrainingCheckpoint.json(value) }

    static func decode<T: Decodable>(_ type: T.Type, from data: Data, callback: String) throws -> T {
        do {
            return try TrainingCheckpoint.jsonDecoder().decode(type, from: data)
        } catch {
            throw TrainerError("callback-\(callback).json: not the state of the \(callback) callback (\(error))")
        }
    }
}
