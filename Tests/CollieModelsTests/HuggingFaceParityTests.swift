import CollieIO
import CollieTestSupport
import Foundation
import XCTest
@testable import CollieEngine
@testable import CollieModels

/// Collie against `transformers` itself: tiny random models built and run by
/// scripts/fixtures/make_model_fixtures.py with transformers' own LlamaForCausalLM / MistralForCausalLM /
/// Qwen2ForCausalLM (eager attention, float32). (Three torch.optim.AdamW steps on the same fixtures are
/// CollieTrainingTests' `TransformersAdamWParityTests`.)
///
/// Tolerances (float32 on both sides; each relative to the largest magnitude of the expected
/// tensor, per tensor):
/// - logits 1e-5, loss 1e-5 (of |loss|);
/// - every parameter's gradient 1e-4.
/// The tests print the largest differences they see: about 1e-6 for logits, losses and gradients.
final class HuggingFaceParityTests: XCTestCase {
    static let logitTolerance = 1e-5
    static let lossTolerance = 1e-5
    static let gradientTolerance = 1e-4

    // MARK: - Logits, loss and gradients, one test per variant

    func testMHALlamaLogitsLossAndGradientsMatchTransformers() throws {
        let model = try checkForwardAndBackward("llama_mha")
        XCTAssertEqual(model.configuration.keyValueHeads, model.configuration.attentionHeads)
    }

    func testGQALlamaLogitsLossAndGradientsMatchTransformers() throws {
        let c = try checkForwardAndBackward("llama_gqa").configuration
        XCTAssertEqual([c.attentionHeads, c.keyValueHeads, c.hiddenSize], [6, 2, 48])
        XCTAssertEqual(c.ropeTheta, 500_000)
        XCTAssertEqual(c.rmsNormEpsilon, 1e-5)
    }

    func testMQALlamaLogitsLossAndGradientsMatchTransformers() throws {
        XCTAssertEqual(try checkForwardAndBackward("llama_mqa").configuration.keyValueHeads, 1)
    }

    func testTiedEmbeddingLlamaLogitsLossAndGradientsMatchTransformers() throws {
        let model = try checkForwardAndBackward("llama_tied")
        XCTAssertTrue(model.configuration.tieWordEmbeddings)
        XCTAssertNil(model.lmHead)
    }

    func testLlama3RopeScalingLogitsLossAndGradientsMatchTransformers() throws {
        let model = try checkForwardAndBackward("llama_rope_llama3")
        XCTAssertEqual(model.configuration.ropeScaling,
                       .llama3(factor: 8, lowFrequencyFactor: 1, highFrequencyFactor: 4, originalMaxPositions: 32))
        // All three llama3 bands occur at head_dim 16: kept (wavelength < 8), smoothed, divided by 8.
        var plain = model.configuration
        plain.ropeScaling = .none
        let ratios = zip(model.configuration.inverseFrequencies(), plain.inverseFrequencies()).map { $0 / $1 }
        XCTAssertEqual(ratios.first!, 1, accuracy: 1e-6)
        XCTAssertEqual(ratios.last!, 1 / 8, accuracy: 1e-6)
        XCTAssertTrue(ratios.contains { $0 > 0.13 && $0 < 0.99 }, "no smoothed band: \(ratios)")
    }

    func testHubStyleLinearRopeScalingLogitsLossAndGradientsMatchTransformers() throws {
        let model = try checkForwardAndBackward("llama_rope_linear_hub")
        XCTAssertEqual(model.configuration.ropeScaling, .linear(factor: 2))
    }

