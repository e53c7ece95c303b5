import CollieModels
import Foundation
import Yams

extension CollieConfig {
    /// Reads a YAML or JSON config file strictly, applies `overrides` (`collie train CONFIG --set key=value`),
    /// and validates the result.
    ///
    /// - Parameters:
    ///   - url: the config file. Relative paths in it (model folder, tokenizer, data, output) are resolved
    ///     against its folder; relative paths given in `overrides` are left relative (to the working directory).
    ///   - overrides: `dotted.key=value` strings; each value is parsed as YAML (`optimizer.lr=1e-4`,
    ///     `optimizer.betas=[0.9, 0.95]`, `eval_data=null`).
    /// - Throws: `ConfigError` naming the key path, the file and the line of every problem found.
    public static func load(from url: URL, overrides: [String] = []) throws -> CollieConfig {
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw ConfigError(keyPath: "", "cannot read the config file: \(error.localizedDescription)", source: url.path)
        }
        return try CollieConfig(text: text, source: url.path, overrides: overrides,
                                baseDirectory: url.deletingLastPathComponent())
    }

    /// Reads a config from YAML or JSON text, strictly, then applies `overrides` and validates the result.
    ///
    /// - Parameters:
    ///   - source: the file name to put in errors.
    ///   - baseDirectory: the folder relative paths in `text` are resolved against; nil leaves them as written.
    public init(text: String, source: String? = nil, overrides: [String] = [], baseDirectory: URL? = nil) throws {
        let root = try ConfigNode.parse(text, source: source)
        guard case .mapping = root.content else {
            throw ConfigError(keyPath: "", "a config is a section of key: value lines, got \(root.summary)",
                              source: source, line: root.line)
        }
        if let baseDirectory { CollieConfig.resolvePaths(in: root, against: baseDirectory) }
        for override in overrides { try root.apply(override: override) }
        self = try StrictDecoder.decode(CollieConfig.self, from: root)
        do {
            try validate()
        } catch var error as ConfigError {
            for index in error.issues.indices where error.issues[index].source == nil {
                if let (node, line) = root.locate(error.issues[index].keyPath) {
                    error.issues[index].source = node.source ?? source
                    error.issues[index].line = line
                } else {
                    error.issues[index].source = source
                }
            }
            throw error
        }
    }

    /// The config as YAML, every field written out (defaults included), in declaration order.
    public func yamlString() throws -> String {
        // Yams writes 0.001 as 1e-3 and 0 as 0e+0; rewrite numbers as Swift prints them (0.001, 0.0, 1.0e-08).
        let yaml = try YAMLEncoder().encode(self)
        guard let node = try Yams.compose(yaml: yaml) else { return yaml }
        return try Yams.serialize(node: CollieConfig.readableNumbers(node))
    }

    private static func readableNumbers(_ node: Node) -> Node {
        switch node {
        case .scalar(var scalar):
            if scalar.style == .plain || scalar.style == .any, scalar.string.contains("e"), let value = Double(scalar.string) {
                var text = "\(value)"
                if text.contains("e") && !text.contains(".") { text = text.replacingOccurrences(of: "e", with: ".0e") }
                scalar.string = text
            }
            return .scalar(scalar)
        case .mapping(var mapping):
            for (key, value) in mapping { mapping[key] = readableNumbers(value) }
            return .mapping(mapping)
        case .sequence(var sequence):
            for index in sequence.indices { sequence[index] = readableNumbers(sequence[index]) }
            return .sequence(sequence)
        }
    }

    /// The config as pretty-printed JSON with sorted keys.
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// The top-level keys that hold paths.
    static let pathKeys: Set<String> = [
        CodingKeys.model.rawValue, CodingKeys.tokenizer.rawValue, CodingKeys.trainData.rawValue,
        CodingKeys.evalData.rawValue, CodingKeys.outputDir.rawValue,
    ]

    /// Rewrites relative paths among the top-level path keys as paths under `base` (a preset name stays a name).
    private static func resolvePaths(in root: ConfigNode, against base: URL) {
        guard case .mapping(let entries) = root.content else { return }
        if let evaluators = entries.first(where: { $0.key == CodingKeys.evaluators.rawValue }),
           case .sequence(let items) = evaluators.value.content {
            for item in items { resolvePaths(in: item, keys: ["data"], against: base) }
        }
        resolvePaths(in: root, keys: pathKeys, against: base)
    }

    /// Rewrites relative paths under `keys` of the mapping `node` as paths under `base`.
    private static func resolvePaths(in node: ConfigNode, keys: Set<String>, against base: URL) {
        guard case .mapping(let entries) = node.content else { return }
        for entry in entries where keys.contains(entry.key) {
            guard case .scalar(let text, let isPlain) = entry.value.content, !text.isEmpty, !text.hasPrefix("/"),
                  !text.hasPrefix("~") else { continue }
            if entry.key == CodingKeys.model.rawValue && ModelPreset(rawValue: text) != nil { continue }
            entry.value.content = .scalar(base.appendingPathComponent(text).standardizedFileURL.path, isPlain: isPlain)
        }
    }
}
