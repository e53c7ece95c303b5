import Foundation
import Hummingbird
import NIOCore

/// Notices a client going away — its end of the connection closed (EOF) or the connection lost —
/// and cancels the request the connection is running, so a request nobody waits for stops
/// generating (or is skipped in the queue) instead of holding the model.
///
/// One per connection, in the channel pipeline after HTTP decoding; HTTP/1 runs a connection's
/// requests one after another, so it watches one request at a time.
final class ConnectionWatcher: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = NIOAny

    private let lock = NSLock()
    private var isClosed = false
    private var current: CancelFlag?

    /// Cancels `flag` when the client goes away (at once if it already has).
    func watch(_ flag: CancelFlag) {
        lock.lock()
        current = flag
        let closed = isClosed
        lock.unlock()
        if closed { flag.set() }
    }

    private func clientLeft() {
        lock.lock()
        isClosed = true
        let flag = current
        current = nil
        lock.unlock()
        flag?.set()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed { clientLeft() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        clientLeft()
        context.fireChannelInactive()
    }
}

/// Hummingbird's basic request context plus the connection, so a handler can find its `ConnectionWatcher`.
struct ServerRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// Cancels `flag` when this request's client goes away.
    func cancelOnDisconnect(_ flag: CancelFlag) async {
        let watcher = try? await channel.pipeline.handler(type: ConnectionWatcher.self).get()
        watcher?.watch(flag)
    }
}

/// A flag set from one thread and polled from another, with actions to run once it is set.
final class CancelFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    private var actions: [@Sendable () -> Void] = []

    func set() {
        lock.lock()
        let run = value ? [] : actions
        value = true
        actions = []
        lock.unlock()
        run.forEach { $0() }
    }

    var isSet: @Sendable () -> Bool { { [self] in lock.lock(); defer { lock.unlock() }; return value } }

    /// Runs `action` when the flag is set (now, if it is).
    func onSet(_ action: @escaping @Sendable () -> Void) {
        lock.lock()
        let now = value
        if !now { actions.append(action) }
        lock.unlock()
        if now { action() }
    }
}
