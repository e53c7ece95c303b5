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

/// The process's resident memory, from `/proc/self/status` on Linux.
public enum MemoryUsage {
    /// Starts a new peak: sets `VmHWM` to the current resident set (Linux ≥ 4.0, through
    /// `/proc/self/clear_refs`), so a later `peakResidentBytes()` covers what follows — training, not
    /// the model's construction. Returns false where the system has no such reset.
    @discardableResult
    public static func resetPeakResident() -> Bool {
        (try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)) != nil
    }

    /// Peak resident set size in bytes (`VmHWM`), or nil where it cannot be read.
    public static func peakResidentBytes() -> Int? {
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
           let bytes = bytes(ofField: "VmHWM", inStatus: status) {
            return bytes
        }
        var usage = rusage()
        #if os(Linux)
        guard getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage) == 0 else { return nil }
        return Int(usage.ru_maxrss) * 1024  // kilobytes on Linux
        #else
        guard getrusage(RUSAGE_SELF, &usage) == 0 else { return nil }
        return Int(usage.ru_maxrss)  // bytes on macOS
        #endif
    }

    /// Current resident set size in bytes (`VmRSS`), or nil where it cannot be read.
    public static func residentBytes() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        return bytes(ofField: "VmRSS", inStatus: status)
    }

    /// The value of a `Name:   1234 kB` line of a `/proc/<pid>/status` text, in bytes.
    public static func bytes(ofField field: String, inStatus status: String) -> Int? {
        for line in status.split(separator: "\n") where line.hasPrefix(field + ":") {
            let parts = line.dropFirst(field.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let number = parts.first.flatMap({ Int($0) }) else { return nil }
            let unit = parts.count > 1 ? parts[1].lowercased() : "b"
            switch unit {
            case "kb": return number * 1024
            case "mb": return number * 1024 * 1024
            case "gb": return number * 1024 * 1024 * 1024
            default: return number
            }
        }
        return nil
    }
}
