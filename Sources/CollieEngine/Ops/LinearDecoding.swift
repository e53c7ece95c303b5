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
    public static let decodingRowLimit = 16

    /// Whether this task (or thread) is inside `withDecodingKernels`.
    @TaskLocal private static var isDecoding = false

    /// Runs `body` with small-batch, gradient-free linear layers on the matrix-vector kernels (on this task or
    /// thread only).
    public static func withDecodingKernels<R>(_ body: () throws -> R) rethrows -> R {
        try $isDecoding.withValue(true, operation: body)
    }

    /// `linear(x, weight, bias)` computed with the matrix-vector kernels, or nil when the case is
    /// not theirs (gradient recording, too many rows, float64, a strided weight).
    static func decodingLinear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor? {
        decodingLinears(x, weights: [weight], biases: [bias])?[0]
    }

    /// `linear(x, weights[i], biases[i])` for every i — several layers reading the same input, such as
    /// attention's q, k and v projections — in one parallel loop over all their output rows, or nil
    /// when any of them is not the kernels' case. One loop instead of one per layer saves a
    /// synchronization of the threads per layer, and each thread's share is one run of rows.
    public static func decodingLinears(_ x: Tensor, weights: [Tensor], biases: [Tensor?]) -> [Tensor]? {
        guard isDecoding, !weights.isEmpty, weights.count == biases.count, x.dtype == .float32 else { return nil }
        guard !GradMode.isEnabled || (!x.requiresGrad && !weights.contains { $0.requiresGrad }
                                      && !biases.contains { $0?.requiresGrad ?? false }) else { return nil }
        let inFeatures = weights[0].shape.last ?? 0
        guard x.shape.last == inFeatures, inFeatures > 0, weights.allSatisfy({
            $0.rank == 2 && $0.shape[1] == inFeatures && $0.isContiguous && ($0.dtype == .bfloat16 || $0.dtype == .float32)
        }) else { return nil }
        let rows = x.count / inFeatures
        guard rows >= 1, rows <= decodingRowLimit else { return nil }
        let xin = x.contiguous()
        let outputs = weights.map { Tensor(uninitializedShape: Array(x.shape.dropLast()) + [$0.shape[0]]) }
        // Output row n of the concatenation is row n − starts[i] of weight i.
        var starts = [0]
        for weight in weights { starts.append(starts.last! + weight.shape[0]) }
        let px = xin.pointer(as: Float.self)
        // Chunks of at least 64 output rows keep the per-task overhead small against the weight traffic.
        Parallel.forEach(starts.last!, minimumChunk: 64) { range in
            for (i, weight) in weights.enumerated() {
                let begin = Swift.max(range.lowerBound, starts[i]) - starts[i]
                let end = Swift.min(range.upperBound, starts[i + 1]) - starts[i]
                guard begin < end else { continue }
                let (out, py) = (weight.shape[0], outputs[i].pointer(as: Float.self))
                if weight.dtype == .bfloat16 {
                    collie_gemv_bf16(weight.pointer(as: UInt16.self), px, py, inFeatures, out, rows, begin, end)
                } else {
                    collie_gemv_f32(weight.pointer(as: Float.self), px, py, inFeatures, out, rows, begin, end)
                }
            }
        }
        for (output, bias) in zip(outputs, biases) {
            guard let bias else { continue }
            let widened = bias.contiguousCopy(dtype: .float32)
            let (b, py, out) = (widened.pointer(as: Float.self), output.pointer(as: Float.self), output.shape.last!)
            for r in 0..<rows { for o in 0..<out { py[r * out + o] += b[o] } }
            withExtendedLifetime(widened) {}
        }
        return outputs
    }
}
