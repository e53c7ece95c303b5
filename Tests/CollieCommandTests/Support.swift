import CollieEngine
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

/// Writes a run on the fixture model and tokenizer into `folder`: `count` seeded random token records in
/// `train.jsonl` and a `config.yaml` that trains on them with `settings` (YAML lines: epochs, batch, optimizer,
/// output_dir, …). Returns the config's URL.
func writeFixtureRun(in folder: URL, records count: Int, lengths: ClosedRange<Int>, seed: UInt64 = 5,
                     model: URL = Fixtures.model, settings: String) throws -> URL {
    var generator = RandomGenerator(seed: seed)
    try writeTokenRecords(randomTokenRecords(count: count, lengths: lengths, using: &generator),
                          to: folder.appendingPathComponent("train.jsonl"))
    let config = folder.appendingPathComponent("config.yaml")
    try """
        model: \(model.path)
        tokenizer: \(Fixtures.tokenizerFolder.path)
        train_data: train.jsonl
        record_format: tokens
        \(settings)
        """.write(to: config, atomically: true, encoding: .utf8)
    return config
}
