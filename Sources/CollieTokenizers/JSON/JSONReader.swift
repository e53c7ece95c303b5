/// A problem found while reading a JSON file: where (file, line, key path) and what.
public struct JSONReadError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file, as given to `JSONReader.read`.
    public let file: String
    /// The 1-based line of the file the reader had reached.
    public let line: Int
    /// The keys and indices leading to the value being read (`model.merges[3]`); empty at the top level.
    public let keyPath: String
    /// What is wrong.
    public let message: String

    public init(file: String, line: Int, keyPath: String, message: String) {
        self.file = file
        self.line = line
        self.keyPath = keyPath
        self.message = message
    }

    /// `line 3 at model.vocab: <message>`: the place and the message, without the file.
    public var messageWithPlace: String {
        "line \(line)\(keyPath.isEmpty ? "" : " at \(keyPath)"): \(message)"
    }

    public var description: String { "\(file): \(messageWithPlace)" }
}

/// A pull reader over JSON text, used to decode files straight into typed values (tokenizer files, dataset
/// records).
///
/// Each configuration type reads its own keys (`forEachMember`), so a 17 MB tokenizer.json is read in one
/// pass without building a tree of dynamic values, and every error names the file, the line and the key
/// path (`model.merges[12]`).
public struct JSONReader {
    /// The kinds of JSON value, for decisions made before reading one.
    public enum Kind: Sendable { case object, array, string, number, bool, null, end }

    private enum PathComponent {
        case key(at: Int)  // offset of the key's opening quote
        case index(Int)
    }

    private let bytes: UnsafeBufferPointer<UInt8>
    /// Where the text being read ends (the document is `bytes[start..<end]`).
    private let end: Int
    /// The offset of the next byte to read, counted from the start of the whole buffer.
    public private(set) var position = 0
    /// The file named in errors.
    public let file: String
    private var path: [PathComponent] = []

    /// Reads one JSON document from `bytes` with `body`, and checks nothing but whitespace follows it.
    public static func read<T>(_ bytes: [UInt8], file: String, _ body: (inout JSONReader) throws -> T) throws -> T {
        try read(bytes, in: 0..<bytes.count, file: file, body)
    }

    /// Reads one JSON document from `bytes[range]` with `body`, and checks nothing but whitespace follows it
    /// within the range. Positions and error lines count from the start of `bytes`, so a document that is one
    /// line or one value of a larger file is reported at its place in that file.
    public static func read<T>(_ bytes: [UInt8], in range: Range<Int>, file: String,
                               _ body: (inout JSONReader) throws -> T) throws -> T {
        precondition(range.lowerBound >= 0 && range.upperBound <= bytes.count, "range outside the bytes")
        return try bytes.withUnsafeBufferPointer { buffer in
            var reader = JSONReader(bytes: buffer, range: range, file: file)
            let value = try body(&reader)
            reader.skipWhitespace()
            if reader.position != reader.end { throw reader.error("unexpected text after the JSON value") }
            return value
        }
    }

    private init(bytes: UnsafeBufferPointer<UInt8>, range: Range<Int>, file: String) {
        self.bytes = bytes
        self.end = range.upperBound
        self.position = range.lowerBound
        self.file = file
        path.reserveCapacity(16)
    }

    // MARK: - Errors

    /// An error at the current position: file, line and key path.
    public func error(_ message: String) -> JSONReadError {
        var line = 1
        for i in 0..<min(position, bytes.count) where bytes[i] == UInt8(ascii: "\n") { line += 1 }
        return JSONReadError(file: file, line: line, keyPath: keyPath, message: message)
    }

    /// The path of keys and indices to the value being read, as `model.merges[3]`.
    public var keyPath: String {
        var result = ""
        for component in path {
            switch component {
            case .key(let offset):
                let key = rawKey(at: offset)
                result += result.isEmpty ? key : ".\(key)"
            case .index(let index):
                result += "[\(index)]"
            }
        }
        return result
    }

