/// A GGUF tokenizer that cannot be read or written: the metadata key (or file) at fault and what is wrong with it.
public struct GGUFTokenizerError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The GGUF file or model folder, when known.
    public let file: String
    /// The metadata key (`tokenizer.ggml.tokens`) or the folder file (`tokenizer.json`) at fault.
    public let key: String
    public let message: String

    public init(file: String, key: String, _ message: String) {
        self.file = file
        self.key = key
        self.message = message
    }

    public var description: String { (file.isEmpty ? "" : "\(file): ") + "\(key): \(message)" }
}
