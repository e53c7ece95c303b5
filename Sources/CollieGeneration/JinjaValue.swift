import Foundation

/// A value inside a chat template: the Python/Jinja data model, reduced to what templates use.
public indirect enum JinjaValue: Equatable, CustomStringConvertible {
    case undefined
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([JinjaValue])
    case dictionary([String: JinjaValue], order: [String])
    /// A `namespace(...)` object: attributes assignable with `{% set ns.x = ... %}`.
    case namespace(JinjaNamespace)

    /// A dictionary keeping its keys in the given order.
    public static func object(_ pairs: [(String, JinjaValue)]) -> JinjaValue {
        .dictionary(Dictionary(pairs, uniquingKeysWith: { $1 }), order: pairs.map(\.0))
    }

    /// Python truthiness.
    var isTrue: Bool {
        switch self {
        case .undefined, .none: false
        case .bool(let b): b
        case .int(let i): i != 0
        case .double(let d): d != 0
        case .string(let s): !s.isEmpty
        case .list(let l): !l.isEmpty
        case .dictionary(let d, _): !d.isEmpty
        case .namespace: true
        }
    }

    /// How `{{ value }}` prints it (Python's `str`).
    public var description: String {
        switch self {
        case .undefined: ""
        case .none: "None"
        case .bool(let b): b ? "True" : "False"
        case .int(let i): String(i)
        case .double(let d): d == d.rounded() && abs(d) < 1e16 ? String(format: "%.1f", d) : String(d)
        case .string(let s): s
        case .list(let l): "[" + l.map(\.representation).joined(separator: ", ") + "]"
        case .dictionary(let d, let order):
            "{" + order.map { "'\($0)': \(d[$0]!.representation)" }.joined(separator: ", ") + "}"
        case .namespace: "<Namespace>"
        }
    }

    /// Python's `repr` (strings quoted), used inside printed lists and dictionaries.
    var representation: String {
        if case .string(let s) = self { return "'" + s.replacingOccurrences(of: "'", with: "\\'") + "'" }
        return description
    }

    /// The value as JSON (`tojson`), keys in order.
    var json: String {
        switch self {
        case .undefined, .none: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int, .double: return description
        case .string(let s):
            let data = try! JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes])
            return String(String(decoding: data, as: UTF8.self).dropFirst().dropLast())
        case .list(let l): return "[" + l.map(\.json).joined(separator: ", ") + "]"
        case .dictionary(let d, let order):
            return "{" + order.map { JinjaValue.string($0).json + ": " + d[$0]!.json }.joined(separator: ", ") + "}"
        case .namespace(let n): return JinjaValue.object(n.order.map { ($0, n.values[$0]!) }).json
        }
    }

    public static func == (a: JinjaValue, b: JinjaValue) -> Bool {
        switch (a, b) {
        case (.undefined, .undefined), (.none, .none): true
        case (.bool(let x), .bool(let y)): x == y
        case (.int(let x), .int(let y)): x == y
        case (.int(let x), .double(let y)), (.double(let y), .int(let x)): Double(x) == y
        case (.double(let x), .double(let y)): x == y
        case (.string(let x), .string(let y)): x == y
        case (.list(let x), .list(let y)): x == y
        case (.dictionary(let x, _), .dictionary(let y, _)): x == y
        case (.namespace(let x), .namespace(let y)): x === y
        default: false
        }
    }
}

/// The mutable object `namespace()` returns.
public final class JinjaNamespace {
    var values: [String: JinjaValue] = [:]
    var order: [String] = []

    func set(_ key: String, _ value: JinjaValue) {
        if values[key] == nil { order.append(key) }
        values[key] = value
    }
}
