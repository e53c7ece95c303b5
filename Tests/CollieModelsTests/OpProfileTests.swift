import XCTest
import CollieEngine
import CollieModels

/// `OpProfile` breaks a training step down by op: it sees the ops of the profiled region only, times each op's
/// forward and backward, never counts the same time twice (activation checkpointing's recomputation counts once, as
/// forward), and its GEMM time is a part of the ops' time.
final class OpProfileTests: XCTestCase {
    private let config = LlamaConfiguration(hiddenSize: 64, intermediateSize: 128, hiddenLayers: 2, attentionHeads: 4,
                                            keyValueHeads: 2, vocabularySize: 300)
    private let ids = Tensor(ints: (0..<64).map { ($0 * 37) % 300 }, shape: [2, 32])

    private func profiledStep(checkpointing: Bool) -> (profile: OpProfile, wall: Double) {
        let model = LlamaForCausalLM(config, seed: 3)
        model.activationCheckpointing = checkpointing
        for p in model.parameters { p.requiresGrad = true }
        let profile = OpProfile()
        let start = DispatchTime.now().uptimeNanoseconds
        profile.withProfiling {
            model.loss(ids: ids, labels: ids).backward()
        }
        return (profile, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }

    func testAStepIsBrokenDownByTheOpsOnItsTape() {
        let (profile, wall) = profiledStep(checkpointing: false)
        let ops = Dictionary(uniqueKeysWithValues: profile.ops.map { ($0.name, $0) })
        // 2 layers × 7 projections + lm_head.
        XCTAssertEqual(ops["linear"]?.calls, 2 * 7 + 1)
        XCTAssertEqual(ops["rms_norm"]?.calls, 2 * 2 + 1)
        XCTAssertEqual(ops["cross_entropy"]?.calls, 1)
        for name in ["linear", "rms_norm", "cross_entropy", "scaled_dot_product_attention", "swiglu"] {
            XCTAssertGreaterThan(ops[name]?.forwardSeconds ?? 0, 0, name)
            XCTAssertGreaterThan(ops[name]?.backwardSeconds ?? 0, 0, name)
        }
        let total = profile.ops.reduce(0) { $0 + $1.forwardSeconds + $1.backwardSeconds } + profile.hookSeconds
        XCTAssertLessThanOrEqual(total, wall * 1.0001)
        XCTAssertGreaterThan(profile.gemmSeconds, 0)
        XCTAssertLessThan(profile.gemmSeconds, total)
    }

    func testRecomputedLayersCountOnceAsForward() {
        let (plain, _) = profiledStep(checkpointing: false)
        let (recomputed, wall) = profiledStep(checkpointing: true)
        let linear = { (p: OpProfile) in p.ops.first { $0.name == "linear" }! }
        // The decoder layers' projections run twice in forward (once more inside backward); the lm_head once.
        XCTAssertEqual(linear(recomputed).calls, linear(plain).calls + 2 * 7)
        let total = recomputed.ops.reduce(0) { $0 + $1.forwardSeconds + $1.backwardSeconds } + recomputed.hookSeconds
        XCTAssertLessThanOrEqual(total, wall * 1.0001)
    }

    func testOnlyTheProfiledRegionIsRecorded() {
        let profile = OpProfile()
        let model = LlamaForCausalLM(config, seed: 3)
        for p in model.parameters { p.requiresGrad = true }
        model.loss(ids: ids, labels: ids).backward()   // not profiled
        XCTAssertTrue(profile.ops.isEmpty)
        XCTAssertEqual(profile.gemmSeconds, 0)
        profile.withProfiling { _ = model.loss(ids: ids, labels: ids) }
        XCTAssertFalse(profile.ops.isEmpty)
        XCTAssertTrue(profile.ops.allSatisfy { $0.backwardSeconds == 0 }, "no backward ran inside the region")
        profile.reset()
        XCTAssertTrue(profile.ops.isEmpty)
    }
}
