import Foundation

/// Logs training events as TensorBoard scalars in one event file per run.
///
/// Tags follow transformers' Trainer: each step writes `train/loss`, `train/learning_rate`,
/// `train/epoch`, `train/tokens_per_second`, `train/step_seconds`, `train/peak_memory_gib` and,
/// when known, `train/grad_norm`; an evaluation writes `eval/<metric>` for each metric.
public final class TensorBoardMonitor: TrainingMonitor {
    /// The event file's writer.
    public let writer: TensorBoardEventWriter
    private let now: () -> Date
    private var closed = false

    /// Creates an event file in `logDirectory` (TensorBoard's `--logdir`, or a run folder in it).
    public init(logDirectory: URL, now: @escaping () -> Date = Date.init) throws {
        writer = try TensorBoardEventWriter(directory: logDirectory, now: now())
        self.now = now
    }

    /// The event file.
    public var url: URL { writer.url }

    public func record(_ event: TrainingEvent) throws {
        guard !closed else { return }
        switch event {
        case .step(let s):
            var values: [(tag: String, value: Double)] = [
                ("train/loss", s.loss), ("train/learning_rate", s.learningRate), ("train/epoch", Double(s.epoch)),
                ("train/tokens_per_second", s.tokensPerSecond), ("train/step_seconds", s.stepSeconds),
                ("train/peak_memory_gib", Double(s.peakMemoryBytes) / Double(1 << 30)),
            ]
            if let norm = s.gradientNorm { values.append(("train/grad_norm", norm)) }
            try writer.addScalars(values, step: s.step, wallTime: now())
        case .evaluation(let step, let metrics):
            let values = metrics.sorted { $0.key < $1.key }.map { (tag: "eval/" + $0.key, value: $0.value) }
            if !values.isEmpty { try writer.addScalars(values, step: step, wallTime: now()) }
        case .started, .checkpoint:
            break
        case .finished:
            try writer.flush()
        }
    }

    public func close() throws {
        guard !closed else { return }
        closed = true
        try writer.flush()
        try writer.close()
    }
}
