import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One decoded example: what the model produced and what was expected (CoLLiE's `DecodeMetric`).
public struct DecodedPair: Codable, Equatable, Sendable {
    public var prediction: String
    public var target: String
    public init(prediction: String, target: String) {
        self.prediction = prediction
        self.target = target
    }
}

/// Writes decoded pairs as JSON lines (`{"prediction": …, "target": …}`), replacing the file atomically
/// (written beside it, then renamed) so a reader never sees half a file.
public enum DecodedOutputs {
    public static func write(_ pairs: [DecodedPair], to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var data = Data()
        for pair in pairs {
            data.append(try encoder.encode(pair))
            data.append(0x0A)
        }
        let directory = url.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).partial-\(ProcessInfo.processInfo.processIdentifier)")
        do {
            try data.write(to: temporary)
            guard rename(temporary.path, url.path) == 0 else { throw MetricsError(String(cString: strerror(errno))) }
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw MetricsError("\(url.path): cannot write decoded outputs (\(error.localizedDescription))")
        }
    }

    /// Reads a file written by `write(_:to:)`.
    /// - Throws: `MetricsError` naming the line that is not a JSON object with `prediction` and `target`.
    public static func read(from url: URL) throws -> [DecodedPair] {
        guard let data = FileManager.default.contents(atPath: url.path) else { throw MetricsError("\(url.path): cannot read") }
        var pairs: [DecodedPair] = []
        for (index, line) in data.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            do { pairs.append(try JSONDecoder().decode(DecodedPair.self, from: Data(line))) } catch {
                throw MetricsError("\(url.path):\(index + 1): not a {\"prediction\", \"target\"} JSON object")
            }
        }
        return pairs
    }
}
