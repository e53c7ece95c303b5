import Foundation

/// Where the tests find what the repository holds: its root (located through this file's `#filePath`), the test
/// targets' fixture folders and the bundled tokenizers. Tests that borrow another target's fixtures read them
/// here, in place, rather than keeping a copy.
public enum TestPaths {
    /// The repository's root folder.
    public static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// `Tests/<target>/Fixtures` in the repository (not the copy a test bundle carries).
    public static func fixtures(of target: String) -> URL {
        repository.appendingPathComponent("Tests/\(target)/Fixtures")
    }

    /// The repository's bundled tokenizers, `tokenizers/` (licenses in `tokenizers/README.md`).
    public static let tokenizers = repository.appendingPathComponent("tokenizers")

    /// The LLaMA-2 tokenizer folder, `tokenizers/llama2` (tokenizer.json + tokenizer_config.json; pad id 2 = EOS).
    public static let llama2Tokenizer = tokenizers.appendingPathComponent("llama2")
}
