import CollieIO
import CollieModels
import Foundation

/// Keeps the model that was best by a monitored metric and loads it when training ends (CoLLiE's
/// `LoadBestModelCallback`), so the final model is the best one rather than the last.
///
/// Whenever an evaluation improves on the best value, the model is written to `output_dir/best` (a Hugging Face
/// folder, replaced atomically); at the end of training its weights are copied back into the model.
public final class LoadBestModelCallback: TrainerCallback {
    struct State: Codable {
        var best: Double?
        var bestStep: Int?
    }

    /// The folder in the output directory that holds the best model.
    public static let folderName = "best"

    public let name = "load_best_model"
    public let metric: MonitoredMetric
    /// The best value seen and the update it followed.
    public private(set) var best: Double?
    public private(set) var bestStep: Int?

    public init(metric: MonitoredMetric) { self.metric = metric }

    /// The callback `callbacks.load_best_model` describes.
    public convenience init(_ settings: CollieConfig.Callbacks.LoadBestModel, evaluators: [String] = []) throws {
        let metric = MonitoredMetric(name: settings.monitor, mode: settings.mode)
        try metric.validate(keyPath: "callbacks.load_best_model.monitor", evaluators: evaluators)
        self.init(metric: metric)
    }

    public func onEvaluateEnd(_ trainer: Trainer, metrics: [String: Double]) throws {
        guard let value = try metric.value(in: trainer.state), metric.isImprovement(value, over: best) else { return }
        // Under tensor parallelism the slices are gathered into a whole copy (every rank takes part); under pipeline
        // parallelism evaluation already holds every stage.
        let whole = trainer.grid.tensorParallelSize > 1 ? try trainer.model.gatheredCopy() : nil
        if trainer.isMainProcess {
            try AtomicFolder.write(at: trainer.outputDirectory.appendingPathComponent(Self.folderName)) { folder in
                try trainer.saveModelFiles(to: folder, whole: whole)
            }
        }
        trainer.grid.world.barrier()
        best = value
        bestStep = trainer.state.globalStep
    }

    public func onTrainEnd(_ trainer: Trainer) throws {
        // Saved after the current update: the model already is the best one.
        guard let bestStep, bestStep != trainer.state.globalStep else { return }
        let folder = trainer.outputDirectory.appendingPathComponent(Self.folderName)
        try trainer.loadWeights(from: folder)
        trainer.log("loaded the best model (\(metric.name) \(best.map { "\($0)" } ?? "?") after step \(bestStep)) from \(folder.path)")
    }

    public func checkpointState() throws -> Data? { try CallbackStateCoding.encode(State(best: best, bestStep: bestStep)) }

    public func restore(checkpointState: Data) throws {
        let state = try CallbackStateCoding.decode(State.self, from: checkpointState, callback: name)
        best = state.best
        bestStep = state.bestStep
    }
}
