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

    /// A dictionary keeping its keys in the given order (a repeated key keeps its first place and last value).
    public static func object(_ pairs: [(String, JinjaValue)]) -> JinjaValue {
        let values = Dictionary(pairs, uniquingKeysWith: { $1 })
        var seen = Set<String>()
        return .dictionary(values, order: pairs.map(\.0).filter { seen.insert($0).inserted })
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

    /// How `{{ value }}` prints it (Python's `str`). A list or dictionary stops printing a little past
    /// `JinjaLimits.maximumStringBytes` (a list holding itself twice doubles in printed size at each level).
    public var description: String { printed(.text) }

    /// Python's `repr` (strings quoted), used inside printed lists and dictionaries.
    var representation: String { printed(.representation) }

    /// The value as JSON (`tojson`), keys in order.
    var json: String { printed(.json) }

    /// The three ways a value is printed.
    enum Form { case text, representation, json }

    /// The value printed in `form`, stopping past `JinjaLimits.maximumStringBytes` (the caller's size check
    /// then reports it).
    func printed(_ form: Form) -> String {
        if case .string(let s) = self, form == .text { return s }
        var text = ""
        write(form, to: &text)
        return text
    }

    private func write(_ form: Form, to text: inout String) {
        guard text.utf8.count <= JinjaLimits.maximumStringBytes else { return }
        switch (self, form) {
        case (.undefined, .json), (.none, .json): text += "null"
        case (.undefined, _): break
        case (.none, _): text += "None"
        case (.bool(let b), .json): text += b ? "true" : "false"
        case (.bool(let b), _): text += b ? "True" : "False"
        case (.int(let i), _): text += String(i)
        case (.double(let d), _): text += d == d.rounded() && abs(d) < 1e16 ? String(format: "%.1f", d) : String(d)
        case (.string(let s), .text): text += s
        case (.string(let s), .representation): text += "'" + s.replacingOccurrences(of: "'", with: "\\'") + "'"
        case (.string(let s), .json): JinjaValue.writeJSON(s, to: &text)
        case (.list(let l), _):
            text += "["
            for (i, item) in l.enumerated() {
                if i > 0 { text += ", " }
                item.write(form == .json ? .json : .representation, to: &text)
                if text.utf8.count > JinjaLimits.maximumStringBytes { break }
            }
            text += "]"
        case (.dictionary(let d, let order), _):
            text += "{"
            for (i, key) in order.enumerated() {
                if i > 0 { text += ", " }
                JinjaValue.string(key).write(form == .json ? .json : .representation, to: &text)
                text += ": "
                (d[key] ?? .undefined).write(form == .json ? .json : .representation, to: &text)
                if text.utf8.count > JinjaLimits.maximumStringBytes { break }
            }
            text += "}"
        case (.namespace(let n), .json):
            JinjaValue.object(n.order.map { ($0, n.values[$0] ?? .undefined) }).write(.json, to: &text)
        case (.namespace, _): text += "<Namespace>"
        }
    }

    /// A JSON string literal as `tojson` writes it: quotes, backslashes and control characters escaped,
    /// everything else (slashes, non-ASCII) as is.
    private static func writeJSON(_ s: String, to text: inout String) {
        text += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": text += "\\\""
            case "\\": text += "\\\\"
            case "\n": text += "\\n"
            case "\r": text += "\\r"
            case "\t": text += "\\t"
            case "\u{08}": text += "\\b"
            case "\u{0C}": text += "\\f"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                text += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: text.unicodeScalars.append(scalar)
            }
        }
        text += "\""
    }

    /// Throws unless the value nests lists, dictionaries and namespaces at most `JinjaLimits.maximumNesting`
    /// deep (printing, comparing and freeing a value recurse through it; a namespace can even hold itself),
    /// checking at most `JinjaLimits.maximumItems` values. The renderer checks every value a `set` stores,
    /// the only way a value can grow deeper than the expression that builds it.
    func checkNesting() throws {
        var budget = JinjaLimits.maximumItems
        func visit(_ value: JinjaValue, depth: Int) throws {
            budget -= 1
            guard budget >= 0 else {
                throw JinjaLimits.exceeded("a value too large to check", limit: "maximumItems", JinjaLimits.maximumItems)
            }
            let children: [JinjaValue]
            switch value {
            case .list(let items): children = items
            case .dictionary(let d, _): children = Array(d.values)
            case .namespace(let n): children = Array(n.values.values)
            default: return
            }
            guard depth < JinjaLimits.maximumNesting || children.isEmpty else {
                throw JinjaLimits.exceeded("a value nested this deep (or holding itself)", limit: "maximumNesting",
                                           JinjaLimits.maximumNesting)
            }
            for child in children { try visit(child, depth: depth + 1) }
        }
        try visit(self, depth: 1)
    }

    /// Python's `==` as a template evaluates it: a list holding itself twice doubles the work of comparing it
    /// at each level, so the comparison stops with a `TemplateError` after `JinjaLimits.maximumItems` values.
    func isEqual(to other: JinjaValue) throws -> Bool {
        var budget = JinjaLimits.maximumItems
        guard let equal = isEqual(to: other, budget: &budget) else {
            throw JinjaLimits.exceeded("comparing values", limit: "maximumItems", JinjaLimits.maximumItems)
        }
        return equal
    }

    /// `==`, or nil once `budget` values have been compared.
    private func isEqual(to other: JinjaValue, budget: inout Int) -> Bool? {
        budget -= 1
        guard budget >= 0 else { return nil }
        switch (self, other) {
        case (.list(let x), .list(let y)):
            guard x.count == y.count else { return false }
            for (a, b) in zip(x, y) {
                guard let equal = a.isEqual(to: b, budget: &budget) else { return nil }
                if !equal { return false }
            }
            return true
        case (.dictionary(let x, _), .dictionary(let y, _)):
            guard x.count == y.count else { return false }
            for (key, a) in x {
                guard let b = y[key] else { return false }
                guard let equal = a.isEqual(to: b, budget: &budget) else { return nil }
                if !equal { return false }
            }
            return true
        default:
            return self == other
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
