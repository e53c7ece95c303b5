import CollieIO
import CollieTestSupport
import Foundation
import XCTest
@testable import CollieEngine
@testable import CollieModels

/// QLoRA: LoRA and prompt tuning on a base whose linear layers stay GGML blocks, held against the same adapters on
/// the dequantized base — in Collie (the GGUF file loaded dense) and in PEFT (scripts/fixtures/make_qlora_fixtures.py:
/// transformers' model holds gguf's dequantized values of the same blocks, Q8_0, Q4_0, Q4_1, Q4_K and Q6_K).
///
/// The quantized layers compute the dequantized float32 linear up to summation order, so a training step on blocks
/// equals one on the dequantized weights: losses within 1e-5 relative per step, adapters within 1e-4 after three
/// AdamW steps. Against PEFT (another library's kernels and Adam) the tolerances are 1e-4 and 1e-3.
final class QLoRATests: XCTestCase {
    static let folder = ModelFixtures.folder("qlora")
    static let gguf = folder.appendingPathComponent("qlora.gguf")
    static let steps = 3, learningRate: Float = 5e-3

    /// The fixture with its linear layers kept as blocks, or dequantized to float32 at load.
    static func model(quantized: Bool) throws -> any CausalLanguageModel {
        try PretrainedModel.model(.gguf(gguf), quantization: quantized ? .keepBlocks : nil)
    }

    static func expected() throws -> SafeTensorsFile {
        try SafeTensorsFile(url: folder.appendingPathComponent("expected.safetensors"))
    }

    // MARK: - The base

    func testTheFixtureKeepsEveryLinearLayerAsItsBlocks() throws {
        let model = try Self.model(quantized: true)
        let formats = model.namedLinearLayers.compactMap { $0.layer.quantizedWeight?.format }
        XCTAssertEqual(formats.count, 14, "2 layers × 7 projections")
        XCTAssertEqual(Set(formats), [.q8_0, .q4_0, .q4_1, .q4_K, .q6_K])
        XCTAssertEqual(model.embedTokens.quantizedWeight?.format, .q8_0, "token_embd keeps its Q8_0 blocks, as llama.cpp")
        XCTAssertFalse(model.namedParameters.contains { $0.key == "model.embed_tokens.weight" }, "frozen, not a parameter")
    }

    func testATiedEmbeddingInBlocksLooksUpAndProjectsAsTheDequantizedTable() throws {
        let quantized = try Self.model(quantized: true), dense = try Self.model(quantized: false)
        let table = try XCTUnwrap(quantized.embedTokens.quantizedWeight)
        let ids = Tensor(ints: [0, 7, 319, 7, 42, 1], shape: [2, 3])
        // The lookup dequantizes exactly the picked rows: gguf's values, as the dense load holds them.
        let dequantized = table.dequantized().floats(), columns = table.columns
        XCTAssertEqual(withNoGrad { quantized.embedTokens(ids) }.floats(),
                       ids.ints().flatMap { dequantized[($0 * columns)..<(($0 + 1) * columns)] })
        XCTAssertEqual(withNoGrad { quantized.embedTokens(ids) }.floats(), withNoGrad { dense.embedTokens(ids) }.floats())
        // The tied output projection multiplies with the blocks: the dense model's logits up to summation order, in
        // training's path and in decoding's (float activations; 8-bit ones are llama.cpp's arithmetic, not equal).
        assertClose(withNoGrad { quantized(ids) }, withNoGrad { dense(ids) }, relative: 1e-5, "forward")
        for model in [quantized, dense] { XCTAssertNil(model.namedLinearLayers.first { $0.path == "lm_head" }) }
        let decoded = Tensor.withQuantizedActivations(.float) {
            [quantized, dense].map { model in
                let cache = KVCache(model: model, batchSize: 1, tokens: 8)
                _ = model.nextTokenLogits([[5, 60, 7]], cache: cache)
                return model.nextTokenLogits([[200]], cache: cache)
            }
        }
        assertClose(decoded[0], decoded[1], relative: 1e-5, "decoding step")
    }

