import CollieIO
import Foundation

/// The tokenizer files a saved model folder carries beside its weights — tokenizer.json, tokenizer_config.json,
/// tokenizer.model (ice_text.model for ChatGLM-6B; vocab.json, merges.txt and added_tokens.json in GPT-2's format),
/// special_tokens_map.json and the chat template (chat_template.jinja, as transformers 5 writes it) — so that `final/`, every checkpoint and `collie convert`'s output load in Collie and transformers alone.
public enum TokenizerFiles: Sendable {
    /// The files of a tokenizer folder, copied as they are when written.
    case folder(URL)
    /// Files made from elsewhere (a GGUF file's metadata), by name.
    case contents([String: Data])

    /// The names copied from a tokenizer folder.
    public static let names = ["tokenizer.json", "tokenizer_config.json", "tokenizer.model", "ice_text.model",
                               "vocab.json", "merges.txt", "added_tokens.json",
                               "special_tokens_map.json", "chat_template.jinja"]

    /// Writes the files into `folder` (which exists), each atomically; a folder's missing files are skipped.
    public func write(to folder: URL) throws {
        switch self {
        case .folder(let source):
            for name in Self.names {
                let url = source.appendingPathComponent(name)
                guard FileManager.default.fileExists(atPath: url.path) else { continue }
                try AtomicFile.write(InputFile.contents(of: url, limit: .max), to: folder.appendingPathComponent(name))
            }
        case .contents(let files):
            for (name, data) in files.sorted(by: { $0.key < $1.key }) {
                try AtomicFile.write(data, to: folder.appendingPathComponent(name))
            }
        }
    }
}
