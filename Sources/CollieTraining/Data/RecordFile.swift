import CollieIO
import CollieTokenizers
import Foundation

/// One JSON object read from a dataset file: where each member's value lies in the file, and the line the
/// object starts on. Values are read with `JSONReader` and type-checked when a field is asked for.
struct RawRecord {
    /// The whole file the record is in.
    let bytes: [UInt8]
    /// Each member's value, as a range of `bytes`.
    let fields: [String: Range<Int>]
    let location: RecordLocation

    var keys: Set<String> { Set(fields.keys) }

    func error(_ message: String) -> DatasetError { DatasetError(location, message) }

    /// Whether the record has `key` with a value other than null.
    func hasValue(_ key: String) throws -> Bool {
        guard fields[key] != nil else { return false }
        return try read(key) { json in
            if json.readNull() { return false }
            try json.skipValue()
            return true
        }
    }

    /// A string field.
    func string(_ key: String) throws -> String {
        try read(key) { json in
            guard json.peekKind() == .string else { throw mistyped(quoted(key), "a string", &json) }
            return try text(&json, key)
        }
    }

    /// A string field that may be absent or null.
    func optionalString(_ key: String) throws -> String? {
        try hasValue(key) ? try string(key) : nil
    }

    /// An integer field.
    func integer(_ key: String) throws -> Int {
        try read(key) { json in
            guard let number = RawRecord.readInteger(&json) else {
                throw mistyped(quoted(key), "an integer", &json)
            }
            return number
        }
    }

    /// A list of integers (token ids, labels).
    func integers(_ key: String) throws -> [Int] {
        try read(key) { json in
            guard json.peekKind() == .array else { throw mistyped(quoted(key), "a list of integers", &json) }
            var numbers: [Int] = []
            try json.forEachElement { json, index in
                guard let number = RawRecord.readInteger(&json) else {
                    throw mistyped("\(quoted(key))[\(index)]", "an integer", &json)
                }
                numbers.append(number)
            }
            return numbers
        }
    }

    /// A string, or a list of strings, as a list.
    func strings(_ key: String) throws -> [String] {
        try read(key) { json in
            if json.peekKind() == .string { return [try text(&json, key)] }
            guard json.peekKind() == .array else { throw mistyped(quoted(key), "a string or a list of strings", &json) }
            var texts: [String] = []
            try json.forEachElement { json, index in
                guard json.peekKind() == .string else {
                    throw mistyped("\(quoted(key))[\(index)]", "a string", &json)
                }
                texts.append(try text(&json, "\(key)[\(index)]"))
            }
            return texts
        }
    }

    // MARK: - Reading values

    /// Runs `body` on a reader at the value of `key`.
    private func read<T>(_ key: String, _ body: (inout JSONReader) throws -> T) throws -> T {
        guard let range = fields[key] else { throw error("missing \"\(key)\"") }
        do {
            return try JSONReader.read(bytes, in: range, file: location.file, body)
        } catch let failure as JSONReadError {
            // The value was checked when the file was read; this is a limit such as an integer's range.
            throw error("\"\(key)\": \(failure.message)")
        }
    }

    /// An integer, read as JSONDecoder reads one: `1.0` and `1e2` are integers, `2.5` is not. Nil, with
    /// nothing consumed, when the next value is not an integer.
    private static func readInteger(_ json: inout JSONReader) -> Int? {
        guard json.peekKind() == .number else { return nil }
        if let number = try? json.readInt() { return number }
        var probe = json
        guard let value = try? probe.readDouble(), let number = Int(exactly: value) else { return nil }
        json = probe
        return number
    }

    /// A string value, which must be valid UTF-8.
    private func text(_ json: inout JSONReader, _ key: String) throws -> String {
        guard let text = try json.withStringBytes({ String(validating: $0, as: UTF8.self) }) else {
            throw error("\"\(key)\" is not valid UTF-8")
        }
        return text
    }

    /// `<name> must be <expected>, got <what the value is>`.
    private func mistyped(_ name: String, _ expected: String, _ json: inout JSONReader) -> DatasetError {
        // The value's syntax was checked when the file was read, so describing it cannot fail.
        let found = (try? RecordFile.describe(&json, in: bytes)) ?? "malformed JSON"
        return error("\(name) must be \(expected), got \(found)")
    }

    private func quoted(_ key: String) -> String { "\"\(key)\"" }
}

/// Reads the records of a dataset file: a JSON array of objects, or JSON Lines (one object per line), told
/// apart by the first character. Every record keeps the line it starts on.
enum RecordFile {
    static func read(_ url: URL) throws -> [RawRecord] {
        let data: Data
        do {
            // Regular files only (a FIFO would hang the reader, a device feed it endless bytes).
            data = try InputFile.contents(of: url, limit: .max)
        } catch let error as CheckpointError {
            throw DatasetError(file: url.path, "cannot read the dataset: \(error.message)")
        }
        let records = try parse([UInt8](data), file: url.path)
        if records.isEmpty { throw DatasetError(file: url.path, "the dataset has no records") }
        return records
    }

