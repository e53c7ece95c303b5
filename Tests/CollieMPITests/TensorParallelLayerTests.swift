import CollieEngine
import CollieIO
import CollieMPI
import CollieModels
import CollieTestSupport
import XCTest

/// The tensor-parallel layers on 2 processes equal the whole ops of one process: the fixture LLaMA model split over
/// the ranks (column-parallel q/k/v/gate/up/lm_head, row-parallel o/down, vocabulary-parallel embedding and
/// cross-entropy) gives the loss of the whole model, and every parameter's gradient is the matching slice of the
/// whole model's gradient (replicated norms: the whole gradient); the same with LoRA on every linear layer, with and
/// without dropout, and with the model's hidden dropout (`setHiddenDropout`: a row-parallel o_proj draws the whole
/// input's mask over its columns, down_proj the whole output's); and
/// `gatherTensorParallelSlices` gives back the whole model.
final class TensorParallelLayerTests: XCTestCase {
    func testSplitLayersEqualTheWholeOpsOnTwoRanks() throws {
        try runRankTests("TensorParallelLayerRankTests/testSplitModelMatchesWholeModel", ranks: 2)
    }
}

/// The rank side of `TensorParallelLayerTests` (skipped unless launched by it under mpirun).
final class TensorParallelLayerRankTests: XCTestCase {
    static let model = TestPaths.fixtures(of: "CollieTrainingTests").appendingPathComponent("model")

    static func batch() -> (ids: Tensor, targets: [Int]) {
        var generator = RandomGenerator(seed: 11)
        let (b, t) = (3, 7)
        let tokens = (0..<(b * t)).map { _ in Int(generator.next() % 64) }
        var targets = NextTokenLoss.shiftedTargets(tokens, batchSize: b)
        targets[4] = Tensor.ignoreIndex
        return (Tensor(ints: tokens, shape: [b, t]), targets)
    }

    /// The loss and each named parameter's gradient (adapters' under `lora.<path>.A/B`).
    static func lossAndGradients(_ model: LlamaForCausalLM) -> (Double, [String: Tensor]) {
        let (ids, targets) = batch()
        let loss = model.summedNegativeLogLikelihood(ids, targets: targets)
        loss.backward()
        var gradients: [String: Tensor] = [:]
        for (key, p) in model.namedParameters where p.grad != nil { gradients[key] = p.grad! }
        for (path, adapter) in model.loraAdapters {
            gradients["\(path).lora_A"] = adapter.a.grad
            gradients["\(path).lora_B"] = adapter.b.grad
        }
        return (Double(loss.item), gradients)
    }

