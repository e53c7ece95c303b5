import CollieGeneration
import Foundation
import Hummingbird

/// Request and response bodies of OpenAI's completions and chat-completions APIs (the fields
/// Collie honours; `top_k` and `repetition_penalty` are common extensions).

/// `stop`: a string or a list of strings.
struct StopSequences: Decodable {
    let values: [String]
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { values = [] } else if let s = try? c.decode(String.self) { values = [s] } else {
            values = try c.decode([String].self)
        }
    }
}

/// `prompt`: a string, a list of strings, a list of ids, or a list of id lists.
enum PromptInput: Decodable {
    case texts([String])
    case tokens([[Int]])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) { self = .texts([s]) }
        else if let l = try? c.decode([String].self) { self = .texts(l) }
        else if let ids = try? c.decode([Int].self) { self = .tokens([ids]) }
        else if let lists = try? c.decode([[Int]].self) { self = .tokens(lists) }
        else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription:
                "prompt must be a string, a list of strings, a list of token ids or a list of such lists")
        }
    }
}

/// Sampling fields shared by both endpoints.
struct SamplingFields: Decodable {
    var maxTokens: Int?
    var maxCompletionTokens: Int?
    var temperature: Double?
    var topP: Double?
    var topK: Int?
    var repetitionPenalty: Double?
    var n: Int?
    var stop: StopSequences?
    var seed: Int?
    var presencePenalty: Double?
    var frequencyPenalty: Double?
    var logprobs: LogprobsField?
    var echo: Bool?

    enum CodingKeys: String, CodingKey {
        case maxTokens = "max_tokens", maxCompletionTokens = "max_completion_tokens", temperature, topP = "top_p"
        case topK = "top_k", repetitionPenalty = "repetition_penalty", n, stop, seed
        case presencePenalty = "presence_penalty", frequencyPenalty = "frequency_penalty", logprobs, echo
    }

    /// `logprobs` is an integer (completions) or a boolean (chat); either way only "off" is supported.
    struct LogprobsField: Decodable {
        let requested: Bool
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if c.decodeNil() { requested = false }
            else if let b = try? c.decode(Bool.self) { requested = b }
            else { requested = try c.decode(Int.self) > 0 }
        }
    }
}

struct CompletionRequest: Decodable {
    var model: String
    var prompt: PromptInput
    var stream: Bool?
    var sampling: SamplingFields

    enum CodingKeys: String, CodingKey { case model, prompt, stream }
    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decode(String.self, forKey: .model)
        prompt = try c.decode(PromptInput.self, forKey: .prompt)
        stream = try c.decodeIfPresent(Bool.self, forKey: .stream)
        sampling = try SamplingFields(from: decoder)
    }
}

struct ChatRequest: Decodable {
    /// `content` may be a string or a list of parts `{"type": "text", "text": …}`.
    struct Message: Decodable {
        let role: String
        let content: String
        enum CodingKeys: String, CodingKey { case role, content }
        struct Part: Decodable { let type: String; let text: String? }
        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            role = try c.decode(String.self, forKey: .role)
            if let s = try? c.decode(String.self, forKey: .content) { content = s }
            else if (try? c.decodeNil(forKey: .content)) == true { content = "" }
            else {
                let parts = try c.decode([Part].self, forKey: .content)
                guard parts.allSatisfy({ $0.type == "text" }) else {
                    throw DecodingError.dataCorruptedError(forKey: .content, in: c,
                                                           debugDescription: "only text content parts are supported")
                }
                content = parts.compactMap(\.text).joined()
            }
        }
    }

    var model: String
    var messages: [Message]
    var stream: Bool?
    var sampling: SamplingFields

    enum CodingKeys: String, CodingKey { case model, messages, stream }
    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decode(String.self, forKey: .model)
        messages = try c.decode([Message].self, forKey: .messages)
        stream = try c.decodeIfPresent(Bool.self, forKey: .stream)
        sampling = try SamplingFields(from: decoder)
    }
}

