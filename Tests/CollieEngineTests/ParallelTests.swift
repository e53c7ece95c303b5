@testable import CollieEngine
import Foundation
import XCTest

/// `Parallel.forEach` covers every index exactly once, on Dispatch and on the spinning worker pool, including
/// when loops nest or come from several threads at once.
final class ParallelTests: XCTestCase {
    /// Runs `forEach(count)` and returns how often each index was visited.
    private static func visits(_ count: Int, minimumChunk: Int = 1) -> [Int] {
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: count)
        counts.initialize(repeating: 0, count: count)
        defer { counts.deallocate() }
        Parallel.forEach(count, minimumChunk: minimumChunk) { range in for i in range { counts[i] += 1 } }
        return Array(UnsafeBufferPointer(start: counts, count: count))
    }

    func testEveryIndexRunsOnceWithAndWithoutSpinningWorkers() {
        for count in [1, 2, 3, 17, 1000] {
            XCTAssertEqual(Self.visits(count), [Int](repeating: 1, count: count), "Dispatch, \(count)")
            XCTAssertEqual(Parallel.withSpinningWorkers { Self.visits(count) }, [Int](repeating: 1, count: count), "pool, \(count)")
        }
    }

    func testThePoolRunsEveryChunkOnceAndRefusesWhileBusy() {
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: 10)
        counts.initialize(repeating: 0, count: 10)
        defer { counts.deallocate() }
        var refusedInside = false
        let ran = Parallel.runOnPool(10, chunks: 5) { range in
            for i in range { counts[i] += 1 }
            if range.lowerBound == 0 { refusedInside = !Parallel.runOnPool(2, chunks: 2) { _ in } }
        }
        XCTAssertTrue(ran)
        XCTAssertTrue(refusedInside, "a loop started from inside a pool task must be refused, not deadlock")
        XCTAssertEqual(Array(UnsafeBufferPointer(start: counts, count: 10)), [Int](repeating: 1, count: 10))
    }

    func testManyShortLoopsInARowOnThePool() {
        // Thousands of back-to-back loops: a worker still finishing one must never take a task of the next.
        Parallel.withSpinningWorkers {
            for round in 0..<5000 {
                let count = 2 + round % 7
                XCTAssertEqual(Self.visits(count), [Int](repeating: 1, count: count), "round \(round)")
            }
        }
    }

    func testNestedLoopsAndLoopsFromOtherThreadsStillCoverEveryIndex() {
        Parallel.withSpinningWorkers {
            // A loop inside a pool task finds the pool busy and runs on Dispatch.
            let outer = 4, inner = 50
            let counts = UnsafeMutablePointer<Int>.allocate(capacity: outer * inner)
            counts.initialize(repeating: 0, count: outer * inner)
            defer { counts.deallocate() }
            Parallel.forEach(outer) { range in
                for o in range { Parallel.forEach(inner) { r in for i in r { counts[o * inner + i] += 1 } } }
            }
            XCTAssertEqual(Array(UnsafeBufferPointer(start: counts, count: outer * inner)),
                           [Int](repeating: 1, count: outer * inner))
        }
        // Four threads looping at once, each in its own spinning scope: one holds the pool, the others fall back,
        // none loses an index.
        nonisolated(unsafe) let failures = UnsafeMutablePointer<Int>.allocate(capacity: 4)   // one slot per thread
        failures.initialize(repeating: 0, count: 4)
        defer { failures.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 4) { thread in
            Parallel.withSpinningWorkers {
                for round in 0..<300 where Self.visits(3 + round % 5) != [Int](repeating: 1, count: 3 + round % 5) {
                    failures[thread] += 1
                }
            }
        }
        XCTAssertEqual(Array(UnsafeBufferPointer(start: failures, count: 4)), [0, 0, 0, 0])
    }

    func testTrainingStepsSpinOnlyOnCollieGEMMWithACorePerThread() {
        XCTAssertTrue(Parallel.spinsInTrainingSteps(gemm: .collie, threads: 2, ranksOnThisMachine: 1, cores: 2))
        XCTAssertTrue(Parallel.spinsInTrainingSteps(gemm: .collie, threads: 4, ranksOnThisMachine: 2, cores: 8))
        XCTAssertFalse(Parallel.spinsInTrainingSteps(gemm: .openBLAS, threads: 2, ranksOnThisMachine: 1, cores: 2),
                       "OpenBLAS's own threads keep the cores")
        XCTAssertFalse(Parallel.spinsInTrainingSteps(gemm: .collie, threads: 2, ranksOnThisMachine: 2, cores: 2),
                       "two ranks of two threads on two cores")
        XCTAssertFalse(Parallel.spinsInTrainingSteps(gemm: .collie, threads: 3, ranksOnThisMachine: 1, cores: 2),
                       "COLLIE_NUM_THREADS beyond the cores")
        XCTAssertFalse(Parallel.spinsInTrainingSteps(gemm: .collie, threads: 1, ranksOnThisMachine: 2, cores: 2),
                       "one thread has no worker to spin")
        XCTAssertFalse(Parallel.spinsInTrainingSteps(gemm: .collie, threads: Int.max, ranksOnThisMachine: 2, cores: 2))
    }
}
