import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs the built `collie` executable as a child process (the tests need a real process to kill).
enum CollieExecutable {
    /// `collie` next to the test bundle (`swift build --build-tests` builds it there), or `$COLLIE_BINARY`.
    static func url() throws -> URL {
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["COLLIE_BINARY"] { return URL(fileURLWithPath: path) }
        let folders = [Bundle.module.bundleURL.deletingLastPathComponent(), Bundle.main.bundleURL,
                       Bundle.main.bundleURL.deletingLastPathComponent(), Bundle.main.executableURL?.deletingLastPathComponent()]
        for folder in folders.compactMap({ $0 }) {
            let candidate = folder.appendingPathComponent("collie")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw MissingExecutable(searched: folders.compactMap { $0?.path })
    }

    /// Thrown (as a test failure) when the executable is not where `swift build --build-tests` puts it.
    struct MissingExecutable: Error, CustomStringConvertible {
        let searched: [String]
        var description: String {
            "the collie executable was not found next to the test bundle (searched \(searched.joined(separator: ", "))); "
                + "build it with `swift build --build-tests` (which builds every product) or set COLLIE_BINARY"
        }
    }

    /// One thread each for BLAS and Collie: deterministic and gentle on a shared machine.
    static let environment = ["OPENBLAS_NUM_THREADS": "1", "COLLIE_NUM_THREADS": "1", "OPENBLAS_THREAD_TIMEOUT": "4"]

    /// Starts `collie arguments` in `folder`, standard output and error going to `folder/<log>.out` and `.err`.
    static func start(_ arguments: [String], in folder: URL, log: String, environment extra: [String: String] = [:])
        throws -> Process {
        let process = Process()
        process.executableURL = try url()
        process.arguments = arguments
        process.currentDirectoryURL = folder
        process.environment = ProcessInfo.processInfo.environment.merging(environment.merging(extra) { $1 }) { $1 }
        let out = folder.appendingPathComponent(log + ".out"), err = folder.appendingPathComponent(log + ".err")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        FileManager.default.createFile(atPath: err.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        try process.run()
        return process
    }

    /// Runs `collie arguments` in `folder` to the end: its exit status, standard output and standard error.
    static func run(_ arguments: [String], in folder: URL, log: String = "collie",
                    environment extra: [String: String] = [:]) throws -> (status: Int32, output: String, errors: String) {
        let process = try start(arguments, in: folder, log: log, environment: extra)
        process.waitUntilExit()
        let read = { (suffix: String) in
            (try? String(contentsOf: folder.appendingPathComponent(log + suffix), encoding: .utf8)) ?? ""
        }
        return (process.terminationStatus, read(".out"), read(".err"))
    }

    /// Polls every few milliseconds until `condition` holds or the process exits; true if the condition held.
    static func wait(for process: Process, timeout: TimeInterval = 300, until condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            if !process.isRunning { return condition() }
            usleep(2_000)
        }
        return false
    }

    /// Kills the process with SIGKILL and waits for it.
    static func sigkill(_ process: Process) {
        _ = kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}