    // MARK: - LoRA

    func testQLoRALogitsEqualPEFTOnTheDequantizedBase() throws {
        let expected = try Self.expected()
        let ids = try expected.tensor("input_ids").contiguousCopy()
        let model = try Self.model(quantized: true)
        try model.loadAdapter(from: Self.folder.appendingPathComponent("initial_lora"))
        XCTAssertEqual(model.loraAdapters.count, 14)
        assertClose(withNoGrad { model(ids) }, try expected.tensor("lora.logits"), relative: 1e-5, "logits")
    }

    func testQLoRATrainingStepsEqualLoRAOnTheDequantizedBaseAndPEFT() throws {
        let expected = try Self.expected()
        let quantized = try Self.model(quantized: true), dense = try Self.model(quantized: false)
        let blocks = quantized.namedLinearLayers.compactMap { $0.layer.quantizedWeight.map { Data(bytes: $0.storage.data, count: $0.byteCount) } }
        var runs: [(losses: [Float], parameters: [(key: String, tensor: Tensor)])] = []
        for model in [quantized, dense] {
            try model.loadAdapter(from: Self.folder.appendingPathComponent("initial_lora"))
            runs.append((try train(model, expected), model.adapterParameters))
        }
        let (q, d) = (runs[0], runs[1])
        for step in 0..<Self.steps {
            XCTAssertEqual(q.losses[step], d.losses[step], accuracy: 1e-5 * abs(d.losses[step]), "step \(step + 1) loss")
        }
        XCTAssertLessThan(q.losses[2], q.losses[0], "training lowers the loss")
        assertClose(Tensor(q.losses, shape: [Self.steps]), try expected.tensor("lora.losses"), relative: 1e-4, "losses vs PEFT")
        XCTAssertEqual(q.parameters.map(\.key), d.parameters.map(\.key))
        for ((key, a), (_, b)) in zip(q.parameters, d.parameters) {
            assertClose(a, b, relative: 1e-4, "\(key) vs LoRA on the dequantized base")
            assertClose(a, try expected.tensor("lora.param." + key), relative: 1e-3, "\(key) vs PEFT")
        }
        // The base never changes and never gets a gradient.
        let after = quantized.namedLinearLayers.compactMap { $0.layer.quantizedWeight.map { Data(bytes: $0.storage.data, count: $0.byteCount) } }
        XCTAssertEqual(after, blocks, "the blocks are frozen")
        XCTAssertTrue(quantized.parameters.allSatisfy { $0.grad == nil && !$0.requiresGrad })
    }

    /// Three AdamW steps (torch's update, weight decay 0) on the model's adapter over the fixture's batch, each loss
    /// taken before its update.
    private func train(_ model: any CausalLanguageModel, _ expected: SafeTensorsFile) throws -> [Float] {
        let ids = try expected.tensor("input_ids").contiguousCopy(), labels = try expected.tensor("labels").ints()
        let parameters = model.trainableParameters.map(\.tensor)
        var adam = HandAdamW(parameters, learningRate: Self.learningRate)
        var losses: [Float] = []
        for _ in 0..<Self.steps {
            let targets = model.nextTokenTargets(labels: labels, batchSize: ids.shape[0])
            let loss = model.summedNegativeLogLikelihood(ids, targets: targets)
                * (1 / Double(NextTokenLoss.predictedCount(targets)))
            loss.backward()
            losses.append(loss.item)
            adam.step()
        }
        return losses
    }

