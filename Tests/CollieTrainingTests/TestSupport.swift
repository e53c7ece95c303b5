import CollieTokenizers
import Foundation
import XCTest

/// Fixtures and helpers shared by the training tests.
enum Fixtures {
    /// The bundled Fixtures folder.
    static var folder: URL { Bundle.module.resourceURL!.appendingPathComponent("Fixtures") }

    /// The LLaMA-2 tokenizer (tokenizer.json + tokenizer_config.json; Meta's license, see Fixtures/README.md).
    static let llama2: Tokenizer = try! Tokenizer(contentsOf: folder.appendingPathComponent("llama2"))

    /// The repository root (for the bundled example configs and data).
    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }
}

/// A fresh temporary folder, removed after the test.
func temporaryFolder(_ test: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("collie-training-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}
