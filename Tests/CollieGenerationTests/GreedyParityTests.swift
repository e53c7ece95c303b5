import CollieEngine
import CollieGeneration
import CollieModels
import XCTest

/// Greedy continuations equal `transformers`' `generate(do_sample=False)` on tiny random models.
final class GreedyParityTests: XCTestCase {
    struct Expected: Decodable {
        let prompt: [Int]
        let greedy: [Int]
        let batch_prompts: [[Int]]
        let batch_greedy: [[Int]]
        let repetition_penalty: Double
        let greedy_with_penalty: [Int]
    }

    /// The fixture's cases: one per model variant, all present.
    func expected() throws -> [String: Expected] {
        let cases = try Fixtures.json("greedy.json", as: [String: Expected].self)
        XCTAssertEqual(Set(cases.keys), Set(Fixtures.variants))
        return cases
    }

    func testGreedyContinuationMatchesTransformers() throws {
        for (name, case_) in try expected() {
            let generator = Generator(model: try Fixtures.model(name))
            let result = try generator.generate(prompts: [case_.prompt], parameters: .init(maxNewTokens: case_.greedy.count))
            XCTAssertGreaterThanOrEqual(case_.greedy.count, 64)
            XCTAssertEqual(result[0].tokens, case_.greedy, name)
            XCTAssertEqual(result[0].finishReason, .length, name)
        }
    }

    func testLeftPaddedBatchMatchesTransformers() throws {
        for (name, case_) in try expected() {
            let generator = Generator(model: try Fixtures.model(name))
            let result = try generator.generate(prompts: case_.batch_prompts,
                                                parameters: .init(maxNewTokens: case_.batch_greedy[0].count))
            XCTAssertEqual(result.map(\.tokens), case_.batch_greedy, name)
        }
    }

    func testRepetitionPenaltyMatchesTransformers() throws {
        for (name, case_) in try expected() {
            let generator = Generator(model: try Fixtures.model(name))
            let parameters = GenerationParameters(maxNewTokens: case_.greedy_with_penalty.count,
                                                  repetitionPenalty: case_.repetition_penalty)
            XCTAssertEqual(try generator.generate(prompts: [case_.prompt], parameters: parameters)[0].tokens,
                           case_.greedy_with_penalty, name)
        }
    }

    /// The logits of every cached decoding step equal a full forward pass over the whole sequence.
    func testKVCacheDecodingEqualsRecomputation() throws {
        for name in Fixtures.variants {
            let model = try Fixtures.model(name)
            let tokens = [1, 17, 42, 5, 88, 23, 9, 60, 61, 2, 33, 70, 12, 13, 14, 15, 16, 40, 41, 42, 43, 44, 45, 46]
            let full = withNoGrad { model(Tensor(ints: tokens, shape: [1, tokens.count])) }
            let v = model.configuration.vocabularySize
            let reference = full.floats()
            let cache = KVCache(configuration: model.configuration, batchSize: 1, capacity: tokens.count)
            // A 6-token prefill, then one token at a time.
            var logits = model.nextTokenLogits([Array(tokens[0..<6])], cache: cache).floats()
            var maxError: Float = 0
            for position in 5..<tokens.count {
                let row = Array(reference[(position * v)..<((position + 1) * v)])
                maxError = max(maxError, zip(row, logits).map { abs($0 - $1) }.max()!)
                if position + 1 < tokens.count {
                    logits = model.nextTokenLogits([[tokens[position + 1]]], cache: cache).floats()
                }
            }
            XCTAssertEqual(cache.length, tokens.count)
            XCTAssertLessThan(maxError, 1e-4, name)
        }
    }

    /// A left-padded row decodes exactly as the same prompt alone.
    func testPaddedRowDecodesLikeTheUnpaddedPrompt() throws {
        let model = try Fixtures.model("llama_gqa")
        let generator = Generator(model: model)
        let short = [1, 30, 61], long = [1, 45, 3, 77, 18, 50, 64]
        let batch = try generator.generate(prompts: [short, long], parameters: .init(maxNewTokens: 20))
        let alone = try generator.generate(prompts: [short], parameters: .init(maxNewTokens: 20))
        XCTAssertEqual(batch[0].tokens, alone[0].tokens)
    }

