import Foundation

/// One evaluation: the step it followed and its metrics (`loss`, `perplexity`).
public struct EvaluationRecord: Codable, Equatable, Sendable {
    /// Optimizer updates taken before the evaluation (0: before training).
    public var step: Int
    public var metrics: [String: Double]

    public init(step: Int, metrics: [String: Double]) {
        self.step = step
        self.metrics = metrics
    }
}

/// The trainer's counters: where training is, what it has seen, and what a checkpoint needs to continue exactly.
///
/// Saved as `trainer_state.json` in every training checkpoint (with the optimizer, the schedule, the model and
/// each callback's state next to it); the last file written, so its presence marks a complete checkpoint.
public struct TrainerState: Codable, Equatable, Sendable {
    /// Bumped when the checkpoint layout changes.
    public static let currentFormatVersion = 1

    public var formatVersion = TrainerState.currentFormatVersion
    /// Optimizer updates taken.
    public var globalStep = 0
    /// The next micro-batch to train on.
    public var position = DataPosition.start
    /// Epochs whose end (evaluation, callbacks) has been handled; lags `position.epoch` by one between an
    /// epoch's last update and its end hooks.
    public var completedEpochs = 0
    /// The loss of the last update.
    public var lastLoss: Double?
    /// Every evaluation so far, in order.
    public var evaluations: [EvaluationRecord] = []
    /// The state words of the trainer's random generator.
    public var randomState: [UInt64] = []
    /// True once training stopped early (a callback asked for it).
    public var stoppedEarly = false

    // What the run was set up with; a resumed run must match.
    public var totalSteps = 0
    public var stepsPerEpoch = 0
    public var batchesPerEpoch = 0
    public var trainingExamples = 0
    public var gradientAccumulationSteps = 1
    /// The config's seed (shuffling, dropout); nil in checkpoints written before it was recorded.
    public var seed: Int?
    /// `TrainingDataset.fingerprint` of the training data; nil in checkpoints written before it was recorded.
    public var dataFingerprint: String?

    enum CodingKeys: String, CodingKey {
        case formatVersion = "format_version", globalStep = "global_step", position
        case completedEpochs = "completed_epochs", lastLoss = "last_loss", evaluations
        case randomState = "random_state", stoppedEarly = "stopped_early", totalSteps = "total_steps"
        case stepsPerEpoch = "steps_per_epoch", batchesPerEpoch = "batches_per_epoch"
        case trainingExamples = "training_examples", gradientAccumulationSteps = "gradient_accumulation_steps"
        case seed, dataFingerprint = "data_fingerprint"
    }

    public init() {}

    /// The state of a run that has not started, with what it is set up with: `trainingExamples` examples in
    /// `batchesPerEpoch` micro-batches per epoch, grouped by `gradientAccumulationSteps` (an epoch's last group
    /// may be short) for `epochs` epochs — or, when `maxSteps` is positive, for exactly `maxSteps` updates (as
    /// many epochs as that takes, the last one possibly cut short) — and the random generator's state.
    ///
    /// - Throws: `TrainerError` naming `train_epochs` when the run would take more than `Int.max` updates.
    public init(trainingExamples: Int, batchesPerEpoch: Int, gradientAccumulationSteps: Int, epochs: Int,
                maxSteps: Int = 0, randomState: [UInt64], seed: Int? = nil, dataFingerprint: String? = nil) throws {
        self.trainingExamples = trainingExamples
        self.batchesPerEpoch = batchesPerEpoch
        self.gradientAccumulationSteps = gradientAccumulationSteps
        // ⌈batches / accumulation⌉ without overflowing for a huge accumulation.
        stepsPerEpoch = batchesPerEpoch / gradientAccumulationSteps
            + (batchesPerEpoch % gradientAccumulationSteps == 0 ? 0 : 1)
        let (total, overflow) = stepsPerEpoch.multipliedReportingOverflow(by: epochs)
        guard maxSteps <= 0 || stepsPerEpoch == 0 else {
            totalSteps = maxSteps
            self.randomState = randomState
            self.seed = seed
            self.dataFingerprint = dataFingerprint
            return
        }
        guard !overflow else {
            throw TrainerError("train_epochs: \(epochs) epochs of \(stepsPerEpoch) updates are more updates than Collie "
                               + "can count (\(Int.max)); use fewer epochs")
        }
        totalSteps = total
        self.randomState = randomState
        self.seed = seed
        self.dataFingerprint = dataFingerprint
    }

    /// The epochs the run passes through: ⌈`totalSteps` / `stepsPerEpoch`⌉ (`train_epochs`, or as many as
    /// `max_steps` needs).
    public var epochCount: Int {
        guard stepsPerEpoch > 0 else { return 0 }
        return totalSteps / stepsPerEpoch + (totalSteps % stepsPerEpoch == 0 ? 0 : 1)
    }

    /// The most recent evaluation.
    public var lastEvaluation: EvaluationRecord? { evaluations.last }

    /// Describes how `other` (a checkpoint's state) was set up differently from this run, or nil when a resume
    /// from it can continue exactly.
    func setupMismatch(in other: TrainerState) -> String? {
        let checks: [(String, Int, Int)] = [
            ("training examples", trainingExamples, other.trainingExamples),
            ("batches per epoch", batchesPerEpoch, other.batchesPerEpoch),
            ("gradient accumulation steps", gradientAccumulationSteps, other.gradientAccumulationSteps),
            ("optimizer steps in the run", totalSteps, other.totalSteps),
        ]
        for (name, here, saved) in checks where here != saved {
            return "the checkpoint was written with \(saved) \(name), this run has \(here)"
        }
        if let saved = other.seed, let seed, saved != seed {
            return "the checkpoint was written with seed \(saved), this run has seed \(seed) (the config's seed)"
        }
        if let saved = other.dataFingerprint, let dataFingerprint, saved != dataFingerprint {
            return "the training data differs from the checkpoint's (the same \(trainingExamples) examples in number, "
                + "but other tokens or labels: fingerprint \(dataFingerprint), the checkpoint's \(saved)); "
                + "resume with the data it was trained on (train_data, max_length, record_format)"
        }
        return nil
    }
}
