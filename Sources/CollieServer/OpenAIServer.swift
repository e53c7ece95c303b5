import CollieGeneration
import Foundation
import Hummingbird
import HummingbirdCore
import NIOCore

/// An OpenAI-compatible HTTP server for one model: `/v1/models`, `/v1/completions`,
/// `/v1/chat/completions` (JSON or server-sent events), `/health`, and a chat page at `/`.
///
/// Requests are checked on arrival (4xx with OpenAI's error body), admitted to a bounded queue
/// (503 with `Retry-After` when it is full), prepared off Swift's cooperative threads, and run one at
/// a time, in arrival order, on a dedicated generation queue; the network threads never run the
/// model. A request's several prompts run as one left-padded batch. A request whose client goes
/// away is cancelled, waiting or generating. `limits` bounds bodies, prompts, the queue and idle
/// connections; with an API key, `/v1/` routes answer 401 without `Authorization: Bearer KEY`.
public final class OpenAIServer: @unchecked Sendable {
    let textGenerator: TextGenerator
    /// The id clients pass as `model`.
    public let modelName: String
    /// The limits this server enforces.
    public let limits: ServerLimits
    private let apiKey: APIKey?
    private let queue: RequestQueue
    /// `limits.maxPromptBytes`, or the most text that can fit the context.
    private let maxPromptBytes: Int
    private let created = Int(Date().timeIntervalSince1970)

    /// `apiKey`: nil or empty serves every client.
    public init(textGenerator: TextGenerator, modelName: String, limits: ServerLimits = ServerLimits(), apiKey: String? = nil) {
        self.textGenerator = textGenerator
        self.modelName = modelName
        self.limits = limits
        self.apiKey = APIKey(apiKey)
        queue = RequestQueue(maxWaiting: limits.maxQueue)
        maxPromptBytes = limits.maxPromptBytes ?? Self.longestFittingText(textGenerator)
    }

    /// The UTF-8 bytes of the longest text that can still fit the context: the context times the
    /// longest token's text (at least 4 bytes, one character). Longer prompts are refused untokenized.
    static func longestFittingText(_ generator: TextGenerator) -> Int {
        var longest = 4
        for id in 0..<generator.tokenizer.vocabularySize {
            longest = max(longest, generator.tokenizer.token(forID: id)?.utf8.count ?? 0)
        }
        let (bytes, overflow) = generator.contextLength.multipliedReportingOverflow(by: longest)
        return overflow ? Int.max : bytes
    }

    /// Serves on `host:port` (port 0 picks a free one) until SIGINT or SIGTERM; `onListening`
    /// receives the bound port once the server accepts connections.
    public func run(host: String, port: Int, onListening: @escaping @Sendable (Int) -> Void) async throws {
        let http = HTTP1Channel.Configuration(additionalChannelHandlers: [ConnectionWatcher()],
                                              idleTimeout: .seconds(Int64(min(max(1, limits.idleTimeoutSeconds), 1 << 30))))
        let app = Application(router: router(), server: .http1(configuration: http),
                              configuration: .init(address: .hostname(host, port: port), serverName: "collie"),
                              onServerRunning: { channel in onListening(channel.localAddress?.port ?? port) })
        try await app.runService()
    }

