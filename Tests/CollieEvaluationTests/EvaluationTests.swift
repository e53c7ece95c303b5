import CollieEngine
import CollieMetrics
import CollieModels
import CollieTestSupport
import CollieTokenizers
@testable import CollieTraining
@testable import CollieEvaluation
import Foundation
import XCTest

/// Generation and classification evaluators score what their generator produced with the metrics of
/// CollieMetrics; the trainer runs evaluators on its evaluation schedule. (`collie eval` and `collie metrics` are
/// CollieCommandTests' `EvalCommandTests` and `MetricsCommandTests`.)
final class EvaluationTests: XCTestCase {
    private let tokenizer = Fixtures.tokenizer
    /// A very small random LLaMA over the LLaMA-2 vocabulary (the same in every test).
    private let model = LlamaForCausalLM(
        LlamaConfiguration(hiddenSize: 16, intermediateSize: 32, hiddenLayers: 1, attentionHeads: 2, keyValueHeads: 2,
                           rmsNormEpsilon: 1e-6, vocabularySize: Fixtures.tokenizer.vocabularySize, maxPositionEmbeddings: 64,
                           initializerRange: 0.5, bosTokenID: 1, eosTokenIDs: [2], padTokenID: nil), seed: 1)

    private let records = [
        GenerationRecord(text: "Translate: the cat", targets: ["Pisica stă pe covor."]),
        GenerationRecord(text: "Translate: the dog", targets: ["Câinele latră tare.", "Câinele latră."]),
        GenerationRecord(text: "Translate: a bird", targets: ["O pasăre cântă dimineața devreme."]),
    ]

    /// A generator that answers record i with `answers[i]` (found by the prompt's text).
    private func scripted(_ answers: [String]) -> ContinuationGenerator {
        let prompts = records.map { SpecialTokens(tokenizer).prefix + tokenizer.encode($0.text, addSpecialTokens: false) }
        return { [tokenizer] _, prompt, _ in
            let index = try XCTUnwrap(prompts.firstIndex(of: prompt), "unexpected prompt")
            return tokenizer.encode(answers[index], addSpecialTokens: false) + [tokenizer.eosTokenID!]
        }
    }

    func testGenerationEvaluatorScoresDecodedPredictionsAgainstTargets() throws {
        let answers = ["Pisica stă pe covor.", "Câinele doarme.", "O pasăre cântă."]
        let folder = try temporaryFolder(for: self)
        let decodeURL = folder.appendingPathComponent("decoded.jsonl")
        let rouge = ROUGE(types: [.n(1), .longestCommonSubsequence])
        let evaluator = try GenerationEvaluator(name: "wmt", records: records, tokenizer: tokenizer,
                                                metrics: [.bleu(BLEU()), .rouge(rouge), .exactMatch, .decode(decodeURL)],
                                                generator: scripted(answers))
        let metrics = try evaluator.evaluate(model)
        XCTAssertEqual(evaluator.decoded.map(\.prediction), answers, "EOS dropped, text decoded")
        let bleu = try BLEU().corpusScore(hypotheses: answers, references: records.map(\.targets)).score
        XCTAssertEqual(metrics["bleu"], bleu)
        XCTAssertGreaterThan(bleu, 10)
        var rougeL = 0.0
        for (answer, record) in zip(answers, records) {
            rougeL += try rouge.score(targets: record.targets, prediction: answer)[.longestCommonSubsequence]!.fmeasure
        }
        XCTAssertEqual(metrics["rougeL"]!, rougeL / 3, accuracy: 1e-15)
        XCTAssertEqual(metrics["accuracy"], 1.0 / 3, "one exact match")
        XCTAssertEqual(try DecodedOutputs.read(from: decodeURL),
                       zip(answers, records).map { DecodedPair(prediction: $0, target: $1.targets[0]) })
        XCTAssertEqual(try evaluator.prefixedMetrics(model)["wmt/bleu"], bleu)
    }

    /// Greedy decoding by recomputing the whole sequence for every new token (no KV cache).
    private func recomputedGreedy(_ model: LlamaForCausalLM, _ prompt: [Int], count: Int) -> [Int] {
        var tokens = prompt
        withNoGrad {
            for _ in 0..<count {
                let logits = model(Tensor(ints: tokens, shape: [1, tokens.count]))
                tokens.append(logits.slice(axis: 1, (tokens.count - 1)..<tokens.count).argmax(axis: -1).ints()[0])
            }
        }
        return Array(tokens.dropFirst(prompt.count))
    }

