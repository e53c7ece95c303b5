import Foundation

/// A learning rate as a function of the optimizer step, as transformers' schedulers define it.
///
/// `learningRate(at: k)` is the rate of the k-th update (0-based): what
/// `optimizer.param_groups[0]["lr"]` holds before the k-th `optimizer.step()` when transformers'
/// `LambdaLR` is stepped after every update. All kinds ramp up linearly from 0 during warmup:
///
/// - `constant`: `get_constant_schedule` / `get_constant_schedule_with_warmup`;
/// - `linear`: `get_linear_schedule_with_warmup` (decays to 0 at `totalSteps`);
/// - `cosine`: `get_cosine_schedule_with_warmup` (`numberOfCycles` 0.5 is a half cosine to 0), or
///   `get_cosine_with_min_lr_schedule_with_warmup` when `minimumRatio` > 0.
///
/// The schedule is a pure function of the step; `step` is kept (and saved, the value is Codable)
/// so a resumed run continues where it stopped.
public struct LearningRateSchedule: Codable, Equatable, Sendable {
    /// The shape of the curve after warmup.
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case constant
        case linear
        case cosine
    }

    /// How long the linear warmup lasts. Encoded as `{"steps": 100}` or `{"ratio": 0.03}`.
    public enum Warmup: Codable, Equatable, Sendable {
        /// A number of steps.
        case steps(Int)
        /// A fraction of `totalSteps`, rounded up (transformers' `warmup_ratio`).
        case ratio(Double)

        private enum CodingKeys: String, CodingKey { case steps, ratio }

        public init(from decoder: Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            if let steps = try container.decodeIfPresent(Int.self, forKey: .steps) {
                self = .steps(steps)
            } else if let ratio = try container.decodeIfPresent(Double.self, forKey: .ratio) {
                self = .ratio(ratio)
            } else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                        debugDescription: "warmup needs \"steps\" or \"ratio\""))
            }
        }

        public func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            switch self {
            case .steps(let n): try container.encode(n, forKey: .steps)
            case .ratio(let r): try container.encode(r, forKey: .ratio)
            }
        }
    }

    /// The curve after warmup.
    public var kind: Kind
    /// The peak learning rate (the optimizer's `lr`).
    public var baseLearningRate: Double
    /// Number of optimizer steps in the run (where linear and cosine reach their end).
    public var totalSteps: Int
    /// The warmup length.
    public var warmup: Warmup
    /// Cosine periods over the decay (transformers' `num_cycles`; 0.5 decays once to the minimum).
    public var numberOfCycles: Double
    /// The cosine's floor as a fraction of the peak (transformers' `min_lr_rate`).
    public var minimumRatio: Double
    /// Updates taken so far: the index of the next update.
    public var step: Int

    /// A schedule of `kind` peaking at `baseLearningRate`, starting at step 0.
    public init(kind: Kind, baseLearningRate: Double, totalSteps: Int, warmup: Warmup = .steps(0),
                numberOfCycles: Double = 0.5, minimumRatio: Double = 0) {
        precondition(totalSteps >= 0, "totalSteps must not be negative")
        switch warmup {
        case .steps(let n): precondition(n >= 0, "warmup steps must not be negative")
        case .ratio(let r): precondition((0...1).contains(r), "a warmup ratio lies in [0, 1]")
        }
        self.kind = kind
        self.baseLearningRate = baseLearningRate
        self.totalSteps = totalSteps
        self.warmup = warmup
        self.numberOfCycles = numberOfCycles
        self.minimumRatio = minimumRatio
        step = 0
    }

    /// Warmup length in steps: `warmup` steps, or ⌈totalSteps × ratio⌉ as transformers' Trainer
    /// computes it.
    public var warmupSteps: Int {
        switch warmup {
        case .steps(let n): n
        // Clamped: Double(totalSteps) rounds Int.max up to 2⁶³, which Int cannot hold.
        case .ratio(let r): min(totalSteps, Int(exactly: (Double(totalSteps) * r).rounded(.up)) ?? totalSteps)
        }
    }

    /// The factor applied to `baseLearningRate` at `step` (transformers' `lr_lambda`).
    public func multiplier(at step: Int) -> Double {
        let warmupSteps = warmupSteps
        if step < warmupSteps { return Double(step) / Double(max(1, warmupSteps)) }
        switch kind {
        case .constant:
            return 1
        case .linear:
            return max(0, Double(totalSteps - step) / Double(max(1, totalSteps - warmupSteps)))
        case .cosine:
            let progress = Double(step - warmupSteps) / Double(max(1, totalSteps - warmupSteps))
            let factor = 0.5 * (1 + cos(Double.pi * numberOfCycles * 2 * progress))
            return max(0, factor * (1 - minimumRatio) + minimumRatio)
        }
    }

    /// The learning rate of update `step` (0-based).
    public func learningRate(at step: Int) -> Double { baseLearningRate * multiplier(at: step) }

    /// The learning rate of the next update.
    public var currentLearningRate: Double { learningRate(at: step) }

    /// Moves to the next update (torch's `scheduler.step()`); returns its learning rate.
    @discardableResult
    public mutating func advance() -> Double {
        step += 1
        return currentLearningRate
    }
}
