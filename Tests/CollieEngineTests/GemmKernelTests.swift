import CCollieKernels
import XCTest
@testable import CollieEngine
import CollieTestSupport

/// Collie's own packed GEMM (collie_gemm.h) at every kernel level this CPU has, and on the AMX kernel (level 5; emulated
/// where the CPU lacks AMX but has AVX512_BF16): the float32 product equals a float64
/// reference within 1e-5 of Σ|alpha·a·b| + |beta·c| for every transpose combination, edge tile, cache-block boundary and
/// thread split; the bfloat16 product equals the float64 reference over the bfloat16-rounded operands as closely, and
/// differs from the float32 product by bfloat16's rounding.
final class GemmKernelTests: XCTestCase {
    /// (M, N, K): tails of every tile (1, 7, 33, 257), K across the 768-deep K block (float32) and the 2048-deep one
    /// (bf16 pairs, AMX) — with whole tiles of C added to after the first block (33×64) — N across the 2048-column
    /// block, and products large enough to be split over threads along M (257×33) and along N (20×300).
    static let shapes: [(m: Int, n: Int, k: Int)] = [
        (1, 1, 1), (7, 33, 1), (1, 257, 7), (33, 7, 257), (257, 33, 33), (20, 300, 64), (9, 40, 777), (3, 4100, 5),
        (5, 37, 2051), (33, 64, 2080),
    ]

    /// One product's operands, stored with leading dimensions wider than their rows, and its float64 reference.
    struct Case {
        let m, n, k: Int
        let transA, transB: Bool
        let alpha, beta: Float
        let lda, ldb, ldc: Int
        let a, b, c: [Float]

        init(m: Int, n: Int, k: Int, transA: Bool, transB: Bool, alpha: Float, beta: Float, seed: UInt64) {
            (self.m, self.n, self.k, self.transA, self.transB, self.alpha, self.beta) = (m, n, k, transA, transB, alpha, beta)
            lda = (transA ? m : k) + 3
            ldb = (transB ? k : n) + 2
            ldc = n + 5
            var generator = RandomGenerator(seed: seed)
            func values(_ count: Int) -> [Float] {
                (0..<count).map { _ in Float(generator.next() >> 40) * 0x1.0p-23 - 1 }
            }
            a = values(lda * (transA ? k : m))
            b = values(ldb * (transB ? n : k))
            c = values(ldc * (m + 1))   // a guard row past M
        }

        /// `other` with B replaced by `b` (of the same size).
        init(copying other: Case, b: [Float]) {
            (m, n, k, transA, transB, alpha, beta) = (other.m, other.n, other.k, other.transA, other.transB, other.alpha, other.beta)
            (lda, ldb, ldc, a, c) = (other.lda, other.ldb, other.ldc, other.a, other.c)
            precondition(b.count == other.b.count)
            self.b = b
        }

        func opA(_ i: Int, _ p: Int) -> Float { transA ? a[p * lda + i] : a[i * lda + p] }
        func opB(_ p: Int, _ j: Int) -> Float { transB ? b[j * ldb + p] : b[p * ldb + j] }

        /// alpha·Σ op(A)·op(B) + beta·C in float64 (operands rounded to bfloat16 first when `rounded`), and the bound
        /// Σ|alpha·a·b| + |beta·c| its error is measured against, per element of C.
        func reference(rounded: Bool) -> (values: [Double], scale: [Double]) {
            func value(_ x: Float) -> Double {
                rounded ? Double(HalfPrecision.float(bfloat16: HalfPrecision.bfloat16Bits(x))) : Double(x)
            }
            var values = [Double](repeating: 0, count: m * n), scale = values
            for i in 0..<m {
                for j in 0..<n {
                    var sum = 0.0, magnitude = 0.0
                    for p in 0..<k {
                        let product = value(opA(i, p)) * value(opB(p, j))
                        sum += product
                        magnitude += abs(product)
                    }
                    let old = beta == 0 ? 0 : Double(beta) * Double(c[i * ldc + j])
                    values[i * n + j] = Double(alpha) * sum + old
                    scale[i * n + j] = abs(Double(alpha)) * magnitude + abs(old)
                }
            }
            return (values, scale)
        }

