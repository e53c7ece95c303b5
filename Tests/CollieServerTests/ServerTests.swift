import CollieGeneration
import Foundation
import Synchronization
import XCTest

/// `collie serve` answers OpenAI's routes, streams as server-sent events, rejects bad requests
/// with OpenAI-style 4xx errors, and keeps serving concurrent clients.
final class ServerTests: XCTestCase {
    // Set once in the class's setUp and cleared in its tearDown; XCTest runs those alone.
    nonisolated(unsafe) static var server: ServerProcess?
    nonisolated(unsafe) static var startError: Error?

    override class func setUp() {
        super.setUp()
        do { server = try ServerProcess() } catch { startError = error }
    }

    override class func tearDown() {
        server?.stop()
        super.tearDown()
    }

    var server: ServerProcess {
        get throws {
            guard let s = Self.server else {
                throw Self.startError ?? NSError(domain: "collie serve", code: 1,
                                                 userInfo: [NSLocalizedDescriptionKey: "the server did not start"])
            }
            return s
        }
    }

    func testHealthModelsAndChatPage() throws {
        let s = try server
        XCTAssertEqual(try s.request("GET", "health").body.object["status"] as? String, "ok")
        let models = try s.request("GET", "v1/models").body.object
        XCTAssertEqual(models["object"] as? String, "list")
        XCTAssertEqual((models["data"] as? [[String: Any]])?.first?["id"] as? String, "tiny-chat")
        let page = try s.request("GET", "")
        XCTAssertEqual(page.status, 200)
        XCTAssertTrue(page.body.text.contains("/v1/chat/completions") && page.body.text.contains("getReader"))
    }

    /// Greedy text over HTTP equals the same model run in-process; streamed deltas add up to it.
    func testCompletionEqualsInProcessGenerationAndStreams() throws {
        let s = try server
        let prompt = "The quick brown fox"
        let response = try s.post("v1/completions", ["model": "tiny-chat", "prompt": prompt, "max_tokens": 24, "temperature": 0])
        XCTAssertEqual(response.status, 200, response.body.text)
        let body = response.body.object
        XCTAssertEqual(body["object"] as? String, "text_completion")
        let choice = (body["choices"] as! [[String: Any]])[0]
        let text = choice["text"] as! String
        let usage = body["usage"] as! [String: Int]

        let local = try TextGenerator.load(from: s.folder)
        let ids = local.encode(prompt: prompt)
        let expected = try local.complete([ids], parameters: .init(maxNewTokens: 24))[0]
        XCTAssertEqual(text, expected.text)
        XCTAssertEqual(choice["finish_reason"] as? String, expected.finishReason.rawValue)
        XCTAssertEqual(usage["prompt_tokens"], ids.count)
        XCTAssertEqual(usage["completion_tokens"], expected.completionTokens)

        let streamed = try s.post("v1/completions", ["model": "tiny-chat", "prompt": prompt, "max_tokens": 24,
                                                     "temperature": 0, "stream": true])
        XCTAssertEqual(streamed.status, 200)
        let (chunks, done) = streamed.body.events
        XCTAssertTrue(done)
        XCTAssertGreaterThan(chunks.count, 3)
        let pieces = chunks.map { (($0["choices"] as! [[String: Any]])[0]["text"] as? String) ?? "" }
        XCTAssertEqual(pieces.joined(), text)
        XCTAssertEqual(chunks.map { $0["object"] as? String }, Array(repeating: "text_completion", count: chunks.count))
        XCTAssertEqual((chunks.last!["choices"] as! [[String: Any]])[0]["finish_reason"] as? String, expected.finishReason.rawValue)
    }

