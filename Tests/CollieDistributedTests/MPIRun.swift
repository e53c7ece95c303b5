import CollieMPI
import Foundation
import XCTest

/// Launches programs under `mpirun` for the distributed tests: the built `collie`, or this test binary itself
/// (whose rank tests then run once per rank).
enum MPIRun {
    /// The repository's root (for the fixture model and the tokenizer).
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// `mpirun` on PATH.
    static func launcher() throws -> URL {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for folder in path.split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(folder)).appendingPathComponent("mpirun")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw Missing("mpirun is not on PATH: install Open MPI with scripts/setup.sh (apt: openmpi-bin libopenmpi-dev)")
    }

    /// This test binary (`ColliePackageTests.xctest` on Linux).
    static var testBinary: URL { URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath() }

    /// `collie` next to the test binary (`swift build --build-tests` builds it there), or `$COLLIE_BINARY`.
    static func collie() throws -> URL {
        if let path = ProcessInfo.processInfo.environment["COLLIE_BINARY"] { return URL(fileURLWithPath: path) }
        let candidate = testBinary.deletingLastPathComponent().appendingPathComponent("collie")
        guard FileManager.default.isExecutableFile(atPath: candidate.path) else {
            throw Missing("the collie executable is not at \(candidate.path); build it with `swift build --build-tests`")
        }
        return candidate
    }

    /// One BLAS and one Collie thread per rank: ranks on a two-core machine do not fight over the cores.
    static let environment = ["OPENBLAS_NUM_THREADS": "1", "COLLIE_NUM_THREADS": "1", "OPENBLAS_THREAD_TIMEOUT": "4"]

    /// Runs `program arguments` on `ranks` processes in `folder`; returns the exit status and the output of all
    /// ranks (standard output and error together).
    static func run(ranks: Int, _ program: URL, _ arguments: [String], in folder: URL,
                    environment extra: [String: String] = [:]) throws -> (status: Int32, output: String) {
        var launch = ["-np", String(ranks), "--oversubscribe", "--bind-to", "none"]
        if getuid() == 0 { launch.append("--allow-run-as-root") }
        let variables = environment.merging(extra) { $1 }
        for name in variables.keys.sorted() { launch += ["-x", name] }
        return try runProcess(launcher(), launch + [program.path] + arguments, in: folder, environment: variables)
    }

    /// Runs `program` as one process (no mpirun).
    static func runProcess(_ program: URL, _ arguments: [String], in folder: URL,
                           environment extra: [String: String] = [:]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = program
        process.arguments = arguments
        process.currentDirectoryURL = folder
        process.environment = ProcessInfo.processInfo.environment.merging(environment.merging(extra) { $1 }) { $1 }
        let log = folder.appendingPathComponent("run-\(UUID().uuidString).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        process.waitUntilExit()
        try handle.close()
        return (process.terminationStatus, (try? String(contentsOf: log, encoding: .utf8)) ?? "")
    }

    /// Whether this process is one rank of an `mpirun` launch made by `runRankTests`.
    static var isRank: Bool { MPICommunicator.isLaunchedByMPIRun && ProcessInfo.processInfo.environment["COLLIE_RANK_TESTS"] == "1" }

    /// Runs the test `name` (`Class/testMethod`) of this binary on `ranks` processes and fails unless every rank
    /// passed it.
    static func runRankTests(_ name: String, ranks: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("collie-mpi-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let result = try run(ranks: ranks, testBinary, ["CollieDistributedTests.\(name)"], in: folder,
                             environment: ["COLLIE_RANK_TESTS": "1"])
        XCTAssertEqual(result.status, 0, "\(name) on \(ranks) ranks:\n\(result.output)", file: file, line: line)
        let passed = result.output.split(separator: "\n").filter { $0.contains("Test Case '") && $0.contains("' passed (") }.count
        XCTAssertEqual(passed, ranks, "every rank runs and passes \(name):\n\(result.output)", file: file, line: line)
    }

    struct Missing: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}