    func testGreedyGeneratorWithTheKVCacheEqualsRecomputingTheSequence() throws {
        let model = LlamaForCausalLM(
            LlamaConfiguration(hiddenSize: 32, intermediateSize: 64, hiddenLayers: 2, attentionHeads: 4, keyValueHeads: 2,
                               vocabularySize: 300, maxPositionEmbeddings: 128, initializerRange: 0.5, eosTokenIDs: [2]), seed: 4)
        let prompt = [1, 17, 250, 9, 33]
        let cached = try greedyGenerator(model, prompt, GenerationSettings(maxNewTokens: 60, stopTokenIDs: []))
        XCTAssertEqual(cached.count, 60)
        XCTAssertEqual(cached, recomputedGreedy(model, prompt, count: 60))
        XCTAssertGreaterThan(Set(cached).count, 5, "a continuation that varies, so the comparison means something")
        // A stop token ends the continuation and is kept.
        let stop = cached[10]
        let first = cached.firstIndex(of: stop)!
        XCTAssertEqual(try greedyGenerator(model, prompt, GenerationSettings(maxNewTokens: 60, stopTokenIDs: [stop])),
                       Array(cached[...first]))
    }

    func testGenerationEvaluatorNeedsTargetsToScore() {
        XCTAssertThrowsError(try GenerationEvaluator(name: "x", records: [GenerationRecord(text: "a")], tokenizer: tokenizer,
                                                     metrics: [.bleu(BLEU())])) { error in
            XCTAssertTrue("\(error)".contains("without \"target\""), "\(error)")
        }
    }

    func testHelmStyleMatchesTheOptionTheAnswerStartsWith() {
        let options = [" negative", " positive", " positive!"]
        XCTAssertEqual(ClassificationEvaluator.helmChoice(answer: " Positive review", options: options), 1)
        XCTAssertEqual(ClassificationEvaluator.helmChoice(answer: "positive! yes", options: options), 2, "the longest match")
        XCTAssertEqual(ClassificationEvaluator.helmChoice(answer: "neutral", options: options), -1)
    }

    func testHelmClassificationScoresGeneratedAnswers() throws {
        let records = [ClassificationRecord(input: "Great film. Sentiment:", options: [" negative", " positive"], target: 1),
                       ClassificationRecord(input: "Awful film. Sentiment:", options: [" negative", " positive"], target: 0)]
        let evaluator = try ClassificationEvaluator(name: "imdb", records: records, tokenizer: tokenizer, style: .helm,
                                                    generator: { [tokenizer] _, _, _ in tokenizer.encode(" positive", addSpecialTokens: false) })
        let metrics = try evaluator.evaluate(model)
        XCTAssertEqual(evaluator.choices, [1, 1])
        XCTAssertEqual(metrics["accuracy"], 0.5)
        let scores = try ClassificationScores(predictions: [1, 1], references: [1, 0])
        XCTAssertEqual(metrics["f1_macro"], scores.macro.f1)
    }

    func testHarnessClassificationScoresOnlyTheOptionTokens() throws {
        let record = ClassificationRecord(input: "Review: fine.\nSentiment:", options: [" negative", " positive"], target: 1)
        let evaluator = try ClassificationEvaluator(name: "imdb", records: [record], tokenizer: tokenizer, style: .harness)
        let (context, options) = try evaluator.tokenized(record)
        XCTAssertEqual(context, [1] + tokenizer.encode(record.input, addSpecialTokens: false))
        for (option, text) in zip(options, record.options) {
            XCTAssertEqual(context + option, [1] + tokenizer.encode(record.input + text, addSpecialTokens: false))
        }
        let (choice, means) = ClassificationEvaluator.harnessChoice(context: context, options: options, model: model)
        _ = try evaluator.evaluate(model)
        XCTAssertEqual(evaluator.choices, [choice])
        XCTAssertEqual(choice, means[0] <= means[1] ? 0 : 1)
    }

    func testHarnessContextEndsWithTheGLMPromptSuffixAndOptionsAreEncodedAlone() throws {
        let glm = try Tokenizer(contentsOf: TestPaths.tokenizers.appendingPathComponent("chatglm6b"))
        let record = ClassificationRecord(input: "问：天空是什么颜色？", options: ["蓝色", "绿色"], target: 0)
        let evaluator = try ClassificationEvaluator(name: "colors", records: [record], tokenizer: glm, style: .harness)
        let (context, options) = try evaluator.tokenized(record)
        XCTAssertEqual(context, glm.encode(record.input, addSpecialTokens: false) + [141, 144], "prompt [gMASK] <sop>")
        XCTAssertEqual(options, record.options.map { glm.encode($0, addSpecialTokens: false) })
    }

