import CollieEngine
import CollieGeneration
import CollieMPI
import CollieModels
@testable import CollieTraining
import CollieTestSupport
import XCTest

/// Pipeline parallelism on 2 and 4 processes: the stages run their units of every micro-batch in the 1F1B order,
/// exchanging hidden states and their gradients, and end with the loss, the gradients and —
/// after an update and `gatherParameters` — the parameters of one process running the whole model (computed by
/// every rank alongside, for comparison); a tied embedding split between the first and the last stage gets the
/// sum of both uses' gradients. Padding-free micro-batches (`PaddedBatch.flattened()`) give the padded ones' loss and
/// gradients through the stages.
final class PipelineParallelTests: XCTestCase {
    func testStagesMatchOneProcessOnTwoAndFourRanks() throws {
        try runRankTests("PipelineParallelRankTests/testMatchesOneProcess", ranks: 2)
        try runRankTests("PipelineParallelRankTests/testMatchesOneProcess", ranks: 4)
    }

    func testWholeModelCallsAndDecodingThroughTheStagesMatchOneProcess() throws {
        try runRankTests("PipelineParallelRankTests/testWholeModelCallsMatchOneProcess", ranks: 2)
        try runRankTests("PipelineParallelRankTests/testWholeModelCallsMatchOneProcess", ranks: 4)
    }

    func testPromptTuningThroughTheStagesMatchesOneProcess() throws {
        try runRankTests("PipelineParallelRankTests/testPromptTuningMatchesOneProcess", ranks: 2)
        try runRankTests("PipelineParallelRankTests/testPromptTuningMatchesOneProcess", ranks: 4)
    }

    func testTwoBackwardPassesThroughTheStagesMatchOneProcess() throws {
        try runRankTests("PipelineParallelRankTests/testTwoBackwardPassesMatchOneProcess", ranks: 2)
        try runRankTests("PipelineParallelRankTests/testTwoBackwardPassesMatchOneProcess", ranks: 4)
    }
}

/// The rank side of `PipelineParallelTests` (skipped unless launched by it under mpirun).
final class PipelineParallelRankTests: XCTestCase {
    /// Four micro-batches of 3 rows each, of uneven lengths (right padding).
    static func microBatches() -> [PaddedBatch] {
        var generator = RandomGenerator(seed: 23)
        return (0..<4).map { _ in
            let examples = (0..<3).map { _ -> TrainingExample in
                let length = 4 + Int(generator.next() % 9)
                let tokens = (0..<length).map { _ in 3 + Int(generator.next() % 37) }
                return TrainingExample(tokens: tokens, labels: tokens)
            }
            return Padder(side: .right, padTokenID: 0).pad(examples)
        }
    }

    /// Micro-batch `batch`'s summed next-token NLL from its `logits`, over the whole group's `predicted` tokens.
    static func loss(_ logits: Tensor, _ batch: PaddedBatch, model: some CausalLanguageModel, predicted: Int) -> Tensor {
        model.summedNegativeLogLikelihood(logits: logits, targets: batch.nextTokenTargets(for: model)) / Double(predicted)
    }

    static func models() throws -> [(String, () throws -> LlamaForCausalLM)] {
        var tied = LlamaConfiguration(hiddenSize: 32, intermediateSize: 48, hiddenLayers: 3, attentionHeads: 4,
                                      keyValueHeads: 2, vocabularySize: 40)
        tied.tieWordEmbeddings = true
        let fixture = TestPaths.fixtures(of: "CollieTrainingTests").appendingPathComponent("model")
        return [("fixture", { try LlamaForCausalLM.load(from: fixture) }), ("tied", { LlamaForCausalLM(tied, seed: 5) })]
    }

    /// With `pipelineStage` set, a rank holding only its stage's weights answers whole-model calls as one process:
    /// the logits of a padded batch and greedy decoding with the KV cache (a left-padded batch of two prompts).
    func testWholeModelCallsMatchOneProcess() throws {
        try XCTSkipUnless(MPIRun.isRank, "runs as one rank of PipelineParallelTests")
        let world = MPICommunicator.world()
        let batch = Self.microBatches()[1]
        let prompts = [[5, 9, 13, 2, 7], [11, 3]]
        for (name, make) in try Self.models() {
            let reference = try make()
            let mask = batch.hasPadding ? batch.attentionMaskTensor : nil
            let expected = withNoGrad { reference(batch.tokenTensor, positions: batch.positionTensor, keyPaddingMask: mask) }
            let expectedTokens = try Generator(model: reference).generate(prompts: prompts, parameters: GenerationParameters(maxNewTokens: 6))
            let model = try make()
            let group = PipelineParallelGroup(communicator: world,
                                              partition: try PipelinePartition(model: model, stages: world.size, method: .uniform))
            group.releaseOtherStages(model)
            model.pipelineStage = group
            let logits = withNoGrad { model(batch.tokenTensor, positions: batch.positionTensor, keyPaddingMask: mask) }
            XCTAssertEqual(logits.shape, expected.shape, name)
            XCTAssertEqual(logits.floats(), expected.floats(), "\(name): logits through \(world.size) stages")
            let tokens = try Generator(model: model).generate(prompts: prompts, parameters: GenerationParameters(maxNewTokens: 6))
            XCTAssertEqual(tokens, expectedTokens, "\(name): greedy decoding through \(world.size) stages")
            model.pipelineStage = nil
        }
    }