    /// A LoRA adapter (non-zero B) applies in cached decoding exactly as in the full forward pass.
    func testKVCacheDecodingAppliesLoRAAdapters() throws {
        let model = try Fixtures.model("llama_gqa")
        try model.addAdapter(.lora(LoRAConfiguration(rank: 4, alpha: 8)), seed: 5)
        var generator = RandomGenerator(seed: 9)
        for (_, adapter) in model.loraAdapters {
            let values = (0..<adapter.b.count).map { _ in Float(generator.nextNormal() * 0.1) }
            adapter.b.pointer(as: Float.self).update(from: values, count: values.count)
        }
        let tokens = [1, 17, 42, 5, 88, 23, 9, 60, 61, 2, 33, 70]
        let full = withNoGrad { model(Tensor(ints: tokens, shape: [1, tokens.count])) }.floats()
        let v = model.configuration.vocabularySize
        let cache = KVCache(configuration: model.configuration, batchSize: 1, capacity: tokens.count)
        _ = model.nextTokenLogits([Array(tokens[0..<11])], cache: cache)
        let last = model.nextTokenLogits([[tokens[11]]], cache: cache).floats()
        let expected = Array(full[(11 * v)..<(12 * v)])
        XCTAssertLessThan(zip(last, expected).map { abs($0 - $1) }.max()!, 1e-4)

        let base = try Fixtures.model("llama_gqa")
        let withoutAdapter = withNoGrad { base(Tensor(ints: tokens, shape: [1, tokens.count])) }.floats()
        XCTAssertGreaterThan(zip(withoutAdapter[(11 * v)..<(12 * v)], expected).map { abs($0 - $1) }.max()!, 1e-2,
                             "the adapter must change the logits for this test to mean anything")
    }

    /// A PEFT prompt-tuning adapter: each prompt's greedy continuation equals PEFT's forward picking every token
    /// (virtual tokens at positions 0..<4, the prompt after them), alone and as rows of a left-padded batch; the
    /// cached logits equal the full forward's real-token logits.
    func testPromptTuningAdapterDecodesAsPEFTsForward() throws {
        struct Expected: Decodable { let base: String, adapter: String, prompts: [[Int]], greedy: [[Int]] }
        let expected = try Fixtures.json("prompt_tuning.json", as: Expected.self)
        let model = try Fixtures.model(expected.base)
        try model.loadAdapter(from: Fixtures.folder.appendingPathComponent("models/\(expected.adapter)"))
        XCTAssertEqual(model.promptEmbedding?.virtualTokenCount, 4)
        let generator = Generator(model: model)
        for (prompt, greedy) in zip(expected.prompts, expected.greedy) {
            let result = try generator.generate(prompts: [prompt], parameters: .init(maxNewTokens: greedy.count))
            XCTAssertEqual(result[0].tokens, greedy)
        }
        let batch = try generator.generate(prompts: expected.prompts, parameters: .init(maxNewTokens: expected.greedy[0].count))
        XCTAssertEqual(batch.map(\.tokens), expected.greedy)

        let tokens = expected.prompts[0] + expected.greedy[0].prefix(8)
        let full = withNoGrad { model(Tensor(ints: tokens, shape: [1, tokens.count])) }.floats()
        let v = model.configuration.vocabularySize
        let cache = KVCache(model: model, batchSize: 1, tokens: tokens.count)
        var logits = model.nextTokenLogits([expected.prompts[0]], cache: cache).floats()
        var maxError: Float = 0
        for position in (expected.prompts[0].count - 1)..<tokens.count {
            maxError = max(maxError, zip(full[(position * v)..<((position + 1) * v)], logits).map { abs($0 - $1) }.max()!)
            if position + 1 < tokens.count { logits = model.nextTokenLogits([[tokens[position + 1]]], cache: cache).floats() }
        }
        XCTAssertEqual(cache.length, 4 + tokens.count)
        XCTAssertLessThan(maxError, 1e-4)

        let base = Generator(model: try Fixtures.model(expected.base))
        XCTAssertNotEqual(try base.generate(prompts: [expected.prompts[0]], parameters: .init(maxNewTokens: 72))[0].tokens,
                          expected.greedy[0], "the adapter must change the continuation for this test to mean anything")
        // The virtual tokens count against the context (which the server's request checks read too).
        let context = model.configuration.maxPositionEmbeddings
        XCTAssertEqual(generator.contextLength, context - 4)
        XCTAssertThrowsError(try generator.generate(prompts: [[1, 2]], parameters: .init(maxNewTokens: context - 3)))
        XCTAssertNoThrow(try generator.validate([[1, 2]], maxNewTokens: context - 6))
    }
}
