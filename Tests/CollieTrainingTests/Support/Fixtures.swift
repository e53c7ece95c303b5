import CollieEngine
import CollieIO
import CollieTestSupport
import CollieTokenizers
import CollieTraining
import Foundation
import XCTest

/// The training tests' fixtures (Fixtures/README.md): the trainer runs made by scripts/fixtures/make_trainer_fixtures.py
/// and the repository's LLaMA-2 tokenizer. (The optimizers' reference values are read by `Fixture`.)
enum Fixtures {
    /// The bundled Fixtures folder.
    static var folder: URL { Bundle.module.resourceURL!.appendingPathComponent("Fixtures") }

    /// The repository's LLaMA-2 tokenizer folder, tokenizers/llama2 (tokenizer.json + tokenizer_config.json, pad id
    /// 2 = EOS; Meta's license, see tokenizers/README.md).
    static var tokenizerFolder: URL { TestPaths.llama2Tokenizer }

    /// The LLaMA-2 tokenizer, loaded from `tokenizerFolder`.
    static let tokenizer: Tokenizer = try! Tokenizer(contentsOf: tokenizerFolder)

    /// The tiny model every fixture run starts from.
    static var model: URL { folder.appendingPathComponent("model") }

    /// A fixture case's config (`adamw`, `sgd`) with the tokenizer and `output` filled in.
    static func config(_ name: String, output: URL, overrides: [String] = []) throws -> CollieConfig {
        try CollieConfig.load(from: folder.appendingPathComponent("\(name)/config.yaml"),
                              overrides: ["tokenizer=\(tokenizerFolder.path)", "output_dir=\(output.path)"] + overrides)
    }

    /// A fixture case's expected values.
    static func expected(_ name: String) throws -> SafeTensorsFile {
        try SafeTensorsFile(url: folder.appendingPathComponent("\(name)/expected.safetensors"))
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

/// A callback that throws once training reaches `step` updates: a crash at a known point.
final class CrashCallback: TrainerCallback {
    struct Crash: Error {}
    let name = "crash"
    let step: Int

    init(after step: Int) { self.step = step }

    func onBatchEnd(_ trainer: Trainer, step: TrainingStep) throws {
        if step.step == self.step { throw Crash() }
    }
}

/// The largest absolute difference between two float tensors of the same shape.
func maxDifference(_ a: Tensor, _ b: Tensor) -> Float {
    precondition(a.shape == b.shape, "shapes \(a.shape) and \(b.shape) differ")
    return zip(a.contiguousCopy(dtype: .float32).floats(), b.contiguousCopy(dtype: .float32).floats())
        .reduce(0) { max($0, abs($1.0 - $1.1)) }
}
