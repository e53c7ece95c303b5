import Foundation
import XCTest
@testable import CollieEngine

final class VectorMathTests: XCTestCase {
    func testVectorExpIsWithinTwoUlpOfTheCLibraryOverTheFloatRange() {
        var worst: Float = 0
        var x: Float = -87
        while x < 88 {
            let lanes = SIMD8<Float>((0..<8).map { x + Float($0) * 0.0137 })
            let fast = Float.vectorExp(lanes)
            for i in 0..<8 {
                let exact = Foundation.exp(lanes[i])
                worst = max(worst, abs(fast[i] - exact) / exact.ulp)
            }
            x += 0.1
        }
        XCTAssertLessThanOrEqual(worst, 2, "worst error \(worst) ulp")
    }

    func testVectorExpHandlesInfinitiesNaNAndUnderflow() {
        let v = Float.vectorExp(SIMD8<Float>(-.infinity, .infinity, .nan, -100, 100, 0, -87.5, 1))
        XCTAssertEqual(v[0], 0)
        XCTAssertEqual(v[1], .infinity)
        XCTAssertTrue(v[2].isNaN)
        XCTAssertEqual(v[3], 0)
        XCTAssertEqual(v[4], .infinity)
        XCTAssertEqual(v[5], 1)
        XCTAssertEqual(v[6], 0)
        XCTAssertEqual(v[7], Float(M_E), accuracy: Float(M_E).ulp * 2)
    }

    func testRowPrimitivesCoverTailsThatAreNotAMultipleOfEight() {
        let values: [Float] = (0..<13).map { Float($0) * 0.3 - 2 }
        values.withUnsafeBufferPointer { p in
            XCTAssertEqual(VectorMath.maximum(p.baseAddress!, 13), values.max()!)
            let expected = values.reduce(0) { $0 + Foundation.exp($1 - 1) }
            XCTAssertEqual(VectorMath.sumExp(p.baseAddress!, 13, shift: 1), expected, accuracy: expected * 1e-6)
        }
        var row = values
        let sum = row.withUnsafeMutableBufferPointer { VectorMath.exponentiate($0.baseAddress!, 13, shift: 0.5, scale: 2) }
        XCTAssertEqual(sum, values.reduce(0) { $0 + Foundation.exp($1 - 0.5) }, accuracy: 1e-4)
        for (got, x) in zip(row, values) { XCTAssertEqual(got, 2 * Foundation.exp(x - 0.5), accuracy: 1e-5) }
    }
}

final class StoragePoolTests: XCTestCase {
    func testLargeBlocksAreReusedAndSmallOnesAreNot() {
        let pool = StoragePool()
        let big = pool.allocate(byteCount: 1 << 20)
        pool.free(big, byteCount: 1 << 20)
        XCTAssertEqual(pool.cachedBytes, 1 << 20)
        XCTAssertEqual(pool.allocate(byteCount: 1 << 20), big, "the freed block of the same size comes back")
        XCTAssertEqual(pool.cachedBytes, 0)
        let small = pool.allocate(byteCount: 100)
        pool.free(small, byteCount: 100)
        XCTAssertEqual(pool.cachedBytes, 0)
        pool.free(big, byteCount: 1 << 20)
        pool.releaseCachedMemory()
        XCTAssertEqual(pool.cachedBytes, 0)
    }

    func testTheCacheNeverGrowsPastItsLimit() {
        let pool = StoragePool()
        pool.limit = 3 << 20
        let blocks = (0..<5).map { _ in pool.allocate(byteCount: 1 << 20) }
        for b in blocks { pool.free(b, byteCount: 1 << 20) }
        XCTAssertEqual(pool.cachedBytes, 3 << 20)
        pool.releaseCachedMemory()
    }

    func testZeroedStorageIsZeroEvenWhenReused() {
        let n = 1 << 16
        do {
            let t = Tensor.full([n], 7)
            XCTAssertEqual(t.floats()[0], 7)
        }
        XCTAssertEqual(Tensor.zeros([n]).floats().max(), 0)
    }
}
