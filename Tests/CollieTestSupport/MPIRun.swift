import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Launches a program on several processes under Open MPI's `mpirun`: the built `collie` (data-parallel training
/// as a user runs it), or this test binary itself, whose rank tests then run once per rank.
public enum MPIRun {
    /// `mpirun` on PATH.
    public static func launcher() throws -> URL {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for folder in path.split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(folder)).appendingPathComponent("mpirun")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw Missing("mpirun is not on PATH: install Open MPI with scripts/setup.sh (apt: openmpi-bin libopenmpi-dev)")
    }

    /// This test binary (`ColliePackageTests.xctest` on Linux).
    public static var testBinary: URL { URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath() }

    /// Runs `program arguments` on `ranks` processes in `folder`, each with one BLAS and one Collie thread
    /// (`ChildProcess.singleThreaded`) and `environment`; returns the exit status and the output of all ranks
    /// (standard output and error together).
    public static func run(ranks: Int, _ program: URL, _ arguments: [String], in folder: URL,
                           environment extra: [String: String] = [:],
                           timeout: TimeInterval = ChildProcess.defaultTimeout) throws -> ChildProcess.Result {
        var launch = ["-np", String(ranks), "--oversubscribe", "--bind-to", "none"]
        if getuid() == 0 { launch.append("--allow-run-as-root") }
        let variables = ChildProcess.singleThreaded.merging(extra) { $1 }
        for name in variables.keys.sorted() { launch += ["-x", name] }
        return try ChildProcess.run(launcher(), launch + [program.path] + arguments, in: folder, log: "run-\(UUID().uuidString)",
                                    environment: variables, mergingErrors: true, timeout: timeout)
    }

    /// Runs `program` as one process without mpirun, with the environment and the merged output of `run`.
    public static func runProcess(_ program: URL, _ arguments: [String], in folder: URL,
                                  environment extra: [String: String] = [:],
                                  timeout: TimeInterval = ChildProcess.defaultTimeout) throws -> ChildProcess.Result {
        try ChildProcess.run(program, arguments, in: folder, log: "run-\(UUID().uuidString)",
                             environment: ChildProcess.singleThreaded.merging(extra) { $1 }, mergingErrors: true,
                             timeout: timeout)
    }

    /// Thrown when `mpirun` is missing.
    public struct Missing: Error, CustomStringConvertible {
        public let description: String
        public init(_ description: String) { self.description = description }
    }
}