    func testMatchesOneProcess() throws {
        try XCTSkipUnless(MPIRun.isRank, "runs as one rank of PipelineParallelTests")
        let world = MPICommunicator.world()
        let batches = Self.microBatches()
        for (name, make) in try Self.models() {
            let reference = try make()
            let predicted = batches.reduce(0) { $0 + NextTokenLoss.predictedCount($1.nextTokenTargets(for: reference)) }
            var expectedLoss = 0.0
            for batch in batches {
                let loss = Self.loss(reference(batch.tokenTensor, positions: batch.positionTensor,
                                               keyPaddingMask: batch.hasPadding ? batch.attentionMaskTensor : nil),
                                     batch, model: reference, predicted: predicted)
                loss.backward()
                expectedLoss += Double(loss.item)
            }

            let model = try make()
            // Padding-free micro-batches too: one row each, every stage keeping attention within each sequence.
            for (method, packed) in [(PipelinePartitionMethod.parameters, false), (.uniform, false), (.parameters, true)] {
                let label = "\(name), \(method)\(packed ? ", padding-free" : ""), \(world.size) stages"
                let micro = packed ? batches.map { $0.flattened() } : batches
                let group = PipelineParallelGroup(communicator: world,
                                                  partition: try PipelinePartition(model: model, stages: world.size, method: method))
                XCTAssertTrue(group.partition.stages.allSatisfy { !$0.isEmpty }, label)
                var ran: [Int] = []
                let loss = group.forwardBackward(model, microBatches: micro, willRun: { ran.append($0) }) { i, logits in
                    Self.loss(logits, micro[i], model: model, predicted: predicted)
                }
                group.reduceSharedGradients(model)
                XCTAssertEqual(ran, [0, 1, 2, 3], label)
                XCTAssertEqual(loss, expectedLoss, accuracy: 1e-5 * abs(expectedLoss), label)
                let mine = Set(group.parameters(of: model).map(ObjectIdentifier.init))
                XCTAssertEqual(group.sharedParameters(of: model).count, name == "tied" && world.size > 1 ? 1 : 0, label)
                for (p, q) in zip(model.parameters, reference.parameters) {
                    guard mine.contains(ObjectIdentifier(p)) else {
                        XCTAssertNil(p.grad, "\(label): another stage's parameter has no gradient here")
                        continue
                    }
                    let scale = q.grad!.floats().map(abs).max()!
                    let difference = zip(p.grad!.floats(), q.grad!.floats()).map { abs($0 - $1) }.max()!
                    XCTAssertLessThanOrEqual(difference, 1e-5 * scale, "\(label): a gradient differs by \(difference)")
                }
                for p in model.parameters { p.grad = nil }
            }

            // One SGD step on each stage's own parameters, then every rank gathers the whole model.
            let group = PipelineParallelGroup(communicator: world,
                                              partition: try PipelinePartition(model: model, stages: world.size, method: .parameters))
            _ = group.forwardBackward(model, microBatches: batches) { i, logits in
                Self.loss(logits, batches[i], model: model, predicted: predicted)
            }
            group.reduceSharedGradients(model)
            withNoGrad {
                for p in group.parameters(of: model) { p.assignValues(from: p - p.grad! * 0.5) }
                for p in reference.parameters { p.assignValues(from: p - p.grad! * 0.5) }
            }
            group.gatherParameters(model)
            var largest: Float = 0
            for (p, q) in zip(model.parameters, reference.parameters) {
                for (a, b) in zip(p.floats(), q.floats()) { largest = max(largest, abs(a - b)) }
            }
            XCTAssertLessThanOrEqual(largest, 1e-6, "\(name): parameters after an update differ by \(largest)")
        }
    }