    func testSplitModelMatchesWholeModel() throws {
        try XCTSkipUnless(MPIRun.isRank, "runs as one rank of TensorParallelLayerTests")
        let world = MPICommunicator.world()
        let (p, r) = (world.size, world.rank)
        // The trainer's fixture (4 heads, 2 kv heads), with and without LoRA; grouped-query heads 6/2 (3 query heads
        // per kv head on each rank), tied embeddings, q/k/v/o biases (row-parallel o_proj's bias added once), Qwen2's
        // q/k/v biases, Mistral's sliding window.
        // LoRA dropout draws the whole model's masks on every rank: a row-parallel layer's over its columns.
        let variants: [(URL, loraDropout: Double?, hiddenDropout: Double)] = [
            (Self.model, nil, 0), (Self.model, 0, 0), (Self.model, 0.3, 0), (Self.model, 0.3, 0.2),
            (ModelFixtures.folder("llama_bias"), nil, 0.25),
        ] + ["llama_gqa", "llama_tied", "llama_bias", "qwen2", "mistral_sliding_window"].map { (ModelFixtures.folder($0), nil, 0) }
        for (folder, loraDropout, hiddenDropout) in variants {
            let withLoRA = loraDropout != nil
            let name = "\(folder.lastPathComponent)\(loraDropout.map { " + LoRA, dropout \($0)" } ?? "")"
                + (hiddenDropout > 0 ? ", hidden dropout \(hiddenDropout)" : "")
            /// The model's hidden dropout on, drawn from one seed.
            func withHiddenDropout(_ model: LlamaForCausalLM) -> LlamaForCausalLM {
                if let dropout = model.setHiddenDropout(hiddenDropout) {
                    dropout.seed = 99
                    dropout.isTraining = true
                }
                return model
            }
            func load() throws -> LlamaForCausalLM {
                let model = withHiddenDropout(try LlamaForCausalLM.load(from: folder))
                if let loraDropout {
                    var generator = RandomGenerator(seed: 3)
                    try model.addAdapter(.lora(LoRAConfiguration(rank: 4, alpha: 8, dropout: loraDropout)), seed: 3)
                    model.setAdapterTraining(true)
                    model.reseedAdapterDropout(seed: 77)
                    // B starts at zero; give it values so that A's gradient is not zero.
                    for (_, adapter) in model.loraAdapters {
                        let values = (0..<adapter.b.count).map { _ in Float(generator.nextUnit() - 0.5) * 0.2 }
                        adapter.b.pointer(as: Float.self).update(from: values, count: values.count)
                    }
                }
                return model
            }
            let whole = try load()
            let (wantLoss, wantGradients) = Self.lossAndGradients(whole)
            // Without an adapter the split model is loaded as a tensor-parallel rank loads it: its large weights mapped,
            // then only this rank's slices copied.
            let split = withLoRA ? try load()
                : withHiddenDropout(try LlamaForCausalLM.loadMapped(from: CheckpointFolder(url: folder),
                                                                    configuration: LlamaConfiguration.load(from: folder)))
            try split.splitForTensorParallelism(world)
            let replicated = whole.layers.count * 2 * whole.configuration.hiddenSize + whole.configuration.hiddenSize
                + (whole.layers[0].selfAttention.oProj.bias?.count ?? 0) * whole.layers.count * 2
            XCTAssertLessThanOrEqual(split.parameterCount, (whole.parameterCount - replicated) / p + replicated, name)
            let axes = Dictionary(split.tensorParallelSlices.map { (ObjectIdentifier($0.tensor), $0.split.axis) },
                                  uniquingKeysWith: { a, _ in a })
            var keyed: [String: Tensor] = [:]
            for (key, tensor) in split.namedParameters { keyed[key] = tensor }
            for (path, adapter) in split.loraAdapters { keyed["\(path).lora_A"] = adapter.a; keyed["\(path).lora_B"] = adapter.b }
            let (loss, gradients) = Self.lossAndGradients(split)
            XCTAssertEqual(loss, wantLoss, accuracy: 1e-5 * abs(wantLoss), name)
            var worst = 0.0
            XCTAssertEqual(Set(gradients.keys), Set(wantGradients.keys))
            for (key, want) in wantGradients {
                guard let got = gradients[key], let parameter = keyed[key] else { XCTFail("no gradient for \(key)"); continue }
                var expected = want
                if let axis = axes[ObjectIdentifier(parameter)] {
                    let n = want.shape[axis] / p
                    expected = want.slice(axis: axis, (r * n)..<((r + 1) * n))
                }
                XCTAssertEqual(got.shape, expected.shape, key)
                let a = got.floats(), b = expected.contiguous().floats()
                let scale = max(b.map { abs(Double($0)) }.max() ?? 0, 1e-6)
                var here = 0.0
                for (x, y) in zip(a, b) { here = max(here, abs(Double(x - y)) / scale) }
                if here > 1e-5 { print("rank \(r) \(name) \(key): gradient differs by \(here)") }
                worst = max(worst, here)
            }
            XCTAssertLessThanOrEqual(worst, 1e-5, "\(name): gradients differ by \(worst) (relative to the largest)")
            if r == 0 { print("tensor parallel layers (\(name)): loss \(loss) vs \(wantLoss), gradients \(worst)") }

            // Gathering gives back the whole model.
            split.gatherTensorParallelSlices()
            for ((key, a), (_, b)) in zip(split.namedParameters, whole.namedParameters) {
                XCTAssertEqual(a.shape, b.shape, key)
                XCTAssertEqual(a.floats(), b.floats(), key)
            }
        }
    }
}
