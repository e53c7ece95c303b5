import Foundation
import XCTest

/// A `collie serve` child process shared by one test class, started with the class's `arguments` and
/// `environment` in its setUp and stopped in its tearDown.
class LiveServerTestCase: XCTestCase {
    class var arguments: [String] { [] }
    class var environment: [String: String] { [:] }

    // Written only in class setUp and tearDown, which XCTest runs alone.
    nonisolated(unsafe) private static var servers: [ObjectIdentifier: Result<ServerProcess, Error>] = [:]

    override class func setUp() {
        super.setUp()
        servers[ObjectIdentifier(self)] = Result { try ServerProcess(arguments: arguments, environment: environment) }
    }

    override class func tearDown() {
        (try? servers.removeValue(forKey: ObjectIdentifier(self))?.get())?.stop()
        super.tearDown()
    }

    var server: ServerProcess {
        get throws {
            guard let result = Self.servers[ObjectIdentifier(Self.self)] else { throw URLError(.cannotConnectToHost) }
            return try result.get()
        }
    }

    /// A completion request for the served model.
    func completion(_ fields: [String: Any]) -> [String: Any] {
        fields.merging(["model": "tiny-chat"]) { $1 }
    }

    /// The `error` object of an OpenAI error body.
    func error(_ reply: ServerProcess.Reply) -> [String: Any] { reply.body.object["error"] as? [String: Any] ?? [:] }
}

/// Hostile or careless clients on a server with the default limits: numbers that overflow, bodies and
/// prompts too large to handle, clients that hang up. Each gets an answer in Collie's words (or
/// nothing, having left) and the server keeps serving everyone else promptly.
final class ServerAbuseTests: LiveServerTestCase {
    /// max_tokens = 2^63 - 1 used to overflow `prompt + max_tokens` and kill the server.
    func testHugeNumbersAreRefusedAndTheServerStaysUp() throws {
        let s = try server
        for field in ["max_tokens", "max_completion_tokens"] {
            let reply = try s.post("v1/completions", completion(["prompt": "hi", field: Int.max]))
            XCTAssertEqual(reply.status, 400, reply.body.text)
            XCTAssertEqual(error(reply)["code"] as? String, "context_length_exceeded")
            XCTAssertEqual(error(reply)["param"] as? String, field)
            let chat = try s.post("v1/chat/completions", completion(["messages": [["role": "user", "content": "hi"]], field: Int.max]))
            XCTAssertEqual(chat.status, 400, chat.body.text)
        }
        for (field, value) in [("n", Int.max), ("logprobs", Int.max), ("max_tokens", Int.min)] as [(String, Int)] {
            XCTAssertEqual(try s.post("v1/completions", completion(["prompt": "hi", field: value])).status, 400, field)
        }
        let longStop = try s.post("v1/completions", completion(["prompt": "hi", "stop": String(repeating: "x", count: 2_000)]))
        XCTAssertEqual(longStop.status, 400, longStop.body.text)
        XCTAssertEqual(error(longStop)["param"] as? String, "stop")
        let extremes = try s.post("v1/completions", completion(["prompt": "hi", "max_tokens": 2, "top_k": Int.max, "seed": Int.min,
                                                                "temperature": 1]))
        XCTAssertEqual(extremes.status, 200, extremes.body.text)
        XCTAssertEqual(try s.request("GET", "health").status, 200)
    }

    /// A 50 MB body used to answer 500 NIOTooManyBytesError.
    func testOversizedBodyIsAnswered413() throws {
        let s = try server
        let reply = try s.request("POST", "v1/completions", body: Data(count: 50 << 20))
        XCTAssertEqual(reply.status, 413, reply.body.text)
        XCTAssertTrue((error(reply)["message"] as? String ?? "").contains("--max-body"), reply.body.text)
        XCTAssertEqual(try s.post("v1/completions", completion(["prompt": "still here", "max_tokens": 2])).status, 200)
    }

