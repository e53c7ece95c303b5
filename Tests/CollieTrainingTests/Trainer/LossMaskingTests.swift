import CollieEngine
import CollieModels
import CollieTestSupport
import CollieTokenizers
import CollieTraining
import Foundation
import XCTest

/// What the training loss counts: predicted tokens whose label is trained — never a masked prompt, never
/// padding — each example scored on its own, without padding, gives the expected value.
final class LossMaskingTests: XCTestCase {
    /// A small random model over LLaMA-2's vocabulary.
    private func makeModel() -> LlamaForCausalLM {
        LlamaForCausalLM(LlamaConfiguration(hiddenSize: 16, intermediateSize: 32, hiddenLayers: 1, attentionHeads: 2,
                                            keyValueHeads: 2, vocabularySize: Fixtures.tokenizer.vocabularySize,
                                            maxPositionEmbeddings: 512, initializerRange: 0.5), seed: 3)
    }

    /// One update over every example in one micro-batch, with a learning rate of 0 (the model does not change).
    private func config(batchSize: Int, side: PaddingSide = .right, paddingFree: Bool = false, output: URL) -> CollieConfig {
        var config = CollieConfig(model: .preset(.tiny))
        config.trainEpochs = 1
        config.trainMicroBatchSize = batchSize
        config.evalBatchSize = batchSize
        config.shuffle = false
        config.paddingSide = side
        config.paddingFree = paddingFree
        config.optimizer = .init(name: .sgd, learningRate: 0)
        config.outputDir = output.path
        return config
    }

    /// Σ −log p(tokens[j] | tokens[..<j]) over j in `trained`, for one unpadded sequence.
    private func negativeLogLikelihood(_ model: LlamaForCausalLM, _ tokens: [Int], trained: Range<Int>) -> Double {
        withNoGrad {
            let n = tokens.count
            let logits = model(Tensor(ints: tokens, shape: [1, n])).reshaped([n, model.configuration.vocabularySize])
            let targets = (0..<n).map { i in i + 1 < n && trained.contains(i + 1) ? tokens[i + 1] : Tensor.ignoreIndex }
            return Double(Tensor.crossEntropy(logits: logits, targets: Tensor(ints: targets, shape: [n]), reduction: .sum).item)
        }
    }

    func testPromptMaskingCountsOnlyOutputTokens() throws {
        let records = [
            TrainingRecord(.alpaca(instruction: "Name a primary color.", input: "", output: "Red is a primary color.")),
            TrainingRecord(.alpaca(instruction: "Translate to French.", input: "Good morning",
                                   output: "Bonjour, comment allez-vous aujourd'hui ?")),
        ]
        let tokenizer = Fixtures.tokenizer
        let dataset = try TrainingDataset(records: records, tokenizer: tokenizer)
        let model = makeModel()
        let recorder = RecordingMonitor()
        let trainer = try Trainer(config: config(batchSize: 2, output: try temporaryFolder(for: self)), model: model,
                                  trainDataset: dataset, padTokenID: 0, monitors: [recorder])
        try trainer.train()

        // The prompt (BOS + Alpaca template) is masked; the response and the EOS after it are trained.
        var maskedSum = 0.0, maskedCount = 0, allSum = 0.0, allCount = 0
        for (record, example) in zip(records, dataset.examples) {
            guard case .alpaca(let instruction, let input, let output) = record.content else { return XCTFail() }
            let prompt = [tokenizer.bosTokenID!]
                + tokenizer.encode(AlpacaTemplate.prompt(instruction: instruction, input: input), addSpecialTokens: false)
            let response = tokenizer.encode(output, addSpecialTokens: false) + [tokenizer.eosTokenID!]
            XCTAssertEqual(example.tokens, prompt + response)
            maskedSum += negativeLogLikelihood(model, example.tokens, trained: prompt.count..<example.tokens.count)
            maskedCount += response.count
            allSum += negativeLogLikelihood(model, example.tokens, trained: 1..<example.tokens.count)
            allCount += example.tokens.count - 1
        }
        let loss = recorder.steps[0].loss
        XCTAssertEqual(loss, maskedSum / Double(maskedCount), accuracy: 1e-5 * loss)
        XCTAssertGreaterThan(abs(loss - allSum / Double(allCount)), 1e-2, "the test must tell masked from unmasked")
    }

    func testPaddingNeverCountsInTheLossOnEitherSide() throws {
        let records = [TrainingRecord(.tokens([1, 450, 4996, 17354, 1701], labels: nil)),
                       TrainingRecord(.tokens(Array(300..<317), labels: nil)),
                       TrainingRecord(.tokens([1, 29871, 13, 13, 2], labels: [-100, -100, 13, 13, 2]))]
        let dataset = try TrainingDataset(records: records, tokenizer: Fixtures.tokenizer)
        let model = makeModel()
        var sum = 0.0, count = 0
        for example in dataset.examples {
            let first = example.labels.firstIndex { $0 != Tensor.ignoreIndex }!
            sum += negativeLogLikelihood(model, example.tokens, trained: max(1, first)..<example.tokens.count)
            count += example.tokens.count - max(1, first)
        }
        for (side, paddingFree) in [(PaddingSide.right, false), (.left, false), (.right, true)] {
            let recorder = RecordingMonitor()
            let config = config(batchSize: 3, side: side, paddingFree: paddingFree, output: try temporaryFolder(for: self))
            let trainer = try Trainer(config: config, model: model, trainDataset: dataset, padTokenID: 0, monitors: [recorder])
            try trainer.train()
            let what = paddingFree ? "padding_free" : "\(side) padding"
            XCTAssertEqual(recorder.steps[0].loss, sum / Double(count), accuracy: 1e-5, what)
            XCTAssertEqual(recorder.steps[0].tokens, dataset.tokenCount, "tokens exclude padding, \(what)")
        }
    }

