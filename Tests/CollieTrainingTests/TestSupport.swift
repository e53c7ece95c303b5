import CollieTokenizers
import Foundation
import XCTest

/// Fixtures and helpers shared by the training tests.
enum Fixtures {
    /// The repository root (for the bundled tokenizers, example configs and data).
    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// The repository's LLaMA-2 tokenizer folder, tokenizers/llama2 (tokenizer.json + tokenizer_config.json; Meta's
    /// license, see tokenizers/README.md).
    static var llama2Folder: URL { repositoryRoot.appendingPathComponent("tokenizers/llama2") }

    /// The LLaMA-2 tokenizer, loaded from `llama2Folder`.
    static let llama2: Tokenizer = try! Tokenizer(contentsOf: llama2Folder)
}

/// A fresh temporary folder, removed after the test.
func temporaryFolder(_ test: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("collie-training-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}