    /// A prompt far longer than the context is refused from its size, untokenized, without holding up /health.
    func testLongPromptIsRefusedBeforeTokenization() throws {
        let s = try server
        let prompt = String(repeating: "word ", count: 600_000)   // 3 MB: under the body limit, far over the context
        let started = Date()
        let reply = try s.post("v1/completions", completion(["prompt": prompt]))
        XCTAssertEqual(reply.status, 400, reply.body.text)
        XCTAssertEqual(error(reply)["code"] as? String, "context_length_exceeded")
        XCTAssertTrue((error(reply)["message"] as? String ?? "").contains("bytes of text"), reply.body.text)
        XCTAssertLessThan(Date().timeIntervalSince(started), 10)
        let chat = try s.post("v1/chat/completions", completion(["messages": [["role": "user", "content": prompt]]]))
        XCTAssertEqual(chat.status, 400, chat.body.text)
        XCTAssertEqual(error(chat)["code"] as? String, "context_length_exceeded")
        let many = try s.post("v1/chat/completions", completion(["messages": Array(repeating: ["role": "user", "content": "a"],
                                                                                      count: 2_000)]))
        XCTAssertEqual(many.status, 400, many.body.text)
        XCTAssertTrue((error(many)["message"] as? String ?? "").contains("2000 messages"), many.body.text)
    }

    /// Non-streaming requests whose client hung up used to generate to the end, one after another, before
    /// anyone else was served.
    func testRequestsOfClientsThatHangUpAreCancelled() throws {
        let s = try server
        let long = completion(["prompt": "Once upon a time", "max_tokens": 480, "temperature": 0])
        var started = Date()
        let alone = try s.post("v1/completions", long)
        let oneLong = Date().timeIntervalSince(started)
        XCTAssertEqual((alone.body.object["usage"] as? [String: Int])?["completion_tokens"], 480, "the reference request runs long")

        for _ in 0..<6 {
            let connection = try RawConnection(port: s.port)
            connection.send(try RawConnection.post("v1/completions", long))
            connection.close()
        }
        Thread.sleep(forTimeInterval: 0.2)
        started = Date()
        let short = try s.post("v1/completions", completion(["prompt": "Hello", "max_tokens": 2]))
        let waited = Date().timeIntervalSince(started)
        XCTAssertEqual(short.status, 200, short.body.text)
        // Served in turn, the six abandoned requests would take 6 × oneLong.
        XCTAssertLessThan(waited, 2 * oneLong, "a short request waited \(waited) s behind abandoned ones (one takes \(oneLong) s)")
        // A cancelled request leaves the queue when its generation next checks for the hang-up: soon, not at once.
        var pending = try s.request("GET", "health").body.object["pending_requests"] as? Int
        let deadline = Date().addingTimeInterval(max(5, oneLong))
        while pending != 0 && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.05)
            pending = try s.request("GET", "health").body.object["pending_requests"] as? Int
        }
        XCTAssertEqual(pending, 0, "abandoned requests still pending")
    }
}

/// A server with small limits and an API key (from COLLIE_API_KEY): a full queue answers 503 with
/// Retry-After, a silent connection is closed, and /v1/ needs the key.
final class ServerLimitsTests: LiveServerTestCase {
    static let key = "sesame-\(UUID().uuidString)"
    override class var arguments: [String] { ["--max-queue", "1", "--idle-timeout", "1"] }
    override class var environment: [String: String] { ["COLLIE_API_KEY": key] }
    let authorized = ["Authorization": "Bearer \(ServerLimitsTests.key)"]

    func testAPIKeyIsRequiredOnV1Routes() throws {
        let s = try server
        for headers in [[:], ["Authorization": "Bearer wrong"], ["Authorization": "Bearer \(Self.key)x"], ["Authorization": Self.key]] {
            let models = try s.request("GET", "v1/models", headers: headers)
            XCTAssertEqual(models.status, 401, "\(headers)")
            XCTAssertEqual(error(models)["code"] as? String, "invalid_api_key")
            XCTAssertEqual(models.headers["www-authenticate"], "Bearer")
            XCTAssertEqual(try s.post("v1/completions", completion(["prompt": "hi", "max_tokens": 2]), headers: headers).status, 401)
        }
        XCTAssertEqual(try s.request("GET", "v1/models", headers: authorized).status, 200)
        XCTAssertEqual(try s.post("v1/completions", completion(["prompt": "hi", "max_tokens": 2]), headers: authorized).status, 200)
        XCTAssertEqual(try s.request("GET", "health").status, 200, "health checks need no key")
    }

