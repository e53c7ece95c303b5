import CollieEngine
import CollieGeneration
import CollieModels
import Foundation
import XCTest

/// The engine keeps no process-wide switches: gradient recording, the decoding kernels and the spinning pool are
/// chosen per task (or thread), so two models run on two threads at once — one training, one generating, as a
/// server beside a trainer would — and each computes exactly what it computes alone.
final class ConcurrentModelsTests: XCTestCase {
    private static let configuration = LlamaConfiguration(
        hiddenSize: 64, intermediateSize: 128, hiddenLayers: 2, attentionHeads: 4, keyValueHeads: 2, vocabularySize: 96,
        maxPositionEmbeddings: 256, initializerRange: 0.3, eosTokenIDs: [])
    private static let rounds = 25

    /// `rounds` forward/backward passes of a fresh model; the loss and embedding gradient of each.
    private static func train() -> [[Float]] {
        let model = LlamaForCausalLM(Self.configuration, seed: 1)
        let ids = Tensor(ints: (0..<48).map { ($0 * 7 + 3) % 96 }, shape: [2, 24])
        return (0..<Self.rounds).map { _ in
            for p in model.parameters { p.grad = nil }
            let loss = model.loss(ids: ids, labels: ids)
            loss.backward()
            return [loss.item] + Array(model.embedTokens.denseWeight!.grad!.floats().prefix(64))
        }
    }

    /// `rounds` greedy generations of another model, with the KV cache and the decoding kernels.
    private static func generate() throws -> [[Int]] {
        let generator = Generator(model: LlamaForCausalLM(Self.configuration, seed: 2))
        return try (0..<Self.rounds).map { round in
            try generator.generate(prompts: [[1, 5, round % 90 + 3]], parameters: GenerationParameters(maxNewTokens: 24))[0].tokens
        }
    }

    func testATrainingModelAndAGeneratingModelOnTwoThreadsEachComputeWhatTheyComputeAlone() throws {
        let aloneTraining = Self.train()
        let aloneGeneration = try Self.generate()

        final class Results: @unchecked Sendable {
            var training: [[Float]] = []
            var generation: [[Int]] = []
            var error: Error?
        }
        let results = Results()
        let start = DispatchSemaphore(value: 0), done = DispatchGroup()
        let trainer = Thread { start.wait(); results.training = Self.train(); done.leave() }
        let server = Thread {
            start.wait()
            do { results.generation = try Self.generate() } catch { results.error = error }
            done.leave()
        }
        for thread in [trainer, server] {
            done.enter()
            thread.start()
        }
        start.signal()
        start.signal()
        done.wait()

        XCTAssertNil(results.error)
        XCTAssertEqual(results.training, aloneTraining, "training beside a generating model")
        XCTAssertEqual(results.generation, aloneGeneration, "generation beside a training model")
        XCTAssertGreaterThan(Set(aloneGeneration.flatMap { $0 }).count, 5, "generations that vary")
    }
}
