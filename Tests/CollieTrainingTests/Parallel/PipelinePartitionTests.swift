import CollieEngine
import CollieModels
@testable import CollieTraining
import XCTest

/// `pp_partition_method` splits the units as CoLLiE's DeepSpeed does: the expected bounds below are DeepSpeed
/// 0.19.8's own `partition_uniform` and `partition_balanced` on the same inputs (run by hand:
/// `from deepspeed.runtime.utils import partition_uniform, partition_balanced`).
final class PipelinePartitionTests: XCTestCase {
    private func bounds(_ partition: PipelinePartition) -> [Int] {
        [0] + partition.stages.map(\.upperBound)
    }

    func testUniformGivesTheFirstStagesTheRemainder() {
        let cases: [(items: Int, parts: Int, expected: [Int])] = [
            (4, 2, [0, 2, 4]), (5, 2, [0, 3, 5]), (7, 3, [0, 3, 5, 7]), (3, 4, [0, 1, 2, 3, 3]),
            (34, 4, [0, 9, 18, 26, 34]), (10, 4, [0, 3, 6, 8, 10]),
        ]
        for c in cases {
            let partition = PipelinePartition(weights: Array(repeating: 1, count: c.items), stages: c.parts, uniform: true)
            XCTAssertEqual(bounds(partition), c.expected, "\(c.items) units into \(c.parts)")
        }
    }

    func testBalancedMinimizesTheSpreadBetweenStagesAsDeepSpeed() {
        let sevenB = [32000 * 4096] + Array(repeating: 202_383_360, count: 32) + [4096 + 32000 * 4096]
        let cases: [(weights: [Int], parts: Int, expected: [Int])] = [
            ([2048, 4160, 4160, 2112], 2, [0, 2, 4]),
            ([100, 10, 10, 10, 10, 10, 10, 10, 10, 100], 3, [0, 1, 9, 10]),
            ([0, 1, 1, 1, 1, 1, 1, 0], 3, [0, 3, 5, 8]),
            ([0, 1, 1, 0], 2, [0, 2, 4]),
            ([5, 1, 1, 1, 1, 5], 4, [0, 1, 3, 5, 6]),
            ([0, 1, 1, 1, 0], 2, [0, 3, 5]),
            (sevenB, 2, [0, 17, 34]),
            (sevenB, 4, [0, 9, 17, 25, 34]),
            ([0] + Array(repeating: 1, count: 32) + [0], 4, [0, 9, 17, 25, 34]),
        ]
        for c in cases {
            XCTAssertEqual(bounds(PipelinePartition(weights: c.weights, stages: c.parts, uniform: false)), c.expected,
                           "\(c.weights.count) units into \(c.parts)")
        }
    }

    func testMethodsOnAModelWeighItsUnits() throws {
        let configuration = LlamaConfiguration(hiddenSize: 32, intermediateSize: 64, hiddenLayers: 6, attentionHeads: 4,
                                               keyValueHeads: 2, vocabularySize: 500)
        let model = LlamaForCausalLM(configuration)
        XCTAssertEqual(model.unitTypeNames, ["Embedding"] + Array(repeating: "LlamaDecoderLayer", count: 6) + ["LMHead"])
        // Units: embedding 16,000, blocks 9,280 each, head 16,032 parameters (DeepSpeed: [0, 4, 8], [0, 3, 6, 8]).
        XCTAssertEqual(model.unitParameters.map { $0.reduce(0) { $0 + $1.count } }, [16000] + Array(repeating: 9280, count: 6) + [16032])
        XCTAssertEqual(try PipelinePartition(model: model, stages: 2, method: .parameters).stages, [0..<4, 4..<8])
        XCTAssertEqual(try PipelinePartition(model: model, stages: 3, method: .parameters).stages, [0..<3, 3..<6, 6..<8])
        XCTAssertEqual(try PipelinePartition(model: model, stages: 3, method: .uniform).stages, [0..<3, 3..<6, 6..<8])
        // Only the blocks weigh (DeepSpeed: [0, 3, 5, 8]).
        XCTAssertEqual(try PipelinePartition(model: model, stages: 3, method: .type("decoderlayer")).stages,
                       [0..<3, 3..<5, 5..<8])
    }

    func testMethodsReadFromConfigText() {
        XCTAssertEqual(PipelinePartitionMethod("parameters"), .parameters)
        XCTAssertEqual(PipelinePartitionMethod("uniform"), .uniform)
        XCTAssertEqual(PipelinePartitionMethod("type:LlamaDecoderLayer"), .type("LlamaDecoderLayer"))
        XCTAssertNil(PipelinePartitionMethod("type:"))
        XCTAssertNil(PipelinePartitionMethod("type:(unclosed"))
        XCTAssertNil(PipelinePartitionMethod("balanced"))
    }

    func testOneForwardOneBackwardSchedule() {
        typealias S = PipelineParallelGroup.Step
        // The last stage alternates from the start; the first fills the pipeline with stages − 1 forwards.
        XCTAssertEqual(PipelineParallelGroup.schedule(stage: 1, stages: 2, microBatches: 3),
                       [S.forward(0), .backward(0), .forward(1), .backward(1), .forward(2), .backward(2)])
        XCTAssertEqual(PipelineParallelGroup.schedule(stage: 0, stages: 2, microBatches: 3),
                       [S.forward(0), .forward(1), .backward(0), .forward(2), .backward(1), .backward(2)])
        XCTAssertEqual(PipelineParallelGroup.schedule(stage: 0, stages: 4, microBatches: 2),
                       [S.forward(0), .forward(1), .backward(0), .backward(1)])
        XCTAssertEqual(PipelineParallelGroup.schedule(stage: 2, stages: 4, microBatches: 4),
                       [S.forward(0), .forward(1), .backward(0), .forward(2), .backward(1), .forward(3), .backward(2), .backward(3)])
    }
}
