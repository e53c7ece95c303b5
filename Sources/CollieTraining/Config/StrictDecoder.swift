import Foundation

/// A `Decoder` over a `ConfigNode` tree that fails loudly: every type mismatch is a `ConfigError` naming the
/// key path, the expected type and the line; every key a section asks for is recorded so that the keys
/// nobody asked for can be reported as unknown afterwards (`ConfigNode.unknownKeys`).
struct StrictDecoder: Decoder {
    let node: ConfigNode
    let codingPath: [CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(node: ConfigNode, codingPath: [CodingKey] = []) {
        self.node = node
        self.codingPath = codingPath
    }

    /// Decodes a whole document and reports unknown keys.
    static func decode<T: Decodable>(_ type: T.Type, from node: ConfigNode) throws -> T {
        let value = try T(from: StrictDecoder(node: node))
        let unknown = node.unknownKeys()
        if !unknown.isEmpty { throw ConfigError(issues: unknown) }
        return value
    }

    var keyPath: String { StrictDecoder.keyPath(codingPath) }

    static func keyPath(_ codingPath: [CodingKey]) -> String {
        var path = ""
        for key in codingPath {
            if let index = key.intValue { path += "[\(index)]" } else { path += path.isEmpty ? key.stringValue : ".\(key.stringValue)" }
        }
        return path
    }

    /// An error at this value: "KEY: message", with its file and line.
    func error(_ message: String) -> ConfigError {
        ConfigError(keyPath: keyPath, message, source: node.source, line: node.line)
    }

    func mismatch(expected: String) -> ConfigError {
        error("expected \(expected), got \(node.summary)")
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .mapping(let entries) = node.content else { throw mismatch(expected: "a section (key: value lines)") }
        if node.requestedKeys == nil { node.requestedKeys = [] }
        return KeyedDecodingContainer(KeyedContainer<Key>(decoder: self, entries: entries))
    }

    func unkeyedContainer() throws -> UnkeyedDecodingContainer {
        guard case .sequence(let items) = node.content else { throw mismatch(expected: "a list") }
        return UnkeyedContainer(decoder: self, items: items)
    }

    func singleValueContainer() throws -> SingleValueDecodingContainer { SingleValueContainer(decoder: self) }

    // MARK: - Scalars

    func scalarText(expected: String) throws -> (text: String, isPlain: Bool) {
        guard case .scalar(let text, let isPlain) = node.content else { throw mismatch(expected: expected) }
        return (text, isPlain)
    }

    func decodeBool() throws -> Bool {
        let (text, isPlain) = try scalarText(expected: "true or false")
        switch isPlain ? text.lowercased() : "" {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw mismatch(expected: "true or false")
        }
    }

    func decodeInteger<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        let (text, isPlain) = try scalarText(expected: "an integer")
        let digits = text.replacingOccurrences(of: "_", with: "")
        if isPlain, let value = T(digits) { return value }
        if isPlain, let real = Double(digits), real.rounded() == real, let value = T(exactly: real) { return value }
        throw mismatch(expected: "an integer")
    }

    func decodeDouble() throws -> Double {
        let (text, isPlain) = try scalarText(expected: "a number")
        let digits = text.replacingOccurrences(of: "_", with: "")
        if isPlain {
            switch digits.lowercased() {
            case ".inf", "+.inf": return .infinity
            case "-.inf": return -.infinity
            case ".nan": return .nan
            default: if let value = Double(digits), !digits.lowercased().contains("n") { return value }
            }
        }
        throw mismatch(expected: "a number")
    }

    func decodeString() throws -> String {
        try scalarText(expected: "a string").text
    }

    func decodeValue<T: Decodable>(_ type: T.Type) throws -> T {
        switch type {
        case is Bool.Type: return try decodeBool() as! T
        case is String.Type: return try decodeString() as! T
        case is Double.Type: return try decodeDouble() as! T
        case is Float.Type: return Float(try decodeDouble()) as! T
        case is Int.Type: return try decodeInteger(Int.self) as! T
        case is Int64.Type: return try decodeInteger(Int64.self) as! T
        case is Int32.Type: return try decodeInteger(Int32.self) as! T
        case is UInt64.Type: return try decodeInteger(UInt64.self) as! T
        case is UInt32.Type: return try decodeInteger(UInt32.self) as! T
        case is UInt.Type: return try decodeInteger(UInt.self) as! T
        case let enumType as any ConfigEnum.Type: return try decodeEnum(enumType) as! T
        default: return try T(from: self)
        }
    }
}

private struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: StrictDecoder
    let entries: [ConfigNode.Entry]

    var codingPath: [CodingKey] { decoder.codingPath }
    var allKeys: [Key] { entries.compactMap { Key(stringValue: $0.key) } }

    private func entry(_ key: Key) -> ConfigNode.Entry? {
        decoder.node.requestedKeys?.insert(key.stringValue)
        return entries.first { $0.key == key.stringValue }
    }

    private func child(_ key: Key) throws -> StrictDecoder {
        guard let entry = entry(key) else {
            throw decoder.error("missing required key \(key.stringValue)")
        }
        return StrictDecoder(node: entry.value, codingPath: codingPath + [key])
    }

    func contains(_ key: Key) -> Bool { entry(key) != nil }

    func decodeNil(forKey key: Key) throws -> Bool {
        guard let entry = entry(key) else { return true }
        if case .null = entry.value.content { return true }
        return false
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try child(key).decodeValue(type) }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try child(key).decodeBool() }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try child(key).decodeString() }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try child(key).decodeDouble() }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { Float(try child(key).decodeDouble()) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try child(key).decodeInteger(type) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try child(key).decodeInteger(type) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try child(key).decodeInteger(type) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try child(key).decodeInteger(type) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try child(key).decodeInteger(type) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try child(key).decodeInteger(type) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try child(key).decodeInteger(type) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try child(key).decodeInteger(type) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try child(key).decodeInteger(type) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try child(key).decodeInteger(type) }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
        -> KeyedDecodingContainer<NestedKey> {
        try child(key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> UnkeyedDecodingContainer { try child(key).unkeyedContainer() }
    func superDecoder() throws -> Decoder { decoder }
    func superDecoder(forKey key: Key) throws -> Decoder { try child(key) }
}

private struct IndexKey: CodingKey {
    let intValue: Int?
    var stringValue: String { "\(intValue ?? 0)" }
    init(_ index: Int) { intValue = index }
    init?(stringValue: String) { return nil }
    init?(intValue: Int) { self.intValue = intValue }
}

private struct UnkeyedContainer: UnkeyedDecodingContainer {
    let decoder: StrictDecoder
    let items: [ConfigNode]
    var currentIndex = 0

    init(decoder: StrictDecoder, items: [ConfigNode]) {
        self.decoder = decoder
        self.items = items
    }

    var codingPath: [CodingKey] { decoder.codingPath }
    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    private mutating func next() throws -> StrictDecoder {
        guard !isAtEnd else { throw decoder.error("the list is too short") }
        defer { currentIndex += 1 }
        return StrictDecoder(node: items[currentIndex], codingPath: codingPath + [IndexKey(currentIndex)])
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd else { return true }
        if case .null = items[currentIndex].content { currentIndex += 1; return true }
        return false
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try next().decodeValue(type) }
    mutating func decode(_ type: Bool.Type) throws -> Bool { try next().decodeBool() }
    mutating func decode(_ type: String.Type) throws -> String { try next().decodeString() }
    mutating func decode(_ type: Double.Type) throws -> Double { try next().decodeDouble() }
    mutating func decode(_ type: Float.Type) throws -> Float { Float(try next().decodeDouble()) }
    mutating func decode(_ type: Int.Type) throws -> Int { try next().decodeInteger(type) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try next().decodeInteger(type) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try next().decodeInteger(type) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try next().decodeInteger(type) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try next().decodeInteger(type) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try next().decodeInteger(type) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try next().decodeInteger(type) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try next().decodeInteger(type) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try next().decodeInteger(type) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try next().decodeInteger(type) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws
        -> KeyedDecodingContainer<NestedKey> {
        try next().container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> UnkeyedDecodingContainer { try next().unkeyedContainer() }
    mutating func superDecoder() throws -> Decoder { try next() }
}

private struct SingleValueContainer: SingleValueDecodingContainer {
    let decoder: StrictDecoder
    var codingPath: [CodingKey] { decoder.codingPath }

    func decodeNil() -> Bool {
        if case .null = decoder.node.content { return true }
        return false
    }

    func decode<T: Decodable>(_ type: T.Type) throws -> T { try decoder.decodeValue(type) }
    func decode(_ type: Bool.Type) throws -> Bool { try decoder.decodeBool() }
    func decode(_ type: String.Type) throws -> String { try decoder.decodeString() }
    func decode(_ type: Double.Type) throws -> Double { try decoder.decodeDouble() }
    func decode(_ type: Float.Type) throws -> Float { Float(try decoder.decodeDouble()) }
    func decode(_ type: Int.Type) throws -> Int { try decoder.decodeInteger(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try decoder.decodeInteger(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try decoder.decodeInteger(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try decoder.decodeInteger(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try decoder.decodeInteger(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try decoder.decodeInteger(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try decoder.decodeInteger(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try decoder.decodeInteger(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try decoder.decodeInteger(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try decoder.decodeInteger(type) }
}

// MARK: - Helpers for the config types' init(from:)

extension Decoder {
    /// An error about the value being decoded: a `ConfigError` naming its key path and line under strict
    /// decoding, a `DecodingError` under other decoders (JSONDecoder, YAMLDecoder).
    func configError(_ message: String) -> Error {
        if let strict = self as? StrictDecoder { return strict.error(message) }
        return DecodingError.dataCorrupted(DecodingError.Context(codingPath: codingPath, debugDescription: message))
    }
}

extension KeyedDecodingContainer {
    /// The value at `key`, or `fallback` when the key is absent or null.
    func value<T: Decodable>(_ key: Key, default fallback: @autoclosure () -> T) throws -> T {
        try decodeIfPresent(T.self, forKey: key) ?? fallback()
    }
}

/// A closed set of string values in a config (optimizer names, padding sides, …). Under strict decoding an
/// unknown value is an error that lists the allowed values and suggests the closest one.
protocol ConfigEnum: CaseIterable, RawRepresentable where RawValue == String {}

extension StrictDecoder {
    /// The enum case spelled by this scalar, or an error listing the allowed spellings.
    func decodeEnum<E: ConfigEnum>(_ type: E.Type) throws -> E {
        let text = try scalarText(expected: "one of " + E.allCases.map(\.rawValue).joined(separator: ", ")).text
        if let value = E(rawValue: text) { return value }
        let allowed = E.allCases.map(\.rawValue)
        throw error("unknown value \"\(text)\"\(Suggestion.hint(for: text, among: allowed)); expected one of "
                    + allowed.joined(separator: ", "))
    }
}