    func testAttentionAndMLPBiasLlamaLogitsLossAndGradientsMatchTransformers() throws {
        let model = try checkForwardAndBackward("llama_bias")
        let keys = Set(model.namedParameters.map(\.key))
        for bias in ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                     "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"] {
            XCTAssertTrue(keys.contains("model.layers.1.\(bias).bias"), bias)
        }
    }

    func testLeftPaddedBatchLogitsLossAndGradientsMatchTransformers() throws {
        _ = try checkForwardAndBackward("llama_padded")
    }

    func testQwen2LogitsLossAndGradientsMatchTransformers() throws {
        let model = try checkForwardAndBackward("qwen2")
        XCTAssertEqual(model.configuration.modelType, .qwen2)
        XCTAssertNil(model.configuration.slidingWindow)
        XCTAssertNotNil(model.layers[0].selfAttention.qProj.bias)
        XCTAssertNil(model.layers[0].selfAttention.oProj.bias)
    }

    func testMistralSlidingWindowLogitsLossAndGradientsMatchTransformers() throws {
        let model = try checkForwardAndBackward("mistral_sliding_window")
        XCTAssertEqual(model.configuration.modelType, .mistral)
        XCTAssertEqual(model.configuration.slidingWindow, 5)
        XCTAssertEqual(model.configuration.resolvedHeadDimension, 16)   // explicit head_dim ≠ 32 / 4
    }

    // MARK: - Checkpoint formats

    func testBFloat16CheckpointLoads() throws {
        let folder = Self.folder("bf16")
        let checkpoint = try CheckpointFolder(url: folder)
        XCTAssertEqual(try checkpoint.tensor("model.embed_tokens.weight").dtype, .bfloat16)
        let model = try LlamaForCausalLM.load(from: folder)
        XCTAssertEqual(model.configuration.torchDType, "bfloat16")
        // Widening bf16 to float32 is exact.
        for (key, parameter) in model.namedParameters {
            XCTAssertEqual(parameter.dtype, .float32)
            XCTAssertEqual(parameter.floats(), try checkpoint.tensor(key).floats(), key)
        }
        let expected = try Self.expected("bf16")
        let batch = try Batch(expected)
        var report = ParityReport("bf16")
        withNoGrad {
            report.compareLogits(model(batch.ids, keyPaddingMask: batch.mask), try! expected.tensor("logits"), batch)
            report.compare(model.loss(ids: batch.ids, labels: batch.labels, keyPaddingMask: batch.mask),
                           try! expected.tensor("loss"), relative: Self.lossTolerance, "loss")
        }
        report.finish()
    }

    func testHubStyleRopeScalingConfigDecodes() throws {
        // Legacy hub style: top-level rope_theta, rope_scaling {"type": "linear", "factor": 2}.
        let hub = try LlamaConfiguration.load(from: Self.folder("llama_rope_linear_hub"))
        XCTAssertEqual(hub.ropeTheta, 500_000)
        XCTAssertEqual(hub.ropeScaling, .linear(factor: 2))

        // The llama3 fixture as transformers 5 wrote it (rope_parameters), and rewritten the way
        // Llama 3.1 checkpoints on the hub spell it: both decode to the same model and logits.
        let folder = try temporaryCopy(of: "llama_rope_llama3")
        try editConfig(in: folder) { config in
            config["rope_parameters"] = nil
            config["rope_theta"] = 10000.0
            config["rope_scaling"] = ["rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                      "high_freq_factor": 4.0, "original_max_position_embeddings": 32]
        }
        let original = try LlamaConfiguration.load(from: Self.folder("llama_rope_llama3"))
        let rewritten = try LlamaConfiguration.load(from: folder)
        XCTAssertEqual(rewritten, original)
        XCTAssertEqual(rewritten.ropeTheta, 10_000)
        XCTAssertEqual(rewritten.ropeScaling,
                       .llama3(factor: 8, lowFrequencyFactor: 1, highFrequencyFactor: 4, originalMaxPositions: 32))
        let expected = try Self.expected("llama_rope_llama3")
        let batch = try Batch(expected)
        let logits = withNoGrad { try! LlamaForCausalLM.load(from: folder)(batch.ids) }
        var report = ParityReport("llama_rope_llama3 with a hub-style config")
        report.compareLogits(logits, try expected.tensor("logits"), batch)
        report.finish()
    }

    // MARK: - Errors

    func testUnsupportedModelTypeIsAnErrorListingTheSupportedTypes() throws {
        let folder = try temporaryCopy(of: "llama_mha")
        try editConfig(in: folder) { $0["model_type"] = "gpt2" }
        XCTAssertThrowsError(try LlamaForCausalLM.load(from: folder)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("config.json"), message)
            XCTAssertTrue(message.contains("'gpt2'"), message)
            XCTAssertTrue(message.contains("llama, mistral, qwen2"), message)
        }
    }

    func testMissingTensorIsAnErrorNamingIt() throws {
        let folder = try temporaryCopy(of: "llama_mha")
        let missing = "model.layers.1.self_attn.k_proj.weight"
        try rewriteWeights(in: folder) { tensors in tensors.removeAll { $0.0 == missing } }
        XCTAssertThrowsError(try LlamaForCausalLM.load(from: folder)) { error in
            XCTAssertTrue("\(error)".contains("missing: \(missing)"), "\(error)")
        }
    }

    func testUnexpectedTensorIsAnErrorNamingIt() throws {
        let folder = try temporaryCopy(of: "llama_mha")
        let extra = "model.layers.2.mlp.up_proj.weight"
        try rewriteWeights(in: folder) { tensors in tensors.append((extra, Tensor.zeros([64, 32]))) }
        XCTAssertThrowsError(try LlamaForCausalLM.load(from: folder)) { error in
            XCTAssertTrue("\(error)".contains("unexpected: \(extra)"), "\(error)")
        }
    }

    func testMissingAndUnexpectedTensorsAreListedTogether() throws {
        let folder = try temporaryCopy(of: "llama_mha")
        try rewriteWeights(in: folder) { tensors in
            tensors.removeAll { $0.0 == "model.norm.weight" || $0.0 == "lm_head.weight" }
            tensors.append(("model.final_norm.weight", Tensor.ones([32])))
        }
        XCTAssertThrowsError(try LlamaForCausalLM.load(from: folder)) { error in
            XCTAssertTrue("\(error)".contains("missing: lm_head.weight, model.norm.weight; unexpected: model.final_norm.weight"),
                          "\(error)")
        }
    }

    func testWrongShapedTensorIsAnErrorNamingItAndBothShapes() throws {
        let folder = try temporaryCopy(of: "llama_gqa")
        let key = "model.layers.0.self_attn.k_proj.weight"   // [2 × 8, 48]
        try rewriteWeights(in: folder) { tensors in
            let i = tensors.firstIndex { $0.0 == key }!
            tensors[i].1 = Tensor.zeros([48, 48])
        }
        XCTAssertThrowsError(try LlamaForCausalLM.load(from: folder)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("'\(key)'"), message)
            XCTAssertTrue(message.contains("[48, 48]") && message.contains("[16, 48]"), message)
        }
    }

    // MARK: - Saving

    func testSaveAsFloat32ReloadsWithIdenticalLogits() throws {
        for variant in ModelFixtures.trainedVariants + ["bf16"] {
            let model = try LlamaForCausalLM.load(from: Self.folder(variant))
            let folder = try temporaryFolder(for: self)
            try model.save(to: folder, dtype: .float32)
            XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent("model.safetensors").path))
            let reloaded = try LlamaForCausalLM.load(from: folder)
            var saved = reloaded.configuration, original = model.configuration
            XCTAssertEqual(saved.torchDType, "float32", variant)
            // Collie writes the resolved head_dim (Qwen2 configs leave it out) and the dtype it saved.
            XCTAssertEqual(saved.resolvedHeadDimension, original.resolvedHeadDimension, variant)
            saved.torchDType = nil; original.torchDType = nil
            saved.headDimension = nil; original.headDimension = nil
            XCTAssertEqual(saved, original, variant)
            try assertIdentical(reloaded, model, variant)
        }
    }

    func testShardedSaveWritesAnIndexAndReloadsIdentically() throws {
        let model = try LlamaForCausalLM.load(from: Self.folder("qwen2"))
        let folder = try temporaryFolder(for: self)
        try model.save(to: folder, dtype: .float32, maxShardBytes: 20_000)
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { !$0.hasPrefix(".") }
        let shards = files.filter { $0.hasSuffix(".safetensors") }.sorted()
        XCTAssertGreaterThan(shards.count, 2, "\(files)")
        XCTAssertEqual(shards.first, String(format: "model-00001-of-%05d.safetensors", shards.count))
        XCTAssertTrue(files.contains("model.safetensors.index.json"))
        XCTAssertFalse(files.contains("model.safetensors"))
        let reloaded = try LlamaForCausalLM.load(from: folder)
        XCTAssertEqual(try CheckpointFolder(url: folder).names, Set(model.namedParameters.map(\.key)))
        try assertIdentical(reloaded, model, "qwen2 sharded")

        // Saving again unsharded into the same folder replaces the index.
        try model.save(to: folder, dtype: .float32)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("model.safetensors.index.json").path))
        try assertIdentical(try LlamaForCausalLM.load(from: folder), model, "qwen2 unsharded again")
    }

    func testBFloat16SaveOfABFloat16CheckpointIsLossless() throws {
        let model = try LlamaForCausalLM.load(from: Self.folder("bf16"))
        let folder = try temporaryFolder(for: self)
        try model.save(to: folder, dtype: .bfloat16)
        XCTAssertEqual(try LlamaConfiguration.load(from: folder).torchDType, "bfloat16")
        let original = try CheckpointFolder(url: Self.folder("bf16")), saved = try CheckpointFolder(url: folder)
        XCTAssertEqual(saved.names, original.names)
        for name in original.names {
            let a = try saved.tensor(name), b = try original.tensor(name)
            XCTAssertEqual(a.dtype, .bfloat16, name)
            XCTAssertEqual(a.floats(), b.floats(), name)
        }
    }

    // MARK: - Support

    /// Loads `variant`, compares logits, loss and every gradient with transformers', and returns the model.
    @discardableResult
    private func checkForwardAndBackward(_ variant: String, file: StaticString = #filePath,
                                         line: UInt = #line) throws -> LlamaForCausalLM {
        let model = try LlamaForCausalLM.load(from: Self.folder(variant))
        let expected = try Self.expected(variant)
        let batch = try Batch(expected)
        var report = ParityReport(variant)
        withNoGrad { report.compareLogits(model(batch.ids, keyPaddingMask: batch.mask), try! expected.tensor("logits"), batch) }
        let loss = model.loss(ids: batch.ids, labels: batch.labels, keyPaddingMask: batch.mask)
        report.compare(loss, try expected.tensor("loss"), relative: Self.lossTolerance, "loss")
        loss.backward()
        let gradientKeys = Set(expected.names.filter { $0.hasPrefix("grad.") }.map { String($0.dropFirst(5)) })
        XCTAssertEqual(Set(model.namedParameters.map(\.key)), gradientKeys, "\(variant): parameter keys", file: file, line: line)
        for (key, parameter) in model.namedParameters {
            guard let gradient = parameter.grad else { XCTFail("\(variant): \(key) has no gradient", file: file, line: line); continue }
            report.compare(gradient, try expected.tensor("grad." + key), relative: Self.gradientTolerance, "grad " + key)
        }
        report.finish(file: file, line: line)
        return model
    }

    /// Same configuration, bit-identical parameters and logits.
    private func assertIdentical(_ a: LlamaForCausalLM, _ b: LlamaForCausalLM, _ what: String) throws {
        XCTAssertEqual(a.namedParameters.map(\.key), b.namedParameters.map(\.key), what)
        for ((key, x), (_, y)) in zip(a.namedParameters, b.namedParameters) {
            XCTAssertEqual(x.floats(), y.floats(), "\(what): \(key)")
        }
        let ids = Tensor(ints: (0..<24).map { ($0 * 37 + 5) % a.configuration.vocabularySize }, shape: [2, 12])
        let (la, lb) = withNoGrad { (a(ids).floats(), b(ids).floats()) }
        XCTAssertEqual(la, lb, "\(what): logits")
    }

    static func folder(_ variant: String) -> URL {
        guard let root = Bundle.module.url(forResource: "Fixtures", withExtension: nil) else {
            fatalError("Fixtures are missing from the test bundle; run scripts/fixtures/make_model_fixtures.py")
        }
        return root.appendingPathComponent(variant)
    }

    static func expected(_ variant: String) throws -> SafeTensorsFile {
        try SafeTensorsFile(url: folder(variant).appendingPathComponent("expected.safetensors"))
    }

    /// A temporary copy of a fixture's config.json and model.safetensors.
    private func temporaryCopy(of variant: String) throws -> URL {
        let folder = try temporaryFolder(for: self)
        for name in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(at: Self.folder(variant).appendingPathComponent(name),
                                             to: folder.appendingPathComponent(name))
        }
        return folder
    }

    private func editConfig(in folder: URL, _ edit: (inout [String: Any]) -> Void) throws {
        let url = folder.appendingPathComponent("config.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        edit(&config)
        try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys]).write(to: url)
    }

    /// Rewrites the folder's model.safetensors after `edit` changes its (name, tensor) list.
    private func rewriteWeights(in folder: URL, _ edit: (inout [(String, Tensor)]) -> Void) throws {
        let url = folder.appendingPathComponent("model.safetensors")
        var tensors: [(String, Tensor)] = try {
            let file = try SafeTensorsFile(url: url)
            return try file.names.map { ($0, try file.tensor($0).contiguousCopy()) }
        }()
        edit(&tensors)
        try SafeTensorsWriter.write(tensors, to: url)
    }
}