    func router() -> Router<ServerRequestContext> {
        let router = Router(context: ServerRequestContext.self)
        router.get("/") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: ChatPage.html)))
        }
        router.get("/health") { _, _ in self.json(Health(status: "ok", pendingRequests: self.queue.admittedCount)) }
        router.get("/v1/models") { request, _ in
            await self.respond {
                try self.authorize(request)
                return self.json(ModelList(data: [.init(id: self.modelName, created: self.created)]))
            }
        }
        router.post("/v1/completions") { request, context in
            await self.serve(request, context) { try await self.completions($0, $1, $2) }
        }
        router.post("/v1/chat/completions") { request, context in
            await self.serve(request, context) { try await self.chatCompletions($0, $1, $2) }
        }
        return router
    }

    /// Checks the key and the body's size, reads the body, takes a place in the queue (or answers
    /// 503) and runs `endpoint`, cancelling it when the client goes away.
    private func serve(_ request: Request, _ context: ServerRequestContext,
                       _ endpoint: @escaping (ByteBuffer, RequestQueue.Ticket, CancelFlag) async throws -> Response) async -> Response {
        await respond {
            try authorize(request)
            let limit = limits.maxBodyBytes
            if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit { throw APIError.tooLarge(limit: limit) }
            let body = try await readBody(request, context)
            let cancel = CancelFlag()
            await context.cancelOnDisconnect(cancel)
            let ticket = try queue.admit()
            cancel.onSet { ticket.release() }   // a request nobody waits for gives its place up at once
            do {
                return try await withTaskCancellationHandler {
                    try await endpoint(body, ticket, cancel)
                } onCancel: {
                    cancel.set()
                }
            } catch {
                ticket.release()
                throw error
            }
        }
    }

    /// The body, read within the idle timeout as a whole: a client that trickles it in slower is cut off
    /// (408, the connection closed) instead of holding its connection as long as it likes.
    private func readBody(_ request: Request, _ context: ServerRequestContext) async throws -> ByteBuffer {
        let limit = limits.maxBodyBytes, seconds = min(max(1, limits.idleTimeoutSeconds), 1 << 30)
        let body = try await withThrowingTaskGroup(of: ByteBuffer?.self) { group in
            group.addTask {
                var request = request
                do { return try await request.collectBody(upTo: limit) } catch is NIOTooManyBytesError { throw APIError.tooLarge(limit: limit) }
            }
            group.addTask {
                try await Task.sleep(for: .seconds(seconds))
                return nil
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
        guard let body else {
            context.channel.close(promise: nil)
            throw APIError(status: 408, error: .init(message: "the request body did not arrive within \(seconds) s (--idle-timeout)",
                                                     type: "invalid_request_error", param: nil, code: "request_timeout"))
        }
        return body
    }

    private func authorize(_ request: Request) throws {
        guard let apiKey, !apiKey.accepts(authorization: request.headers[.authorization]) else { return }
        throw APIError.unauthorized(request.headers[.authorization] == nil
            ? "no API key given: send it as 'Authorization: Bearer KEY'" : "the API key is not this server's")
    }

    // MARK: - Endpoints

    /// What a request asks for, checked and tokenized.
    private struct Prepared: Sendable {
        var prompts: [[Int]]
        var parameters: GenerationParameters
        var stream: Bool
    }

    private func completions(_ body: ByteBuffer, _ ticket: RequestQueue.Ticket, _ cancel: CancelFlag) async throws -> Response {
        let prepared = try await queue.prepare { () throws -> Prepared in
            let request: CompletionRequest = try self.decode(body)
            try self.checkModel(request.model)
            let prompts: [[Int]]
            switch request.prompt {
            case .texts(let texts):
                try self.checkPromptCount(texts.count)
                prompts = try texts.enumerated().map { index, text in
                    try self.checkPromptBytes(text.utf8.count, what: "prompt \(index)")
                    return self.textGenerator.encode(prompt: text)
                }
            case .tokens(let lists):
                try self.checkPromptCount(lists.count)
                prompts = lists
            }
            return Prepared(prompts: prompts, parameters: try self.makeParameters(request.sampling, prompts: prompts, defaultMaxTokens: 16),
                            stream: request.stream == true)
        }
        let (prompts, parameters) = (prepared.prompts, prepared.parameters)
        let id = "cmpl-" + UUID().uuidString.lowercased()
        if prepared.stream {
            return stream(prompts, parameters, ticket: ticket, cancel: cancel) { event in
                switch event {
                case .text(let row, let delta):
                    return CompletionResponse(id: id, created: self.now, model: self.modelName,
                                              choices: [.init(index: row, text: delta, finishReason: nil)], usage: nil)
                case .finished(let row, let completion):
                    return CompletionResponse(id: id, created: self.now, model: self.modelName,
                                              choices: [.init(index: row, text: "", finishReason: completion.finishReason.rawValue)],
                                              usage: nil)
                }
            }
        }
        let results = try await generate(prompts, parameters, ticket: ticket, cancel: cancel, onText: nil)
        return json(CompletionResponse(
            id: id, created: now, model: modelName,
            choices: results.enumerated().map { .init(index: $0, text: $1.text, finishReason: $1.finishReason.rawValue) },
            usage: usage(results)))
    }

    private func chatCompletions(_ body: ByteBuffer, _ ticket: RequestQueue.Ticket, _ cancel: CancelFlag) async throws -> Response {
        let prepared = try await queue.prepare { () throws -> Prepared in
            let request: ChatRequest = try self.decode(body)
            try self.checkModel(request.model)
            guard !request.messages.isEmpty else { throw APIError.invalid("messages must not be empty", param: "messages") }
            // Each message renders to a token at least, so more messages than the context cannot fit: refused unrendered.
            let context = self.textGenerator.contextLength
            guard request.messages.count < context else {
                throw APIError.invalid("messages holds \(request.messages.count) messages; this model's context is \(context) tokens",
                                       param: "messages", code: "context_length_exceeded")
            }
            // Every message's text is in the rendered prompt: a conversation longer than the context is refused unrendered.
            try self.checkPromptBytes(request.messages.reduce(0) { $0 + $1.content.utf8.count }, what: "the messages")
            let prompt: [Int]
            do {
                prompt = try self.textGenerator.encode(chat: request.messages.map { ChatMessage(role: $0.role, content: $0.content) })
            } catch let error as TemplateError {
                throw APIError.invalid(error.message, param: "messages")
            }
            return Prepared(prompts: [prompt], parameters: try self.makeParameters(request.sampling, prompts: [prompt], defaultMaxTokens: nil),
                            stream: request.stream == true)
        }
        let (prompt, parameters) = (prepared.prompts[0], prepared.parameters)
        let id = "chatcmpl-" + UUID().uuidString.lowercased()
        if prepared.stream {
            let opening = ChatChunk(id: id, created: now, model: modelName,
                                    choices: [.init(index: 0, delta: .init(role: "assistant", content: ""), finishReason: nil)])
            return stream([prompt], parameters, ticket: ticket, cancel: cancel, opening: opening) { event in
                switch event {
                case .text(let row, let delta):
                    return ChatChunk(id: id, created: self.now, model: self.modelName,
                                     choices: [.init(index: row, delta: .init(role: nil, content: delta), finishReason: nil)])
                case .finished(let row, let completion):
                    return ChatChunk(id: id, created: self.now, model: self.modelName,
                                     choices: [.init(index: row, delta: .init(role: nil, content: nil),
                                                     finishReason: completion.finishReason.rawValue)])
                }
            }
        }
        let results = try await generate([prompt], parameters, ticket: ticket, cancel: cancel, onText: nil)
        return json(ChatResponse(
            id: id, created: now, model: modelName,
            choices: [.init(index: 0, message: .init(role: "assistant", content: results[0].text),
                            finishReason: results[0].finishReason.rawValue)],
            usage: usage(results)))
    }

    // MARK: - Validation

    private func decode<T: Decodable>(_ body: ByteBuffer) throws -> T {
        let data = Data(body.readableBytesView)
        guard (try? JSONSerialization.jsonObject(with: data)) is [String: Any] else {
            throw APIError.invalid("the request body is not a JSON object")
        }
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let DecodingError.keyNotFound(key, context) {
            let path = Self.path(context.codingPath + [key])
            throw APIError.invalid("missing required field '\(path)'", param: path)
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context),
                let DecodingError.dataCorrupted(context) {
            let path = Self.path(context.codingPath)
            throw APIError.invalid("invalid value for '\(path)': \(context.debugDescription)", param: path)
        }
    }

    /// `messages[0].content` from a decoding path.
    private static func path(_ keys: [CodingKey]) -> String {
        keys.reduce("") { path, key in
            if let index = key.intValue { return path + "[\(index)]" }
            return path.isEmpty ? key.stringValue : path + "." + key.stringValue
        }
    }

    private func checkPromptCount(_ count: Int) throws {
        guard (1...32).contains(count) else { throw APIError.invalid("prompt must hold 1 to 32 prompts, got \(count)", param: "prompt") }
    }

    /// Refuses text that cannot fit the context before it is tokenized.
    private func checkPromptBytes(_ bytes: Int, what: String) throws {
        guard bytes <= maxPromptBytes else {
            throw APIError.invalid("\(what) has \(bytes) bytes of text; this server tokenizes at most \(maxPromptBytes) "
                                   + "(the model's context is \(textGenerator.contextLength) tokens)", param: "prompt",
                                   code: "context_length_exceeded")
        }
    }

    private func checkModel(_ model: String) throws {
        guard model == modelName else {
            throw APIError(status: 404, error: .init(message: "the model '\(model)' does not exist; this server serves '\(modelName)'",
                                                     type: "invalid_request_error", param: "model", code: "model_not_found"))
        }
    }

    private func makeParameters(_ s: SamplingFields, prompts: [[Int]], defaultMaxTokens: Int?) throws -> GenerationParameters {
        func check(_ ok: Bool, _ param: String, _ message: String) throws {
            if !ok { throw APIError.invalid(message, param: param) }
        }
        try check((s.n ?? 1) == 1, "n", "only n = 1 is supported")
        try check(s.logprobs?.requested != true, "logprobs", "logprobs are not supported")
        try check(s.echo != true, "echo", "echo is not supported")
        try check((s.presencePenalty ?? 0) == 0, "presence_penalty", "presence_penalty is not supported (use repetition_penalty)")
        try check((s.frequencyPenalty ?? 0) == 0, "frequency_penalty", "frequency_penalty is not supported (use repetition_penalty)")
        let temperature = s.temperature ?? 1
        try check(temperature >= 0 && temperature <= 2, "temperature", "temperature must be between 0 and 2, got \(temperature)")
        if let p = s.topP { try check(p > 0 && p <= 1, "top_p", "top_p must be in (0, 1], got \(p)") }
        if let k = s.topK { try check(k >= 0, "top_k", "top_k must be >= 0, got \(k)") }
        if let r = s.repetitionPenalty {
            try check(r > 0 && r <= 10, "repetition_penalty", "repetition_penalty must be in (0, 10], got \(r)")
        }
        let stops = s.stop?.values ?? []
        try check(stops.count <= 4 && stops.allSatisfy { !$0.isEmpty && $0.count <= ServerLimits.maxStopLength }, "stop",
                  "stop must be up to 4 non-empty strings of at most \(ServerLimits.maxStopLength) characters")
        let vocabulary = textGenerator.generator.model.configuration.vocabularySize
        let context = textGenerator.contextLength
        for (index, prompt) in prompts.enumerated() {
            try check(!prompt.isEmpty, "prompt", "prompt \(index) is empty")
            guard prompt.count < context else {
                throw APIError.invalid("this model's context is \(context) tokens; the prompt has \(prompt.count)", param: "prompt",
                                       code: "context_length_exceeded")
            }
            if let bad = prompt.first(where: { $0 < 0 || $0 >= vocabulary }) {
                throw APIError.invalid("prompt \(index): token id \(bad) is outside the vocabulary 0..<\(vocabulary)", param: "prompt")
            }
        }
        let room = context - (prompts.map(\.count).max() ?? 0)   // at least 1: every prompt is shorter than the context
        let field = s.maxCompletionTokens != nil ? "max_completion_tokens" : "max_tokens"
        let maxTokens: Int
        if let requested = s.maxCompletionTokens ?? s.maxTokens {
            try check(requested >= 1, field, "\(field) must be at least 1, got \(requested)")
            guard requested <= room else {
                throw APIError.invalid("this model's context is \(context) tokens; the prompt has \(context - room) and "
                                       + "\(field) asks for \(requested) more", param: field, code: "context_length_exceeded")
            }
            maxTokens = requested
        } else {
            maxTokens = min(defaultMaxTokens ?? room, room)
        }
        return GenerationParameters(maxNewTokens: maxTokens, temperature: temperature, topK: s.topK, topP: s.topP,
                                    repetitionPenalty: s.repetitionPenalty, stopStrings: stops,
                                    seed: s.seed.map { UInt64(bitPattern: Int64($0)) } ?? UInt64.random(in: 0...UInt64.max))
    }

    // MARK: - Running

    /// Runs one request on the generation queue, after every request admitted before it; stops at
    /// the next token once `cancel` is set.
    private func generate(_ prompts: [[Int]], _ parameters: GenerationParameters, ticket: RequestQueue.Ticket, cancel: CancelFlag,
                          onText: (@Sendable (Int, String) -> Void)?) async throws -> [TextGenerator.Completion] {
        try await queue.generate(ticket, cancel: cancel) {
            try self.textGenerator.complete(prompts, parameters: parameters, isCancelled: cancel.isSet, onText: onText)
        }
    }

    enum StreamEvent { case text(Int, String), finished(Int, TextGenerator.Completion) }

    /// A server-sent-events response: `opening`, then one chunk per event, then `data: [DONE]`.
    /// A client that goes away cancels its generation at the next token.
    private func stream<Chunk: Encodable & Sendable>(_ prompts: [[Int]], _ parameters: GenerationParameters, ticket: RequestQueue.Ticket,
                                                     cancel: CancelFlag, opening: Chunk? = nil,
                                                     chunk: @escaping @Sendable (StreamEvent) -> Chunk) -> Response {
        let (events, continuation) = AsyncStream<StreamEvent>.makeStream()
        continuation.onTermination = { _ in cancel.set() }
        Task {
            do {
                let results = try await generate(prompts, parameters, ticket: ticket, cancel: cancel) { row, delta in
                    continuation.yield(.text(row, delta))
                }
                for (row, result) in results.enumerated() { continuation.yield(.finished(row, result)) }
            } catch {
                cancel.set()
            }
            continuation.finish()
        }
        let body = ResponseBody { writer in
            if let opening { try await writer.write(Self.event(opening)) }
            for await event in events { try await writer.write(Self.event(chunk(event))) }
            try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }

    private static func event(_ value: some Encodable) -> ByteBuffer {
        let data = (try? JSONEncoder().encode(value)) ?? Data("{}".utf8)
        return ByteBuffer(string: "data: " + String(decoding: data, as: UTF8.self) + "\n\n")
    }

    private func respond(_ body: () async throws -> Response) async -> Response {
        do {
            return try await body()
        } catch let error as APIError {
            return json(error, status: .init(code: error.status), headers: error.headers)
        } catch let error as GenerationError {
            return json(APIError.invalid(error.description), status: .badRequest)
        } catch is CancellationError {
            return json(APIError(status: 503, error: .init(message: "the request was cancelled: its client went away or the server is stopping",
                                                           type: "server_error", param: nil, code: nil)),
                        status: .serviceUnavailable)
        } catch {
            return json(APIError(status: 500, error: .init(message: "internal error: \(error)", type: "server_error", param: nil, code: nil)),
                        status: .internalServerError)
        }
    }

    private func json(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    private func usage(_ results: [TextGenerator.Completion]) -> Usage {
        let prompt = results.reduce(0) { $0 + $1.promptTokens }, completion = results.reduce(0) { $0 + $1.completionTokens }
        return Usage(promptTokens: prompt, completionTokens: completion, totalTokens: prompt + completion)
    }

    private var now: Int { Int(Date().timeIntervalSince1970) }
}
