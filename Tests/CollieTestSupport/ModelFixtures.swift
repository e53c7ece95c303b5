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
}
