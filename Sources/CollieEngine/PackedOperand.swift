import CCollieKernels

/// A matrix-product operand packed once for many products on the calling thread: attention's tiles multiply the same
/// query block by every key tile and the same key tile by every query block, so each is packed into the GEMM's
/// micro-panels once (`collie_gemm_pack_operand`) instead of once per product.
///
/// A `.left` operand is op(A) of C = A·B (its rows are C's rows), a `.right` one op(B) (its rows are C's columns);
/// both have `depth` values per row, the products' K. Float32 uses the GEMM's layout for `precision` at the current
/// kernel level; float64 (gradient checks only) keeps rows of `depth` values and multiplies with a plain loop.
final class PackedOperand<F: FloatElement> {
    enum Side { case left, right }

    let side: Side
    let precision: GEMMPrecision
    /// Rows and depth of what was packed last.
    private(set) var rows = 0, depth = 0
    /// Whether the last packing may be reused (`pack(reusing: true)` since the last `forget()`).
    private var reusable = false
    private let capacity: Int
    private let buffer: UnsafeMutableRawPointer

    /// An operand with room for `maxRows` rows of `maxDepth` values.
    init(_ side: Side, precision: GEMMPrecision, maxRows: Int, maxDepth: Int) {
        self.side = side
        self.precision = precision
        capacity = Swift.max(1, Self.bytes(side, precision, rows: maxRows, depth: maxDepth))
        buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 64)
    }

    deinit { buffer.deallocate() }

    /// Makes the next `pack` run even when it reuses (the source changed).
    func forget() { reusable = false }

    private static func bytes(_ side: Side, _ precision: GEMMPrecision, rows: Int, depth: Int) -> Int {
        guard F.self == Float.self else { return rows * depth * MemoryLayout<F>.stride }
        return collie_gemm_packed_bytes(precision == .bfloat16 ? 1 : 0, side == .left ? 0 : 1, rows, depth)
    }

    /// Packs the `rows` × `depth` matrix X(r, k) = `source[r·ld + k]` (`depthContiguous`) or `source[k·ld + r]` —
    /// with `reusing`, only when the operand does not already hold a packing of that size made since `forget()`
    /// (the caller keeps one operand per source, as attention's key tiles do).
    func pack(_ source: UnsafePointer<F>, ld: Int, depthContiguous: Bool, rows: Int, depth: Int, reusing: Bool = false) {
        if reusing && reusable && rows == self.rows && depth == self.depth { return }
        precondition(Self.bytes(side, precision, rows: rows, depth: depth) <= capacity, "packed operand too small")
        (self.rows, self.depth, reusable) = (rows, depth, reusing)
        if F.self == Float.self {
            collie_gemm_pack_operand(precision == .bfloat16 ? 1 : 0, side == .left ? 0 : 1,
                                     UnsafeRawPointer(source).assumingMemoryBound(to: Float.self), ld,
                                     depthContiguous ? 1 : 0, rows, depth, buffer)
            return
        }
        let packed = buffer.assumingMemoryBound(to: F.self)
        for r in 0..<rows {
            for k in 0..<depth { packed[r * depth + k] = depthContiguous ? source[r * ld + k] : source[k * ld + r] }
        }
    }

    /// The part of a causal product to compute (attention's diagonal tiles): row i may use column (or k) j only where
    /// j ≤ i + diagonal, the rest being masked; work outside is skipped in whole micro-tiles (collie_gemm.h's bands).
    /// Float64 computes every product whole, which the callers' masking makes equal.
    enum Band {
        case full
        /// Entries of C beyond the band are not computed: tiles wholly beyond hold `fill` (beta = 0).
        case columns(diagonal: Int, fill: F)
        /// Row i sums k ≤ i + diagonal only (A is zero beyond).
        case depthEnd(diagonal: Int)
        /// Row i sums k ≥ i − diagonal only (A is zero before).
        case depthStart(diagonal: Int)
    }

    /// c = alpha·A·B + beta·c over A's first `m` rows and B's first `n` rows (columns of C), on the calling thread;
    /// beta = 0 writes c without reading it. A and B must hold the same depth.
    static func multiply(_ a: PackedOperand, _ b: PackedOperand, m: Int, n: Int, alpha: F, beta: F,
                         c: UnsafeMutablePointer<F>, ldc: Int, band: Band = .full) {
        precondition(a.side == .left && b.side == .right && a.precision == b.precision && a.depth == b.depth && m <= a.rows && n <= b.rows,
                     "packed operands do not fit the product")
        OpProfile.timingGEMM {
            if F.self == Float.self {
                let raw = { (p: UnsafeMutablePointer<F>) in UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self) }
                let (kind, diagonal, fill): (Int32, Int, F) = switch band {
                case .full: (Int32(COLLIE_BAND_FULL), 0, 0)
                case let .columns(diagonal, fill): (Int32(COLLIE_BAND_COLUMNS), diagonal, fill)
                case let .depthEnd(diagonal): (Int32(COLLIE_BAND_DEPTH_END), diagonal, 0)
                case let .depthStart(diagonal): (Int32(COLLIE_BAND_DEPTH_START), diagonal, 0)
                }
                collie_gemm_multiply_packed(a.precision == .bfloat16 ? 1 : 0, m, n, a.depth,
                                            unsafeBitCast(alpha, to: Float.self), a.buffer, b.buffer,
                                            unsafeBitCast(beta, to: Float.self), raw(c), ldc, kind, diagonal,
                                            unsafeBitCast(fill, to: Float.self))
                return
            }
            let (x, y, depth) = (a.buffer.assumingMemoryBound(to: F.self), b.buffer.assumingMemoryBound(to: F.self), a.depth)
            for i in 0..<m {
                for j in 0..<n {
                    var sum: F = 0
                    for k in 0..<depth { sum += x[i * depth + k] * y[j * depth + k] }
                    c[i * ldc + j] = beta == 0 ? alpha * sum : alpha * sum + beta * c[i * ldc + j]
                }
            }
        }
    }
}