    func testChatCompletionAndStream() throws {
        let s = try server
        let request: [String: Any] = ["model": "tiny-chat", "messages": [["role": "user", "content": "Hello!"]],
                                      "max_tokens": 16, "temperature": 0.8, "seed": 11]
        let response = try s.post("v1/chat/completions", request)
        XCTAssertEqual(response.status, 200, response.body.text)
        let message = ((response.body.object["choices"] as! [[String: Any]])[0]["message"] as! [String: Any])
        XCTAssertEqual(message["role"] as? String, "assistant")
        let content = message["content"] as! String
        XCTAssertFalse(content.isEmpty)

        var streaming = request
        streaming["stream"] = true
        let (chunks, done) = try s.post("v1/chat/completions", streaming).body.events
        XCTAssertTrue(done)
        let deltas = chunks.map { ($0["choices"] as! [[String: Any]])[0]["delta"] as! [String: Any] }
        XCTAssertEqual(deltas.first?["role"] as? String, "assistant")
        XCTAssertEqual(deltas.compactMap { $0["content"] as? String }.joined(), content, "same seed, same reply")
        XCTAssertEqual(chunks.map { $0["object"] as? String }, Array(repeating: "chat.completion.chunk", count: chunks.count))
    }

    func testMalformedRequestsGetOpenAIErrorsAndTheServerKeepsServing() throws {
        let s = try server
        func expectError(_ body: Data, _ path: String = "v1/completions", status: Int, containing: String,
                         line: UInt = #line) throws {
            let response = try s.request("POST", path, body: body)
            XCTAssertEqual(response.status, status, response.body.text, line: line)
            let error = response.body.object["error"] as? [String: Any]
            XCTAssertNotNil(error?["type"], line: line)
            XCTAssertTrue((error?["message"] as? String ?? "").contains(containing), response.body.text, line: line)
        }
        func json(_ object: [String: Any]) throws -> Data { try JSONSerialization.data(withJSONObject: object) }
        try expectError(Data("{not json".utf8), status: 400, containing: "not a JSON object")
        try expectError(try json(["prompt": "x"]), status: 400, containing: "missing required field 'model'")
        try expectError(try json(["model": "gpt-4", "prompt": "x"]), status: 404, containing: "does not exist")
        try expectError(try json(["model": "tiny-chat", "prompt": "x", "temperature": 7]), status: 400, containing: "temperature")
        try expectError(try json(["model": "tiny-chat", "prompt": "x", "top_p": 0]), status: 400, containing: "top_p")
        try expectError(try json(["model": "tiny-chat", "prompt": "x", "max_tokens": -3]), status: 400, containing: "max_tokens")
        try expectError(try json(["model": "tiny-chat", "prompt": "x", "n": 3]), status: 400, containing: "n = 1")
        try expectError(try json(["model": "tiny-chat", "prompt": [1, 99999]]), status: 400, containing: "outside the vocabulary")
        try expectError(try json(["model": "tiny-chat", "prompt": String(repeating: "word ", count: 600)]), status: 400,
                        containing: "context is 512 tokens")
        try expectError(try json(["model": "tiny-chat", "prompt": "x", "max_tokens": 1000]), status: 400,
                        containing: "context is 512 tokens")
        try expectError(try json(["model": "tiny-chat", "messages": "hi"]), "v1/chat/completions", status: 400,
                        containing: "messages")
        try expectError(try json(["model": "tiny-chat", "messages": []]), "v1/chat/completions", status: 400,
                        containing: "must not be empty")
        let ok = try s.post("v1/completions", ["model": "tiny-chat", "prompt": "still there?", "max_tokens": 4])
        XCTAssertEqual(ok.status, 200)
        XCTAssertEqual(try s.request("GET", "health").status, 200)
    }

    /// Concurrent clients are queued, never dropped: every request gets its own correct answer.
    func testConcurrentRequestsAreAllAnswered() throws {
        let s = try server
        let local = try TextGenerator.load(from: s.folder)
        let prompts = (0..<16).map { "Request number \($0) says" }
        let expected = try prompts.map { try local.complete([local.encode(prompt: $0)], parameters: .init(maxNewTokens: 6))[0].text }
        let answers = Mutex([String?](repeating: nil, count: prompts.count))
        DispatchQueue.concurrentPerform(iterations: prompts.count) { i in
            let response = try? s.post("v1/completions", ["model": "tiny-chat", "prompt": prompts[i], "max_tokens": 6,
                                                          "temperature": 0])
            let text = ((response?.body.object["choices"] as? [[String: Any]])?.first?["text"]) as? String
            answers.withLock { $0[i] = text }
        }
        XCTAssertEqual(answers.withLock { $0 }, expected.map { Optional($0) })
    }
}