        /// C after the product, computed by Collie's GEMM.
        func run(_ precision: GEMMPrecision, threads: Int = 2) -> [Float] {
            var out = c
            Float.packedGEMM(precision: precision, transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                             a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: &out, ldc: ldc, threads: threads)
            return out
        }

        /// The largest |C − reference| / scale over C's M×N elements; fails if anything past a row's N columns, or in
        /// the guard row past M, moved.
        func worstError(_ out: [Float], _ reference: (values: [Double], scale: [Double]),
                        file: StaticString = #filePath, line: UInt = #line) -> Double {
            var worst = 0.0
            for i in 0..<m {
                for j in 0..<ldc {
                    if j >= n {
                        XCTAssertEqual(out[i * ldc + j].bitPattern, c[i * ldc + j].bitPattern,
                                       "C[\(i), \(j)] lies past N and must not change", file: file, line: line)
                        continue
                    }
                    let error = abs(Double(out[i * ldc + j]) - reference.values[i * n + j])
                    worst = max(worst, error / max(reference.scale[i * n + j], .leastNormalMagnitude))
                }
            }
            let moved = (m * ldc..<c.count).filter { out[$0].bitPattern != c[$0].bitPattern }
            XCTAssert(moved.isEmpty, "C[\(m), \((moved.first ?? 0) - m * ldc)] lies past M and must not change",
                      file: file, line: line)
            return worst
        }
    }

    /// Every shape with every transpose combination; alpha and beta vary with the combination (beta 0 included).
    static func cases() -> [Case] {
        var cases: [Case] = []
        for (index, shape) in shapes.enumerated() {
            for (t, (transA, transB)) in [(false, false), (false, true), (true, false), (true, true)].enumerated() {
                let (alpha, beta): (Float, Float) = [(1, 0), (0.75, -0.5), (-1.5, 1), (2, 0)][t]
                cases.append(Case(m: shape.m, n: shape.n, k: shape.k, transA: transA, transB: transB, alpha: alpha,
                                  beta: beta, seed: UInt64(index * 4 + t + 1)))
            }
        }
        return cases
    }

    func testFloat32GEMMMatchesFloat64ReferenceAtEveryLevel() {
        for product in Self.cases() {
            let reference = product.reference(rounded: false)
            forEachKernelLevel { level in   // the AMX kernel is bf16's only: float32 runs no other code at level 5
                let worst = product.worstError(product.run(.float32), reference)
                XCTAssertLessThanOrEqual(worst, 1e-5, "float32 \(product.m)×\(product.n)×\(product.k) "
                                         + "transA \(product.transA) transB \(product.transB) at level \(level)")
            }
        }
    }

    func testBFloat16GEMMMatchesReferenceOverRoundedOperandsAtEveryLevel() {
        for product in Self.cases() {
            let reference = product.reference(rounded: true)
            forEachGEMMKernel { level in
                let worst = product.worstError(product.run(.bfloat16), reference)
                XCTAssertLessThanOrEqual(worst, 1e-5, "bfloat16 \(product.m)×\(product.n)×\(product.k) "
                                         + "transA \(product.transA) transB \(product.transB) at level \(level)")
            }
        }
    }

    /// The operands really are rounded: against the float32 reference the bfloat16 product is off by far more than
    /// float32's accumulation could explain, yet within bfloat16's bound (an operand off by at most 2⁻⁸ of itself, a
    /// product by about 2⁻⁷).
    func testBFloat16GEMMDiffersFromFloat32ByOperandRounding() {
        let product = Case(m: 33, n: 40, k: 257, transA: false, transB: true, alpha: 1, beta: 0, seed: 99)
        let exact = product.reference(rounded: false)
        forEachGEMMKernel { level in
            let worst = product.worstError(product.run(.bfloat16), exact)
            XCTAssertGreaterThan(worst, 1e-4, "bfloat16 product as close as float32 at level \(level)")
            XCTAssertLessThanOrEqual(worst, 0x1.0p-7 + 1e-5, "bfloat16 product beyond operand rounding at level \(level)")
        }
    }