    func testTrainerRunsConfiguredEvaluatorsOnItsSchedule() throws {
        let output = try temporaryFolder(for: self)
        let evalData = Fixtures.folder.appendingPathComponent("eval.jsonl").path
        let config = try Fixtures.config("adamw", output: output, overrides: [
            "eval_per_n_steps=2", "eval_on_start=false",
            "evaluators=[{name: heldout, type: perplexity, data: \(evalData)}]",
        ])
        let recorder = RecordingMonitor()
        let trainer = try TrainingSetup(config: config).makeTrainer(monitors: [recorder])
        XCTAssertEqual(trainer.evaluators.map(\.name), ["heldout"])
        try trainer.train()
        let evaluations = trainer.state.evaluations
        XCTAssertEqual(evaluations.map(\.step), [2, 4, 6], "every 2 updates, and at the end (eval_per_n_epochs: 2)")
        for evaluation in evaluations {
            // The same records and batch size as eval_data: the evaluator's perplexity is the trainer's own.
            XCTAssertEqual(evaluation.metrics["heldout/perplexity"]!, evaluation.metrics["perplexity"]!, accuracy: 1e-9)
            XCTAssertNotNil(evaluation.metrics["heldout/batch_mean_perplexity"])
        }
        let monitored = recorder.events.compactMap { if case .evaluation(_, let m) = $0 { m } else { nil } }
        XCTAssertEqual(monitored.count, 3)
        XCTAssertNotNil(monitored.first?["heldout/loss"])
    }

    /// With prompt tuning the logits cover the virtual positions too; the evaluators score the real tokens as the
    /// trainer's own evaluation does.
    func testPerplexityEvaluatorScoresAPromptTunedModelAsTheTrainer() throws {
        let evalData = Fixtures.folder.appendingPathComponent("eval.jsonl").path
        let config = try Fixtures.config("adamw", output: try temporaryFolder(for: self), overrides: [
            "peft_config={peft_type: PROMPT_TUNING, num_virtual_tokens: 3}",
            "evaluators=[{name: heldout, type: perplexity, data: \(evalData)}]",
        ])
        let trainer = try TrainingSetup(config: config).makeTrainer()
        XCTAssertEqual(trainer.model.promptEmbedding?.virtualTokenCount, 3)
        let metrics = try trainer.evaluate()
        XCTAssertEqual(metrics["heldout/perplexity"]!, metrics["perplexity"]!, accuracy: 1e-9)
    }

    /// `collie eval` loads the model as `collie train` does: `peft_config` adds the same (seeded) adapter, and a
    /// saved adapter folder given instead is applied with its own weights.
    func testEvaluationSetupLoadsTheModelAsTrainingDoesWithAnAdapter() throws {
        let evalData = Fixtures.folder.appendingPathComponent("eval.jsonl").path
        let output = try temporaryFolder(for: self)
        let lora = try Fixtures.config("adamw", output: output, overrides: [
            "peft_config={peft_type: LORA, r: 2, lora_alpha: 4, target_modules: [q_proj, v_proj]}",
            "evaluators=[{name: heldout, type: perplexity, data: \(evalData)}]",
        ])
        let training = try TrainingSetup(config: lora)
        let evaluation = try EvaluationSetup(config: lora)
        XCTAssertEqual(evaluation.model.loraAdapters.map(\.path), training.model.loraAdapters.map(\.path))
        XCTAssertFalse(evaluation.model.loraAdapters.isEmpty)
        XCTAssertEqual(evaluation.model.adapterParameters.map { $0.tensor.floats() },
                       training.model.adapterParameters.map { $0.tensor.floats() }, "the same seeded adapter")

        // A trained adapter: B no longer zero, so it changes the model's perplexity.
        for (_, adapter) in training.model.loraAdapters {
            adapter.b.assignValues(from: Tensor(Array(repeating: Float(0.05), count: adapter.b.count), shape: adapter.b.shape))
        }
        let folder = output.appendingPathComponent("adapter")
        try training.model.saveAdapter(to: folder)
        var plain = lora
        plain.peftConfig = nil
        let withSaved = try EvaluationSetup(config: plain, adapter: folder)
        XCTAssertEqual(withSaved.model.adapterParameters.map { $0.tensor.floats() },
                       training.model.adapterParameters.map { $0.tensor.floats() }, "the saved adapter's weights")
        let adapted = try withSaved.run()["heldout/perplexity"]!
        let base = try EvaluationSetup(config: plain).run()["heldout/perplexity"]!
        XCTAssertNotEqual(adapted, base)
        XCTAssertThrowsError(try EvaluationSetup(config: plain, adapter: output.appendingPathComponent("missing"))) { error in
            XCTAssertTrue("\(error)".contains("adapter_config.json"), "\(error)")
        }
    }

