import Foundation

/// CollieModelsTests' Hugging Face fixture models (scripts/fixtures/make_model_fixtures.py: tiny random models saved by
/// transformers, with what transformers and torch compute with them), read in place by the tests of the targets
/// above the models.
public enum ModelFixtures {
    /// `Tests/CollieModelsTests/Fixtures/<variant>`: config.json, model.safetensors and expected.safetensors.
    public static func folder(_ variant: String) -> URL {
        TestPaths.fixtures(of: "CollieModelsTests").appendingPathComponent(variant)
    }

    /// Every float32 fixture with gradients and AdamW values (all but "bf16").
    public static let trainedVariants = [
        "llama_mha", "llama_gqa", "llama_mqa", "llama_tied", "llama_rope_llama3", "llama_rope_linear_hub",
        "llama_bias", "llama_padded", "qwen2", "mistral_sliding_window",
    ]

    /// A model folder with a tokenizer and a chat template, made in `folder` as `model/`: symbolic links to the server
    /// tests' tiny chat model (scripts/fixtures/make_server_fixtures.py) and to LLaMA-2's tokenizer.json.
    public static func linkedChatModel(in folder: URL) throws -> URL {
        let model = folder.appendingPathComponent("model")
        try FileManager.default.createDirectory(at: model, withIntermediateDirectories: true)
        let fixture = TestPaths.fixtures(of: "CollieServerTests").appendingPathComponent("chat-model")
        for name in try FileManager.default.contentsOfDirectory(atPath: fixture.path) {
            try FileManager.default.createSymbolicLink(at: model.appendingPathComponent(name),
                                                       withDestinationURL: fixture.appendingPathComponent(name))
        }
        try FileManager.default.createSymbolicLink(at: model.appendingPathComponent("tokenizer.json"),
                                                   withDestinationURL: TestPaths.llama2Tokenizer.appendingPathComponent("tokenizer.json"))
        return model
    }
}
