import CollieEngine
import CollieMPI
import CollieTestSupport
import XCTest

/// Every collective of `MPICommunicator` on 2 and 4 processes: each rank checks the values it received.
final class MPICollectiveTests: XCTestCase {
    func testCollectivesOnTwoAndFourRanks() throws {
        try runRankTests("MPICollectiveRankTests/testEveryCollective", ranks: 2)
        try runRankTests("MPICollectiveRankTests/testEveryCollective", ranks: 4)
    }
}

/// The rank side of `MPICollectiveTests` (skipped unless launched by it under mpirun).
final class MPICollectiveRankTests: XCTestCase {
    func testEveryCollective() throws {
        try XCTSkipUnless(MPIRun.isRank, "runs as one rank of MPICollectiveTests")
        let world = MPICommunicator.world()
        let (r, n) = (world.rank, world.size)
        XCTAssertEqual(Int(ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] ?? ""), n)

        // All-reduce: sum, max, min; blocking and started.
        var values: [Float] = (0..<5).map { Float($0 + 10 * r) }
        values.withUnsafeMutableBufferPointer { world.allReduce($0, .sum) }
        let rankSum = Float(n * (n - 1) / 2)
        XCTAssertEqual(values, (0..<5).map { Float($0 * n) + 10 * rankSum })
        XCTAssertEqual(world.maximum(Double(r)), Double(n - 1))
        var low = [Double(r) - 3]
        low.withUnsafeMutableBufferPointer { world.allReduce($0, .min) }
        XCTAssertEqual(low, [-3])
        var started: [Float] = [Float(r + 1), 1]
        started.withUnsafeMutableBufferPointer { buffer in
            let request = world.startAllReduce(buffer)
            request.wait()
            XCTAssertTrue(request.test())
        }
        XCTAssertEqual(started, [Float(n * (n + 1) / 2), Float(n)])

        // Reduce-scatter with uneven counts (rank r receives r + 1 elements of the sum).
        let counts = (0..<n).map { $0 + 1 }
        let total = counts.reduce(0, +)
        let source: [Float] = (0..<total).map { Float($0) * Float(r + 1) }
        var part = [Float](repeating: -1, count: counts[r])
        source.withUnsafeBufferPointer { s in
            part.withUnsafeMutableBufferPointer { world.startReduceScatter(s, into: $0, counts: counts).wait() }
        }
        let start = counts[..<r].reduce(0, +)
        let scale = Float(n * (n + 1) / 2)
        XCTAssertEqual(part, (start..<(start + counts[r])).map { Float($0) * scale })

        // All-gather in place: each rank fills its part.
        var gathered = [Float](repeating: -1, count: total)
        for i in start..<(start + counts[r]) { gathered[i] = Float(100 * r + i) }
        gathered.withUnsafeMutableBufferPointer { world.allGather($0, counts: counts) }
        var expected: [Float] = []
        for rank in 0..<n { let s = counts[..<rank].reduce(0, +); expected += (s..<(s + counts[rank])).map { Float(100 * rank + $0) } }
        XCTAssertEqual(gathered, expected)

        // Broadcast from the last rank.
        var bytes: [UInt8] = r == n - 1 ? [1, 2, 3] : [0, 0, 0]
        bytes.withUnsafeMutableBytes { world.broadcast($0, root: n - 1) }
        XCTAssertEqual(bytes, [1, 2, 3])

        // Send and receive around a ring.
        var message = [Int32(r)]
        var received: [Int32] = [-1]
        if r % 2 == 0 {
            message.withUnsafeBytes { world.send($0, to: (r + 1) % n, tag: 7) }
            received.withUnsafeMutableBytes { world.receive($0, from: (r + n - 1) % n, tag: 7) }
        } else {
            received.withUnsafeMutableBytes { world.receive($0, from: (r + n - 1) % n, tag: 7) }
            message.withUnsafeBytes { world.send($0, to: (r + 1) % n, tag: 7) }
        }
        XCTAssertEqual(received, [Int32((r + n - 1) % n)])

        // Split into even and odd ranks; a sum within each half.
        let half = world.split(color: r % 2, key: r)
        XCTAssertEqual(half.size, (n + 1 - r % 2) / 2)
        XCTAssertEqual(half.rank, r / 2)
        let members = stride(from: r % 2, to: n, by: 2).reduce(0, +)
        XCTAssertEqual(half.sum(Double(r)), Double(members))
        world.barrier()
    }
}