    static func parse(_ bytes: [UInt8], file: String) throws -> [RawRecord] {
        var start = 0
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { start = 3 }  // UTF-8 byte order mark
        var i = start
        while i < bytes.count, isSpace(bytes[i]) { i += 1 }
        if i < bytes.count, bytes[i] == UInt8(ascii: "[") { return try parseArray(bytes, from: start, file: file) }
        return try parseLines(bytes, from: start, file: file)
    }

    // MARK: - JSON Lines

    /// Reads every line that is not blank as one JSON object.
    private static func parseLines(_ bytes: [UInt8], from start: Int, file: String) throws -> [RawRecord] {
        var records: [RawRecord] = []
        var lineStart = start, line = 1
        while lineStart < bytes.count {
            var lineEnd = lineStart
            while lineEnd < bytes.count, bytes[lineEnd] != newline { lineEnd += 1 }
            if bytes[lineStart..<lineEnd].contains(where: { !isSpace($0) }) {
                let location = RecordLocation(file: file, line: line)
                do {
                    records.append(try JSONReader.read(bytes, in: lineStart..<lineEnd, file: file) { json in
                        try record(&json, in: bytes, at: location)
                    })
                } catch let error as JSONReadError {
                    throw malformed(error, at: location)
                }
            }
            lineStart = lineEnd + 1
            line += 1
        }
        return records
    }

    // MARK: - JSON array

    /// Reads a top-level array of objects; each record is located at the line its element starts on.
    private static func parseArray(_ bytes: [UInt8], from start: Int, file: String) throws -> [RawRecord] {
        var records: [RawRecord] = []
        // Lines are counted forward as the reader advances, so locating every record costs one pass.
        var counted = (position: start, line: 1)
        func line(at position: Int) -> Int {
            for i in counted.position..<position where bytes[i] == newline { counted.line += 1 }
            counted.position = position
            return counted.line
        }
        do {
            try JSONReader.read(bytes, in: start..<bytes.count, file: file) { json in
                try json.forEachElement { json, _ in
                    _ = json.peekKind()  // skips whitespace, so the position is the element's first byte
                    let location = RecordLocation(file: file, line: line(at: json.position))
                    do {
                        records.append(try record(&json, in: bytes, at: location))
                    } catch let error as JSONReadError {
                        throw malformed(error, at: location)
                    }
                }
            }
        } catch let error as JSONReadError {
            // Outside any record: the array itself is malformed (not closed, a missing comma, text after it).
            throw DatasetError(RecordLocation(file: file, line: error.line), "malformed JSON: \(error.message)")
        }
        return records
    }

    // MARK: - Shared

    /// Reads the object that comes next as a record, noting where each member's value lies. Values are
    /// skipped, not decoded, but their syntax is checked.
    private static func record(_ json: inout JSONReader, in bytes: [UInt8], at location: RecordLocation) throws
        -> RawRecord {
        guard json.peekKind() == .object else {
            let found = try describe(&json, in: bytes)
            throw DatasetError(location, "a record must be a JSON object {…}, got \(found)")
        }
        var fields: [String: Range<Int>] = [:]
        try json.forEachMember { json, key in
            _ = json.peekKind()  // skips whitespace
            let start = json.position
            try json.skipValue()
            fields[key] = start..<json.position
        }
        return RawRecord(bytes: bytes, fields: fields, location: location)
    }

    /// What the value that comes next is, for "must be …, got …" messages (`a list`, `the number 3`).
    /// Consumes the value; one that is not valid JSON throws the reader's error.
    static func describe(_ json: inout JSONReader, in bytes: [UInt8]) throws -> String {
        let kind = json.peekKind()
        let start = json.position
        try json.skipValue()
        switch kind {
        case .object: return "an object"
        case .array: return "a list"
        case .string: return "a string"
        case .bool: return "a boolean"
        case .null: return "null"
        case .end: return "nothing"
        case .number: return "the number \(String(decoding: bytes[start..<json.position], as: UTF8.self))"
        }
    }

    /// A syntax error inside the record at `location`: the record's line, and the reader's line when the
    /// error is further down.
    private static func malformed(_ error: JSONReadError, at location: RecordLocation) -> DatasetError {
        var detail = error.message
        if !error.keyPath.isEmpty { detail += " at \(error.keyPath)" }
        if error.line != location.line { detail += " (line \(error.line))" }
        return DatasetError(location, "malformed JSON: \(detail)")
    }

    private static let newline = UInt8(ascii: "\n")

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
    }
}