    /// B stored as bfloat16 (a bf16 weight) goes into the panels as it is: the product equals, bit for bit, the one on
    /// B widened to float32 — for every shape, transpose, level and precision, odd K's zero pad included.
    func testBFloat16StoredOperandEqualsItsFloat32Widening() {
        for product in Self.cases() {
            let bits = product.b.map(HalfPrecision.bfloat16Bits)
            let widened = Case(copying: product, b: bits.map { HalfPrecision.float(bfloat16: $0) })
            forEachGEMMKernel { level in
                for precision in [GEMMPrecision.float32, .bfloat16] {
                    var out = product.c
                    Float.packedGEMM(precision: precision, transA: product.transA, transB: product.transB, m: product.m,
                                     n: product.n, k: product.k, alpha: product.alpha, a: product.a, lda: product.lda,
                                     bBFloat16: bits, ldb: product.ldb, beta: product.beta, c: &out, ldc: product.ldc)
                    XCTAssertEqual(out.map(\.bitPattern), widened.run(precision).map(\.bitPattern),
                                   "\(precision) \(product.m)×\(product.n)×\(product.k) transA \(product.transA) "
                                   + "transB \(product.transB) at level \(level)")
                }
            }
        }
    }

    /// Operands packed once (`PackedOperand`, for attention's tiles) multiply to the same bits as the GEMM on the
    /// unpacked operands on one thread — every shape (K past the 768- and 2048-deep blocks included), transpose, level and
    /// precision — and the float64 operand (gradient checks) to its reference.
    func testProductsOfPackedOperandsEqualTheGEMM() {
        for product in Self.cases() {
            forEachGEMMKernel { level in
                for precision in [GEMMPrecision.float32, .bfloat16] {
                    let left = PackedOperand<Float>(.left, precision: precision, maxRows: product.m, maxDepth: product.k)
                    let right = PackedOperand<Float>(.right, precision: precision, maxRows: product.n, maxDepth: product.k)
                    product.a.withUnsafeBufferPointer {
                        left.pack($0.baseAddress!, ld: product.lda, depthContiguous: !product.transA, rows: product.m,
                                  depth: product.k)
                    }
                    product.b.withUnsafeBufferPointer {
                        right.pack($0.baseAddress!, ld: product.ldb, depthContiguous: product.transB, rows: product.n,
                                   depth: product.k)
                    }
                    var out = product.c
                    PackedOperand.multiply(left, right, m: product.m, n: product.n, alpha: product.alpha,
                                           beta: product.beta, c: &out, ldc: product.ldc)
                    XCTAssertEqual(out.map(\.bitPattern), product.run(precision, threads: 1).map(\.bitPattern),
                                   "\(precision) \(product.m)×\(product.n)×\(product.k) transA \(product.transA) "
                                   + "transB \(product.transB) at level \(level)")
                }
            }
        }
        let product = Self.cases()[13]
        let (a, b) = (product.a.map(Double.init), product.b.map(Double.init))
        let left = PackedOperand<Double>(.left, precision: .float32, maxRows: product.m, maxDepth: product.k)
        let right = PackedOperand<Double>(.right, precision: .float32, maxRows: product.n, maxDepth: product.k)
        a.withUnsafeBufferPointer {
            left.pack($0.baseAddress!, ld: product.lda, depthContiguous: !product.transA, rows: product.m, depth: product.k)
        }
        b.withUnsafeBufferPointer {
            right.pack($0.baseAddress!, ld: product.ldb, depthContiguous: product.transB, rows: product.n, depth: product.k)
        }
        var out = product.c.map(Double.init)
        PackedOperand.multiply(left, right, m: product.m, n: product.n, alpha: Double(product.alpha),
                               beta: Double(product.beta), c: &out, ldc: product.ldc)
        let reference = product.reference(rounded: false)
        for i in 0..<product.m {
            for j in 0..<product.n {
                XCTAssertEqual(out[i * product.ldc + j], reference.values[i * product.n + j],
                               accuracy: 1e-12 * max(1, reference.scale[i * product.n + j]))
            }
        }
    }

