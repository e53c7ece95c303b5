import Foundation

/// Request-body decoding of both endpoints, callable without a server: the OpenAI fuzz target's entry point
/// (Sources/CollieFuzzing). The server decodes the same types.
public enum OpenAIRequestBody {
    /// Decodes a `/v1/completions` body; throws on a body the server would reject as malformed.
    public static func decodeCompletion(_ body: Data) throws {
        _ = try JSONDecoder().decode(CompletionRequest.self, from: body)
    }

    /// Decodes a `/v1/chat/completions` body; throws on a body the server would reject as malformed.
    public static func decodeChat(_ body: Data) throws {
        _ = try JSONDecoder().decode(ChatRequest.self, from: body)
    }
}
