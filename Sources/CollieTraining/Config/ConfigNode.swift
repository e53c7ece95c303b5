import Foundation
import Yams

/// A parsed YAML or JSON document that remembers where each value came from, so that config errors can
/// name the file and line. Strict decoding (`StrictDecoder`) marks the keys it asked for; whatever was
/// never asked for is an unknown key.
final class ConfigNode {
    enum Content {
        /// A scalar's text; `isPlain` when unquoted (only plain scalars can be numbers, booleans or null).
        case scalar(String, isPlain: Bool)
        case null
        case sequence([ConfigNode])
        case mapping([Entry])
    }

    /// One `key: value` pair of a mapping.
    struct Entry {
        var key: String
        var keyLine: Int?
        var value: ConfigNode
    }

    var content: Content
    /// The file (or `--set …`) this value came from.
    let source: String?
    /// 1-based line of the value.
    private(set) var line: Int?
    /// The keys a decoder asked for (present or not); nil until the node is decoded as a section.
    var requestedKeys: Set<String>?

    init(_ content: Content, source: String?, line: Int?) {
        self.content = content
        self.source = source
        self.line = line
    }

    // MARK: - Limits

    /// Nesting deeper than this is refused (real configs nest three or four levels), so that no document
    /// can exhaust the stack of Yams, which composes recursively, or of the walks over the tree.
    static let maximumDepth = 64

    /// Values (scalars, lists and sections) in a document after aliases are expanded. An alias repeats the
    /// whole value its anchor names, so a few hundred bytes of aliases to aliases can stand for billions of
    /// values; a real config has a few hundred.
    static let maximumValues = 100_000

    /// Indentation deeper than this many columns (counting the `- `, `? ` and `: ` that open a nested block on
    /// the same line) is refused before Yams parses the text: each block level needs at least one more column,
    /// so this bounds block nesting where `maximumDepth` cannot yet be checked.
    static let maximumIndentation = 128

    // MARK: - From YAML

