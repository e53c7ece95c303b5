import Foundation

/// The server's work, bounded: at most `maxWaiting + 1` requests are admitted at a time (the rest
/// are told to retry later), their preparation (decoding, templating, tokenizing) runs on a serial
/// queue off Swift's cooperative threads, and their generations run one at a time in arrival order.
final class RequestQueue: @unchecked Sendable {
    /// A place in the queue, held from admission until the request's generation ends or the request
    /// fails before it; releasing twice is harmless.
    final class Ticket: @unchecked Sendable {
        fileprivate let queue: RequestQueue
        fileprivate var isReleased = false   // guarded by queue.lock
        fileprivate init(queue: RequestQueue) { self.queue = queue }
        func release() { queue.release(self) }
    }

    private let capacity: Int
    private let lock = NSLock()
    private var admitted = 0
    /// An exponential moving average of generation times, for `Retry-After`.
    private var averageSeconds = 1.0
    private let preparation = DispatchQueue(label: "collie.preparation")
    private let generation = DispatchQueue(label: "collie.generation")

    init(maxWaiting: Int) {
        capacity = min(max(0, maxWaiting), 1 << 20) + 1
    }

    /// A place in the queue, or 503 with `Retry-After` when it is full.
    func admit() throws -> Ticket {
        lock.lock()
        defer { lock.unlock() }
        guard admitted < capacity else {
            let seconds = (averageSeconds * Double(admitted)).rounded(.up)
            throw APIError.overloaded(retryAfter: seconds.isFinite ? Int(min(60, max(1, seconds))) : 60)
        }
        admitted += 1
        return Ticket(queue: self)
    }

    /// Requests admitted and not yet finished (waiting, preparing or generating).
    var admittedCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return admitted
    }

    private func release(_ ticket: Ticket) {
        lock.lock()
        defer { lock.unlock() }
        guard !ticket.isReleased else { return }
        ticket.isReleased = true
        admitted -= 1
    }

    /// Runs `work` on the preparation queue.
    func prepare<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            preparation.async { continuation.resume(with: Result { try work() }) }
        }
    }

    /// Runs `work` on the generation queue after every generation admitted before it, then releases
    /// `ticket`. A request whose client has gone (`cancel` set) is skipped with `CancellationError`.
    func generate<T: Sendable>(_ ticket: Ticket, cancel: CancelFlag,
                               _ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            generation.async {
                defer { ticket.release() }
                guard !cancel.isSet() else { return continuation.resume(throwing: CancellationError()) }
                let start = Date()
                let result = Result { try work() }
                let seconds = Date().timeIntervalSince(start)
                self.lock.lock()
                self.averageSeconds = 0.8 * self.averageSeconds + 0.2 * seconds
                self.lock.unlock()
                continuation.resume(with: result)
            }
        }
    }
}
