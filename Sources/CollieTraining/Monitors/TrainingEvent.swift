import Foundation

/// The measurements of one optimizer step, as a monitor receives them.
public struct TrainingStep: Equatable, Sendable {
    /// Updates completed, counting this one (1 after the first step).
    public var step: Int
    /// Updates the run will take, when known.
    public var totalSteps: Int?
    /// The epoch this step belongs to (0-based).
    public var epoch: Int
    /// The training loss of the step (mean over its tokens and accumulated micro-batches).
    public var loss: Double
    /// The learning rate the update used.
    public var learningRate: Double
    /// The global gradient norm before clipping, when it was computed.
    public var gradientNorm: Double?
    /// Tokens processed by the step (excluding padding).
    public var tokens: Int
    /// Tokens per second of wall time over the step.
    public var tokensPerSecond: Double
    /// Wall time of the step in seconds.
    public var stepSeconds: Double
    /// The process's peak resident memory so far, in bytes (see `MemoryUsage`).
    public var peakMemoryBytes: Int

    public init(step: Int, totalSteps: Int? = nil, epoch: Int = 0, loss: Double, learningRate: Double,
                gradientNorm: Double? = nil, tokens: Int = 0, tokensPerSecond: Double = 0, stepSeconds: Double = 0,
                peakMemoryBytes: Int = 0) {
        self.step = step
        self.totalSteps = totalSteps
        self.epoch = epoch
        self.loss = loss
        self.learningRate = learningRate
        self.gradientNorm = gradientNorm
        self.tokens = tokens
        self.tokensPerSecond = tokensPerSecond
        self.stepSeconds = stepSeconds
        self.peakMemoryBytes = peakMemoryBytes
    }
}

/// What happens during training, as typed events for monitors (the trainer emits them in order).
public enum TrainingEvent: Equatable, Sendable {
    /// The run begins (or resumes at `step` updates already taken).
    case started(step: Int, totalSteps: Int?)
    /// One optimizer update finished.
    case step(TrainingStep)
    /// An evaluation after `step` updates produced `metrics` (for example "loss", "accuracy").
    case evaluation(step: Int, metrics: [String: Double])
    /// A checkpoint of the state after `step` updates was written to `path`.
    case checkpoint(step: Int, path: String)
    /// The run ended after `step` updates.
    case finished(step: Int)
}

/// Receives training events: writes them to a log, a file, or the terminal.
public protocol TrainingMonitor: AnyObject {
    /// Handles one event. Errors (a full disk) are the trainer's to report; a monitor that has
    /// thrown may be called again.
    func record(_ event: TrainingEvent) throws
    /// Flushes and closes what the monitor holds open. Further events are ignored.
    func close() throws
}

/// Fans every event out to several monitors, in order.
public final class MonitorGroup: TrainingMonitor {
    /// The monitors, called in this order.
    public private(set) var monitors: [TrainingMonitor]

    public init(_ monitors: [TrainingMonitor] = []) { self.monitors = monitors }

    /// Adds a monitor at the end.
    public func append(_ monitor: TrainingMonitor) { monitors.append(monitor) }

    /// Passes `event` to every monitor; the first error is rethrown after all have been called.
    public func record(_ event: TrainingEvent) throws {
        var firstError: Error?
        for monitor in monitors {
            do { try monitor.record(event) } catch { firstError = firstError ?? error }
        }
        if let firstError { throw firstError }
    }

    public func close() throws {
        var firstError: Error?
        for monitor in monitors {
            do { try monitor.close() } catch { firstError = firstError ?? error }
        }
        if let firstError { throw firstError }
    }
}
