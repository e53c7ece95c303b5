import CollieGeneration
import Foundation
import Hummingbird
import NIOCore

/// An OpenAI-compatible HTTP server for one model: `/v1/models`, `/v1/completions`,
/// `/v1/chat/completions` (JSON or server-sent events), `/health`, and a chat page at `/`.
///
/// Requests are validated on arrival (4xx with OpenAI's error body) and then run one at a time,
/// in arrival order, on a dedicated generation queue: concurrent clients wait their turn, none is
/// dropped, and the network threads never run the model. A request's several prompts run as one
/// left-padded batch.
public final class OpenAIServer: @unchecked Sendable {
    let textGenerator: TextGenerator
    /// The id clients pass as `model`.
    public let modelName: String
    private let queue = DispatchQueue(label: "collie.generation")
    private let created = Int(Date().timeIntervalSince1970)
    private let maxBodyBytes = 16 << 20

    public init(textGenerator: TextGenerator, modelName: String) {
        self.textGenerator = textGenerator
        self.modelName = modelName
    }

    /// Serves on `host:port` (port 0 picks a free one) until SIGINT or SIGTERM; `onListening`
    /// receives the bound port once the server accepts connections.
    public func run(host: String, port: Int, onListening: @escaping @Sendable (Int) -> Void) async throws {
        let app = Application(router: router(), configuration: .init(address: .hostname(host, port: port), serverName: "collie"),
                              onServerRunning: { channel in onListening(channel.localAddress?.port ?? port) })
        try await app.runService()
    }

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: ChatPage.html)))
        }
        router.get("/health") { _, _ in self.json(["status": "ok"]) }
        router.get("/v1/models") { _, _ in
            self.json(ModelList(data: [.init(id: self.modelName, created: self.created)]))
        }
        router.post("/v1/completions") { request, _ in
            await self.respond { try await self.completions(try await request.body.collect(upTo: self.maxBodyBytes)) }
        }
        router.post("/v1/chat/completions") { request, _ in
            await self.respond { try await self.chatCompletions(try await request.body.collect(upTo: self.maxBodyBytes)) }
        }
        return router
    }

    // MARK: - Endpoints

    private func completions(_ body: ByteBuffer) async throws -> Response {
        let request: CompletionRequest = try decode(body)
        try checkModel(request.model)
        let prompts: [[Int]]
        switch request.prompt {
        case .texts(let texts): prompts = texts.map(textGenerator.encode(prompt:))
        case .tokens(let lists): prompts = lists
        }
        guard !prompts.isEmpty, prompts.count <= 32 else {
            throw APIError.invalid("prompt must hold 1 to 32 prompts, got \(prompts.count)", param: "prompt")
        }
        let parameters = try makeParameters(request.sampling, prompts: prompts, defaultMaxTokens: 16)
        let id = "cmpl-" + UUID().uuidString.lowercased()
        if request.stream == true {
            return stream(prompts, parameters) { event in
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
        let results = try await generate(prompts, parameters, cancel: CancelFlag(), onText: nil)
        return json(CompletionResponse(
            id: id, created: now, model: modelName,
            choices: results.enumerated().map { .init(index: $0, text: $1.text, finishReason: $1.finishReason.rawValue) },
            usage: usage(results)))
    }

    private func chatCompletions(_ body: ByteBuffer) async throws -> Response {
        let request: ChatRequest = try decode(body)
        try checkModel(request.model)
        guard !request.messages.isEmpty else { throw APIError.invalid("messages must not be empty", param: "messages") }
        let prompt: [Int]
        do {
            prompt = try textGenerator.encode(chat: request.messages.map { ChatMessage(role: $0.role, content: $0.content) })
        } catch let error as TemplateError {
            throw APIError.invalid(error.message, param: "messages")
        }
        let parameters = try makeParameters(request.sampling, prompts: [prompt], defaultMaxTokens: nil)
        let id = "chatcmpl-" + UUID().uuidString.lowercased()
        if request.stream == true {
            let opening = ChatChunk(id: id, created: now, model: modelName,
                                    choices: [.init(index: 0, delta: .init(role: "assistant", content: ""), finishReason: nil)])
            return stream([prompt], parameters, opening: opening) { event in
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
        let results = try await generate([prompt], parameters, cancel: CancelFlag(), onText: nil)
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
        try check(stops.count <= 4 && stops.allSatisfy { !$0.isEmpty }, "stop", "stop must be up to 4 non-empty strings")
        let vocabulary = textGenerator.generator.model.configuration.vocabularySize
        for (index, prompt) in prompts.enumerated() {
            try check(!prompt.isEmpty, "prompt", "prompt \(index) is empty")
            if let bad = prompt.first(where: { $0 < 0 || $0 >= vocabulary }) {
                throw APIError.invalid("prompt \(index): token id \(bad) is outside the vocabulary 0..<\(vocabulary)", param: "prompt")
            }
        }
        let context = textGenerator.contextLength
        let longest = prompts.map(\.count).max()!
        let requested = s.maxCompletionTokens ?? s.maxTokens
        if let requested { try check(requested >= 1, "max_tokens", "max_tokens must be at least 1, got \(requested)") }
        let maxTokens = requested ?? min(defaultMaxTokens ?? Int.max, context - longest)
        guard longest < context else {
            throw APIError.invalid("this model's context is \(context) tokens; the prompt has \(longest)", param: "prompt",
                                   code: "context_length_exceeded")
        }
        guard longest + maxTokens <= context else {
            throw APIError.invalid("this model's context is \(context) tokens; the prompt has \(longest) and "
                                   + "max_tokens asks for \(maxTokens) more", param: "max_tokens",
                                   code: "context_length_exceeded")
        }
        return GenerationParameters(maxNewTokens: maxTokens, temperature: temperature, topK: s.topK, topP: s.topP,
                                    repetitionPenalty: s.repetitionPenalty, stopStrings: stops,
                                    seed: s.seed.map { UInt64(bitPattern: Int64($0)) } ?? UInt64.random(in: 0...UInt64.max))
    }

    // MARK: - Running

    /// Runs one request on the generation queue, after every request that arrived before it.
    private func generate(_ prompts: [[Int]], _ parameters: GenerationParameters, cancel: CancelFlag,
                          onText: (@Sendable (Int, String) -> Void)?) async throws -> [TextGenerator.Completion] {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result {
                    try self.textGenerator.complete(prompts, parameters: parameters, isCancelled: cancel.isSet, onText: onText)
                })
            }
        }
    }

    enum StreamEvent { case text(Int, String), finished(Int, TextGenerator.Completion) }

    /// A server-sent-events response: `opening`, then one chunk per event, then `data: [DONE]`.
    /// A client that goes away cancels its generation at the next token.
    private func stream<Chunk: Encodable & Sendable>(_ prompts: [[Int]], _ parameters: GenerationParameters, opening: Chunk? = nil,
                                          chunk: @escaping @Sendable (StreamEvent) -> Chunk) -> Response {
        let (events, continuation) = AsyncStream<StreamEvent>.makeStream()
        let cancel = CancelFlag()
        continuation.onTermination = { _ in cancel.set() }
        Task {
            do {
                let results = try await generate(prompts, parameters, cancel: cancel) { row, delta in
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
            return json(error, status: .init(code: error.status))
        } catch let error as GenerationError {
            return json(APIError.invalid(error.description), status: .badRequest)
        } catch {
            let tooLarge = "\(error)".contains("413") || "\(error)".lowercased().contains("too large")
            return json(APIError(status: tooLarge ? 413 : 500,
                                 error: .init(message: tooLarge ? "the request body is too large" : "internal error: \(error)",
                                              type: tooLarge ? "invalid_request_error" : "server_error", param: nil, code: nil)),
                        status: tooLarge ? .contentTooLarge : .internalServerError)
        }
    }

    private func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    private func usage(_ results: [TextGenerator.Completion]) -> Usage {
        let prompt = results.reduce(0) { $0 + $1.promptTokens }, completion = results.reduce(0) { $0 + $1.completionTokens }
        return Usage(promptTokens: prompt, completionTokens: completion, totalTokens: prompt + completion)
    }

    private var now: Int { Int(Date().timeIntervalSince1970) }
}

/// A flag set from one thread and polled from another.
final class CancelFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.lock(); value = true; lock.unlock() }
    var isSet: () -> Bool { { [self] in lock.lock(); defer { lock.unlock() }; return value } }
}
