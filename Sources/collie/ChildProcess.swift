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
            let ending = process.terminationReason == .uncaughtSignal ? "was killed by signal" : "exited with"
            throw ValidationError("\(executable) \(arguments.joined(separator: " ")) \(ending) \(process.terminationStatus)")
        }
        return data
    }

    /// The last line of a child's `output` that starts with "{", as a JSON object (benchmark scripts print text lines,
    /// then their result). - Throws: `ValidationError` naming `name` and showing the output when there is none.
    static func lastJSONObject(_ output: Data, from name: String) throws -> [String: Any] {
        let text = String(decoding: output, as: UTF8.self)
        guard let line = text.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
              let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw ValidationError("\(name) printed no JSON result:\n\(text)")
        }
        return object
    }
}