    /// Parses YAML (or JSON, which YAML reads) text; an empty document is an empty mapping. Documents past
    /// `maximumDepth`, `maximumIndentation` or `maximumValues` are a `ConfigError` naming the limit.
    static func parse(_ text: String, source: String?) throws -> ConfigNode {
        try checkNesting(text, source: source)
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ConfigError(keyPath: "", "not valid YAML or JSON: \(describe(error))", source: source,
                              line: line(of: error))
        }
        guard let node else { return ConfigNode(.mapping([]), source: source, line: 1) }
        var values = 0
        return try ConfigNode(node, source: source, depth: 1, values: &values)
    }

    /// Refuses, before parsing, text nested deeper than Yams can compose without exhausting the stack. The
    /// count errs high, never low: brackets in strings and comments count, and every line break YAML knows.
    private static func checkNesting(_ text: String, source: String?) throws {
        var line = 1, column = 0, brackets = 0
        var atLineStart = true, afterIndicator = false, previous: Unicode.Scalar = "\n"
        for scalar in text.unicodeScalars {
            defer { previous = scalar }
            switch scalar {
            case "\n", "\r", "\u{85}", "\u{2028}", "\u{2029}":
                if !(scalar == "\n" && previous == "\r") { line += 1 }
                column = 0
                atLineStart = true
                afterIndicator = false
                continue
            case " ", "\t":
                if atLineStart { column += 1; afterIndicator = false }
            case "-", "?", ":":
                if atLineStart && !afterIndicator {  // perhaps an indicator opening a nested block
                    column += 1
                    afterIndicator = true
                } else {
                    atLineStart = false
                }
            default:
                atLineStart = false
            }
            if scalar == "[" || scalar == "{" {
                brackets += 1
                guard brackets <= maximumDepth else {
                    throw ConfigError(keyPath: "", "lists and sections are nested more than \(maximumDepth) deep"
                                      + " (ConfigNode.maximumDepth)", source: source, line: line)
                }
            } else if scalar == "]" || scalar == "}" {
                brackets = max(0, brackets - 1)
            }
            guard column <= maximumIndentation else {
                throw ConfigError(keyPath: "", "indented more than \(maximumIndentation) columns"
                                  + " (ConfigNode.maximumIndentation)", source: source, line: line)
            }
        }
    }

    private convenience init(_ node: Node, source: String?, depth: Int, values: inout Int) throws {
        let line = node.mark?.line
        values += 1
        guard values <= ConfigNode.maximumValues else {
            throw ConfigError(keyPath: "", "the document holds more than \(ConfigNode.maximumValues) values once its"
                              + " aliases are expanded (ConfigNode.maximumValues)", source: source, line: line)
        }
        guard depth <= ConfigNode.maximumDepth else {
            throw ConfigError(keyPath: "", "lists and sections are nested more than \(ConfigNode.maximumDepth) deep"
                              + " (ConfigNode.maximumDepth)", source: source, line: line)
        }
        if case .scalar(let scalar) = node {
            let isPlain = scalar.style == .plain || scalar.style == .any
            if isPlain && ConfigNode.nullSpellings.contains(scalar.string) {
                self.init(.null, source: source, line: line)
            } else {
                self.init(.scalar(scalar.string, isPlain: isPlain), source: source, line: line)
            }
        } else if case .sequence(let sequence) = node {
            var items: [ConfigNode] = []
            for item in sequence { items.append(try ConfigNode(item, source: source, depth: depth + 1, values: &values)) }
            self.init(.sequence(items), source: source, line: line)
        } else if case .mapping(let mapping) = node {
            var entries: [Entry] = []
            var seen: [String: Int?] = [:]
            for (key, value) in mapping {
                guard case .scalar(let keyScalar) = key else {
                    throw ConfigError(keyPath: "", "keys must be plain names, not lists or sections", source: source,
                                      line: key.mark?.line)
                }
                if let first = seen[keyScalar.string] {
                    let firstLine = first.map { " (first on line \($0))" } ?? ""
                    throw ConfigError(keyPath: keyScalar.string, "duplicate key\(firstLine)", source: source,
                                      line: key.mark?.line)
                }
                seen[keyScalar.string] = key.mark?.line
                entries.append(Entry(key: keyScalar.string, keyLine: key.mark?.line,
                                     value: try ConfigNode(value, source: source, depth: depth + 1, values: &values)))
            }
            self.init(.mapping(entries), source: source, line: line)
        } else {
            // Yams 6 has alias nodes; compose() resolves them, so one left over reads as null.
            self.init(.null, source: source, line: line)
        }
    }

    static let nullSpellings: Set<String> = ["", "~", "null", "Null", "NULL"]

    private static func line(of error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _):
            return mark.line
        default:
            return nil
        }
    }

    private static func describe(_ error: YamlError) -> String {
        switch error {
        case .scanner(let context, let problem, _, _), .parser(let context, let problem, _, _):
            return [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ", ")
        case .composer(let context, let problem, _, _):
            return [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ", ")
        default:
            return "\(error)"
        }
    }

    // MARK: - Navigation

    /// What the value is, for "expected …, got …" messages.
    var summary: String {
        switch content {
        case .scalar(let text, _): return "\"\(text)\""
        case .null: return "null"
        case .sequence: return "a list"
        case .mapping: return "a section"
        }
    }

    /// The value at a key path as `ConfigError.Issue` writes it (`optimizer.betas[1]`), and the line of its key.
    func locate(_ keyPath: String) -> (node: ConfigNode, line: Int?)? {
        var node = self
        var line = self.line
        for component in keyPath.split(separator: ".") {
            var name = Substring(component)
            var indices: [Int] = []
            while name.hasSuffix("]"), let open = name.lastIndex(of: "[") {
                guard let index = Int(name[name.index(after: open)..<name.index(before: name.endIndex)]) else { return nil }
                indices.insert(index, at: 0)
                name = name[..<open]
            }
            if !name.isEmpty {
                guard case .mapping(let entries) = node.content,
                      let entry = entries.first(where: { $0.key == name }) else { return nil }
                node = entry.value
                line = entry.keyLine ?? entry.value.line
            }
            for index in indices {
                guard case .sequence(let items) = node.content, items.indices.contains(index) else { return nil }
                node = items[index]
                line = node.line ?? line
            }
        }
        return (node, line)
    }

    // MARK: - Overrides

    /// Applies `key.path=value` (`collie train CONFIG --set …`): the value is parsed as YAML; missing sections
    /// on the way are created (an unknown key is then reported by strict decoding).
    func apply(override: String) throws {
        // Errors name the override; a stranger's may be megabytes long.
        let source = "--set " + (override.count > 100 ? override.prefix(100) + "…" : override)
        guard let equals = override.firstIndex(of: "=") else {
            throw ConfigError(keyPath: "", "expected key=value", source: source)
        }
        let keyPath = String(override[..<equals]).trimmingCharacters(in: .whitespaces)
        let components = keyPath.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard !keyPath.isEmpty, !components.contains(where: \.isEmpty) else {
            throw ConfigError(keyPath: keyPath, "expected a dotted key path such as optimizer.lr", source: source)
        }
        guard components.count <= ConfigNode.maximumDepth else {
            throw ConfigError(keyPath: "", "the key path has more than \(ConfigNode.maximumDepth) parts"
                              + " (ConfigNode.maximumDepth)", source: source)
        }
        let value = try ConfigNode.parse(String(override[override.index(after: equals)...]), source: source)
        value.forgetLines()  // lines of a one-line --set value say nothing
        if case .mapping(let entries) = value.content, entries.isEmpty,
           override[override.index(after: equals)...].trimmingCharacters(in: .whitespaces).isEmpty {
            value.content = .null  // `key=` sets null
        }
        var node = self
        for (depth, name) in components.enumerated() {
            let isLast = depth == components.count - 1
            if case .null = node.content { node.content = .mapping([]) }
            guard case .mapping(var entries) = node.content else {
                let parent = components[..<depth].joined(separator: ".")
                throw ConfigError(keyPath: keyPath, "\(parent) is \(node.summary), not a section", source: source)
            }
            if let index = entries.firstIndex(where: { $0.key == name }) {
                if isLast {
                    entries[index].value = value
                    entries[index].keyLine = nil
                    node.content = .mapping(entries)
                } else {
                    node = entries[index].value
                }
            } else {
                let child = isLast ? value : ConfigNode(.mapping([]), source: source, line: nil)
                entries.append(Entry(key: name, keyLine: nil, value: child))
                node.content = .mapping(entries)
                node = child
            }
        }
    }

    private func forgetLines() {
        line = nil
        switch content {
        case .mapping(var entries):
            for index in entries.indices { entries[index].keyLine = nil; entries[index].value.forgetLines() }
            content = .mapping(entries)
        case .sequence(let items): items.forEach { $0.forgetLines() }
        case .scalar, .null: break
        }
    }

    // MARK: - Unknown keys

    /// Every key of a decoded section that the decoder never asked for, with a suggestion, in document order.
    func unknownKeys(path: String = "") -> [ConfigError.Issue] {
        switch content {
        case .mapping(let entries):
            var issues: [ConfigError.Issue] = []
            for entry in entries {
                let childPath = path.isEmpty ? entry.key : "\(path).\(entry.key)"
                if let requested = requestedKeys, !requested.contains(entry.key) {
                    let hint = Suggestion.hint(for: entry.key, among: requested)
                    issues.append(ConfigError.Issue(keyPath: childPath, message: "unknown key\(hint)",
                                                    source: entry.value.source, line: entry.keyLine ?? entry.value.line))
                } else {
                    issues += entry.value.unknownKeys(path: childPath)
                }
            }
            return issues
        case .sequence(let items):
            return items.enumerated().flatMap { index, item in item.unknownKeys(path: "\(path)[\(index)]") }
        case .scalar, .null:
            return []
        }
    }
}
