import Foundation

/// A format Collie reads from strangers, with the function that feeds it one fuzzer input.
///
/// Each target takes arbitrary bytes, runs the production parser (and what a user's next step would run on its
/// result: encoding a string, rendering a template, validating a config) and ignores thrown errors: a clear error is
/// the right answer to bad bytes; a trap, a hang or unbounded memory is a defect. Adding a format is one case here,
/// one function and one seed folder `Tests/Fuzz/Corpus/<raw value>/`.
public enum FuzzTarget: String, CaseIterable, Sendable {
    case safetensorsHeader = "safetensors-header"
    case tokenizerJSON = "tokenizer-json"
    case sentencePieceModel = "sentencepiece-model"
    case configYAML = "config-yaml"
    case datasetRecords = "dataset-records"
    case chatTemplate = "chat-template"
    case openAIRequest = "openai-request"
    case gguf

    /// Feeds `input` to the target's parser and returns the error it rejected the input with (a fine answer to bad
    /// bytes), or nil when it accepted the input.
    @discardableResult
    public func run(_ input: [UInt8]) -> (any Error)? {
        do {
            try body(input)
            return nil
        } catch {
            return error
        }
    }

    private func body(_ input: [UInt8]) throws {
        switch self {
        case .safetensorsHeader: try FuzzEntryPoints.safetensorsHeader(input)
        case .tokenizerJSON: try FuzzEntryPoints.tokenizerJSON(input)
        case .sentencePieceModel: try FuzzEntryPoints.sentencePieceModel(input)
        case .configYAML: try FuzzEntryPoints.configYAML(input)
        case .datasetRecords: try FuzzEntryPoints.datasetRecords(input)
        case .chatTemplate: try FuzzEntryPoints.chatTemplate(input)
        case .openAIRequest: try FuzzEntryPoints.openAIRequest(input)
        case .gguf: try FuzzEntryPoints.gguf(input)
        }
    }

    /// Removes the scratch files that file-based loaders read inputs from (call once, before exiting).
    public static func removeScratchFiles() {
        ScratchFile.removeAll()
    }
}

/// The entry points `FuzzTarget` calls, one per format (each in its own file).
enum FuzzEntryPoints {}
