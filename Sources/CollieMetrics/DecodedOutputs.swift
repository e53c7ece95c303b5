import Foundation

/// One decoded example: what the model produced and what was expected (CoLLiE's `DecodeMetric`).
public struct DecodedPair: Codable, Equatable, Sendable {
    public var prediction: String
    public var target: String
    public init(prediction: String, target: String) {
        self.prediction = prediction
        self.target = target
    }
}

/// Decoded pairs as JSON lines (`{"prediction": …, "target": …}`). Encoding only: the caller writes the
/// bytes (atomically, with `AtomicFile` from CollieIO), so this module keeps no file-writing code.
public enum DecodedOutputs {
    /// The JSON-lines text of `pairs`: one object per line, keys sorted, each line ending in a newline.
    public static func jsonLines(_ pairs: [DecodedPair]) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var data = Data()
        for pair in pairs {
            data.append(try encoder.encode(pair))
            data.append(0x0A)
        }
        return data
    }

    /// Reads a file holding `jsonLines(_:)`.
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
