import CollieTestSupport
import CollieTokenizers
import CollieTraining
import Foundation

/// What the evaluation tests read: their own Fixtures (`evaluation/`, made by scripts/fixtures/make_evaluation_fixtures.py)
/// and, in place, CollieTrainingTests' fixture runs (the tiny model, its records and configs), CollieModelsTests'
/// Hugging Face models (`ModelFixtures`) and the repository's LLaMA-2 tokenizer.
enum Fixtures {
    /// This target's bundled Fixtures folder.
    static var own: URL { Bundle.module.resourceURL!.appendingPathComponent("Fixtures") }

    /// Tests/CollieTrainingTests/Fixtures: the trainer fixtures' runs.
    static let folder = TestPaths.fixtures(of: "CollieTrainingTests")

    /// The LLaMA-2 tokenizer (pad id 2 = EOS).
    static let tokenizer: Tokenizer = try! Tokenizer(contentsOf: TestPaths.llama2Tokenizer)

    /// A trainer fixture run's config (`adamw`) with the tokenizer and `output` filled in.
    static func config(_ name: String, output: URL, overrides: [String] = []) throws -> CollieConfig {
        let settings = ["tokenizer=\(TestPaths.llama2Tokenizer.path)", "output_dir=\(output.path)"]
        return try CollieConfig.load(from: folder.appendingPathComponent("\(name)/config.yaml"), overrides: settings + overrides)
    }
}

/// Keeps every event a trainer emits.
final class RecordingMonitor: TrainingMonitor {
    private(set) var events: [TrainingEvent] = []
    func record(_ event: TrainingEvent) throws { events.append(event) }
    func close() throws {}

    /// The `.step` events' measurements, in order.
    var steps: [TrainingStep] {
        events.compactMap { if case .step(let s) = $0 { return s } else { return nil } }
    }
}
