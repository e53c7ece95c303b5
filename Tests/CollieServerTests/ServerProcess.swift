import Foundation
import XCTest
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A `collie serve` child process on a free loopback port, with the tiny chat model of
/// Fixtures/chat-model (scripts/fixtures/make_server_fixtures.py) and the bundled LLaMA-2 tokenizer.
/// Started once (its port is known before any request); requests from several threads only read it.
final class ServerProcess: @unchecked Sendable {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    let process = Process()
    let folder: URL
    private(set) var port = 0
    var base: URL { URL(string: "http://127.0.0.1:\(port)")! }

    /// `collie` from $COLLIE_BINARY or the build folder `swift build --build-tests` fills.
    static func executable() throws -> URL {
        if let path = ProcessInfo.processInfo.environment["COLLIE_BINARY"] { return URL(fileURLWithPath: path) }
        let candidates = [Bundle.main.bundleURL.deletingLastPathComponent(), Bundle.main.bundleURL,
                          Bundle(for: ServerProcess.self).bundleURL.deletingLastPathComponent(),
                          repository.appendingPathComponent(".build/debug")]
            .map { $0.appendingPathComponent("collie") }
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            throw NSError(domain: "collie serve", code: 1, userInfo: [NSLocalizedDescriptionKey:
                "the collie executable was not found (searched \(candidates.map(\.path))); build it with "
                + "`swift build --build-tests` or set COLLIE_BINARY"])
        }
        return found
    }

    /// A model folder: the fixture files plus the tokenizer.
    static func modelFolder() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("collie-serve-\(UUID().uuidString)/chat-model")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/chat-model")
        for name in try FileManager.default.contentsOfDirectory(atPath: fixture.path) {
            try FileManager.default.copyItem(at: fixture.appendingPathComponent(name), to: folder.appendingPathComponent(name))
        }
        try FileManager.default.copyItem(at: repository.appendingPathComponent("tokenizers/llama2/tokenizer.json"),
                                         to: folder.appendingPathComponent("tokenizer.json"))
        return folder
    }

    init() throws {
        folder = try Self.modelFolder()
        process.executableURL = try Self.executable()
        process.arguments = ["serve", "--model", folder.path, "--port", "0", "--model-name", "tiny-chat"]
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_NUM_THREADS"] = "1"
        environment["OPENBLAS_THREAD_TIMEOUT"] = "4"
        process.environment = environment
        let log = folder.deletingLastPathComponent().appendingPathComponent("serve.out")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: log)
        let errors = folder.deletingLastPathComponent().appendingPathComponent("serve.err")
        _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: errors)
        try process.run()
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, process.isRunning {
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            if let range = text.range(of: "listening on http://127.0.0.1:") {
                let digits = text[range.upperBound...].prefix { $0.isNumber }
                if let p = Int(digits), p > 0 { port = p; return }
            }
            usleep(20_000)
        }
        let message = (try? String(contentsOf: errors, encoding: .utf8)) ?? ""
        stop()
        throw NSError(domain: "collie serve", code: 1, userInfo: [NSLocalizedDescriptionKey: "server did not start: \(message)"])
    }

    func stop() {
        if process.isRunning {
            process.interrupt()
            let deadline = Date().addingTimeInterval(10)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
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
