import CollieTestSupport
import Foundation
import XCTest
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A `collie serve` child process on a free loopback port, with the tiny chat model of
/// Fixtures/chat-model (scripts/fixtures/make_server_fixtures.py) and the bundled LLaMA-2 tokenizer.
/// Started once (its port is known before any request); requests from several threads only read it.
final class ServerProcess: @unchecked Sendable {
    let process: ChildProcess
    let folder: URL
    private(set) var port = 0
    var base: URL { URL(string: "http://127.0.0.1:\(port)")! }

    /// A model folder: the fixture files plus the tokenizer.
    static func modelFolder() throws -> URL {
        let folder = try makeTemporaryFolder().appendingPathComponent("chat-model")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let fixture = TestPaths.fixtures(of: "CollieServerTests").appendingPathComponent("chat-model")
        for name in try FileManager.default.contentsOfDirectory(atPath: fixture.path) {
            try FileManager.default.copyItem(at: fixture.appendingPathComponent(name), to: folder.appendingPathComponent(name))
        }
        try FileManager.default.copyItem(at: TestPaths.llama2Tokenizer.appendingPathComponent("tokenizer.json"),
                                         to: folder.appendingPathComponent("tokenizer.json"))
        return folder
    }

    init() throws {
        folder = try Self.modelFolder()
        process = try ChildProcess(CollieExecutable.url(),
                                   ["serve", "--model", folder.path, "--port", "0", "--model-name", "tiny-chat"],
                                   in: folder.deletingLastPathComponent(), log: "serve",
                                   environment: ["OPENBLAS_NUM_THREADS": "1", "OPENBLAS_THREAD_TIMEOUT": "4"])
        var port = 0
        _ = process.wait(timeout: 120) {
            let text = process.output
            guard let range = text.range(of: "listening on http://127.0.0.1:") else { return false }
            port = Int(text[range.upperBound...].prefix { $0.isNumber }) ?? 0
            return port > 0
        }
        guard port > 0 else {
            let message = process.errors
            stop()
            throw NSError(domain: "collie serve", code: 1, userInfo: [NSLocalizedDescriptionKey: "server did not start: \(message)"])
        }
        self.port = port
    }

    func stop() {
        process.stop(grace: 10)
        try? FileManager.default.removeItem(at: folder.deletingLastPathComponent())
    }

    /// Sends a request; returns the status and body.
    func request(_ method: String, _ path: String, body: Data? = nil) throws -> (status: Int, body: Data) {
        var request = URLRequest(url: base.appendingPathComponent(path))
        request.httpMethod = method
        request.timeoutInterval = 120
        if let body {
            request.httpBody = body
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        final class Box: @unchecked Sendable { var result: (Int, Data)?; var failure: Error? }
        let done = DispatchSemaphore(value: 0), box = Box()
        URLSession.shared.dataTask(with: request) { data, response, error in
            if let error { box.failure = error } else { box.result = ((response as! HTTPURLResponse).statusCode, data ?? Data()) }
            done.signal()
        }.resume()
        done.wait()
        if let failure = box.failure { throw failure }
        return box.result!
    }

    func post(_ path: String, _ json: [String: Any]) throws -> (status: Int, body: Data) {
        try request("POST", path, body: JSONSerialization.data(withJSONObject: json))
    }
}

extension Data {
    var object: [String: Any] { (try? JSONSerialization.jsonObject(with: self)) as? [String: Any] ?? [:] }
    var text: String { String(decoding: self, as: UTF8.self) }

    /// The JSON payloads of a server-sent-events body, and whether it ended with `data: [DONE]`.
    var events: (payloads: [[String: Any]], done: Bool) {
        var payloads: [[String: Any]] = [], done = false
        for block in text.components(separatedBy: "\n\n") where block.hasPrefix("data: ") {
            let data = block.dropFirst(6)
            if data == "[DONE]" { done = true; continue }
            payloads.append(Data(data.utf8).object)
        }
        return (payloads, done)
    }
}
