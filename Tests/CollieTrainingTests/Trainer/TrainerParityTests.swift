import CollieEngine
import CollieIO
import CollieModels
import CollieTestSupport
import CollieTraining
import Foundation
import XCTest

/// Training for several updates equals transformers' Trainer + torch on the same model, data and settings
/// (micro-batch 2, gradient accumulation 2 with a short last group per epoch, clipping at 0.5 engaged, warm-up
/// 2 + cosine, no shuffle, 2 epochs = 6 updates). Fixtures: scripts/fixtures/make_trainer_fixtures.py.
///
/// Tolerances: both sides compute in float32 with different summation orders (BLAS, attention tiles, the
/// cross-entropy's reduction), and AdamW divides by √v, so parameters after 6 updates agree to ~1e-6 relative
/// rather than bit for bit; the thresholds below are 10–100× the measured differences.
final class TrainerParityTests: XCTestCase {
    /// AdamW's m/√v makes an update's size independent of the gradient's, so where a gradient is a nearly
    /// cancelling sum (embedding rows) float32 rounding moves a parameter by up to ~1e-5 (measured 1.06e-5 on
    /// model.embed_tokens; 1.0e-6 elsewhere); the logits differ by 6e-6.
    func testAdamWTrainingMatchesTransformersTrainer() throws {
        try checkParity("adamw", parameterTolerance: 5e-5)
    }

    /// SGD's update is proportional to the gradient: parameters agree to 6e-8.
    func testSGDTrainingMatchesTransformersTrainer() throws {
        try checkParity("sgd", parameterTolerance: 1e-6)
    }

    private func checkParity(_ name: String, parameterTolerance: Float) throws {
        let output = try temporaryFolder(for: self)
        let setup = try TrainingSetup(config: try Fixtures.config(name, output: output))
        XCTAssertEqual(setup.padTokenID, 2, "the fixture pads with id 2 (LLaMA-2's EOS)")
        let recorder = RecordingMonitor()
        let trainer = try setup.makeTrainer(monitors: [recorder], evaluators: [])
        try trainer.train()
        let expected = try Fixtures.expected(name)

        // Per-update loss, gradient norm before clipping, learning rate.
        let steps = recorder.steps
        let losses = try expected.tensor("losses").doubles()
        let norms = try expected.tensor("grad_norms").doubles()
        let rates = try expected.tensor("learning_rates").doubles()
        XCTAssertEqual(steps.count, losses.count, "updates")
        var lossDifference = 0.0, normDifference = 0.0
        for (index, step) in steps.enumerated() {
            lossDifference = max(lossDifference, abs(step.loss - losses[index]))
            normDifference = max(normDifference, abs((step.gradientNorm ?? .nan) - norms[index]))
            XCTAssertEqual(step.learningRate, rates[index], accuracy: 1e-15 + 1e-12 * rates[index], "lr of update \(index)")
        }
        XCTAssertLessThan(lossDifference, 2e-5, "losses \(steps.map(\.loss)) vs \(losses)")
        XCTAssertLessThan(normDifference, 2e-5, "gradient norms")

        // Evaluation loss before and after (mean NLL per predicted token of eval.jsonl).
        let evaluations = trainer.state.evaluations
        XCTAssertEqual(evaluations.map(\.step), [0, steps.count])
        let before = try expected.tensor("eval_loss_before").doubles()[0]
        let after = try expected.tensor("eval_loss_after").doubles()[0]
        XCTAssertEqual(evaluations.first!.metrics["loss"]!, before, accuracy: 2e-5)
        XCTAssertEqual(evaluations.last!.metrics["loss"]!, after, accuracy: 2e-5)
        XCTAssertEqual(evaluations.last!.metrics["perplexity"]!, Foundation.exp(evaluations.last!.metrics["loss"]!),
                       accuracy: 1e-9)

        // The saved model: every parameter, and its logits on a probe batch.
        let saved = output.appendingPathComponent("final")
        try trainer.saveModel(to: saved)
        let model = try LlamaForCausalLM.load(from: saved)
        var parameterDifference: Float = 0
        for (key, parameter) in model.namedParameters {
            parameterDifference = max(parameterDifference, maxDifference(parameter, try expected.tensor("param." + key)))
        }
        let probe = try expected.tensor("probe_input_ids")
        let logitDifference = withNoGrad { maxDifference(model(probe), try! expected.tensor("probe_logits")) }
        print("\(name): max |Δ| loss \(lossDifference), grad norm \(normDifference), parameter \(parameterDifference), "
              + "logits \(logitDifference)")
        XCTAssertLessThan(parameterDifference, parameterTolerance, "parameters after training")
        XCTAssertLessThan(logitDifference, 1e-4, "logits of the saved model")
    }

    /// Gradient accumulation scales each micro-batch's summed loss by the whole group's token count, so
    /// micro-batches of 1 accumulated 4 times make the same update as one batch of 4.
    func testAccumulatedGradientsEqualTheBigBatchMean() throws {
        let output = try temporaryFolder(for: self)
        let data = output.appendingPathComponent("four.jsonl")
        var generator = RandomGenerator(seed: 7)
        try writeTokenRecords(randomTokenRecords(count: 4, lengths: 4...14, using: &generator), to: data)
        var results: [(loss: Double, parameters: [Tensor])] = []
        for (micro, accumulation) in [(4, 1), (1, 4), (2, 2)] {
            let config = try Fixtures.config("sgd", output: output, overrides: [
                "train_data=\(data.path)", "train_micro_batch_size=\(micro)",
                "gradient_accumulation_steps=\(accumulation)", "train_epochs=1", "max_grad_norm=null",
                "optimizer={name: sgd, lr: 1.0}", "lr_scheduler={type: constant}", "eval_on_start=false",
                "eval_per_n_epochs=0",
            ])
            let recorder = RecordingMonitor()
            let trainer = try TrainingSetup(config: config).makeTrainer(monitors: [recorder], evaluators: [])
            try trainer.train()
            XCTAssertEqual(recorder.steps.count, 1)
            results.append((recorder.steps[0].loss, trainer.model.parameters))
        }
        for other in results.dropFirst() {
            XCTAssertEqual(other.loss, results[0].loss, accuracy: 1e-6)
            let difference = zip(other.parameters, results[0].parameters).map { maxDifference($0, $1) }.max()!
            XCTAssertLessThan(difference, 1e-6, "parameters after one accumulated update")
        }
    }
}