    func testEvaluationPerplexityIsExpOfTotalNLLOverPredictedTokens() throws {
        let records = (0..<5).map { i in TrainingRecord(.tokens(Array((100 + i)..<(104 + 3 * i)), labels: nil)) }
        let dataset = try TrainingDataset(records: records, tokenizer: Fixtures.tokenizer)
        let model = makeModel()
        var sum = 0.0, count = 0
        for example in dataset.examples {
            sum += negativeLogLikelihood(model, example.tokens, trained: 1..<example.tokens.count)
            count += example.tokens.count - 1
        }
        for paddingFree in [false, true] {
            let config = config(batchSize: 2, paddingFree: paddingFree, output: try temporaryFolder(for: self))
            let trainer = try Trainer(config: config, model: model, trainDataset: dataset, evaluationDataset: dataset, padTokenID: 0)
            let metrics = try trainer.evaluate()
            XCTAssertEqual(metrics["loss"]!, sum / Double(count), accuracy: 1e-5, "padding_free: \(paddingFree)")
            XCTAssertEqual(metrics["perplexity"]!, Foundation.exp(sum / Double(count)), accuracy: 1e-4 * metrics["perplexity"]!)
            XCTAssertEqual(trainer.state.evaluations, [EvaluationRecord(step: 0, metrics: metrics)])
        }
    }

    /// A padding-free batch trains what its padded batch trains: the same summed loss and the same gradient of every
    /// parameter, within 1e-6 (measured: 2.3e-7; the products sum over the tokens in another order), with grouped-query
    /// attention, with and without a sliding window shorter than the examples, one example a single token long.
    func testPaddingFreeBatchHasThePaddedBatchsLossAndGradients() {
        let examples = [[1, 450, 4996, 17354, 1701], Array(300..<317), [1, 29871, 13], [7]].map {
            TrainingExample(tokens: $0, labels: $0)
        }
        let padded = Padder(padTokenID: 0).pad(examples)
        for window in [nil, 3] {
            let configuration = LlamaConfiguration(
                hiddenSize: 16, intermediateSize: 32, hiddenLayers: 2, attentionHeads: 4, keyValueHeads: 2,
                vocabularySize: Fixtures.tokenizer.vocabularySize, maxPositionEmbeddings: 512, initializerRange: 0.5,
                slidingWindow: window)
            func lossAndGradients(_ batch: PaddedBatch) -> (loss: Double, gradients: [[Float]]) {
                let model = LlamaForCausalLM(configuration, seed: 5)
                for p in model.parameters { p.requiresGrad = true }
                let loss = batch.summedNegativeLogLikelihood(of: model, targets: batch.nextTokenTargets(for: model))
                loss.backward()
                return (Double(loss.item), model.parameters.map { $0.grad!.floats() })
            }
            let expected = lossAndGradients(padded), actual = lossAndGradients(padded.flattened())
            XCTAssertEqual(actual.loss, expected.loss, accuracy: 1e-6 * expected.loss, "window \(window ?? 0)")
            for (a, e) in zip(actual.gradients, expected.gradients) {
                let scale = max(1e-3, e.map(abs).max()!)
                XCTAssertLessThan(zip(a, e).map { abs($0 - $1) }.max()! / scale, 1e-6, "window \(window ?? 0)")
            }
        }
    }

    /// GLM-6B numbers its positions from each row's own tokens, and prompt tuning puts its virtual tokens in front of
    /// every row, so both take one sequence per row: `padding_free` is refused with a message rather than trained wrong.
    func testPaddingFreeIsRefusedForAModelThatTakesOneSequencePerRow() throws {
        let model = ChatGLM6BForConditionalGeneration(
            LlamaConfiguration(modelType: .chatglm, hiddenSize: 16, intermediateSize: 32, hiddenLayers: 1, attentionHeads: 2,
                               keyValueHeads: 2, vocabularySize: Fixtures.tokenizer.vocabularySize), seed: 1)
        XCTAssertFalse(model.packsSequences)
        XCTAssertTrue(makeModel().packsSequences)
        let dataset = try TrainingDataset(records: [TrainingRecord(.tokens([1, 450, 4996], labels: nil))],
                                          tokenizer: Fixtures.tokenizer)
        let config = config(batchSize: 1, paddingFree: true, output: try temporaryFolder(for: self))
        XCTAssertThrowsError(try Trainer(config: config, model: model, trainDataset: dataset, padTokenID: 0)) {
            XCTAssertTrue("\($0)".contains("padding_free: ChatGLM6BForConditionalGeneration takes one sequence per row"), "\($0)")
        }
        let prompted = makeModel()
        try prompted.addAdapter(.promptTuning(PromptTuningConfiguration(virtualTokenCount: 3)))
        XCTAssertThrowsError(try Trainer(config: config, model: prompted, trainDataset: dataset, padTokenID: 0)) {
            XCTAssertTrue("\($0)".contains("padding_free: prompt tuning puts its virtual tokens in front of every row"), "\($0)")
        }
    }
}
