import CollieModels
import CollieTestSupport
import Foundation
import XCTest

/// This target's Fixtures (scripts/fixtures/make_generation_fixtures.py), read in place.
enum Fixtures {
    static let folder = TestPaths.fixtures(of: "CollieGenerationTests")

    static func model(_ name: String) throws -> LlamaForCausalLM {
        try LlamaForCausalLM.load(from: folder.appendingPathComponent("models/\(name)"))
    }

    static func json<T: Decodable>(_ name: String, as type: T.Type) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(contentsOf: folder.appendingPathComponent(name)))
    }

    static let variants = ["llama_mha", "llama_gqa", "llama_tied", "qwen2", "mistral_sliding_window"]
}
