import CollieModels
import Foundation
import XCTest

/// Fixture paths: this target's Fixtures (scripts/fixtures/make_generation_fixtures.py) and the repository's tokenizers.
enum Fixtures {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func model(_ name: String) throws -> LlamaForCausalLM {
        try LlamaForCausalLM.load(from: folder.appendingPathComponent("models/\(name)"))
    }

    static func json<T: Decodable>(_ name: String, as type: T.Type) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(contentsOf: folder.appendingPathComponent(name)))
    }

    static let variants = ["llama_mha", "llama_gqa", "llama_tied", "qwen2", "mistral_sliding_window"]
}
