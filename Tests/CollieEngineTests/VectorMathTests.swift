import Foundation
import CCollieKernels
import XCTest
@testable import CollieEngine
import CollieTestSupport

final class VectorMathTests: XCTestCase {
    func testVectorExpIsWithinTwoUlpOfTheCLibraryOverTheFloatRange() {
        var worst: Float = 0
        var x: Float = -87
        while x < 88 {
            let lanes = (0..<13).map { x + Float($0) * 0.0137 }
            var fast = [Float](repeating: 0, count: 13)
            collie_exponentiate_f32(lanes, &fast, 13, 0, 1)
            for i in 0..<13 {
                let exact = Foundation.exp(lanes[i])
                worst = max(worst, abs(fast[i] - exact) / exact.ulp)
            }
            x += 0.1
        }
        XCTAssertLessThanOrEqual(worst, 2, "worst error \(worst) ulp")
    }

    func testVectorExpHandlesInfinitiesNaNAndUnderflow() {
        var v: [Float] = [-.infinity, .infinity, .nan, -100, 100, 0, -87.5, 1]
        v.withUnsafeMutableBufferPointer { collie_exponentiate_f32($0.baseAddress!, $0.baseAddress!, 8, 0, 1) }
        XCTAssertEqual(v[0], 0)
        XCTAssertEqual(v[1], .infinity)
        XCTAssertTrue(v[2].isNaN)
        XCTAssertEqual(v[3], 0)
        XCTAssertEqual(v[4], .infinity)
        XCTAssertEqual(v[5], 1)
        XCTAssertEqual(v[6], 0)
        XCTAssertEqual(v[7], Float(M_E), accuracy: Float(M_E).ulp * 2)
    }

    func testTheVectorizedPathIsTheOneTestedOnThisMachine() throws {
        let flags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        try XCTSkipUnless(flags.contains(" avx2") && flags.contains(" fma"), "no AVX2 + FMA on this CPU")
        XCTAssertEqual(collie_kernels_vectorized(), 1)
    }

    func testTheKernelLevelIsTheBestInstructionSetOfThisCPU() throws {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        try XCTSkipUnless(cpuinfo.contains("GenuineIntel") || cpuinfo.contains("AuthenticAMD"), "not an x86 CPU")
        let flags = Set(cpuinfo.split(separator: "\n").first { $0.hasPrefix("flags") }?.split(separator: " ").map(String.init) ?? [])
        let avx512 = flags.isSuperset(of: ["avx512f", "avx512bw", "avx512vl"])
        let expected: Int32 = avx512 && flags.isSuperset(of: ["avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16"]) ? 5
            : avx512 && flags.isSuperset(of: ["avx512_vnni", "avx512_bf16"]) ? 4
            : avx512 && flags.contains("avx512_vnni") ? 3
            : avx512 ? 2
            : flags.isSuperset(of: ["avx2", "fma", "f16c"]) ? 1 : 0
        XCTAssertEqual(collie_kernel_level(), expected, "the kernels would skip code this CPU can run")
    }

    /// logSumExp reads a row block by block, rescaling the sum so far when a later block holds a larger value: it
    /// equals float64's max + log Σ exp(x − max) on rows whose maximum grows block after block, sits in the first
    /// block, or sits in the last partial block among values whose unshifted exp would overflow — within 2 ulp (measured:
    /// under 1).
    func testLogSumExpOverBlocksEqualsTheTwoPassFormula() {
        let n = 3 * VectorMath.logSumExpBlock + 77
        let rows: [[Float]] = [
            (0..<n).map { Float($0) * 0.01 },
            (0..<n).map { Float(n - $0) * 0.01 },
            (0..<n).map { $0 == n - 3 ? 500 : Foundation.sin(Float($0)) * 300 },
            [2.5],
        ]
        forEachKernelLevel { level in
            for (index, row) in rows.enumerated() {
                let m = Double(row.max()!)
                let exact = m + Foundation.log(row.reduce(0.0) { $0 + Foundation.exp(Double($1) - m) })
                let got = row.withUnsafeBufferPointer { VectorMath.logSumExp($0.baseAddress!, $0.count) }
                XCTAssertEqual(Double(got), exact, accuracy: 2 * Double(Float(exact).ulp), "row \(index), level \(level)")
            }
        }
        let doubles = rows[0].map(Double.init)
        let exact = doubles.max()! + Foundation.log(doubles.reduce(0) { $0 + Foundation.exp($1 - doubles.max()!) })
        XCTAssertEqual(doubles.withUnsafeBufferPointer { VectorMath.logSumExp($0.baseAddress!, $0.count) }, exact,
                       accuracy: 1e-12)
        var nothing: Float = 0
        XCTAssertEqual(VectorMath.logSumExp(&nothing, 0), -.infinity, "an empty row")
    }

    func testSwiGLUKernelsMatchTheFormulaOnTailsToo() {
        forEachKernelLevel { _ in checkSwiGLUKernels() }
    }