    /// `quantize: TYPE` on a Hugging Face folder: LoRA's loss and gradients on the blocks equal LoRA's on a dense model
    /// holding the blocks' dequantized values.
    func testLoRAOnAModelQuantizedAtLoadEqualsLoRAOnItsDequantizedWeights() throws {
        let folder = ModelFixtures.folder("llama_padded")
        let ids = Tensor(ints: (0..<20).map { 3 + $0 * 13 % 90 }, shape: [2, 10])
        for format in [BlockFormat.q8_0, .q4_0, .q4_1] {
            let quantized = try PretrainedModel.model(.folder(folder), quantization: .quantize(format))
            let dense = try PretrainedModel.model(.folder(folder))
            XCTAssertEqual(quantized.namedLinearLayers.filter { $0.layer.quantizedWeight?.format == format }.count, 14)
            for ((path, q), (_, d)) in zip(quantized.namedLinearLayers, dense.namedLinearLayers) {
                guard let blocks = q.quantizedWeight else { continue }
                try XCTUnwrap(d.denseWeight, path).assignValues(from: blocks.dequantized())
            }
            var gradients: [[(key: String, tensor: Tensor)]] = [], losses: [Float] = []
            for model in [quantized, dense] {
                try model.addAdapter(.lora(LoRAConfiguration(rank: 4, alpha: 8)), seed: 5)
                var generator = RandomGenerator(seed: 6)
                for (_, adapter) in model.loraAdapters {   // B starts at zero; make the adapter change the output
                    adapter.b.assignValues(from: .normal(adapter.b.shape, std: 0.3, generator: &generator))
                }
                let loss = model.loss(ids: ids, labels: ids)
                loss.backward()
                losses.append(loss.item)
                gradients.append(model.adapterParameters.map { ($0.key, $0.tensor.grad ?? .zeros([1])) })
            }
            XCTAssertEqual(losses[0], losses[1], accuracy: 1e-5 * abs(losses[1]), "\(format) loss")
            for ((key, a), (_, b)) in zip(gradients[0], gradients[1]) {
                assertClose(a, b, relative: 1e-4, "\(format) grad \(key)")
            }
        }
    }

    // MARK: - Prompt tuning

    func testPromptTuningOnAQuantizedBaseEqualsTheDequantizedBaseAndPEFT() throws {
        let expected = try Self.expected()
        var runs: [(losses: [Float], embeddings: Tensor)] = []
        for quantized in [true, false] {
            let model = try Self.model(quantized: quantized)
            try model.loadAdapter(from: Self.folder.appendingPathComponent("initial_prompt"))
            runs.append((try train(model, expected), try XCTUnwrap(model.promptEmbedding).embeddings))
        }
        for step in 0..<Self.steps {
            XCTAssertEqual(runs[0].losses[step], runs[1].losses[step], accuracy: 1e-5 * abs(runs[1].losses[step]),
                           "step \(step + 1) loss")
        }
        assertClose(Tensor(runs[0].losses, shape: [Self.steps]), try expected.tensor("prompt.losses"), relative: 1e-4,
                    "losses vs PEFT")
        assertClose(runs[0].embeddings, runs[1].embeddings, relative: 1e-4, "prompt_embeddings vs the dequantized base")
        assertClose(runs[0].embeddings, try expected.tensor("prompt.param.prompt_embeddings"), relative: 1e-3,
                    "prompt_embeddings vs PEFT")
    }

    // MARK: - Saving and merging

    func testAnAdapterTrainedOnBlocksSavesAndReloadsWithIdenticalLogits() throws {
        let expected = try Self.expected()
        let ids = try expected.tensor("input_ids").contiguousCopy()
        let model = try Self.model(quantized: true)
        try model.loadAdapter(from: Self.folder.appendingPathComponent("initial_lora"))
        _ = try train(model, expected)
        let logits = withNoGrad { model(ids) }.floats()
        let folder = try temporaryFolder(for: self).appendingPathComponent("adapter")
        try model.saveAdapter(to: folder, baseModelNameOrPath: "qlora.gguf")
        let reloaded = try Self.model(quantized: true)
        try reloaded.loadAdapter(from: folder)
        XCTAssertEqual(withNoGrad { reloaded(ids) }.floats(), logits)
    }