/// The inputs of a fixture.
private struct Batch {
    let ids: Tensor
    let labels: Tensor
    /// attention_mask [B, T] (1 = token, 0 = padding), when the fixture has one.
    let mask: Tensor?

    init(_ expected: SafeTensorsFile) throws {
        ids = try expected.tensor("input_ids").contiguousCopy()
        labels = try expected.tensor("labels").contiguousCopy()
        mask = expected.entries["attention_mask"] == nil ? nil : try expected.tensor("attention_mask").contiguousCopy()
    }

    /// Whether position `row` of the flattened [B·T] batch is a real token.
    func isToken(_ row: Int) -> Bool { mask.map { $0.ints()[row] != 0 } ?? true }
}

extension ParityReport {
    /// `compare` on tensors.
    fileprivate mutating func compare(_ actual: Tensor, _ expected: Tensor, relative: Double, _ what: String,
                                      keepRow: (Int) -> Bool = { _ in true }) {
        compare(actual.doubles(), shape: actual.shape, expected.doubles(), shape: expected.shape, relative: relative, what,
                keepRow: keepRow)
    }

    /// Logits at real (unpadded) positions.
    fileprivate mutating func compareLogits(_ actual: Tensor, _ expected: Tensor, _ batch: Batch) {
        compare(actual, expected, relative: HuggingFaceParityTests.logitTolerance, "logits", keepRow: batch.isToken)
    }
}

extension HuggingFaceParityTests {
    /// Both float32 GEMMs `Float32GEMM` may pick (OpenBLAS, and Collie's own where it measured faster: AMD CPUs with
    /// AVX2 or AVX-512 and Intel CPUs with AVX-512, in release builds) meet the same tolerances, whichever this build
    /// and CPU use by default.
    func testBothFloat32GEMMsMatchTransformers() throws {
        let saved = Float32GEMM.override
        defer { Float32GEMM.override = saved }
        for choice in [Float32GEMM.openBLAS, .collie] {
            Float32GEMM.override = choice
            XCTAssertEqual(Float32GEMM.current, choice)
            _ = try checkForwardAndBackward("llama_gqa")
            _ = try checkForwardAndBackward("llama_bias")
        }
    }
}
