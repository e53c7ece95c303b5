import CollieEngine
import XCTest

/// The grid's rank order is Megatron's: tp fastest, then dp, then pp. (Its sub-communicators on 4 ranks:
/// CollieMPITests' ProcessGridRankTests.)
final class ProcessGridTests: XCTestCase {
    func testRankOrderIsTensorFastestThenDataThenPipeline() {
        // dp 2 × tp 2 × pp 2 = 8 ranks.
        let expected: [(Int, Int, Int)] = [(0, 0, 0), (0, 1, 0), (1, 0, 0), (1, 1, 0), (0, 0, 1), (0, 1, 1), (1, 0, 1), (1, 1, 1)]
        for (rank, want) in expected.enumerated() {
            let got = ProcessGrid.coordinates(of: rank, dataParallelSize: 2, tensorParallelSize: 2)
            XCTAssertTrue(got == want, "rank \(rank): \(got) ≠ \(want)")
        }
    }

    func testOneProcessIsAGridOfOne() {
        let grid = ProcessGrid.single()
        XCTAssertEqual([grid.dataParallel.size, grid.tensorParallel.size, grid.pipelineParallel.size], [1, 1, 1])
        XCTAssertEqual(grid.rank(dataParallel: 0, tensorParallel: 0, pipelineParallel: 0), 0)
    }
}
