import CollieIO
import CollieTokenizers
import Foundation

/// A GGUF file (llama.cpp's format) used where a Hugging Face model folder is: its configuration
/// (`LlamaConfiguration(gguf:)`), its weights (`GGUFWeights`) and its tokenizer, all from the one file.
public enum GGUFModelFile {
    /// Whether `url` names a GGUF file (by its `.gguf` extension, as llama.cpp names them); anything else is a folder.
    public static func isGGUF(_ url: URL) -> Bool { url.pathExtension.lowercased() == "gguf" }

    /// The tokenizer of `file`'s `tokenizer.*` metadata, as transformers converts it, and the files a saved model
    /// carries for it: tokenizer.json, tokenizer_config.json (with the chat template) and chat_template.jinja.
    /// - Throws: `CheckpointError` or `TokenizerError` naming the file and the metadata key.
    public static func tokenizer(of file: GGUFFile) throws -> (tokenizer: Tokenizer, files: TokenizerFiles) {
        let converted = try GGUFTokenizerFiles(file: file.url.path) { file[$0] }
        return (try converted.tokenizer(), converted.files)
    }

    /// The tokenizer files of `file`'s metadata (as `tokenizer(of:)` makes them), or nil when the file has no
    /// tokenizer (`tokenizer.ggml.model`).
    public static func tokenizerFiles(of file: GGUFFile) throws -> TokenizerFiles? {
        guard file["tokenizer.ggml.model"] != nil else { return nil }
        return try GGUFTokenizerFiles(file: file.url.path) { file[$0] }.files
    }
}