    func testMergingIntoAQuantizedBaseGivesTheDequantizedWeightsPlusTheDelta() throws {
        let expected = try Self.expected()
        let ids = try expected.tensor("input_ids").contiguousCopy()
        let quantized = try Self.model(quantized: true), dense = try Self.model(quantized: false)
        for model in [quantized, dense] { try model.loadAdapter(from: Self.folder.appendingPathComponent("initial_lora")) }
        // What `collie convert --adapter` writes: each weight merged as it is asked for, the model unchanged.
        let saved = quantized.savedWeights(mergingLoRA: true)
        XCTAssertTrue(quantized.isQuantized && quantized.loraAdapters.allSatisfy { !$0.adapter.isMerged })
        dense.mergeLoRA()
        XCTAssertEqual(saved.map(\.key), dense.namedParameters.map(\.key))
        for ((key, shape, values), (_, parameter)) in zip(saved, dense.namedParameters) {
            XCTAssertEqual(shape, parameter.shape, key)
            XCTAssertEqual(values().floats(), parameter.floats(), key)
        }
        XCTAssertEqual(quantized.savedWeights().first { $0.key.hasSuffix("layers.1.mlp.down_proj.weight") }?.values().floats(),
                       quantized.namedLinearLayers.first { $0.path == "model.layers.1.mlp.down_proj" }?.layer.quantizedWeight?
                        .dequantized().floats(), "without merging: the blocks' values")
        quantized.mergeLoRA()
        // Each adapted layer is now the dequantized blocks plus scaling·B·A, dense: what merging into the model
        // loaded dense gives, bit for bit. The token embedding keeps its Q8_0 blocks (LoRA does not adapt it).
        XCTAssertTrue(quantized.namedLinearLayers.allSatisfy { $0.layer.quantizedWeight == nil })
        XCTAssertNotNil(quantized.embedTokens.quantizedWeight)
        let merged = quantized.savedWeights()
        XCTAssertEqual(merged.map(\.key), dense.namedParameters.map(\.key))
        for ((key, _, values), (_, b)) in zip(merged, dense.namedParameters) {
            XCTAssertEqual(values().floats(), b.floats(), key)
        }
        assertClose(withNoGrad { quantized(ids) }, try expected.tensor("merged_logits"), relative: 1e-5, "merged vs PEFT")
    }
}

/// torch.optim.AdamW's update (weight decay 0) in float32, so that CollieModelsTests need no optimizer target.
struct HandAdamW {
    let parameters: [Tensor]
    let learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8
    var m: [[Float]], v: [[Float]], t = 0

    init(_ parameters: [Tensor], learningRate: Float) {
        self.parameters = parameters
        self.learningRate = learningRate
        m = parameters.map { [Float](repeating: 0, count: $0.count) }
        v = m
    }

    mutating func step() {
        t += 1
        let correction1 = 1 - powf(beta1, Float(t)), correction2 = 1 - powf(beta2, Float(t))
        for (i, parameter) in parameters.enumerated() {
            guard let grad = parameter.grad?.contiguous().floats() else { continue }
            let p = parameter.pointer(as: Float.self)
            for j in 0..<grad.count {
                m[i][j] = beta1 * m[i][j] + (1 - beta1) * grad[j]
                v[i][j] = beta2 * v[i][j] + (1 - beta2) * grad[j] * grad[j]
                let denominator = (v[i][j].squareRoot() / correction2.squareRoot()) + epsilon
                p[j] -= learningRate / correction1 * m[i][j] / denominator
            }
            parameter.grad = nil
        }
    }
}

/// `actual` within `relative × max|expected|` of `expected`.
private func assertClose(_ actual: Tensor, _ expected: Tensor, relative: Double, _ what: String,
                         file: StaticString = #filePath, line: UInt = #line) {
    guard actual.count == expected.count else {
        return XCTFail("\(what): shape \(actual.shape), expected \(expected.shape)", file: file, line: line)
    }
    let a = actual.contiguous().doubles(), e = expected.contiguous().doubles()
    var scale = 0.0, difference = 0.0
    for i in 0..<e.count {
        scale = max(scale, abs(e[i]))
        difference = max(difference, abs(a[i] - e[i]).isNaN ? .infinity : abs(a[i] - e[i]))
    }
    XCTAssertLessThanOrEqual(scale > 0 ? difference / scale : difference, relative,
                             "\(what): max |difference| \(difference) vs max|expected| \(scale)", file: file, line: line)
}
