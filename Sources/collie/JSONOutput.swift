import Foundation

/// Pretty-printed JSON with sorted keys for command output. Numbers are written the way Swift prints them
/// (the shortest text that reads back to the same Double), so printed metrics round-trip exactly; NaN and
/// infinities, which JSON lacks, become null.
enum JSONOutput {
    static func text(_ value: Any, indent: String = "") -> String {
        let inner = indent + "  "
        switch value {
        case let dictionary as [String: Any]:
            if dictionary.isEmpty { return "{}" }
            let entries = dictionary.keys.sorted().map { "\(inner)\(quoted($0)): \(text(dictionary[$0]!, indent: inner))" }
            return "{\n" + entries.joined(separator: ",\n") + "\n\(indent)}"
        case let array as [Any]:
            if array.isEmpty { return "[]" }
            return "[\n" + array.map { inner + text($0, indent: inner) }.joined(separator: ",\n") + "\n\(indent)]"
        case let string as String: return quoted(string)
        case let flag as Bool: return flag ? "true" : "false"
        case let integer as Int: return String(integer)
        case let number as Double: return number.isFinite ? "\(number)" : "null"
        default: return quoted("\(value)")
        }
    }

    private static func quoted(_ string: String) -> String {
        var result = "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            default:
                if scalar.value < 0x20 { result += String(format: "\\u%04x", scalar.value) } else { result.unicodeScalars.append(scalar) }
            }
        }
        return result + "\""
    }
}
