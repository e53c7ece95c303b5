import CollieServer
import Foundation

extension FuzzEntryPoints {
    /// A request body decoded as both `/v1/completions` and `/v1/chat/completions` decode theirs, without a
    /// server. Accepted when either endpoint decodes it; otherwise the chat decoder's error is thrown.
    static func openAIRequest(_ input: [UInt8]) throws {
        let body = Data(input)
        let completion = (try? OpenAIRequestBody.decodeCompletion(body)) != nil
        do {
            try OpenAIRequestBody.decodeChat(body)
        } catch _ where completion {}
    }
}
