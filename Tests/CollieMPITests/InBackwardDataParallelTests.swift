import CollieEngine
import CollieMPI
import CollieModels
@testable import CollieTraining
import CollieTestSupport
import XCTest

/// LOMO and AdaLomo under data parallelism and ZeRO stage 3: on 2 and 4 processes, each rank trains on its rows
/// of every global batch with the gradient summed over the ranks before the in-backward update (at stage 3 on
/// parameters gathered per layer, the update kept in the rank's shard), padded or padding-free (its rows flattened into
/// one), and ends with the losses and parameters of one process training on the whole padded batches (computed by every
/// rank alongside, for comparison).
final class InBackwardDataParallelTests: XCTestCase {
    func testLOMOAndAdaLomoMatchOneProcessOnTwoAndFourRanks() throws {
        try runRankTests("InBackwardDataParallelRankTests/testMatchesOneProcess", ranks: 2)
        try runRankTests("InBackwardDataParallelRankTests/testMatchesOneProcess", ranks: 4)
    }
}

/// The rank side of `InBackwardDataParallelTests` (skipped unless launched by it under mpirun).
final class InBackwardDataParallelRankTests: XCTestCase {
    static let model = TestPaths.fixtures(of: "CollieTrainingTests").appendingPathComponent("model")

    /// Three global batches of 5 rows (so 4 ranks get uneven rows, and with more ranks than rows some get none).
    static func batches() -> [PaddedBatch] {
        var generator = RandomGenerator(seed: 17)
        return (0..<3).map { _ in
            let examples = (0..<5).map { _ -> TrainingExample in
                let length = 4 + Int(generator.next() % 9)
                let tokens = (0..<length).map { _ in 3 + Int(generator.next() % 61) }
                return TrainingExample(tokens: tokens, labels: tokens)
            }
            return Padder(side: .right, padTokenID: 0).pad(examples)
        }
    }

    enum Kind: CaseIterable { case lomo, lomoClippedByNorm, adaLomo }

    static func optimizer(_ kind: Kind, _ parameters: [Tensor]) -> FusedBackwardOptimizer {
        switch kind {
        case .lomo: LOMO(parameters: parameters, learningRate: 0.05, weightDecay: 0.01)
        case .lomoClippedByNorm: LOMO(parameters: parameters, learningRate: 0.05, clipGradNorm: 0.5)
        case .adaLomo: AdaLomo(parameters: parameters, learningRate: 0.01, weightDecay: 0.01)
        }
    }

    /// Trains `model` on `batches` with `group` (each rank's rows flattened with `paddingFree`); returns the loss of
    /// each update (summed over the ranks).
    static func train(_ model: LlamaForCausalLM, kind: Kind, group communicator: Communicator, stage: Int = 0,
                      paddingFree: Bool = false, batches: [PaddedBatch]) -> [Double] {
        let buffer = ParameterBuffer(model.parameters)
        let group = DataParallelGroup(communicator: communicator, stage: stage, buffer: buffer, reducesEachGradient: true,
                                      units: model.parameterUnits)
        if stage == 3 { model.parameterUnitHooks = group }
        let optimizer = optimizer(kind, model.parameters)
        optimizer.attachToBackward()
        group.attachAfterInBackwardOptimizer()
        var losses: [Double] = []
        for global in batches {
            let predicted = NextTokenLoss.predictedCount(global.nextTokenTargets(for: model))
            let (local, weight) = group.localRows(of: global)
            let rows = paddingFree ? local.flattened() : local
            let loss = rows.summedNegativeLogLikelihood(of: model, targets: rows.nextTokenTargets(for: model)) * (weight / Double(predicted))
            if optimizer.clipGradNorm != nil {
                XCTAssertTrue(optimizer.gatherGradientNorms { loss.backward(retainGraph: true) })
            }
            loss.backward()
            optimizer.step()
            group.endBackward()
            losses.append(group.sum([Double(loss.item)])[0])
        }
        group.gatherAll()
        return losses
    }

    func testMatchesOneProcess() throws {
        try XCTSkipUnless(MPIRun.isRank, "runs as one rank of InBackwardDataParallelTests")
        let world = MPICommunicator.world()
        let batches = Self.batches()
        for kind in Kind.allCases {
            let reference = try LlamaForCausalLM.load(from: Self.model)
            let expected = Self.train(reference, kind: kind, group: SingleProcessCommunicator(), batches: batches)
            for (stage, paddingFree) in [(0, false), (3, false), (0, true), (3, true)] {
                let model = try LlamaForCausalLM.load(from: Self.model)
                let losses = Self.train(model, kind: kind, group: world, stage: stage, paddingFree: paddingFree,
                                        batches: batches)
                let what = "\(kind) at stage \(stage)\(paddingFree ? ", padding-free," : "") on \(world.size) ranks"
                // fp32; only the order of the sums differs.
                XCTAssertEqual(losses.count, expected.count)
                for (loss, want) in zip(losses, expected) {
                    XCTAssertEqual(loss, want, accuracy: 1e-5 * max(1, abs(want)), what)
                }
                var largest: Float = 0
                for (p, q) in zip(model.parameters, reference.parameters) {
                    for (a, b) in zip(p.floats(), q.floats()) { largest = max(largest, abs(a - b)) }
                }
                XCTAssertLessThanOrEqual(largest, 1e-5, "\(what): parameters differ by \(largest)")
                XCTAssertGreaterThan(abs(expected[0] - expected[2]), 1e-3, "\(kind) trains: the loss moves")
            }
        }
    }
}
