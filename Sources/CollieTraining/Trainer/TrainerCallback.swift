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

    /// The metrics an evaluation produces (`Trainer.evaluate()`), under their monitored names.
    public static let knownNames = ["eval_loss", "eval_perplexity", "loss"]

    /// Throws unless `name` is a metric the trainer produces.
    /// - Parameter keyPath: the config key that named it, for the error.
    func validate(keyPath: String) throws {
        guard Self.knownNames.contains(name) else {
            throw TrainerError("\(keyPath): unknown metric '\(name)'"
                               + Suggestion.hint(for: name, among: Self.knownNames)
                               + "; use one of " + Self.knownNames.joined(separator: ", "))
        }
    }

    /// The metric's current value in `state`, nil before it has one.
    func value(in state: TrainerState) -> Double? {
        if name == "loss" { return state.lastLoss }
        guard name.hasPrefix("eval_") else { return nil }
        return state.lastEvaluation?.metrics[String(name.dropFirst("eval_".count))]
    }

    /// True when `candidate` is better than `best` (or there is no best yet).
    func isImprovement(_ candidate: Double, over best: Double?) -> Bool {
        guard let best else { return !candidate.isNaN }
        return mode.isImprovement(candidate, over: best)
    }
}

/// JSON coding for callback state.
enum CallbackStateCoding {
    static func encode<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(value)
    }

    static func decode<T: Decodable>(_ type: T.Type, from data: Data, callback: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: data)
        } catch {
            throw TrainerError("callback-\(callback).json: not the state of the \(callback) callback (\(error))")
        }
    }
}