    /// The text of the key starting at `offset` as written (escapes not decoded), without throwing.
    private func rawKey(at offset: Int) -> String {
        var start = offset
        while start < end, bytes[start] != UInt8(ascii: "\"") { start += 1 }
        start += 1
        var stop = start
        while stop < end, bytes[stop] != UInt8(ascii: "\"") {
            stop += bytes[stop] == UInt8(ascii: "\\") ? 2 : 1
        }
        guard start <= min(stop, end) else { return "?" }
        return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<min(stop, end)]), as: UTF8.self)
    }

    // MARK: - Structure

    /// The kind of the next value, without consuming it.
    public mutating func peekKind() -> Kind {
        skipWhitespace()
        guard position < end else { return .end }
        switch bytes[position] {
        case UInt8(ascii: "{"): return .object
        case UInt8(ascii: "["): return .array
        case UInt8(ascii: "\""): return .string
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return .bool
        case UInt8(ascii: "n"): return .null
        default: return .number
        }
    }

    /// Reads an object, calling `body` with each key; `body` must read or skip the member's value.
    public mutating func forEachMember(_ body: (inout JSONReader, String) throws -> Void) throws {
        try forEachMemberRaw { reader, key in
            try body(&reader, String(decoding: key, as: UTF8.self))
        }
    }

    /// Nesting deeper than this is refused (tokenizer files nest a few levels), so no input can exhaust the stack.
    public static let maximumDepth = 256

    /// Reads an object, calling `body` with each key's UTF-8 bytes (valid only during the call).
    mutating func forEachMemberRaw(_ body: (inout JSONReader, UnsafeBufferPointer<UInt8>) throws -> Void) throws {
        if path.count >= JSONReader.maximumDepth { throw error("the JSON nests deeper than \(JSONReader.maximumDepth) levels") }
        try expect(UInt8(ascii: "{"), "an object")
        skipWhitespace()
        if position < end, bytes[position] == UInt8(ascii: "}") {
            position += 1
            return
        }
        path.append(.index(0))
        defer { path.removeLast() }
        while true {
            skipWhitespace()
            path[path.count - 1] = .key(at: position)
            let key = try readStringSlice()
            try expect(UInt8(ascii: ":"), "':' after a key")
            switch key {
            case .borrowed(let range):
                let keyBytes = UnsafeBufferPointer(rebasing: bytes[range])
                try body(&self, keyBytes)
            case .owned(let decoded):
                try decoded.withUnsafeBufferPointer { try body(&self, $0) }
            }
            skipWhitespace()
            guard position < end else { throw error("the object is not closed") }
            let next = bytes[position]
            position += 1
            if next == UInt8(ascii: "}") { return }
            if next != UInt8(ascii: ",") { position -= 1; throw error("expected ',' or '}' in an object") }
        }
    }

    /// Reads an array, calling `body` for each element; `body` must read or skip the element.
    public mutating func forEachElement(_ body: (inout JSONReader, Int) throws -> Void) throws {
        if path.count >= JSONReader.maximumDepth { throw error("the JSON nests deeper than \(JSONReader.maximumDepth) levels") }
        try expect(UInt8(ascii: "["), "an array")
        skipWhitespace()
        if position < end, bytes[position] == UInt8(ascii: "]") {
            position += 1
            return
        }
        path.append(.index(0))
        defer { path.removeLast() }
        var index = 0
        while true {
            path[path.count - 1] = .index(index)
            try body(&self, index)
            index += 1
            skipWhitespace()
            guard position < end else { throw error("the array is not closed") }
            let next = bytes[position]
            position += 1
            if next == UInt8(ascii: "]") { return }
            if next != UInt8(ascii: ",") { position -= 1; throw error("expected ',' or ']' in an array") }
        }
    }

    /// The value of the `"type"` member of the object that comes next, without consuming the object. Stops
    /// reading at the `"type"` key (it usually comes first, before a large vocabulary).
    mutating func typeTag() throws -> String? {
        guard peekKind() == .object else { return nil }
        struct Found: Error { let tag: String }
        var probe = self
        do {
            try probe.forEachMember { reader, key in
                if key == "type", reader.peekKind() == .string { throw Found(tag: try reader.readString()) }
                try reader.skipValue()
            }
        } catch let found as Found {
            return found.tag
        }
        return nil
    }

    // MARK: - Scalars

    /// Consumes `null` if it comes next.
    public mutating func readNull() -> Bool {
        guard peekKind() == .null else { return false }
        if matchLiteral("null") { return true }
        return false
    }

    /// Reads `true` or `false`.
    public mutating func readBool() throws -> Bool {
        skipWhitespace()
        if matchLiteral("true") { return true }
        if matchLiteral("false") { return false }
        throw error("expected true or false, found \(foundDescription)")
    }

    /// Reads an integer; a fraction or exponent is an error, as in serde. On error the position is unchanged.
    public mutating func readInt() throws -> Int {
        skipWhitespace()
        let start = position
        var negative = false
        if position < end, bytes[position] == UInt8(ascii: "-") { negative = true; position += 1 }
        var value = 0
        var digits = 0
        while position < end {
            let digit = Int(bytes[position]) &- 48
            guard digit >= 0, digit <= 9 else { break }
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(digit)
            if o1 || o2 { position = start; throw error("the integer is too large") }
            value = sum
            digits += 1
            position += 1
        }
        if digits == 0 { position = start; throw error("expected an integer, found \(foundDescription)") }
        if position < end {
            switch bytes[position] {
            case UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"):
                // serde (tokenizers) rejects 1.0 where an integer belongs; so does Collie.
                position = start
                throw error("expected an integer, found a fractional number")
            default:
                break
            }
        }
        return negative ? -value : value
    }

    /// Reads a token id: an integer from 0 to `maximumTokenID`.
    mutating func readTokenID() throws -> Int32 {
        let id = try readInt()
        guard (0...JSONReader.maximumTokenID).contains(id) else {
            throw error("token id \(id) is out of range (0...\(JSONReader.maximumTokenID))")
        }
        return Int32(id)
    }

    /// The largest token id accepted (vocabularies hold ids densely; this bounds their tables' memory): 2^21, eight
    /// times the largest real vocabulary (Gemma's 262,144). At 2^26 a 60-byte tokenizer.json took 556 MB to load.
    static let maximumTokenID = 1 << 21

    /// Reads a number as a `Double`.
    public mutating func readDouble() throws -> Double {
        skipWhitespace()
        let start = position
        while position < end, Self.isNumberByte(bytes[position]) { position += 1 }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
        guard !text.isEmpty, let value = Double(text) else {
            position = start
            throw error("expected a number, found \(foundDescription)")
        }
        return value
    }

    private static func isNumberByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "."),
            UInt8(ascii: "e"), UInt8(ascii: "E"): return true
        default: return false
        }
    }

    /// Reads a string (escapes decoded; invalid UTF-8 is repaired with U+FFFD, as `String(decoding:)` does).
    public mutating func readString() throws -> String {
        try withStringBytes { String(decoding: $0, as: UTF8.self) }
    }

    /// Reads a string and hands its UTF-8 bytes (escapes decoded) to `body`; they are valid only during the
    /// call. Strings without escapes are passed without copying.
    public mutating func withStringBytes<T>(_ body: (UnsafeBufferPointer<UInt8>) throws -> T) throws -> T {
        switch try readStringSlice() {
        case .borrowed(let range): return try body(UnsafeBufferPointer(rebasing: bytes[range]))
        case .owned(let decoded): return try decoded.withUnsafeBufferPointer(body)
        }
    }

    /// A string's bytes: a range of the input when it has no escapes, else the decoded copy.
    private enum StringSlice {
        case borrowed(Range<Int>)
        case owned([UInt8])
    }

    private mutating func readStringSlice() throws -> StringSlice {
        skipWhitespace()
        guard position < end, bytes[position] == UInt8(ascii: "\"") else {
            throw error("expected a string, found \(foundDescription)")
        }
        let start = position + 1
        var stop = start
        while stop < end {
            let byte = bytes[stop]
            if byte == UInt8(ascii: "\"") {
                position = stop + 1
                return .borrowed(start..<stop)
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { position = stop; throw error("control character in a string") }
            stop += 1
        }
        var decoded = Array(UnsafeBufferPointer(rebasing: bytes[start..<stop]))
        position = stop
        while true {
            guard position < end else { throw error("the string is not closed") }
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") { position += 1; break }
            if byte < 0x20 { throw error("control character in a string") }
            if byte != UInt8(ascii: "\\") {
                decoded.append(byte)
                position += 1
                continue
            }
            position += 1
            guard position < end else { throw error("the string is not closed") }
            let escape = bytes[position]
            position += 1
            switch escape {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): decoded.append(escape)
            case UInt8(ascii: "b"): decoded.append(0x08)
            case UInt8(ascii: "f"): decoded.append(0x0C)
            case UInt8(ascii: "n"): decoded.append(0x0A)
            case UInt8(ascii: "r"): decoded.append(0x0D)
            case UInt8(ascii: "t"): decoded.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try readHex4()
                if (0xD800..<0xDC00).contains(scalar) {
                    guard position + 1 < end, bytes[position] == UInt8(ascii: "\\"),
                          bytes[position + 1] == UInt8(ascii: "u") else {
                        throw error("lone surrogate \\u\(String(scalar, radix: 16)) in a string")
                    }
                    position += 2
                    let low = try readHex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw error("invalid surrogate pair in a string") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00..<0xE000).contains(scalar) {
                    throw error("lone surrogate \\u\(String(scalar, radix: 16)) in a string")
                }
                decoded.append(contentsOf: UTF8.encode(Unicode.Scalar(scalar)!)!)
            default:
                throw error("invalid escape '\\\(Character(Unicode.Scalar(escape)))' in a string")
            }
        }
        return .owned(decoded)
    }

    private mutating func readHex4() throws -> UInt32 {
        guard position + 4 <= end else { throw error("truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[position]
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - 48)
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - 87)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - 55)
            default: throw error("invalid \\u escape")
            }
            value = value << 4 | digit
            position += 1
        }
        return value
    }

    /// Skips one value of any kind.
    public mutating func skipValue() throws {
        switch peekKind() {
        case .object: try forEachMemberRaw { reader, _ in try reader.skipValue() }
        case .array: try forEachElement { reader, _ in try reader.skipValue() }
        case .string: try withStringBytes { _ in }
        case .bool: _ = try readBool()
        case .null: _ = readNull()
        case .number: _ = try readDouble()
        case .end: throw error("unexpected end of the file")
        }
    }

    // MARK: - Helpers

    private mutating func expect(_ byte: UInt8, _ what: String) throws {
        skipWhitespace()
        guard position < end, bytes[position] == byte else {
            throw error("expected \(what), found \(foundDescription)")
        }
        position += 1
    }

    private mutating func matchLiteral(_ literal: StaticString) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard position + count <= end else { return false }
        let base = literal.utf8Start
        for i in 0..<count where bytes[position + i] != base[i] { return false }
        position += count
        return true
    }

    private mutating func skipWhitespace() {
        while position < end {
            switch bytes[position] {
            case 0x20, 0x0A, 0x0D, 0x09: position += 1
            default: return
            }
        }
    }

    private var foundDescription: String {
        guard position < end else { return "the end of the file" }
        switch bytes[position] {
        case UInt8(ascii: "{"): return "an object"
        case UInt8(ascii: "["): return "an array"
        case UInt8(ascii: "\""): return "a string"
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return "a boolean"
        case UInt8(ascii: "n"): return "null"
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"): return "a number"
        default: return "'\(Character(Unicode.Scalar(bytes[position])))'"
        }
    }
}
