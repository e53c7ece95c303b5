import CollieTestSupport
import Foundation

/// What the command tests read, in place: CollieTrainingTests' fixture runs (the tiny model, its records and configs;
/// scripts/fixtures/make_trainer_fixtures.py) and the repository's LLaMA-2 tokenizer. The `collie` they run is
/// `CollieExecutable`'s: the one `swift build --build-tests` builds, or `$COLLIE_BINARY`.
enum Fixtures {
    /// Tests/CollieTrainingTests/Fixtures.
    static let folder = TestPaths.fixtures(of: "CollieTrainingTests")

    /// The tiny model every fixture run starts from (vocabulary 64).
    static var model: URL { folder.appendingPathComponent("model") }

    /// The LLaMA-2 tokenizer folder (pad id 2 = EOS).
    static var tokenizerFolder: URL { TestPaths.llama2Tokenizer }
}
