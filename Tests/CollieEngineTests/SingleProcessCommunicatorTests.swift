import CollieEngine
import XCTest

/// The group of one: every collective leaves the data as it is, and partitions cover the buffer.
final class SingleProcessCommunicatorTests: XCTestCase {
    func testCollectivesAreTheIdentity() {
        let group = SingleProcessCommunicator()
        XCTAssertEqual(group.rank, 0)
        XCTAssertEqual(group.size, 1)
        XCTAssertTrue(group.isMain)
        var floats: [Float] = [1, -2, 3.5]
        floats.withUnsafeMutableBufferPointer { group.allReduce($0, .sum) }
        XCTAssertEqual(floats, [1, -2, 3.5])
        floats.withUnsafeMutableBufferPointer { group.startAllReduce($0).wait() }
        XCTAssertEqual(floats, [1, -2, 3.5])
        floats.withUnsafeMutableBufferPointer { group.allGather($0, counts: [3]) }
        XCTAssertEqual(floats, [1, -2, 3.5])
        XCTAssertEqual(group.sum(2.5), 2.5)
        XCTAssertEqual(group.sum([1, 2]), [1, 2])
        XCTAssertEqual(group.maximum(-4), -4)
        var bytes: [UInt8] = [7, 8]
        bytes.withUnsafeMutableBytes { group.broadcast($0, root: 0) }
        XCTAssertEqual(bytes, [7, 8])
        group.barrier()
        XCTAssertEqual(group.split(color: 3, key: 0).size, 1)
    }

    func testReduceScatterOfOneRankCopiesTheWholeBuffer() {
        let group = SingleProcessCommunicator()
        let source: [Float] = [4, 5, 6]
        var result: [Float] = [0, 0, 0]
        source.withUnsafeBufferPointer { s in
            result.withUnsafeMutableBufferPointer { r in
                XCTAssertTrue(group.startReduceScatter(s, into: r, counts: [3]).test())
            }
        }
        XCTAssertEqual(result, source)
    }

    func testPartitionIsContiguousCoveringAndAsEvenAsPossible() {
        XCTAssertEqual(SingleProcessCommunicator.partition(10, into: 4), [0..<3, 3..<6, 6..<8, 8..<10])
        XCTAssertEqual(SingleProcessCommunicator.partition(2, into: 4), [0..<1, 1..<2, 2..<2, 2..<2])
        XCTAssertEqual(SingleProcessCommunicator.partition(7, into: 1), [0..<7])
        XCTAssertEqual(SingleProcessCommunicator().partition(5), [0..<5])
    }
}
