import ArgumentParser
import Foundation

/// Runs a child process and reads its output: benchmarks that measure in a fresh process (peak memory) or run a
/// reference script.
enum ChildProcess {
    /// This executable's path, also when it was started by name from PATH.
    static var collie: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// Runs `executable` with `arguments` and returns its standard output.
    /// - Throws: `ValidationError` naming the command when it exits with a nonzero status.
    static func output(_ executable: String, _ arguments: [String]) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw ValidationError("\(executable) \(arguments.joined(separator: " ")) exited with \(process.terminationStatus)")
        }
        return data
    }
}
