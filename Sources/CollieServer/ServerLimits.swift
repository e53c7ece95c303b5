/// What `collie serve` takes on before it refuses work: the limits that keep one client (or a
/// thousand) from starving the others, exhausting memory or holding connections forever.
public struct ServerLimits: Sendable, Equatable {
    /// The largest request body, in bytes; a larger one is answered 413 without being kept.
    public var maxBodyBytes: Int
    /// How many admitted requests may wait behind the one generating; the next one is answered
    /// 503 with `Retry-After`.
    public var maxQueue: Int
    /// Seconds a connection may stay silent (a half-sent request, an idle keep-alive) before it is closed,
    /// and the most a request's body may take to arrive as a whole.
    public var idleTimeoutSeconds: Int
    /// The longest prompt text, in UTF-8 bytes, that is tokenized; nil: the model's context times the
    /// longest token of its vocabulary, the most text that can still fit the context.
    public var maxPromptBytes: Int?

    public init(maxBodyBytes: Int = 4 << 20, maxQueue: Int = 64, idleTimeoutSeconds: Int = 30, maxPromptBytes: Int? = nil) {
        self.maxBodyBytes = maxBodyBytes
        self.maxQueue = maxQueue
        self.idleTimeoutSeconds = idleTimeoutSeconds
        self.maxPromptBytes = maxPromptBytes
    }

    /// The longest stop string, in characters: each is matched against the reply after every token.
    static let maxStopLength = 256
}
