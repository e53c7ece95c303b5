import CollieEngine
import CollieModels
@testable import CollieGeneration
import XCTest

/// Logits processors equal `transformers`' and sampling is seeded, bounded and stoppable.
final class SamplingTests: XCTestCase {
    struct Processors: Decodable {
        let scores: [[Float]]
        let input_ids: [[Int]]
        let penalty: Float, temperature: Float, top_k: Int, top_p: Double
        let after_repetition_penalty, after_temperature, after_top_k, after_top_p: [[Float?]]
        let only_top_k, only_top_p: [[Float?]]
    }

    func assertClose(_ actual: [Float], _ expected: [Float?], _ message: String, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, message, line: line)
        for (a, e) in zip(actual, expected) {
            if let e { XCTAssertEqual(a, e, accuracy: 1e-5 * max(1, abs(e)), message, line: line) }
            else { XCTAssertEqual(a, -.infinity, message, line: line) }
        }
    }

    func testLogitsProcessorsMatchTransformers() throws {
        let p = try Fixtures.json("processors.json", as: Processors.self)
        for (row, scores) in p.scores.enumerated() {
            var seen = [Bool](repeating: false, count: scores.count)
            for id in p.input_ids[row] { seen[id] = true }
            var logits = scores
            LogitsProcessing.penalizeRepetition(&logits, seen: seen, penalty: Double(p.penalty))
            assertClose(logits, p.after_repetition_penalty[row], "penalty row \(row)")
            LogitsProcessing.scale(&logits, temperature: Double(p.temperature))
            assertClose(logits, p.after_temperature[row], "temperature row \(row)")
            LogitsProcessing.keepTopK(&logits, k: p.top_k)
            assertClose(logits, p.after_top_k[row], "top-k row \(row)")
            LogitsProcessing.keepTopP(&logits, p: p.top_p)
            assertClose(logits, p.after_top_p[row], "top-p row \(row)")

            var alone = scores
            LogitsProcessing.keepTopK(&alone, k: p.top_k)
            assertClose(alone, p.only_top_k[row], "top-k alone row \(row)")
            alone = scores
            LogitsProcessing.keepTopP(&alone, p: p.top_p)
            assertClose(alone, p.only_top_p[row], "top-p alone row \(row)")
        }
    }

    func testSeededSamplingIsReproducible() throws {
        let generator = Generator(model: try Fixtures.model("llama_gqa"))
        let prompts = [[1, 17, 42, 5], [1, 9, 8]]
        let parameters = GenerationParameters(maxNewTokens: 40, temperature: 1.3, topK: 20, topP: 0.95, seed: 42)
        let first = try generator.generate(prompts: prompts, parameters: parameters)
        let second = try generator.generate(prompts: prompts, parameters: parameters)
        XCTAssertEqual(first, second)
        var other = parameters
        other.seed = 43
        XCTAssertNotEqual(try generator.generate(prompts: prompts, parameters: other).map(\.tokens), first.map(\.tokens))
        let greedy = try generator.generate(prompts: prompts, parameters: .init(maxNewTokens: 40))
        XCTAssertNotEqual(first.map(\.tokens), greedy.map(\.tokens), "sampling at temperature 1.3 should leave the argmax")
    }

    func testTopKOfOneSamplesTheGreedyContinuation() throws {
        let generator = Generator(model: try Fixtures.model("qwen2"))
        let greedy = try generator.generate(prompts: [[1, 2, 3]], parameters: .init(maxNewTokens: 30))
        let sampled = try generator.generate(prompts: [[1, 2, 3]],
                                             parameters: .init(maxNewTokens: 30, temperature: 5, topK: 1, seed: 9))
        XCTAssertEqual(sampled, greedy)
    }

    func testSampledTokensStayInsideTopK() throws {
        var generator = RandomGenerator(seed: 1)
        let logits: [Float] = (0..<50).map { Float($0 % 17) * 0.3 }
        let third = logits.sorted(by: >)[2]   // 4.5: ties with the k-th largest stay, as in transformers
        let allowed = Set(logits.indices.filter { logits[$0] >= third })
        var drawn = Set<Int>()
        for _ in 0..<500 {
            let token = logits.withUnsafeBufferPointer {
                LogitsProcessing.chooseToken($0, seen: [], parameters: .init(temperature: 2, topK: 3), generator: &generator)
            }
            if let token { drawn.insert(token) } else { XCTFail("finite logits always give a token") }
        }
        XCTAssertEqual(drawn, allowed)   // indices 15, 16, 32, 33, 49: only those, and each appears
    }

    func testStopTokenEndsTheSequenceAndIsKept() throws {
        let generator = Generator(model: try Fixtures.model("llama_mha"))
        let free = try generator.generate(prompts: [[1, 17, 42, 5, 88, 23, 9]], parameters: .init(maxNewTokens: 30))[0]
        let stop = free.tokens[4]
        let stopped = try generator.generate(prompts: [[1, 17, 42, 5, 88, 23, 9]],
                                             parameters: .init(maxNewTokens: 30, stopTokenIDs: [stop]))[0]
        let first = free.tokens.firstIndex(of: stop)!
        XCTAssertEqual(stopped.tokens, Array(free.tokens[...first]))
        XCTAssertEqual(stopped.finishReason, .stop)
    }

    func testCallbackStreamsEveryTokenAndCanStopARow() throws {
        let generator = Generator(model: try Fixtures.model("llama_gqa"))
        var streamed: [[Int]] = [[], []]
        let result = try generator.generate(prompts: [[1, 5], [1, 6, 7]], parameters: .init(maxNewTokens: 12)) { row, token in
            streamed[row].append(token)
            return !(row == 1 && streamed[1].count == 3)
        }
        XCTAssertEqual(streamed, result.map(\.tokens))
        XCTAssertEqual(result[0].tokens.count, 12)
        XCTAssertEqual(result[1].tokens.count, 3)
        XCTAssertEqual(result.map(\.finishReason), [.length, .stop])
    }

    func testInvalidRequestsAreErrors() throws {
        let generator = Generator(model: try Fixtures.model("llama_mha"))
        XCTAssertThrowsError(try generator.generate(prompts: [[1, 2]], parameters: .init(maxNewTokens: 0)))
        XCTAssertThrowsError(try generator.generate(prompts: [[1, 2]], parameters: .init(topP: 1.5)))
        XCTAssertThrowsError(try generator.generate(prompts: [[1, 2]], parameters: .init(temperature: -1)))
        XCTAssertThrowsError(try generator.generate(prompts: [[1, 96]], parameters: .init())) { error in
            XCTAssertTrue("\(error)".contains("outside the vocabulary"), "\(error)")
        }
        XCTAssertThrowsError(try generator.generate(prompts: [[]], parameters: .init()))
        XCTAssertThrowsError(try generator.generate(prompts: [Array(repeating: 3, count: 250)],
                                                    parameters: .init(maxNewTokens: 10))) { error in
            XCTAssertEqual(error as? GenerationError, .contextExceeded(promptTokens: 250, maxNewTokens: 10, context: 256))
        }
    }
}