    private func checkSwiGLUKernels() {
        let n = 37
        let gate = (0..<n).map { Float($0) * 0.7 - 7 }, up = (0..<n).map { Float($0) * 0.1 - 1 }
        let d = (0..<n).map { Float($0 % 5) - 2 }
        var out = [Float](repeating: 0, count: n), dg = out, du = out
        collie_swiglu_f32(gate, up, &out, n)
        collie_swiglu_backward_f32(gate, up, d, &dg, &du, n)
        for i in 0..<n {
            let x = Double(gate[i]), s = 1 / (1 + Foundation.exp(-x))
            XCTAssertEqual(Double(out[i]), x * s * Double(up[i]), accuracy: 1e-5)
            XCTAssertEqual(Double(dg[i]), Double(d[i]) * Double(up[i]) * s * (1 + x * (1 - s)), accuracy: 1e-5)
            XCTAssertEqual(Double(du[i]), Double(d[i]) * x * s, accuracy: 1e-5)
        }
    }

    func testRowPrimitivesCoverTailsThatAreNotAMultipleOfEight() {
        forEachKernelLevel { _ in checkRowPrimitives() }
    }

    /// Rows of 13 (a tail only) and 37 values (two 16-lane steps and a tail; four 8-lane steps and a tail).
    private func checkRowPrimitives() {
        for n in [13, 37] {
            let values: [Float] = (0..<n).map { Float($0) * 0.3 - 2 }
            values.withUnsafeBufferPointer { p in
                XCTAssertEqual(VectorMath.maximum(p.baseAddress!, n), values.max()!)
                let expected = values.reduce(0) { $0 + Foundation.exp($1 - 1) }
                XCTAssertEqual(VectorMath.sumExp(p.baseAddress!, n, shift: 1), expected, accuracy: expected * 1e-6)
            }
            var row = values
            let sum = row.withUnsafeMutableBufferPointer { VectorMath.exponentiate($0.baseAddress!, n, shift: 0.5, scale: 2) }
            let total = values.reduce(0) { $0 + Foundation.exp($1 - 0.5) }
            XCTAssertEqual(sum, total, accuracy: total * 1e-6)
            for (got, x) in zip(row, values) {
                XCTAssertEqual(got, 2 * Foundation.exp(x - 0.5), accuracy: 2 * Foundation.exp(x - 0.5) * 1e-6)
            }
            var sums = [Float](repeating: 0.25, count: n + 1)   // the element past n must stay
            values.withUnsafeBufferPointer { p in
                sums.withUnsafeMutableBufferPointer { VectorMath.addExponentiated(p.baseAddress!, to: $0.baseAddress!, n, shift: 0.5, scale: 3) }
            }
            for (got, x) in zip(sums, values) {
                let expected = 0.25 + 3 * Foundation.exp(x - 0.5)
                XCTAssertEqual(got, expected, accuracy: expected * 1e-6)
            }
            XCTAssertEqual(sums[n], 0.25)
        }
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

    /// Blocks are cached by size class (1, 1.25, 1.5, 1.75 × a power of two), so a batch a few tokens longer reuses
    /// the shorter batch's freed activations instead of leaving them cached for nobody.
    func testCloseSizesShareTheirSizeClass() {
        XCTAssertEqual(StoragePool.pooledSize(100), 100)
        XCTAssertEqual(StoragePool.pooledSize(1 << 20), 1 << 20)
        XCTAssertEqual(StoragePool.pooledSize((1 << 20) + 1), (1 << 20) + (1 << 18))
        XCTAssertEqual(StoragePool.pooledSize(1_700_000), 7 << 18)
        XCTAssertEqual(StoragePool.pooledSize((7 << 18) + 1), 2 << 20)
        let pool = StoragePool()
        let a = pool.allocate(byteCount: 1_100_000)
        pool.free(a, byteCount: 1_100_000)
        XCTAssertEqual(pool.cachedBytes, 5 << 18)
        XCTAssertEqual(pool.allocate(byteCount: 1_250_000), a, "a longer batch's block of the same class is the freed one")
        XCTAssertEqual(pool.liveBytes, 1_250_000, "live bytes count what was asked for")
        pool.free(a, byteCount: 1_250_000)
        pool.releaseCachedMemory()
    }

    /// After each update the trainer returns the cached blocks of classes that update never asked for.
    func testClassesNotAskedForSinceTheLastReleaseAreReturned() {
        let pool = StoragePool()
        let a = pool.allocate(byteCount: 1 << 20), b = pool.allocate(byteCount: 4 << 20)
        pool.free(a, byteCount: 1 << 20)
        pool.free(b, byteCount: 4 << 20)
        pool.releaseUnusedClasses()   // both classes were asked for: kept
        XCTAssertEqual(pool.cachedBytes, 5 << 20)
        XCTAssertEqual(pool.allocate(byteCount: 1 << 20), a)
        pool.free(a, byteCount: 1 << 20)
        pool.releaseUnusedClasses()   // only the 1 MiB class was asked for since
        XCTAssertEqual(pool.cachedBytes, 1 << 20)
        pool.releaseCachedMemory()
    }

    func testTheCacheNeverGrowsPastItsLimit() {
        let pool = StoragePool()
        pool.limit = 3 << 20
        let blocks = (0..<5).map { _ in pool.allocate(byteCount: 1 << 20) }
        for b in blocks { pool.free(b, byteCount: 1 << 20) }
        XCTAssertEqual(pool.cachedBytes, 3 << 20)
        pool.releaseCachedMemory()
    }

    /// LOMO/AdaLomo's cache bound: 64 MB for models whose recurring gradients are small; for LLaMA-2-7B's shape one
    /// float32 gradient of each recurring size (q/k/v/o 4096², gate/up/down 4096 × 11008, the norms), not the
    /// embedding's or the head's, which occur once or twice per step.
    func testMemorySavingLimitHoldsOneGradientOfEachRecurringSize() {
        let small = [32000 * 768] + Array(repeating: 768 * 768, count: 48) + Array(repeating: 768 * 2048, count: 36)
        XCTAssertEqual(StoragePool.memorySavingLimit(parameterCounts: small), 64 << 20)
        let sevenB = [32000 * 4096, 32000 * 4096] + Array(repeating: 4096 * 4096, count: 128)
            + Array(repeating: 4096 * 11008, count: 96) + Array(repeating: 4096, count: 65)
        XCTAssertEqual(StoragePool.memorySavingLimit(parameterCounts: sevenB),
                       4 * 4096 * 4096 + 201_326_592 + 4 * 4096)   // 4096 × 11008 floats in their class (1.5 × 2²⁷ bytes)
    }

    /// Every pool bounds its cache by the live peak (64 MB of slack): a block of a class the next step does not ask
    /// for (a batch of another length) is returned rather than kept on top of the peak.
    func testByDefaultTheCacheStaysWithin64MBOfTheLivePeak() {
        let pool = StoragePool()
        let step = pool.allocate(byteCount: 96 << 20)   // address space only: never touched
        pool.free(step, byteCount: 96 << 20)
        XCTAssertEqual(pool.cachedBytes, 96 << 20, "under the peak: kept for the next step")
        let other = pool.allocate(byteCount: 80 << 20)   // another class: 80 + 96 MiB > the peak 96 + 64
        XCTAssertEqual(pool.cachedBytes, 0, "the unused class went instead of stacking on the peak")
        pool.free(other, byteCount: 80 << 20)
        XCTAssertEqual(pool.cachedBytes, 80 << 20)
        pool.releaseCachedMemory()
    }

    /// LOMO/AdaLomo's mode: what a step frees stays cached while in-use + cached bytes stay within the slack of the
    /// most ever in use at once, so the next step reuses it; a request the cache cannot serve that would cross that
    /// bound returns cached blocks first, largest first.
    func testMemorySavingCachesUpToTheLivePeakAndEvictsPastIt() {
        let pool = StoragePool()
        pool.limitForMemorySaving(1 << 20)
        let first = (0..<3).map { _ in pool.allocate(byteCount: 4 << 20) }
        for block in first { pool.free(block, byteCount: 4 << 20) }
        XCTAssertEqual(pool.cachedBytes, 12 << 20, "the step's 12 MiB fit under its own live peak")
        let second = (0..<3).map { _ in pool.allocate(byteCount: 4 << 20) }
        XCTAssertEqual(Set(second), Set(first), "the next step reuses every block")
        for block in second { pool.free(block, byteCount: 4 << 20) }
        let small = pool.allocate(byteCount: 1 << 20)   // another class: 1 in use + 12 cached = the peak 12 + slack 1
        XCTAssertEqual(pool.cachedBytes, 12 << 20, "within the bound: nothing goes")
        let other = pool.allocate(byteCount: 2 << 20)   // 3 MiB in use + 12 cached > 13: one 4 MiB block goes
        XCTAssertEqual(pool.cachedBytes, 8 << 20)
        XCTAssertLessThanOrEqual(pool.liveBytes + pool.cachedBytes, (12 << 20) + (1 << 20))
        pool.free(other, byteCount: 2 << 20)
        pool.free(small, byteCount: 1 << 20)
        XCTAssertEqual(pool.cachedBytes, 11 << 20, "freed blocks under the bound are kept")
        let peak = (0..<4).map { _ in pool.allocate(byteCount: 4 << 20) }   // a new live peak of 16 MiB
        XCTAssertEqual(pool.liveBytes, 16 << 20)
        XCTAssertLessThanOrEqual(pool.cachedBytes, 1 << 20, "at a new peak at most the slack stays cached")
        for block in peak { pool.free(block, byteCount: 4 << 20) }
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
