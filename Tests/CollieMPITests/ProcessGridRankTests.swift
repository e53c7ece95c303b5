import CollieEngine
import CollieMPI
import CollieTestSupport
import XCTest

/// On 4 processes as dp 2 × tp 2: each rank's tp group is {2·dp, 2·dp + 1}, its dp group {tp, tp + 2}, ordered by
/// the other coordinate, and each group's collectives stay inside it.
final class ProcessGridTests4Ranks: XCTestCase {
    func testSubCommunicatorsOnFourRanks() throws {
        try runRankTests("ProcessGridRankTests/testGroups", ranks: 4)
    }
}

/// The rank side of `ProcessGridTests4Ranks` (skipped unless launched by it under mpirun).
final class ProcessGridRankTests: XCTestCase {
    func testGroups() throws {
        try XCTSkipUnless(MPIRun.isRank, "runs as one rank of ProcessGridTests4Ranks")
        let world = MPICommunicator.world()
        let grid = ProcessGrid(world: world, dataParallelSize: 2, tensorParallelSize: 2, pipelineParallelSize: 1)
        let r = world.rank
        XCTAssertEqual(grid.tensorParallelRank, r % 2)
        XCTAssertEqual(grid.dataParallelRank, r / 2)
        XCTAssertEqual(grid.tensorParallel.size, 2)
        XCTAssertEqual(grid.dataParallel.size, 2)
        XCTAssertEqual(grid.pipelineParallel.size, 1)
        XCTAssertEqual(grid.tensorParallel.rank, grid.tensorParallelRank)
        XCTAssertEqual(grid.dataParallel.rank, grid.dataParallelRank)
        // The sums of the members' world ranks.
        XCTAssertEqual(grid.tensorParallel.sum(Double(r)), Double(2 * (r / 2) * 2 + 1))
        XCTAssertEqual(grid.dataParallel.sum(Double(r)), Double(2 * (r % 2) + 2))
        XCTAssertEqual(grid.rank(dataParallel: grid.dataParallelRank, tensorParallel: grid.tensorParallelRank,
                                 pipelineParallel: 0), r)
    }
}
