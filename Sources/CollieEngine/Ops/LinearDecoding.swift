import CCollieKernels

/// The linear layer for decoding: a few input rows (one new token per sequence) without gradient.
///
/// Decoding is bound by reading the weights, not by arithmetic, so a GEMM that packs its operands
/// first wastes most of the time. This path reads each weight row once, straight from its storage
/// (bf16 widened in registers, never copied to float32), and multiplies it with every input row,
/// split over the cores by output rows.
///
/// It is used only inside `Tensor.withDecodingKernels` (KV-cache decoding), so training, evaluation
/// and activation checkpointing keep BLAS's exact summation order.
extension Tensor {
    /// The most input rows the decoding path takes; more rows go to BLAS.
    static let decodingRowLimit = 16

    nonisolated(unsafe) private static var decodingDepth = 0

    /// Runs `body` with small-batch, gradient-free linear layers on the matrix-vector kernels.
    public static func withDecodingKernels<R>(_ body: () throws -> R) rethrows -> R {
        decodingDepth += 1
        defer { decodingDepth -= 1 }
        return try body()
    }

    /// `linear(x, weight, bias)` computed with the matrix-vector kernels, or nil when the case is
    /// not theirs (gradient recording, too many rows, float64, a strided weight).
    static func decodingLinear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor? {
        guard decodingDepth > 0 else { return nil }
        guard !GradMode.isEnabled || (!x.requiresGrad && !weight.requiresGrad && !(bias?.requiresGrad ?? false)) else {
            return nil
        }
        guard x.dtype == .float32, weight.rank == 2, weight.isContiguous,
              weight.dtype == .bfloat16 || weight.dtype == .float32 else { return nil }
        let inFeatures = weight.shape[1], outFeatures = weight.shape[0]
        guard x.shape.last == inFeatures, inFeatures > 0 else { return nil }
        let rows = x.count / inFeatures
        guard rows >= 1, rows <= decodingRowLimit else { return nil }
        let xin = x.contiguous()
        let out = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [outFeatures])
        let px = xin.pointer(as: Float.self), py = out.pointer(as: Float.self)
        // Chunks of at least 64 output rows keep the per-task overhead small against the weight traffic.
        Parallel.forEach(outFeatures, minimumChunk: 64) { range in
            if weight.dtype == .bfloat16 {
                collie_gemv_bf16(weight.pointer(as: UInt16.self), px, py, inFeatures, outFeatures, rows,
                                 range.lowerBound, range.upperBound)
            } else {
                collie_gemv_f32(weight.pointer(as: Float.self), px, py, inFeatures, outFeatures, rows,
                                range.lowerBound, range.upperBound)
            }
        }
        if let bias {
            let widened = bias.contiguousCopy(dtype: .float32)
            let b = widened.pointer(as: Float.self)
            for r in 0..<rows { for o in 0..<outFeatures { py[r * outFeatures + o] += b[o] } }
            withExtendedLifetime(widened) {}
        }
        return out
    }
}
