import CollieEngine
import CollieIO
import CollieTokenizers
import CollieTestSupport
import CollieTraining
import Foundation
import XCTest

/// Fixtures shared by the trainer tests (made by scripts/fixtures/make_trainer_fixtures.py).
enum Fixtures {
    /// The bundled Fixtures folder.
    static var folder: URL { Bundle.module.resourceURL!.appendingPathComponent("Fixtures") }

    /// The LLaMA-2 tokenizer folder (pad id 2 = EOS).
    static var tokenizerFolder: URL { TestPaths.llama2Tokenizer }

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
