import Foundation
import Synchronization

/// Where the time of a training step goes, by op: forward and backward seconds per op name (the names ops record on
/// the tape: "linear", "scaled_dot_product_attention", …), the in-backward gradient hooks (LOMO/AdaLomo's updates)
/// and, across all ops, the matrix products.
///
/// Off unless a profile is installed with `withProfiling`, for the calling task or thread only (a task-local value,
/// as `GradMode`): kernels' worker threads and other models never see it. An op's forward is the time from the
/// previous op's recording to its own (ops record after computing), so time spent between ops lands on the next op.
/// A node's backward excludes the forward ops it recomputes (activation checkpointing), which count as forward.
/// `gemmSeconds` counts the float32/float64 GEMM calls issued from the profiled thread: a subset of the ops' time.
public final class OpProfile: @unchecked Sendable {
    /// The time of one op name.
    public struct Entry: Sendable, Equatable {
        /// The op's name on the tape.
        public var name: String
        /// Seconds in its forward computations.
        public var forwardSeconds: Double = 0
        /// Seconds in its backward closures.
        public var backwardSeconds: Double = 0
        /// Forward calls.
        public var calls = 0
    }

    @TaskLocal static var current: OpProfile?

    private let lock = NSLock()
    private var entries: [String: Entry] = [:]
    private var lastMark = DispatchTime.now().uptimeNanoseconds
    /// Seconds already attributed to some entry: what an enclosing backward closure (activation checkpointing runs a
    /// nested forward and backward inside one) subtracts from its own time.
    private var accounted = 0.0
    private var gemmTotal = 0.0
    private var hookTotal = 0.0

    public init() {}

    /// Runs `body` recording its ops' times into this profile (adding to what it holds).
    public func withProfiling<R>(_ body: () throws -> R) rethrows -> R {
        lock.withLock { lastMark = DispatchTime.now().uptimeNanoseconds }
        return try OpProfile.$current.withValue(self, operation: body)
    }

    /// The ops seen so far, the most expensive (forward + backward) first.
    public var ops: [Entry] {
        lock.withLock { entries.values.sorted { ($0.forwardSeconds + $0.backwardSeconds) > ($1.forwardSeconds + $1.backwardSeconds) } }
    }

    /// Seconds in GEMM calls made from the profiled thread (inside the ops' times).
    public var gemmSeconds: Double { lock.withLock { gemmTotal } }

    /// Seconds in gradient-ready hooks during backward (optimizer updates fused into backward).
    public var hookSeconds: Double { lock.withLock { hookTotal } }

    /// Forgets everything recorded so far.
    public func reset() {
        lock.withLock {
            entries = [:]; accounted = 0; gemmTotal = 0; hookTotal = 0
            lastMark = DispatchTime.now().uptimeNanoseconds
        }
    }

    // MARK: - Recording (called by the engine)

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    static func seconds(_ start: UInt64, _ end: UInt64) -> Double { Double(end &- start) / 1e9 }

    /// An op named `name` finished its forward computation now.
    func markForward(_ name: String) {
        let t = OpProfile.now()
        lock.withLock {
            let s = OpProfile.seconds(lastMark, t)
            lastMark = t
            accounted += s
            var entry = entries[name] ?? Entry(name: name)
            entry.forwardSeconds += s
            entry.calls += 1
            entries[name] = entry
        }
    }

    /// Runs a backward closure of an op named `name`, timing it without what it runs that is attributed elsewhere
    /// (the forward ops it recomputes, their backward).
    func timeBackward(_ name: String, _ body: () -> Void) {
        let s = exclusiveSeconds(body)
        lock.withLock { entries[name, default: Entry(name: name)].backwardSeconds += s }
    }

    /// Runs gradient-ready hooks, timing them.
    func timeHooks(_ body: () -> Void) {
        let s = exclusiveSeconds(body)
        lock.withLock { hookTotal += s }
    }

    /// The seconds `body` takes less those attributed inside it, which are then attributed too.
    private func exclusiveSeconds(_ body: () -> Void) -> Double {
        let start = OpProfile.now()
        let before = lock.withLock { lastMark = start; return accounted }
        body()
        let end = OpProfile.now()
        return lock.withLock {
            let s = max(0, OpProfile.seconds(start, end) - (accounted - before))
            accounted += s
            lastMark = end
            return s
        }
    }

    /// Adds the seconds of one GEMM call.
    func addGEMM(_ seconds: Double) {
        lock.withLock { gemmTotal += seconds }
    }
}

extension OpProfile {
    /// Times `body` as a GEMM call when a profile is installed on this thread or task.
    @usableFromInline
    static func timingGEMM(_ body: () -> Void) {
        guard let profile = current else { return body() }
        let start = now()
        body()
        profile.addGEMM(seconds(start, now()))
    }
}
