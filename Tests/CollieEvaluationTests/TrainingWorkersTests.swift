@testable import CollieEngine
@testable import CollieEvaluation
import CollieModels
import CollieTestSupport
import CollieTraining
import Foundation
import XCTest

/// The trainer runs its steps and evaluations, and `collie eval` its evaluators, on the spinning worker pool when float32
/// products run on Collie's GEMM (whose threads are that pool's) and every thread has a core, and on Dispatch when they
/// run on OpenBLAS (`Parallel.withTrainingWorkers`), with the same results either way.
final class TrainingWorkersTests: XCTestCase {
    /// Records, for each evaluation, whether its loops ran on the spinning pool.
    private final class PoolObserver: Evaluator {
        let name = "pool"
        var spinning: [Bool] = []
        func evaluate(_ model: any CausalLanguageModel) throws -> [String: Double] {
            spinning.append(Parallel.usesSpinningWorkers)
            return ["spinning": Parallel.usesSpinningWorkers ? 1 : 0]
        }
    }

    func testStepsAndEvaluationsSpinOnThePoolOnlyWhenProductsRunOnCollieGEMM() throws {
        let saved = Float32GEMM.override
        defer { Float32GEMM.override = saved }
        var losses: [Float32GEMM: [Double]] = [:]
        for gemm in [Float32GEMM.collie, .openBLAS] {
            Float32GEMM.override = gemm
            let config = try Fixtures.config("adamw", output: try temporaryFolder(for: self),
                                             overrides: ["eval_on_start=true", "eval_per_n_epochs=1", "max_steps=3"])
            let setup = try TrainingSetup(config: config)
            var inBackward: [Bool] = []   // one entry per backward pass, from a gradient-ready hook
            setup.model.parameters[0].onGradientReady { _ in inBackward.append(Parallel.usesSpinningWorkers) }
            let observer = PoolObserver()
            let recorder = RecordingMonitor()
            let trainer = try Trainer(config: config, model: setup.model, trainDataset: setup.trainDataset,
                                      evaluationDataset: setup.evaluationDataset, padTokenID: setup.padTokenID,
                                      monitors: [recorder], evaluators: [observer])
            try trainer.train()

            // On Collie's GEMM when every thread has a core (2 threads on this project's 2-core machines).
            let spins = Parallel.spinsInTrainingSteps(gemm: gemm, threads: Parallel.threadCount, ranksOnThisMachine: 1,
                                                      cores: ProcessInfo.processInfo.activeProcessorCount)
            if gemm == .openBLAS { XCTAssertFalse(spins) }
            // 3 updates of 2 accumulated micro-batches, the last of epoch 0 (5 batches) of one.
            XCTAssertEqual(inBackward, [Bool](repeating: spins, count: 5), "\(gemm): the steps' backward passes")
            XCTAssertEqual(observer.spinning, [spins, spins], "\(gemm): evaluations at the start and after epoch 0")
            XCTAssertFalse(Parallel.usesSpinningWorkers, "\(gemm): nothing spins after training")
            losses[gemm] = recorder.steps.map(\.loss)
        }
        let collie = try XCTUnwrap(losses[.collie]), openBLAS = try XCTUnwrap(losses[.openBLAS])
        XCTAssertEqual(collie.count, 3)
        for (a, b) in zip(collie, openBLAS) { XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(b))) }
    }

    /// `collie eval` runs its evaluators as the trainer runs an evaluation (`Parallel.withTrainingWorkers`): on the
    /// spinning pool when float32 products run on Collie's GEMM and every thread has a core, not on OpenBLAS.
    func testEvaluationSetupRunsItsEvaluatorsOnTheSpinningPoolOnlyWithCollieGEMM() throws {
        let saved = Float32GEMM.override
        defer { Float32GEMM.override = saved }
        let evalData = Fixtures.folder.appendingPathComponent("eval.jsonl").path
        let config = try Fixtures.config("adamw", output: try temporaryFolder(for: self),
                                         overrides: ["evaluators=[{name: heldout, type: perplexity, data: \(evalData)}]"])
        var perplexities: [Double] = []
        for gemm in [Float32GEMM.collie, .openBLAS] {
            Float32GEMM.override = gemm
            var setup = try EvaluationSetup(config: config)
            let observer = PoolObserver()
            setup.evaluators.append(observer)
            let metrics = try setup.run()
            // 2 threads on this project's 2-core machines: Collie's GEMM spins.
            let spins = Parallel.spinsInTrainingSteps(gemm: gemm, threads: Parallel.threadCount, ranksOnThisMachine: 1,
                                                      cores: ProcessInfo.processInfo.activeProcessorCount)
            if gemm == .openBLAS { XCTAssertFalse(spins) }
            XCTAssertEqual(observer.spinning, [spins], "\(gemm)")
            XCTAssertEqual(metrics["pool/spinning"], spins ? 1 : 0, "\(gemm)")
            XCTAssertFalse(Parallel.usesSpinningWorkers, "\(gemm): nothing spins after the evaluation")
            perplexities.append(try XCTUnwrap(metrics["heldout/perplexity"]))
        }
        XCTAssertEqual(perplexities[0], perplexities[1], accuracy: 1e-5 * perplexities[1], "either GEMM")
    }
}