    /// A tile on C's bottom edge runs the microkernel of its own row count (1 ... MR − 1 rows, in place): every count
    /// up to two AVX-512 tiles and a row, with whole and partial tiles of columns, added to C and written over it.
    func testBottomEdgeTilesOfEveryRowCount() {
        for m in 1...29 {
            let product = Case(m: m, n: 80, k: 19, transA: m % 2 == 0, transB: m % 3 == 0, alpha: 1.25,
                               beta: m % 4 == 0 ? 0 : -0.5, seed: UInt64(100 + m))
            for rounded in [false, true] {
                let reference = product.reference(rounded: rounded)
                forEachGEMMKernel { level in
                    let worst = product.worstError(product.run(rounded ? .bfloat16 : .float32), reference)
                    XCTAssertLessThanOrEqual(worst, 1e-5, "M = \(m), \(rounded ? "bfloat16" : "float32") at level \(level)")
                }
            }
        }
    }

    /// Threads only split C: one thread and two give the same bits.
    func testThreadCountDoesNotChangeTheResult() {
        let product = Case(m: 257, n: 300, k: 64, transA: true, transB: false, alpha: 1, beta: 0.5, seed: 7)
        forEachGEMMKernel { level in
            for precision in [GEMMPrecision.float32, .bfloat16] {
                XCTAssertEqual(product.run(precision, threads: 1).map(\.bitPattern),
                               product.run(precision, threads: 2).map(\.bitPattern), "\(precision) at level \(level)")
            }
        }
    }

    /// BLAS's contract at the edges: beta = 0 overwrites C without reading it (NaN in C disappears), K = 0 scales C by
    /// beta, and M or N = 0 touches nothing.
    func testBetaZeroAndEmptyProductsFollowBLAS() {
        let a: [Float] = [1, 2, 3, 4], b: [Float] = [5, 6, 7, 8]
        forEachGEMMKernel { level in
            for precision in [GEMMPrecision.float32, .bfloat16] {
                var c = [Float](repeating: .nan, count: 4)
                Float.packedGEMM(precision: precision, transA: false, transB: false, m: 2, n: 2, k: 2, alpha: 1,
                                 a: a, lda: 2, b: b, ldb: 2, beta: 0, c: &c, ldc: 2)
                XCTAssertEqual(c, [19, 22, 43, 50], "\(precision) at level \(level)")
                Float.packedGEMM(precision: precision, transA: false, transB: false, m: 2, n: 2, k: 0, alpha: 1,
                                 a: a, lda: 1, b: b, ldb: 2, beta: 0.5, c: &c, ldc: 2)
                XCTAssertEqual(c, [9.5, 11, 21.5, 25], "K = 0, \(precision) at level \(level)")
                Float.packedGEMM(precision: precision, transA: false, transB: false, m: 0, n: 2, k: 2, alpha: 1,
                                 a: a, lda: 2, b: b, ldb: 2, beta: 0, c: &c, ldc: 2)
                XCTAssertEqual(c, [9.5, 11, 21.5, 25], "M = 0, \(precision) at level \(level)")
            }
        }
    }

