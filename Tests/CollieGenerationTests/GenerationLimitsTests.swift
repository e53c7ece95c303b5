import CollieEngine
import CollieModels
@testable import CollieGeneration
import XCTest

/// Generation parameters from strangers (the command line, a request): any `Int` or `Double` gives a result or
/// an error, never a trap, an allocation the machine cannot make, or tokens drawn from NaN.
final class GenerationLimitsTests: XCTestCase {
    func testHugeMaxNewTokensIsAContextErrorNotATrap() throws {
        // Before: prompt.count + maxNewTokens overflowed (Generator.swift:87) and trapped.
        let generator = Generator(model: try Fixtures.model("llama_mha"))
        for maxNewTokens in [Int.max, Int.max - 1, 1 << 62] {
            XCTAssertThrowsError(try generator.generate(prompts: [[1, 2]], parameters: .init(maxNewTokens: maxNewTokens))) { error in
                XCTAssertEqual(error as? GenerationError, .contextExceeded(promptTokens: 2, maxNewTokens: maxNewTokens, context: 256))
            }
        }
    }

    func testKVCacheThatCannotFitInMemoryIsAnErrorBeforeAllocating() throws {
        // A context of 2^31 positions that a request may fill: the cache would need terabytes.
        let configuration = LlamaConfiguration(hiddenSize: 8, intermediateSize: 8, hiddenLayers: 64, attentionHeads: 2,
                                               keyValueHeads: 2, vocabularySize: 16, maxPositionEmbeddings: Int(Int32.max))
        let generator = Generator(model: LlamaForCausalLM(configuration))
        XCTAssertThrowsError(try generator.generate(prompts: [[1]], parameters: .init(maxNewTokens: 1 << 30))) { error in
            XCTAssertTrue("\(error)".contains("KV cache") && "\(error)".contains("memory"), "\(error)")
        }
        XCTAssertNil(KVCache.byteCount(configuration: configuration, batchSize: Int.max, capacity: 2))
    }

    func testVanishingTemperatureDecodesGreedilyInsteadOfDrawingFromNaN() throws {
        // Before: Float(1e-300) is 0, the logits became ±inf/NaN and every drawn token was 0.
        let generator = Generator(model: try Fixtures.model("llama_gqa"))
        let prompts = [[1, 17, 42, 5], [1, 9, 8]]
        let greedy = try generator.generate(prompts: prompts, parameters: .init(maxNewTokens: 12))
        for temperature in [1e-300, 5e-324, 1e-45, 1e-38] {
            let sampled = try generator.generate(prompts: prompts, parameters: .init(maxNewTokens: 12, temperature: temperature, seed: 3))
            XCTAssertEqual(sampled.map(\.tokens), greedy.map(\.tokens), "temperature \(temperature)")
        }
    }

    func testExtremeLogitsAndPenaltiesNeverGiveNaN() {
        var logits: [Float] = [0, 2, -3, .greatestFiniteMagnitude, -.greatestFiniteMagnitude]
        LogitsProcessing.penalizeRepetition(&logits, seen: [true, true, true, false, false], penalty: 1e-300)
        XCTAssertEqual(logits[0], 0, "0 / a tiny penalty stays 0, not 0/0")
        XCTAssertFalse(logits.contains { $0.isNaN })
        LogitsProcessing.scale(&logits, temperature: 1e-300)
        XCTAssertFalse(logits.contains { $0.isNaN }, "\(logits)")
        XCTAssertEqual(logits.filter { $0 == 0 }.count, 1, "one most likely token keeps 0: \(logits)")
        var generator = RandomGenerator(seed: 1)
        let row: [Float] = [1, 3e38, -3e38, 2]
        for temperature in [1e-300, 0.5, 1e30] {
            let token = row.withUnsafeBufferPointer {
                LogitsProcessing.chooseToken($0, seen: [], parameters: .init(temperature: temperature), generator: &generator)
            }
            XCTAssertEqual(token, 1, "temperature \(temperature)")
        }
    }

    func testNonFiniteLogitsAreAnErrorNotTokenZero() throws {
        // Before: argmax over NaN logits returned 0 every step, as did sampling.
        let model = try Fixtures.model("llama_mha")
        model.norm.weight.assignValues(from: Tensor.full([model.configuration.hiddenSize], .nan))
        for parameters in [GenerationParameters(maxNewTokens: 3), .init(maxNewTokens: 3, temperature: 1)] {
            XCTAssertThrowsError(try Generator(model: model).generate(prompts: [[1, 2], [3]], parameters: parameters)) { error in
                XCTAssertEqual(error as? GenerationError, .nonFiniteLogits(prompt: 0, newToken: 1))
                XCTAssertTrue("\(error)".contains("not finite"), "\(error)")
            }
        }
    }

    func testPadTokenOutsideTheVocabularyStillPadsABatch() throws {
        // config.json files carry pad_token_id -1; padded slots are never attended, so any real id pads.
        var configuration = try Fixtures.model("llama_mha").configuration
        configuration.padTokenID = -1
        let model = LlamaForCausalLM(configuration, seed: 1)
        let alone = try Generator(model: model).generate(prompts: [[3]], parameters: .init(maxNewTokens: 4))
        let batched = try Generator(model: model).generate(prompts: [[1, 2, 5], [3]], parameters: .init(maxNewTokens: 4))
        XCTAssertEqual(batched[1].tokens, alone[0].tokens)
    }
}
