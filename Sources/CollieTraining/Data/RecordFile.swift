import Foundation

/// A JSON value, decoded without Foundation's NSNumber bridging (which cannot tell `1` from `true`).
enum JSONValue: Decodable {
    case null, bool(Bool), integer(Int), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Int.self) { self = .integer(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    /// What the value is, for "must be …, got …" messages.
    var kind: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .integer(let value): "the number \(value)"
        case .number(let value): "the number \(value)"
        case .string: "a string"
        case .array: "a list"
        case .object: "an object"
        }
    }
}

/// One JSON object read from a dataset file, with the line it starts on.
struct RawRecord {
    let fields: [String: JSONValue]
    let location: RecordLocation

    var keys: Set<String> { Set(fields.keys) }

    func error(_ message: String) -> DatasetError { DatasetError(location, message) }

    private func field(_ key: String) throws -> JSONValue {
        guard let value = fields[key] else { throw error("missing \"\(key)\"") }
        return value
    }

    /// A string field.
    func string(_ key: String) throws -> String {
        let value = try field(key)
        guard case .string(let text) = value else { throw error("\"\(key)\" must be a string, got \(value.kind)") }
        return text
    }

    /// A string field that may be absent or null.
    func optionalString(_ key: String) throws -> String? {
        if fields[key] == nil { return nil }
        if case .null = fields[key]! { return nil }
        return try string(key)
    }

    /// An integer field.
    func integer(_ key: String) throws -> Int {
        let value = try field(key)
        guard case .integer(let number) = value else { throw error("\"\(key)\" must be an integer, got \(value.kind)") }
        return number
    }

    /// A list of integers (token ids, labels).
    func integers(_ key: String) throws -> [Int] {
        let value = try field(key)
        guard case .array(let items) = value else { throw error("\"\(key)\" must be a list of integers, got \(value.kind)") }
        return try items.enumerated().map { index, item in
            guard case .integer(let number) = item else {
                throw error("\"\(key)\"[\(index)] must be an integer, got \(item.kind)")
            }
            return number
        }
    }

    /// A string, or a list of strings, as a list.
    func strings(_ key: String) throws -> [String] {
        let value = try field(key)
        if case .string(let text) = value { return [text] }
        guard case .array(let items) = value else {
            throw error("\"\(key)\" must be a string or a list of strings, got \(value.kind)")
        }
        return try items.enumerated().map { index, item in
            guard case .string(let text) = item else { throw error("\"\(key)\"[\(index)] must be a string, got \(item.kind)") }
            return text
        }
    }
}

/// Reads the records of a dataset file: a JSON array of objects, or JSON Lines (one object per line), told
/// apart by the first character. Every record keeps the line it starts on.
enum RecordFile {
    static func read(_ url: URL) throws -> [RawRecord] {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw DatasetError(file: url.path, "cannot read the dataset: \(error.localizedDescription)")
        }
        let records = try parse([UInt8](data), file: url.path)
        if records.isEmpty { throw DatasetError(file: url.path, "the dataset has no records") }
        return records
    }

    static func parse(_ bytes: [UInt8], file: String) throws -> [RawRecord] {
        var start = 0
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { start = 3 }  // UTF-8 byte order mark
        var line = 1
        var i = start
        while i < bytes.count, isSpace(bytes[i]) { if bytes[i] == newline { line += 1 }; i += 1 }
        if i < bytes.count, bytes[i] == UInt8(ascii: "[") { return try parseArray(bytes, from: i, line: line, file: file) }
        return try parseLines(bytes, from: start, file: file)
    }

    // MARK: - JSON Lines

    private static func parseLines(_ bytes: [UInt8], from start: Int, file: String) throws -> [RawRecord] {
        var records: [RawRecord] = []
        var lineStart = start, line = 1
        while lineStart < bytes.count {
            var lineEnd = lineStart
            while lineEnd < bytes.count, bytes[lineEnd] != newline { lineEnd += 1 }
            if bytes[lineStart..<lineEnd].contains(where: { !isSpace($0) }) {
                let location = RecordLocation(file: file, line: line)
                records.append(RawRecord(fields: try object(Data(bytes[lineStart..<lineEnd]), at: location), location: location))
            }
            lineStart = lineEnd + 1
            line += 1
        }
        return records
    }

    // MARK: - JSON array

    /// Splits a top-level array into its elements by scanning brackets and strings, so each element can be
    /// parsed alone and errors name the line the element starts on.
    private static func parseArray(_ bytes: [UInt8], from open: Int, line openLine: Int, file: String) throws -> [RawRecord] {
        var records: [RawRecord] = []
        var i = open + 1, line = openLine
        func skipSpace() {
            while i < bytes.count, isSpace(bytes[i]) { if bytes[i] == newline { line += 1 }; i += 1 }
        }
        func fail(_ message: String) -> DatasetError { DatasetError(RecordLocation(file: file, line: line), message) }

        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") {
            i += 1
        } else {
            while true {
                skipSpace()
                guard i < bytes.count else { throw fail("the JSON array opened on line \(openLine) is not closed") }
                let elementStart = i, elementLine = line
                var depth = 0, inString = false, escaped = false
                scan: while i < bytes.count {
                    let byte = bytes[i]
                    if inString {
                        if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true }
                        else if byte == UInt8(ascii: "\"") { inString = false }
                        else if byte == newline { line += 1 }
                    } else {
                        switch byte {
                        case UInt8(ascii: "\""): inString = true
                        case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                        case UInt8(ascii: "}"), UInt8(ascii: "]"):
                            if depth == 0 { break scan }
                            depth -= 1
                        case UInt8(ascii: ","): if depth == 0 { break scan }
                        case newline: line += 1
                        default: break
                        }
                    }
                    i += 1
                }
                guard i < bytes.count else {
                    throw DatasetError(RecordLocation(file: file, line: elementLine),
                                       inString ? "unterminated string" : "the JSON array opened on line \(openLine) is not closed")
                }
                let location = RecordLocation(file: file, line: elementLine)
                var end = i
                while end > elementStart, isSpace(bytes[end - 1]) { end -= 1 }
                guard end > elementStart else { throw fail("expected a record before \"\(Character(UnicodeScalar(bytes[i])))\"") }
                records.append(RawRecord(fields: try object(Data(bytes[elementStart..<end]), at: location), location: location))
                let separator = bytes[i]
                i += 1
                if separator == UInt8(ascii: "]") { break }
                if separator == UInt8(ascii: "}") { throw fail("unexpected \"}\"") }
            }
        }
        skipSpace()
        if i < bytes.count { throw fail("unexpected text after the JSON array") }
        return records
    }

    // MARK: - Shared

    private static func object(_ data: Data, at location: RecordLocation) throws -> [String: JSONValue] {
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: data)
        } catch {
            throw DatasetError(location, "malformed JSON: \(reason(data, error))")
        }
        guard case .object(let fields) = value else {
            throw DatasetError(location, "a record must be a JSON object {…}, got \(value.kind)")
        }
        return fields
    }

    /// Why `data` is not JSON: JSONSerialization's description names the character, JSONDecoder's does not.
    private static func reason(_ data: Data, _ error: Error) -> String {
        do {
            _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            if let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String { return detail }
        }
        if case DecodingError.dataCorrupted(let context) = error { return context.debugDescription }
        return "\(error)"
    }

    private static let newline = UInt8(ascii: "\n")

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
    }
}