    /// Prompt tuning: the first stage puts the virtual tokens in front, every stage runs n + T positions (the real
    /// tokens' positions and padding prefixed), the last makes the loss over them; only the first stage trains (the
    /// virtual tokens), and their gradient is one process's. Whole-model calls through the stages (the real tokens'
    /// logits, the training loss over n + T positions, greedy decoding with the virtual tokens in the prefill) too.
    func testPromptTuningMatchesOneProcess() throws {
        try XCTSkipUnless(MPIRun.isRank, "runs as one rank of PipelineParallelTests")
        let world = MPICommunicator.world()
        let batches = Self.microBatches()
        let fixture = TestPaths.fixtures(of: "CollieTrainingTests").appendingPathComponent("model")
        func make() throws -> LlamaForCausalLM {
            let model = try LlamaForCausalLM.load(from: fixture)
            try model.addAdapter(.promptTuning(PromptTuningConfiguration(virtualTokenCount: 3)), seed: 7)
            return model
        }
        let reference = try make()
        let predicted = batches.reduce(0) { $0 + NextTokenLoss.predictedCount($1.nextTokenTargets(for: reference)) }
        var expectedLoss = 0.0
        for batch in batches {
            let loss = Self.loss(batch.trainingLogits(of: reference), batch, model: reference, predicted: predicted)
            loss.backward()
            expectedLoss += Double(loss.item)
        }
        let model = try make()
        let group = PipelineParallelGroup(communicator: world,
                                          partition: try PipelinePartition(model: model, stages: world.size, method: .uniform))
        group.releaseOtherStages(model)
        let loss = group.forwardBackward(model, microBatches: batches) { i, logits in
            Self.loss(logits, batches[i], model: model, predicted: predicted)
        }
        XCTAssertEqual(loss, expectedLoss, accuracy: 1e-5 * abs(expectedLoss))
        let virtual = model.promptEmbedding!.embeddings
        XCTAssertEqual(group.parameters(of: model).contains { $0 === virtual }, group.isFirstStage)
        if group.isFirstStage {
            let want = reference.promptEmbedding!.embeddings.grad!.floats(), got = virtual.grad!.floats()
            let difference = zip(got, want).map { abs($0 - $1) }.max()!
            XCTAssertLessThanOrEqual(difference, 1e-5 * want.map(abs).max()!, "the virtual tokens' gradient differs by \(difference)")
        }

        let batch = batches[1]
        let mask = batch.attentionMaskTensor
        let prompts = [[5, 9, 13, 2, 7], [11, 3]]
        let expectedLogits = withNoGrad { reference(batch.tokenTensor, positions: batch.positionTensor, keyPaddingMask: mask) }
        let targets = batch.nextTokenTargets(for: reference)
        let expectedSum = withNoGrad { batch.summedNegativeLogLikelihood(of: reference, targets: targets) }.item
        let expectedTokens = try Generator(model: reference).generate(prompts: prompts, parameters: GenerationParameters(maxNewTokens: 6))
        model.pipelineStage = group
        defer { model.pipelineStage = nil }
        let logits = withNoGrad { model(batch.tokenTensor, positions: batch.positionTensor, keyPaddingMask: mask) }
        XCTAssertEqual(logits.shape, expectedLogits.shape)
        let largest = zip(logits.floats(), expectedLogits.floats()).map { abs($0 - $1) }.max()!
        XCTAssertLessThanOrEqual(largest, 1e-5, "the real tokens' logits through \(world.size) stages")
        let sum = withNoGrad { batch.summedNegativeLogLikelihood(of: model, targets: targets) }.item
        XCTAssertEqual(sum, expectedSum, accuracy: 1e-5 * abs(expectedSum), "the training loss through \(world.size) stages")
        let tokens = try Generator(model: model).generate(prompts: prompts, parameters: GenerationParameters(maxNewTokens: 6))
        XCTAssertEqual(tokens, expectedTokens, "greedy decoding through \(world.size) stages")
    }

    /// `forward` once, then `backward(retainGraph: true)` and `backward(retainGraph: false)` (the in-backward
    /// optimizers' norm pass and update pass): each pass leaves one process's gradients.
    func testTwoBackwardPassesMatchOneProcess() throws {
        try XCTSkipUnless(MPIRun.isRank, "runs as one rank of PipelineParallelTests")
        let world = MPICommunicator.world()
        let batch = Self.microBatches()[1]
        let fixture = TestPaths.fixtures(of: "CollieTrainingTests").appendingPathComponent("model")
        let reference = try LlamaForCausalLM.load(from: fixture)
        let predicted = NextTokenLoss.predictedCount(batch.nextTokenTargets(for: reference))
        let expected = Self.loss(reference(batch.tokenTensor, positions: batch.positionTensor,
                                           keyPaddingMask: batch.attentionMaskTensor),
                                 batch, model: reference, predicted: predicted)
        expected.backward()
        let model = try LlamaForCausalLM.load(from: fixture)
        let group = PipelineParallelGroup(communicator: world,
                                          partition: try PipelinePartition(model: model, stages: world.size, method: .uniform))
        let loss = group.forward(model, batch: batch) { Self.loss($0, batch, model: model, predicted: predicted) }
        XCTAssertEqual(loss, Double(expected.item), accuracy: 1e-6 * abs(loss))
        for retain in [true, false] {
            group.backward(retainGraph: retain)
            for p in group.parameters(of: model) {
                let q = reference.parameters[model.parameters.firstIndex { $0 === p }!]
                let scale = q.grad!.floats().map(abs).max()!
                let difference = zip(p.grad!.floats(), q.grad!.floats()).map { abs($0 - $1) }.max()!
                XCTAssertLessThanOrEqual(difference, 1e-5 * scale, "pass with retainGraph \(retain): a gradient differs by \(difference)")
                p.grad = nil
            }
        }
    }
}
