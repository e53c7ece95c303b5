/// Matrix products on BLAS. Operands that are transposed views are handed to `gemm` with the
/// transpose flag and their leading dimension, never copied; batched products loop over the batch
/// (or fold it into M when the right operand is a shared 2-D matrix).

/// How a matrix (the last two dims of a tensor) sits in memory, as BLAS sees it.
struct MatrixLayout {
    /// The tensor whose storage holds the matrix (possibly a contiguous copy of the original).
    let base: Tensor
    /// Whether BLAS should read the stored matrix transposed.
    let transposed: Bool
    /// BLAS leading dimension.
    let leadingDimension: Int

    init(_ t: Tensor) {
        let r = t.rank
        let rows = t.shape[r - 2], cols = t.shape[r - 1]
        let sr = t.strides[r - 2], sc = t.strides[r - 1]
        if (sc == 1 || cols == 1) && sr >= Swift.max(cols, 1) {
            base = t; transposed = false; leadingDimension = Swift.max(sr, 1)
        } else if (sr == 1 || rows == 1) && sc >= Swift.max(rows, 1) {
            base = t; transposed = true; leadingDimension = Swift.max(sc, 1)
        } else {
            let c = t.contiguousStorageView()
            base = c; transposed = false; leadingDimension = Swift.max(cols, 1)
        }
    }

    /// Element offsets of each batch matrix, for the leading (batch) dims.
    func batchOffsets() -> [Int] {
        let batchShape = Array(base.shape.dropLast(2))
        var offsets = [0]
        for (axis, size) in batchShape.enumerated() {
            let s = base.strides[axis]
            offsets = offsets.flatMap { o in (0..<size).map { o + $0 * s } }
        }
        return offsets
    }
}

extension Tensor {
    /// Matrix product. `a` is [..., M, K]; `b` is [K, N] (shared) or [..., K, N] with the same
    /// leading dims as `a`. Differentiable in both operands.
    public static func matmul(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.rank >= 2 && b.rank >= 2, "matmul needs matrices, got \(a.shape) and \(b.shape)")
        var ac = a.computeView, bc = b.computeView
        if ac.dtype != bc.dtype { ac = ac.to(.float64); bc = bc.to(.float64) }
        let m = ac.shape[ac.rank - 2], k = ac.shape[ac.rank - 1]
        let k2 = bc.shape[bc.rank - 2], n = bc.shape[bc.rank - 1]
        precondition(k == k2, "matmul inner dimensions differ: \(a.shape) × \(b.shape)")
        let batchShape = Array(ac.shape.dropLast(2))
        precondition(bc.rank == 2 || Array(bc.shape.dropLast(2)) == batchShape,
                     "matmul batch dimensions differ: \(a.shape) × \(b.shape)")
        let out = Tensor(uninitializedShape: batchShape + [m, n], dtype: ac.dtype)
        let batch = batchShape.reduce(1, *)

        // Fold the batch into M when b is shared and a's batch is contiguous rows.
        let foldA = bc.rank == 2 && ac.isContiguous
        let la = MatrixLayout(foldA ? ac.reshaped([batch * m, k]).detach() : ac)
        let lb = MatrixLayout(bc)
        func run<F: FloatElement>(_: F.Type) {
            let pa = la.base.pointer(as: F.self), pb = lb.base.pointer(as: F.self), pc = out.pointer(as: F.self)
            if foldA {
                F.gemm(transA: la.transposed, transB: lb.transposed, m: batch * m, n: n, k: k, alpha: 1,
                       a: pa, lda: la.leadingDimension, b: pb, ldb: lb.leadingDimension, beta: 0, c: pc, ldc: n)
                return
            }
            let oa = la.batchOffsets(), ob = bc.rank == 2 ? [Int](repeating: 0, count: batch) : lb.batchOffsets()
            for i in 0..<batch {
                F.gemm(transA: la.transposed, transB: lb.transposed, m: m, n: n, k: k, alpha: 1,
                       a: pa + oa[i], lda: la.leadingDimension, b: pb + ob[i], ldb: lb.leadingDimension,
                       beta: 0, c: pc + i * m * n, ldc: n)
            }
        }
        ac.dtype == .float64 ? run(Double.self) : run(Float.self)

        return out.recording("matmul", [ac, bc]) { grad, sink in
            func back<F: FloatElement>(_: F.Type) {
                let g = grad.pointer(as: F.self)
                let pa = la.base.pointer(as: F.self), pb = lb.base.pointer(as: F.self)
                // dA = dC · op(B)ᵀ, written as [.., M, K] contiguous.
                sink.accumulate(0, as: F.self) { da, beta in
                    if foldA {
                        F.gemm(transA: false, transB: !lb.transposed, m: batch * m, n: k, k: n, alpha: 1,
                               a: g, lda: n, b: pb, ldb: lb.leadingDimension, beta: beta, c: da, ldc: k)
                    } else {
                        let ob = bc.rank == 2 ? [Int](repeating: 0, count: batch) : lb.batchOffsets()
                        for i in 0..<batch {
                            F.gemm(transA: false, transB: !lb.transposed, m: m, n: k, k: n, alpha: 1,
                                   a: g + i * m * n, lda: n, b: pb + ob[i], ldb: lb.leadingDimension,
                                   beta: beta, c: da + i * m * k, ldc: k)
                        }
                    }
                }
                // dB = op(A)ᵀ · dC, summed over the batch when B is shared.
                sink.accumulate(1, as: F.self) { db, beta in
                    if foldA {
                        F.gemm(transA: !la.transposed, transB: false, m: k, n: n, k: batch * m, alpha: 1,
                               a: pa, lda: la.leadingDimension, b: g, ldb: n, beta: beta, c: db, ldc: n)
                    } else {
                        let oa = la.batchOffsets()
                        for i in 0..<batch {
                            let shared = bc.rank == 2
                            F.gemm(transA: !la.transposed, transB: false, m: k, n: n, k: m, alpha: 1,
                                   a: pa + oa[i], lda: la.leadingDimension, b: g + i * m * n, ldb: n,
                                   beta: shared && i > 0 ? 1 : beta, c: db + (shared ? 0 : i * k * n), ldc: n)
                        }
                    }
                }
            }
            grad.dtype == .float64 ? back(Double.self) : back(Float.self)
        }
    }
}
