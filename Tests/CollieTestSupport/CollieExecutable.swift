import Foundation

/// The built `collie` executable, run as a child process by the tests that need a real process: the command-line
/// tests (to kill and resume training), the server's and data parallelism's under `mpirun`.
public enum CollieExecutable {
    /// `$COLLIE_BINARY`, else `collie` where `swift build --build-tests` (which builds every product) leaves it:
    /// next to the test binary or bundle, or in the repository's `.build/debug`.
    public static func url() throws -> URL {
        if let path = ProcessInfo.processInfo.environment["COLLIE_BINARY"] { return URL(fileURLWithPath: path) }
        let folders = [MPIRun.testBinary.deletingLastPathComponent(), Bundle(for: BundleMarker.self).bundleURL.deletingLastPathComponent(),
                       Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent(),
                       Bundle.main.executableURL?.deletingLastPathComponent(),
                       TestPaths.repository.appendingPathComponent(".build/debug")].compactMap { $0 }
        for folder in folders {
            let candidate = folder.appendingPathComponent("collie")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw MissingExecutable(searched: folders.map(\.path))
    }

    /// Thrown (as a test failure) when the executable is not where `swift build --build-tests` puts it.
    public struct MissingExecutable: Error, CustomStringConvertible {
        /// The folders searched.
        public let searched: [String]
        public var description: String {
            "the collie executable was not found next to the test bundle (searched \(searched.joined(separator: ", "))); "
                + "build it with `swift build --build-tests` (which builds every product) or set COLLIE_BINARY"
        }
    }

    /// Starts `collie arguments` in `folder` with one BLAS and one Collie thread (`ChildProcess.singleThreaded`) and
    /// `environment`; standard output and error go to `folder/<log>.out` and `.err`.
    public static func start(_ arguments: [String], in folder: URL, log: String,
                             environment: [String: String] = [:]) throws -> ChildProcess {
        try ChildProcess(url(), arguments, in: folder, log: log,
                         environment: ChildProcess.singleThreaded.merging(environment) { $1 })
    }

    /// Runs `collie arguments` in `folder` to the end, as `start` starts it: its exit status, standard output and
    /// standard error.
    public static func run(_ arguments: [String], in folder: URL, log: String = "collie", environment: [String: String] = [:],
                           timeout: TimeInterval = ChildProcess.defaultTimeout) throws -> ChildProcess.Result {
        try start(arguments, in: folder, log: log, environment: environment).finish(timeout: timeout)
    }

    /// A class of this module, so that `Bundle(for:)` finds the test bundle it is linked into.
    private final class BundleMarker {}
}
