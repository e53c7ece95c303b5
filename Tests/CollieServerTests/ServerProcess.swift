import CollieTestSupport
import Foundation
import XCTest
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
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

    /// Starts `collie serve` with `arguments` after the model and port, and `environment` added to this process's.
    init(arguments: [String] = [], environment: [String: String] = [:]) throws {
        folder = try Self.modelFolder()
        process = try ChildProcess(CollieExecutable.url(),
                                   ["serve", "--model", folder.path, "--port", "0", "--model-name", "tiny-chat"] + arguments,
                                   in: folder.deletingLastPathComponent(), log: "serve",
                                   environment: ["OPENBLAS_NUM_THREADS": "1", "OPENBLAS_THREAD_TIMEOUT": "4"]
                                       .merging(environment) { $1 })
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

    typealias Reply = (status: Int, body: Data, headers: [String: String])

    /// Sends a request with `headers` added; returns the status, body and response headers (names lowercased).
    func request(_ method: String, _ path: String, body: Data? = nil, headers: [String: String] = [:]) throws -> Reply {
        var request = URLRequest(url: base.appendingPathComponent(path))
        request.httpMethod = method
        request.timeoutInterval = 120
        if let body {
            request.httpBody = body
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        final class Box: @unchecked Sendable { var result: Reply?; var failure: Error? }
        let done = DispatchSemaphore(value: 0), box = Box()
        URLSession.shared.dataTask(with: request) { data, response, error in
            if let error { box.failure = error } else if let response = response as? HTTPURLResponse {
                let fields = response.allHeaderFields.map { (String(describing: $0.key).lowercased(), String(describing: $0.value)) }
                box.result = (response.statusCode, data ?? Data(), Dictionary(fields) { first, _ in first })
            }
            done.signal()
        }.resume()
        done.wait()
        if let failure = box.failure { throw failure }
        guard let result = box.result else { throw URLError(.badServerResponse) }
        return result
    }

    func post(_ path: String, _ json: [String: Any], headers: [String: String] = [:]) throws -> Reply {
        try request("POST", path, body: JSONSerialization.data(withJSONObject: json), headers: headers)
    }
}

/// A plain TCP connection to the server, for what URLSession cannot do: send half a request, or send a
/// whole one and hang up without waiting for the answer.
final class RawConnection {
    private let descriptor: Int32

    init(port: Int) throws {
        #if canImport(Glibc)
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        descriptor = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard descriptor >= 0, connected == 0 else { throw URLError(.cannotConnectToHost) }
    }

    /// A complete HTTP/1.1 POST of `json` to `path`, with `headers`.
    static func post(_ path: String, _ json: [String: Any], headers: [String: String] = [:]) throws -> Data {
        let body = try JSONSerialization.data(withJSONObject: json)
        let extra = headers.map { "\($0.key): \($0.value)\r\n" }.joined()
        let head = "POST /\(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\(extra)"
            + "Content-Length: \(body.count)\r\n\r\n"
        return Data(head.utf8) + body
    }

    func send(_ data: Data) {
        data.withUnsafeBytes { bytes in
            guard let base = bytes.baseAddress else { return }
            var offset = 0
            while offset < bytes.count {
                #if canImport(Glibc)
                let sent = Glibc.send(descriptor, base + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
                #else
                let sent = Darwin.send(descriptor, base + offset, bytes.count - offset, 0)
                #endif
                guard sent > 0 else { return }
                offset += sent
            }
        }
    }

    /// Seconds until the server closes the connection (whatever it sends first is read and dropped), or nil
    /// when it is still open after `timeout` seconds.
    func secondsUntilClosed(timeout: Double) -> Double? {
        let start = Date()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while Date().timeIntervalSince(start) < timeout {
            var wait = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&wait, 1, 100) >= 0 else { return nil }
            if wait.revents != 0 && recv(descriptor, &buffer, buffer.count, 0) <= 0 { return Date().timeIntervalSince(start) }
        }
        return nil
    }

    func close() {
        #if canImport(Glibc)
        _ = Glibc.close(descriptor)
        #else
        _ = Darwin.close(descriptor)
        #endif
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