    func testCallbacksMonitorAnEvaluatorsMetric() throws {
        let evalData = Fixtures.folder.appendingPathComponent("eval.jsonl").path
        func config(monitor: String) throws -> CollieConfig {
            try Fixtures.config("adamw", output: try temporaryFolder(for: self), overrides: [
                "eval_per_n_steps=1", "eval_on_start=false",
                "evaluators=[{name: heldout, type: perplexity, data: \(evalData)}]",
                "callbacks={early_stop: {monitor: \(monitor), mode: min, patience: 1}}",
            ])
        }
        let trainer = try TrainingSetup(config: try config(monitor: "eval_heldout/perplexity")).makeTrainer()
        try trainer.train()
        // Early stop after the first evaluation whose heldout perplexity does not improve on the best so far.
        var best = Double.infinity, expectedStop: Int?
        for evaluation in trainer.state.evaluations {
            let value = evaluation.metrics["heldout/perplexity"]!
            if value < best { best = value } else { expectedStop = evaluation.step; break }
        }
        XCTAssertEqual(trainer.state.stoppedEarly, expectedStop != nil)
        XCTAssertEqual(trainer.state.evaluations.last?.step, expectedStop ?? trainer.state.totalSteps)
        XCTAssertNotNil(expectedStop, "the fixture's heldout perplexity rises at some update")

        // An evaluator that is not configured is an error naming the key and the choices…
        XCTAssertThrowsError(try TrainingSetup(config: try config(monitor: "eval_xsum/rouge1")).makeTrainer()) { error in
            XCTAssertEqual("\(error)", "callbacks.early_stop.monitor: unknown metric 'eval_xsum/rouge1'; use one of "
                           + "eval_loss, eval_perplexity, loss, eval_heldout/<metric>")
        }
        // …and a metric the evaluator does not produce fails at the first evaluation, listing what it produced.
        let misspelt = try TrainingSetup(config: try config(monitor: "eval_heldout/perplexty")).makeTrainer()
        XCTAssertThrowsError(try misspelt.train()) { error in
            XCTAssertEqual("\(error)", "monitored metric 'eval_heldout/perplexty': the evaluation produced "
                           + "eval_heldout/batch_mean_perplexity, eval_heldout/loss, eval_heldout/perplexity")
        }
    }

    func testEvaluatorConfigErrorsNameTheKey() throws {
        let output = try temporaryFolder(for: self)
        XCTAssertThrowsError(try Fixtures.config("adamw", output: output, overrides: [
            "evaluators=[{type: generation, data: x.jsonl, metrics: [blue]}]"])) { error in
            XCTAssertTrue("\(error)".contains("evaluators[0].metrics[0]: unknown value \"blue\"; expected one of bleu"), "\(error)")
        }
        XCTAssertThrowsError(try Fixtures.config("adamw", output: output, overrides: [
            "evaluators=[{type: generation, data: x.jsonl, metrics: [rouge], rouge: {types: [rougeX]}}]"])) { error in
            XCTAssertTrue("\(error)".contains("evaluators[0].rouge.types"), "\(error)")
        }
        let config = try Fixtures.config("adamw", output: output, overrides: [
            "evaluators=[{type: classification, data: \(output.path)/missing.jsonl}]"])
        XCTAssertThrowsError(try TrainingSetup(config: config).makeTrainer()) { error in
            XCTAssertTrue("\(error)".hasPrefix("evaluators[0].data: ") && "\(error)".contains("missing.jsonl"), "\(error)")
        }
    }

    func testTheEvalExampleConfigsLoadTheBundledSamples() throws {
        let expected = ["xsum-rouge": ("xsum", 10), "wmt-bleu": ("wmt16_en_ro", 10), "imdb-classification": ("imdb", 15)]
        for (file, (name, count)) in expected {
            let url = TestPaths.repository.appendingPathComponent("examples/eval/\(file).yaml")
            let config = try CollieConfig.load(from: url)
            let evaluators = try EvaluationSetup.makeEvaluators(config: config, tokenizer: tokenizer,
                                                                outputDirectory: try temporaryFolder(for: self), source: url.path)
            XCTAssertEqual(evaluators.map(\.name), [name], file)
            let records = (evaluators[0] as? GenerationEvaluator)?.records.count
                ?? (evaluators[0] as? ClassificationEvaluator)?.records.count
            XCTAssertEqual(records, count, file)
        }
        let imdb = try XCTUnwrap(try EvaluationSetup.makeEvaluators(
            config: CollieConfig.load(from: TestPaths.repository.appendingPathComponent("examples/eval/imdb-classification.yaml")),
            tokenizer: tokenizer, outputDirectory: try temporaryFolder(for: self)).first as? ClassificationEvaluator)
        XCTAssertEqual(imdb.records.map(\.target).filter { $0 == 1 }.count, 8, "8 positive and 7 negative reviews")
    }
}
