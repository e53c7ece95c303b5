/// A problem loading or using a tokenizer, naming the file and, where it applies, the line and JSON key.
public struct TokenizerError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file the problem is in (empty when the problem is not about a file).
    public let file: String
    /// What is wrong, for a person to act on. Includes the line and key path when known.
    public let message: String

    public init(file: String, _ message: String) {
        self.file = file
        self.message = message
    }

    public var description: String { file.isEmpty ? message : "\(file): \(message)" }
}

extension TokenizerError {
    /// The JSON reader's error as a tokenizer error, with the same text (`file: line N at key: message`).
    init(_ error: JSONReadError) {
        self.init(file: error.file, error.messageWithPlace)
    }
}

extension JSONReader {
    /// `read(_:file:_:)` for tokenizer files: the reader's errors become `TokenizerError`s.
    static func readTokenizerFile<T>(_ bytes: [UInt8], file: String, _ body: (inout JSONReader) throws -> T) throws -> T {
        do {
            return try read(bytes, file: file, body)
        } catch let error as JSONReadError {
            throw TokenizerError(error)
        }
    }
}
