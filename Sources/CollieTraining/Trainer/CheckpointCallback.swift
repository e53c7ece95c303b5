import CollieIO
import Foundation

/// Saves training checkpoints every n epochs or every n optimizer updates (CoLLiE's `CheckpointCallback`; a
/// CoLLiE "batch" is one update), and removes old ones: the last `keepLast` are kept, and with `topK` also the
/// k best by a monitored metric. Without `keepLast` every checkpoint is kept.
///
/// A checkpoint is ranked by the metric's value when it was saved (the evaluation of the same update, when one
/// ran). Old checkpoints are removed only after the new one is complete.
public final class CheckpointCallback: TrainerCallback {
    /// When to save.
    public enum Interval: Equatable, Sendable {
        case epochs(Int)
        case updates(Int)
    }

    /// A checkpoint this callback saved.
    public struct Entry: Codable, Equatable, Sendable {
        public var step: Int
        /// The folder name in the output directory.
        public var folder: String
        /// The monitored metric when it was saved.
        public var metric: Double?
    }

    public let name = "checkpoint"
    public let interval: Interval
    public let keepLast: Int?
    public let topK: Int?
    public let metric: MonitoredMetric?
    /// The checkpoints saved and still kept, oldest first.
    public private(set) var entries: [Entry] = []

    public init(interval: Interval, keepLast: Int? = nil, topK: Int? = nil, metric: MonitoredMetric? = nil) {
        precondition(topK == nil || metric != nil, "top-k needs a metric")
        self.interval = interval
        self.keepLast = keepLast
        self.topK = topK
        self.metric = metric
    }

    /// The callback `callbacks.checkpoint` describes.
    public convenience init(_ settings: CollieConfig.Callbacks.Checkpoint, evaluators: [String] = []) throws {
        let interval: Interval = settings.everyNEpochs.map(Interval.epochs) ?? .updates(settings.everyNBatches ?? 1)
        let metric = settings.monitor.map { MonitoredMetric(name: $0, mode: settings.mode) }
        try metric?.validate(keyPath: "callbacks.checkpoint.monitor", evaluators: evaluators)
        self.init(interval: interval, keepLast: settings.keepLast, topK: settings.topK, metric: metric)
    }

    public func onBatchEnd(_ trainer: Trainer, step: TrainingStep) throws {
        if case .updates(let n) = interval, step.step % n == 0 { try save(trainer) }
    }

    public func onEpochEnd(_ trainer: Trainer, epoch: Int) throws {
        if case .epochs(let n) = interval, (epoch + 1) % n == 0 { try save(trainer) }
    }

    /// Saves a checkpoint now, then removes the ones no longer kept.
    public func save(_ trainer: Trainer) throws {
        let step = trainer.state.globalStep
        let folder = TrainingCheckpoint.folderName(step: step)
        let previous = entries
        // The entry goes in first, so that the state saved inside the checkpoint lists it.
        entries.removeAll { $0.folder == folder }
        entries.append(Entry(step: step, folder: folder, metric: try metric?.value(in: trainer.state)))
        let kept = retained()
        let removed = entries.filter { !kept.contains($0.folder) }
        entries = entries.filter { kept.contains($0.folder) }
        do {
            try trainer.saveCheckpoint()
        } catch {
            entries = previous
            throw error
        }
        for entry in removed where entry.folder != folder && trainer.isMainProcess {
            let url = trainer.outputDirectory.appendingPathComponent(entry.folder)
            if FileManager.default.fileExists(atPath: url.path) { try AtomicFolder.remove(url) }
        }
    }

    /// The folders to keep: the last `keepLast`, plus the `topK` best.
    func retained() -> Set<String> {
        guard let keepLast else { return Set(entries.map(\.folder)) }
        var kept = Set(entries.suffix(keepLast).map(\.folder))
        if let topK, let metric {
            let ranked = entries.filter { $0.metric.map { !$0.isNaN } ?? false }.sorted {
                metric.mode.isImprovement($0.metric!, over: $1.metric!) || ($0.metric! == $1.metric! && $0.step > $1.step)
            }
            kept.formUnion(ranked.prefix(topK).map(\.folder))
        }
        return kept
    }

    public func checkpointState() throws -> Data? { try CallbackStateCoding.encode(entries) }

    public func restore(checkpointState: Data) throws {
        entries = try CallbackStateCoding.decode([Entry].self, from: checkpointState, callback: name)
    }
}