struct Usage: Encodable {
    let promptTokens: Int, completionTokens: Int, totalTokens: Int
    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens", completionTokens = "completion_tokens", totalTokens = "total_tokens"
    }
}

struct CompletionResponse: Encodable {
    struct Choice: Encodable {
        let index: Int
        let text: String
        let finishReason: String?
        let logprobs: String? = nil
        enum CodingKeys: String, CodingKey { case index, text, finishReason = "finish_reason", logprobs }
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index)
            try c.encode(text, forKey: .text)
            try c.encode(finishReason, forKey: .finishReason)
            try c.encodeNil(forKey: .logprobs)
        }
    }
    let id: String
    let object = "text_completion"
    let created: Int
    let model: String
    let choices: [Choice]
    let usage: Usage?
}

struct ChatResponse: Encodable {
    struct Choice: Encodable {
        let index: Int
        let message: ChatMessage
        let finishReason: String
        enum CodingKeys: String, CodingKey { case index, message, finishReason = "finish_reason" }
    }
    let id: String
    let object = "chat.completion"
    let created: Int
    let model: String
    let choices: [Choice]
    let usage: Usage
}

struct ChatChunk: Encodable {
    struct Delta: Encodable { let role: String?; let content: String? }
    struct Choice: Encodable {
        let index: Int
        let delta: Delta
        let finishReason: String?
        enum CodingKeys: String, CodingKey { case index, delta, finishReason = "finish_reason" }
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index)
            try c.encode(delta, forKey: .delta)
            try c.encode(finishReason, forKey: .finishReason)
        }
    }
    let id: String
    let object = "chat.completion.chunk"
    let created: Int
    let model: String
    let choices: [Choice]
}

struct ModelList: Encodable {
    struct Model: Encodable {
        let id: String
        let object = "model"
        let created: Int
        let ownedBy = "collie"
        enum CodingKeys: String, CodingKey { case id, object, created, ownedBy = "owned_by" }
    }
    let object = "list"
    let data: [Model]
}

/// OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`.
struct APIError: Error, Encodable {
    struct Body: Encodable {
        let message: String
        let type: String
        let param: String?
        let code: String?
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(message, forKey: .message)
            try c.encode(type, forKey: .type)
            try c.encode(param, forKey: .param)
            try c.encode(code, forKey: .code)
        }
        enum CodingKeys: String, CodingKey { case message, type, param, code }
    }
    let status: Int
    let error: Body
    /// Seconds after which a client may try again (503).
    var retryAfter: Int? = nil
    enum CodingKeys: String, CodingKey { case error }

    /// The response headers that go with the error.
    var headers: HTTPFields {
        var fields = HTTPFields()
        if let retryAfter { fields[.retryAfter] = String(retryAfter) }
        if status == 401 { fields[.wwwAuthenticate] = "Bearer" }
        return fields
    }

    static func invalid(_ message: String, param: String? = nil, code: String? = nil) -> APIError {
        APIError(status: 400, error: Body(message: message, type: "invalid_request_error", param: param, code: code))
    }

    static func tooLarge(limit: Int) -> APIError {
        APIError(status: 413, error: Body(message: "the request body is larger than this server's limit of \(limit) bytes (--max-body)",
                                          type: "invalid_request_error", param: nil, code: "request_too_large"))
    }

    static func unauthorized(_ message: String) -> APIError {
        APIError(status: 401, error: Body(message: message, type: "invalid_request_error", param: nil, code: "invalid_api_key"))
    }

    static func overloaded(retryAfter: Int) -> APIError {
        APIError(status: 503, error: Body(message: "the server is busy: its queue is full (--max-queue); retry in \(retryAfter) s",
                                          type: "server_error", param: nil, code: "server_overloaded"), retryAfter: retryAfter)
    }
}

/// `GET /health`: the server is up, and how many requests it holds (waiting, preparing or generating).
struct Health: Encodable {
    let status: String
    let pendingRequests: Int
    enum CodingKeys: String, CodingKey { case status, pendingRequests = "pending_requests" }
}