    /// The queue used to grow without bound.
    func testFullQueueAnswers503WithRetryAfter() throws {
        let s = try server
        let long = try JSONSerialization.data(withJSONObject: completion(["prompt": "Once upon a time", "max_tokens": 480,
                                                                         "temperature": 0]))
        let headers = authorized
        let group = DispatchGroup()
        final class Statuses: @unchecked Sendable { let lock = NSLock(); var values: [Int] = [] }
        let statuses = Statuses()
        for _ in 0..<2 {   // one generating, one waiting: --max-queue 1 is full
            DispatchQueue.global().async(group: group) {
                let status = (try? s.request("POST", "v1/completions", body: long, headers: headers).status) ?? -1
                statuses.lock.lock(); statuses.values.append(status); statuses.lock.unlock()
            }
        }
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, (try? s.request("GET", "health").body.object["pending_requests"] as? Int) != 2 {
            Thread.sleep(forTimeInterval: 0.02)
        }
        let refused = try s.post("v1/completions", completion(["prompt": "hi", "max_tokens": 2]), headers: authorized)
        XCTAssertEqual(refused.status, 503, refused.body.text)
        XCTAssertEqual(error(refused)["code"] as? String, "server_overloaded")
        XCTAssertGreaterThanOrEqual(Int(refused.headers["retry-after"] ?? "") ?? 0, 1, "\(refused.headers)")
        group.wait()
        XCTAssertEqual(statuses.values, [200, 200], "the admitted requests are answered")
        XCTAssertEqual(try s.post("v1/completions", completion(["prompt": "hi", "max_tokens": 2]), headers: authorized).status, 200)
    }

    /// A waiting request whose client hangs up gives its place up at once, not when its turn comes.
    func testClientsThatHangUpGiveTheirPlaceUp() throws {
        let s = try server
        let long = try JSONSerialization.data(withJSONObject: completion(["prompt": "Once upon a time", "max_tokens": 480,
                                                                         "temperature": 0]))
        let headers = authorized
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) {   // generating: the queue's one running place
            _ = try? s.request("POST", "v1/completions", body: long, headers: headers)
        }
        func pending() -> Int? { try? s.request("GET", "health").body.object["pending_requests"] as? Int }
        var deadline = Date().addingTimeInterval(30)
        while Date() < deadline, pending() != 1 { Thread.sleep(forTimeInterval: 0.02) }
        let abandoned = try RawConnection(port: s.port)   // waiting: the queue's one waiting place
        abandoned.send(try RawConnection.post("v1/completions", completion(["prompt": "x", "max_tokens": 480]), headers: authorized))
        deadline = Date().addingTimeInterval(30)
        while Date() < deadline, pending() != 2 { Thread.sleep(forTimeInterval: 0.02) }
        abandoned.close()
        deadline = Date().addingTimeInterval(30)
        while Date() < deadline, (pending() ?? 2) > 1 { Thread.sleep(forTimeInterval: 0.01) }
        XCTAssertEqual(group.wait(timeout: .now()), .timedOut, "the place was given up only when the running request ended")
        let reply = try s.post("v1/completions", completion(["prompt": "hi", "max_tokens": 2]), headers: authorized)
        XCTAssertEqual(reply.status, 200, reply.body.text)
        group.wait()
    }

    /// Half-sent requests used to hold their connection open forever.
    func testSilentConnectionsAreClosedAfterTheIdleTimeout() throws {
        let s = try server
        let halfHead = try RawConnection(port: s.port)
        halfHead.send(Data("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le".utf8))
        let halfBody = try RawConnection(port: s.port)
        halfBody.send(Data("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{\"model\"".utf8))
        defer { halfHead.close(); halfBody.close() }
        let headClosed = halfHead.secondsUntilClosed(timeout: 10)
        let bodyClosed = halfBody.secondsUntilClosed(timeout: 10)
        XCTAssertNotNil(headClosed, "a half-sent head keeps its connection")
        XCTAssertNotNil(bodyClosed, "a half-sent body keeps its connection")
        XCTAssertLessThan(headClosed ?? 99, 5)
        XCTAssertEqual(try s.request("GET", "health").status, 200)
    }

    /// A body trickled in a byte at a time, never idle for the timeout, used to hold its connection as long as it
    /// kept trickling: the body as a whole must arrive within the timeout.
    func testTrickledBodyIsCutOff() throws {
        let s = try server
        let trickle = try RawConnection(port: s.port)
        defer { trickle.close() }
        trickle.send(Data("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(Self.key)\r\n".utf8)
                     + Data("Content-Length: 1000\r\n\r\n{".utf8))
        let started = Date()
        var closed: Double?
        while closed == nil, Date().timeIntervalSince(started) < 10 {
            trickle.send(Data(" ".utf8))
            closed = trickle.secondsUntilClosed(timeout: 0.3)
        }
        XCTAssertNotNil(closed, "a trickled body keeps its connection")
        XCTAssertLessThan(Date().timeIntervalSince(started), 5)
    }
}