    /// Rounding to bfloat16 keeps a NaN a NaN: one whose payload sits only in the low 16 bits would become infinity
    /// under plain round-to-nearest (0x7F80_0001 + 0x7FFF truncates to 0x7F80_0000). Both operands, both layouts
    /// (k along a source row, and across rows), full vectors and tails.
    func testBFloat16ProductKeepsNaNWhoseBitsRoundToInfinity() {
        let nan = Float(bitPattern: 0x7F80_0001), (m, n, k) = (9, 19, 11)
        forEachGEMMKernel { level in
            for (transA, transB) in [(false, false), (true, true)] {
                var a = [Float](repeating: 1, count: m * k), b = [Float](repeating: 1, count: k * n)
                a[transA ? 3 * m + 7 : 7 * k + 3] = nan      // op(A)[7, 3]: row 7 of C
                b[transB ? 12 * k + 10 : 10 * n + 12] = nan   // op(B)[10, 12]: column 12 of C
                var c = [Float](repeating: 0, count: m * n)
                Float.packedGEMM(precision: .bfloat16, transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1,
                                 a: a, lda: transA ? m : k, b: b, ldb: transB ? k : n, beta: 0, c: &c, ldc: n)
                for i in 0..<m {
                    for j in 0..<n {
                        let expected: Float = i == 7 || j == 12 ? .nan : Float(k)
                        XCTAssertEqual(c[i * n + j].isNaN, expected.isNaN,
                                       "C[\(i), \(j)] = \(c[i * n + j]), transA \(transA) at level \(level)")
                        if !expected.isNaN { XCTAssertEqual(c[i * n + j], expected) }
                    }
                }
            }
        }
    }

    /// Level 5 runs the AMX microkernel for the bfloat16 product, level 4 the AVX512_BF16 one, and both AVX-512F for
    /// float32; every lower level runs its own float32 microkernel for both.
    func testMicrokernelFollowsKernelLevel() {
        forEachGEMMKernel { level in
            let float32 = collie_gemm_kernel_level(0), bfloat16 = collie_gemm_kernel_level(1)
            XCTAssertEqual(float32, min(level, 2), "float32 at level \(level)")
            XCTAssertEqual(bfloat16, level >= 4 ? level : min(level, 2), "bfloat16 at level \(level)")
        }
    }

    /// At level 4 a bf16 product runs the pair kernel or, where this CPU's pair dot product is slower than its float32
    /// FMA, the float32 kernel on rounded operands — as measured here, or as set; both give a bfloat16-rounded product.
    func testBFloat16ProductsChooseTheFasterKernelAtLevel4() throws {
        try XCTSkipUnless(collie_kernel_level() == 4, "level \(collie_kernel_level()): no choice to make")
        defer { _ = collie_gemm_set_bf16_pairs(-1) }
        let ratio = collie_peak_bf16_per_fp32()
        XCTAssertGreaterThan(ratio, 0)
        let measured = ProcessInfo.processInfo.environment["COLLIE_BF16_GEMM"].flatMap { ["pairs": true, "float32": false][$0] }
            ?? (ratio >= 0.75)
        XCTAssertEqual(collie_gemm_set_bf16_pairs(-1), measured ? 1 : 0, "pair / float32 FMA rate \(ratio)")
        XCTAssertEqual(collie_gemm_kernel_level(1), measured ? 4 : 2)

        let product = Case(m: 37, n: 29, k: 70, transA: false, transB: true, alpha: 1, beta: 0.5, seed: 9)
        let reference = product.reference(rounded: true)
        for pairs: Int32 in [1, 0] {
            XCTAssertEqual(collie_gemm_set_bf16_pairs(pairs), pairs)
            XCTAssertEqual(collie_gemm_kernel_level(1), pairs == 1 ? 4 : 2)
            XCTAssertEqual(MixedPrecision.bfloat16Products, pairs == 1 ? .pairs : .float32)
            XCTAssertEqual(ArithmeticPeak.bfloat16, pairs == 1 ? .bfloat16AVX512 : nil)   // what bf16 MFU divides by
            XCTAssertLessThanOrEqual(product.worstError(product.run(.bfloat16), reference), 1e-5, "pairs \(pairs)")
        }
    }

    /// The check level detection runs before it allows AMX passes on the emulated tiles (and where the CPU has AMX, on
    /// the hardware: level 5 is detected only then). Emulation needs level 4's packing code.
    func testAMXKernelCheckPasses() throws {
        try XCTSkipUnless(collie_kernel_level() >= 4, "no AVX512_BF16: the AMX kernel's packing cannot run here")
        XCTAssertEqual(collie_gemm_amx_check(1), 1)
        if collie_kernel_level() == 5 { XCTAssertEqual(collie_gemm_amx_check(0), 1) }
    }
}
