import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A program run as a child process, its standard output and standard error going to files in its working
/// folder: a test can watch them while it runs, kill it at a chosen moment, or run it to the end within a time
/// limit and read its exit status and output.
///
/// `@unchecked Sendable`: the `Process` is configured before it starts and afterwards only queried or signalled,
/// which Foundation allows from any thread.
public final class ChildProcess: @unchecked Sendable {
    /// What a finished process left: its exit status and what it printed.
    public struct Result: Sendable {
        /// The exit status (or, when a signal ended it, the signal's number).
        public let status: Int32
        /// Standard output, with standard error in it too when the process was started `mergingErrors`.
        public let output: String
        /// Standard error; empty when it was merged into `output`.
        public let errors: String
    }

    /// Thrown when a process outlives its time limit (it has been killed): a hung child fails its test instead
    /// of hanging the run.
    public struct Timeout: Error, CustomStringConvertible {
        /// The program and its arguments.
        public let command: String
        /// The time limit it outlived.
        public let seconds: TimeInterval
        /// What it had printed by then (standard output, then standard error).
        public let output: String
        public var description: String {
            "`\(command)` did not finish within \(Int(seconds)) s and was killed; it printed:\n\(output)"
        }
    }

    /// How long `finish` and `run` wait unless told otherwise: far longer than any test's process needs.
    public static let defaultTimeout: TimeInterval = 600

    /// One BLAS and one Collie thread per process: deterministic, and several processes (or MPI ranks) on a
    /// two-core machine do not fight over the cores.
    public static let singleThreaded = ["OPENBLAS_NUM_THREADS": "1", "COLLIE_NUM_THREADS": "1", "OPENBLAS_THREAD_TIMEOUT": "4"]

    private let process = Process()
    private let command: String
    /// Standard output's file: `<folder>/<log>.out`, or `<folder>/<log>.log` when standard error is merged in.
    public let outputFile: URL
    /// Standard error's file, `<folder>/<log>.err`; nil when it is merged into `outputFile`.
    public let errorsFile: URL?

    /// Starts `program arguments` in `folder` with this process's environment plus `environment`; the log files
    /// are created (or emptied) first.
    public init(_ program: URL, _ arguments: [String], in folder: URL, log: String,
                environment: [String: String] = [:], mergingErrors: Bool = false) throws {
        command = ([program.path] + arguments).joined(separator: " ")
        process.executableURL = program
        process.arguments = arguments
        process.currentDirectoryURL = folder
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        outputFile = folder.appendingPathComponent(log + (mergingErrors ? ".log" : ".out"))
        errorsFile = mergingErrors ? nil : folder.appendingPathComponent(log + ".err")
        let output = try Self.emptyFile(outputFile)
        process.standardOutput = output
        process.standardError = try errorsFile.map(Self.emptyFile) ?? output
        try process.run()
    }

    /// Runs `program arguments` in `folder` to the end (see `init(_:_:in:log:environment:mergingErrors:)` and
    /// `finish(timeout:)`).
    public static func run(_ program: URL, _ arguments: [String], in folder: URL, log: String,
                           environment: [String: String] = [:], mergingErrors: Bool = false,
                           timeout: TimeInterval = defaultTimeout) throws -> Result {
        try ChildProcess(program, arguments, in: folder, log: log, environment: environment, mergingErrors: mergingErrors)
            .finish(timeout: timeout)
    }

    /// Whether the process has not exited yet.
    public var isRunning: Bool { process.isRunning }

    /// What the process has written to standard output so far.
    public var output: String { Self.read(outputFile) }

    /// What the process has written to standard error so far (empty when merged into `output`).
    public var errors: String { errorsFile.map(Self.read) ?? "" }

    /// Checks `condition` every 2 ms until it holds, the process exits or `timeout` seconds pass; whether it held.
    public func wait(timeout: TimeInterval = 300, until condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            if !process.isRunning { return condition() }
            usleep(2_000)
        }
        return false
    }

    /// Waits for the process to exit and returns its status and output; past `timeout` seconds it is killed
    /// and `Timeout` thrown.
    @discardableResult
    public func finish(timeout: TimeInterval = defaultTimeout) throws -> Result {
        guard exits(within: timeout) else {
            kill()
            throw Timeout(command: command, seconds: timeout, output: output + errors)
        }
        return Result(status: process.terminationStatus, output: output, errors: errors)
    }

    /// Ends the process at once with SIGKILL and waits for it.
    public func kill() {
        send(SIGKILL)
        process.waitUntilExit()
    }

    /// Asks the process to stop with SIGINT, as Ctrl-C does, and kills it if it is still running after `grace`
    /// seconds.
    public func stop(grace: TimeInterval = 10) {
        if process.isRunning {
            process.interrupt()
            if !exits(within: grace) { send(SIGKILL) }
        }
        process.waitUntilExit()
    }

    private func exits(within seconds: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning {
            if Date() >= deadline { return false }
            usleep(5_000)
        }
        process.waitUntilExit()
        return true
    }

    private func send(_ signal: Int32) {
        #if canImport(Glibc)
        _ = Glibc.kill(process.processIdentifier, signal)
        #elseif canImport(Darwin)
        _ = Darwin.kill(process.processIdentifier, signal)
        #endif
    }

    private static func emptyFile(_ url: URL) throws -> FileHandle {
        _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        return try FileHandle(forWritingTo: url)
    }

    private static func read(_ url: URL) -> String { (try? String(contentsOf: url, encoding: .utf8)) ?? "" }
}
