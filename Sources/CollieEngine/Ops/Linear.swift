/// Linear layer: y = x·Wᵀ + b, with W stored [out, in] as in PyTorch and Hugging Face.
///
/// Forward is one NT GEMM over all rows; backward is dX = dY·W (NN) and dW += dYᵀ·X (TN), both
/// accumulated in place into the gradient buffers by BLAS's beta.
///
/// A bf16/f16 weight is widened to float32 for each GEMM and the copy dropped right after: the
/// backward widens it again rather than keeping a float32 copy of every weight alive between
/// forward and backward (which would undo the memory bf16 weights save). Its gradient is float32.
/// Under bf16 mixed precision a bf16 weight goes into the GEMM's bfloat16 panels as stored, with no copy
/// (`Float.packedGEMM(bBFloat16:)`; the same products as widening it first).
extension Tensor {
    /// Applies a linear map to the last dimension: `x` [..., in], `weight` [out, in], `bias` [out].
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil) -> Tensor {
        linear(x, weight: weight, bias: bias, residual: nil)
    }

    /// `residual` + x·Wᵀ, for `x` [..., in], `weight` [out, in] and `residual` [..., out] — an adapter's output added to
    /// its layer's (LoRA's B product). The caller promises that nothing reads `residual` after this op (a layer's fresh
    /// output, which the backward of the op that made it does not read): where nothing else can (its storage is its
    /// own, contiguous, of `x`'s dtype) the product is added in place by the GEMM's beta, with no tensor of the
    /// output's size made for the product or for the sum, and backward passes the output's gradient on to the
    /// residual rather than a copy of it.
    public static func linear(_ x: Tensor, weight: Tensor, addingTo residual: Tensor) -> Tensor {
        linear(x, weight: weight, bias: nil, residual: residual)
    }

    private static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?, residual: Tensor?) -> Tensor {
        if let decoded = decodingLinear(x, weight: weight, bias: bias) {   // LinearDecoding.swift
            return residual.map { $0 + decoded } ?? decoded
        }
        let xin = x.computeContiguous
        let halfWeight = !weight.dtype.isCompute && xin.dtype == .float32
        let storedBFloat16 = halfWeight && Self.multipliesStoredBFloat16(weight)
        var w = storedBFloat16 ? weight : halfWeight ? weight.contiguousCopy(dtype: .float32) : weight.computeView
        if !storedBFloat16, w.dtype != xin.dtype { w = w.to(xin.dtype) }
        precondition(w.rank == 2, "linear weight must be [out, in], got \(weight.shape)")
        let inFeatures = w.shape[1], outFeatures = w.shape[0]
        precondition(x.shape.last == inFeatures, "linear: input \(x.shape) does not end in \(inFeatures)")
        var b = bias?.computeView
        if let bb = b, bb.dtype != xin.dtype { b = bb.to(xin.dtype) }
        if let b { precondition(b.shape == [outFeatures], "linear bias must be [\(outFeatures)], got \(b.shape)") }
        let rows = xin.count / Swift.max(inFeatures, 1)
        let lw = MatrixLayout(w)
        let bc = b?.contiguous()
        let outShape = Array(x.shape.dropLast()) + [outFeatures]
        let r = residual?.computeView
        let out: Tensor
        if let r {
            precondition(r.shape == outShape, "linear: residual \(r.shape) is not the output's \(outShape)")
            precondition(bc == nil, "linear: a residual and a bias together")
            // Summed over the residual's own memory when nothing else holds it; else over a copy.
            let parameter = r.requiresGrad && r.isLeaf   // its values outlive the op
            out = !parameter && r.dtype == xin.dtype && r.ownsStorage
                ? Tensor(storage: r.storage, shape: outShape, dtype: r.dtype) : r.contiguousCopy(dtype: xin.dtype)
        } else {
            out = Tensor(uninitializedShape: outShape, dtype: xin.dtype)
        }
        func run<F: FloatElement>(_: F.Type) {
            let y = out.pointer(as: F.self)
            var beta: F = r == nil ? 0 : 1
            if let bc {
                let pb = bc.pointer(as: F.self)
                Parallel.forEach(rows, minimumChunk: 64) { r in
                    for row in r { (y + row * outFeatures).update(from: pb, count: outFeatures) }
                }
                beta = 1
            }
            // Y[rows, out] = X[rows, in] · Wᵀ
            if storedBFloat16 {
                Float.packedGEMM(precision: .bfloat16, transA: false, transB: !lw.transposed, m: rows, n: outFeatures,
                                 k: inFeatures, alpha: 1, a: xin.pointer(as: Float.self), lda: inFeatures,
                                 bBFloat16: lw.base.pointer(as: UInt16.self), ldb: lw.leadingDimension, beta: Float(beta),
                                 c: out.pointer(as: Float.self), ldc: outFeatures)
                return
            }
            F.gemm(transA: false, transB: !lw.transposed, m: rows, n: outFeatures, k: inFeatures, alpha: 1,
                   a: xin.pointer(as: F.self), lda: inFeatures, b: lw.base.pointer(as: F.self),
                   ldb: lw.leadingDimension, beta: beta, c: y, ldc: outFeatures)
        }
        xin.dtype == .float64 ? run(Double.self) : run(Float.self)
        // With a half-precision weight the node holds the bf16/f16 leaf, not the float32 copy.
        let recordedWeight = halfWeight ? weight : w
        let transposed = lw.transposed, leadingDimension = lw.leadingDimension
        let inputs = [xin, recordedWeight] + (bc.map { [$0] } ?? []) + (r.map { [$0] } ?? [])
        // dW reads X, dX only W: a frozen weight's layer (LoRA's base) does not keep its input alive.
        let keptInput = recordedWeight.requiresGrad ? xin : nil
        let hasBias = bc != nil, hasResidual = r != nil
        return out.recording(hasResidual ? "linear_add" : "linear", inputs) { grad, sink in
            func back<F: FloatElement>(_: F.Type) {
                let g = grad.pointer(as: F.self)
                sink.accumulate(0, as: F.self, overwrites: true) { dx, beta in   // dX = dY · W
                    if halfWeight, Tensor.multipliesStoredBFloat16(weight) {
                        let stored = MatrixLayout(weight)
                        Float.packedGEMM(precision: .bfloat16, transA: false, transB: stored.transposed, m: rows,
                                         n: inFeatures, k: outFeatures, alpha: 1, a: grad.pointer(as: Float.self),
                                         lda: outFeatures, bBFloat16: stored.base.pointer(as: UInt16.self),
                                         ldb: stored.leadingDimension, beta: Float(beta),
                                         c: UnsafeMutableRawPointer(dx).assumingMemoryBound(to: Float.self), ldc: inFeatures)
                        return
                    }
                    let base = halfWeight ? weight.contiguousCopy(dtype: .float32) : MatrixLayout(recordedWeight).base
                    let pw = base.pointer(as: F.self)
                    F.gemm(transA: false, transB: transposed, m: rows, n: inFeatures, k: outFeatures, alpha: 1,
                           a: g, lda: outFeatures, b: pw, ldb: leadingDimension, beta: beta, c: dx, ldc: inFeatures)
                }
                sink.accumulate(1, as: F.self, overwrites: true) { dw, beta in   // dW = dYᵀ · X
                    F.gemm(transA: true, transB: false, m: outFeatures, n: inFeatures, k: rows, alpha: 1,
                           a: g, lda: outFeatures, b: keptInput!.pointer(as: F.self), ldb: inFeatures, beta: beta,
                           c: dw, ldc: inFeatures)
                }
                if hasBias {
                    sink.accumulate(2, as: F.self) { db, beta in
                        if beta == 0 { db.initialize(repeating: 0, count: outFeatures) }
                        for row in 0..<rows {
                            let gr = g + row * outFeatures
                            for j in 0..<outFeatures { db[j] += gr[j] }
                        }
                    }
                }
            }
            grad.dtype == .float64 ? back(Double.self) : back(Float.self)
            // The residual's gradient is the output's: handed on once the products above have read it.
            if hasResidual { sink.give(grad, toInput: 2) }
        }
    }

    /// Whether a product with the half-precision weight `weight` reads its bf16 storage directly: under bf16 mixed
    /// precision, whose GEMM rounds its operands to bfloat16 anyway.
    static func multipliesStoredBFloat16(_ weight: Tensor) -> Bool {
        weight.dtype == .bfloat16 && weight.rank == 2 && MixedPrecision.current == .bfloat16
    }
}
