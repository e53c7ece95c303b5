import Foundation

/// Stops training when a monitored metric has not improved for `patience` evaluations in a row (CoLLiE's
/// `EarlyStopCallback`).
public final class EarlyStopCallback: TrainerCallback {
    struct State: Codable {
        var best: Double?
        var evaluationsWithoutImprovement: Int
    }

    public let name = "early_stop"
    public let metric: MonitoredMetric
    public let patience: Int
    /// The best value seen.
    public private(set) var best: Double?
    /// Evaluations since the last improvement.
    public private(set) var evaluationsWithoutImprovement = 0

    public init(metric: MonitoredMetric, patience: Int) {
        precondition(patience >= 1, "patience must be at least 1")
        self.metric = metric
        self.patience = patience
    }

    /// The callback `callbacks.early_stop` describes.
    public convenience init(_ settings: CollieConfig.Callbacks.EarlyStop, evaluators: [String] = []) throws {
        let metric = MonitoredMetric(name: settings.monitor, mode: settings.mode)
        try metric.validate(keyPath: "callbacks.early_stop.monitor", evaluators: evaluators)
        self.init(metric: metric, patience: settings.patience)
    }

    public func onEvaluateEnd(_ trainer: Trainer, metrics: [String: Double]) throws {
        guard let value = try metric.value(in: trainer.state) else { return }
        if metric.isImprovement(value, over: best) {
            best = value
            evaluationsWithoutImprovement = 0
        } else {
            evaluationsWithoutImprovement += 1
            if evaluationsWithoutImprovement >= patience {
                trainer.log("early stop: \(metric.name) has not improved on \(best.map { "\($0)" } ?? "nan") "
                            + "for \(evaluationsWithoutImprovement) evaluations")
                trainer.requestStop()
            }
        }
    }

    public func checkpointState() throws -> Data? {
        try CallbackStateCoding.encode(State(best: best, evaluationsWithoutImprovement: evaluationsWithoutImprovement))
    }

    public func restore(checkpointState: Data) throws {
        let state = try CallbackStateCoding.decode(State.self, from: checkpointState, callback: name)
        best = state.best
        evaluationsWithoutImprovement = state.evaluationsWithoutImprovement
    }
}
