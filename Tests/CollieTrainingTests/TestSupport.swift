import CollieTestSupport
import CollieTokenizers
import Foundation

/// Fixtures shared by the training tests.
enum Fixtures {
    /// The repository's LLaMA-2 tokenizer folder, tokenizers/llama2 (tokenizer.json + tokenizer_config.json; Meta's
    /// license, see tokenizers/README.md).
    static var llama2Folder: URL { TestPaths.llama2Tokenizer }

    /// The LLaMA-2 tokenizer, loaded from `llama2Folder`.
    static let llama2: Tokenizer = try! Tokenizer(contentsOf: llama2Folder)
}
