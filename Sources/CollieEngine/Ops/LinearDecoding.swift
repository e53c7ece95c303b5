import CCollieKernels

/// The weight of a linear layer: a dense tensor [out, in] or frozen quantized blocks.
public enum LinearWeight {
    /// A bf16 / f16 / float32 / float64 tensor [out, in].
    case dense(Tensor)
    /// GGML blocks (`Tensor.linear(_:quantized:bias:)`).
    case quantized(QuantizedMatrix)

    /// Output features.
    public var outFeatures: Int {
        switch self {
        case .dense(let weight): weight.rank == 2 ? weight.shape[0] : 0
        case .quantized(let matrix): matrix.rows
        }
    }

    /// Input features.
    public var inFeatures: Int {
        switch self {
        case .dense(let weight): weight.shape.last ?? 0
        case .quantized(let matrix): matrix.columns
        }
    }

    /// Bytes of the weight as kept: its blocks when quantized, else its elements.
    public var byteCount: Int {
        switch self {
        case .dense(let weight): weight.count * weight.dtype.size
        case .quantized(let matrix): matrix.byteCount
        }
    }

    /// The weight as a float32 tensor [out, in]: the dense tensor itself, or the blocks dequantized (a new tensor).
    public func floatWeight() -> Tensor {
        switch self {
        case .dense(let tensor): tensor
        case .quantized(let matrix): matrix.dequantized()
        }
    }
}

extension Tensor {
    /// Applies a linear map with a dense or quantized `weight` [out, in] to the last dimension of `x`.
    public static func linear(_ x: Tensor, weight: LinearWeight, bias: Tensor? = nil) -> Tensor {
        switch weight {
        case .dense(let tensor): linear(x, weight: tensor, bias: bias)
        case .quantized(let matrix): linear(x, quantized: matrix, bias: bias)
        }
    }
}

/// How decoding multiplies activations with quantized weights.
public enum QuantizedActivations: String, Codable, CaseIterable, Sendable {
    /// Float32 activations against blocks widened in registers: the dequantized float linear up to summation order.
    case float
    /// Activations quantized to 8 bits per block and integer dot products, llama.cpp's arithmetic.
    case int8
    /// `int8` for one input row, where reading the blocks bounds the step and the integer kernels read them fastest,
    /// and `float` for more, where arithmetic bounds it (SmolLM2 Q4_1 on Zen 4: batch 1 143 vs 105 tokens/s, batch 8
    /// 300 vs 358; docs/PERFORMANCE.md); `float` for the output projection at any batch
    /// (`withOutputProjectionActivations`). The default.
    case automatic

    /// The arithmetic for `rows` input rows.
    func resolved(rows: Int) -> QuantizedActivations {
        guard self == .automatic else { return self }
        return rows == 1 ? .int8 : .float
    }
}

/// The linear layer for decoding: a few input rows (one new token per sequence) without gradient.
///
/// Decoding is bound by reading the weights, not by arithmetic, so a GEMM that packs its operands
/// first wastes most of the time. This path reads each weight row once, straight from its storage
/// (bf16 widened in registers, never copied to float32; quantized blocks decoded in registers), and
/// multiplies it with every input row, split over the cores by output rows.
///
/// It is used only inside `Tensor.withDecodingKernels` (KV-cache decoding), so training, evaluation
/// and activation checkpointing keep BLAS's exact summation order.
extension Tensor {
    /// The most input rows the decoding path takes; more rows go to BLAS.
    public static let decodingRowLimit = 16

    /// Whether this task (or thread) is inside `withDecodingKernels`.
    @TaskLocal private static var isDecoding = false

    /// The activations quantized weights use while decoding on this task (or thread).
    public static var quantizedActivations: QuantizedActivations { activationsOfTask }
    @TaskLocal private static var activationsOfTask = QuantizedActivations.automatic

    /// Runs `body` with small-batch, gradient-free linear layers on the matrix-vector kernels (on this task or
    /// thread only).
    public static func withDecodingKernels<R>(_ body: () throws -> R) rethrows -> R {
        try $isDecoding.withValue(true, operation: body)
    }

    /// Runs `body` with decoding's quantized linear layers using `activations` (on this task or thread only).
    public static func withQuantizedActivations<R>(_ activations: QuantizedActivations,
                                                   _ body: () throws -> R) rethrows -> R {
        try $activationsOfTask.withValue(activations, operation: body)
    }

    /// Runs `body`, a model's output projection, with `.automatic` activations resolved to `.float`: the logits that
    /// pick the next token are then the dequantized weights' own (up to summation order) while still read from the
    /// blocks. 8-bit activations move SmolLM2's logits by ~0.2, enough to swap two candidates 0.08 apart and derail
    /// an answer; `.int8` asked for explicitly stays (llama.cpp's arithmetic, which parity checks need).
    public static func withOutputProjectionActivations<R>(_ body: () throws -> R) rethrows -> R {
        guard activationsOfTask == .automatic else { return try body() }
        return try $activationsOfTask.withValue(.float, operation: body)
    }

    /// `linear(x, weight, bias)` computed with the matrix-vector kernels, or nil when the case is
    /// not theirs (gradient recording, too many rows, float64, a strided weight).
    static func decodingLinear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor? {
        decodingLinears(x, weights: [.dense(weight)], biases: [bias])?[0]
    }

    /// `decodingLinears` for dense weights only.
    public static func decodingLinears(_ x: Tensor, weights: [Tensor], biases: [Tensor?]) -> [Tensor]? {
        decodingLinears(x, weights: weights.map { .dense($0) }, biases: biases)
    }

    /// `linear(x, weights[i], biases[i])` for every i — several layers reading the same input, such as
    /// attention's q, k and v projections — in one parallel loop over all their output rows, or nil
    /// when any of them is not the kernels' case. One loop instead of one per layer saves a
    /// synchronization of the threads per layer, and each thread's share is one run of rows.
    public static func decodingLinears(_ x: Tensor, weights: [LinearWeight], biases: [Tensor?]) -> [Tensor]? {
        guard isDecoding, !weights.isEmpty, weights.count == biases.count, x.dtype == .float32 else { return nil }
        let inFeatures = weights[0].inFeatures
        guard !GradMode.isEnabled || (!x.requiresGrad && !biases.contains { $0?.requiresGrad ?? false }
                                      && !weights.contains { if case .dense(let w) = $0 { w.requiresGrad } else { false } })
        else { return nil }
        guard x.shape.last == inFeatures, inFeatures > 0, weights.allSatisfy({
            switch $0 {
            case .dense(let w):
                w.rank == 2 && w.shape[1] == inFeatures && w.isContiguous && (w.dtype == .bfloat16 || w.dtype == .float32)
            case .quantized(let matrix): matrix.columns == inFeatures
            }
        }) else { return nil }
        let rows = x.count / inFeatures
        guard rows >= 1, rows <= decodingRowLimit else { return nil }
        let xin = x.contiguous()
        let outputs = weights.map { Tensor(uninitializedShape: Array(x.shape.dropLast()) + [$0.outFeatures]) }
        // Output row n of the concatenation is row n − starts[i] of weight i.
        var starts = [0]
        for weight in weights { starts.append(starts.last! + weight.outFeatures) }
        let px = xin.pointer(as: Float.self)
        // 8-bit activations: x quantized once per call, for every weight format that needs it.
        let activations = quantizedActivations.resolved(rows: rows)
        var quantizedInputs: [BlockFormat: TensorStorage] = [:]
        if activations == .int8 {
            for case .quantized(let matrix) in weights where quantizedInputs[matrix.format] == nil {
                quantizedInputs[matrix.format] = quantizeActivations(px, rows: rows, columns: inFeatures,
                                                                     for: matrix.format)
            }
        }
        // Chunks of at least 64 output rows keep the per-task overhead small against the weight traffic.
        Parallel.forEach(starts.last!, minimumChunk: 64) { range in
            for (i, weight) in weights.enumerated() {
                let begin = Swift.max(range.lowerBound, starts[i]) - starts[i]
                let end = Swift.min(range.upperBound, starts[i + 1]) - starts[i]
                guard begin < end else { continue }
                let (out, py) = (weight.outFeatures, outputs[i].pointer(as: Float.self))
                switch weight {
                case .dense(let weight) where weight.dtype == .bfloat16:
                    collie_gemv_bf16(weight.pointer(as: UInt16.self), px, py, inFeatures, out, rows, begin, end)
                case .dense(let weight):
                    collie_gemv_f32(weight.pointer(as: Float.self), px, py, inFeatures, out, rows, begin, end)
                case .quantized(let matrix):
                    if let xq = quantizedInputs[matrix.format] {
                        collie_qgemv_q8(matrix.format.ggmlType, matrix.storage.data, xq.data, py, inFeatures, out,
                                        rows, begin, end)
                    } else {
                        collie_qgemv_f32(matrix.format.ggmlType, matrix.storage.data, px, py, inFeatures, out, rows,
                                         begin, end)
                    }
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
        withExtendedLifetime(quantizedInputs) {}
        return outputs
    }

    /// x [rows, columns] quantized to the 8-bit activation format of `format` weights (ggml's vec_dot_type).
    private static func quantizeActivations(_ x: UnsafePointer<Float>, rows: Int, columns: Int,
                                            for format: BlockFormat) -> TensorStorage {
        let storage = TensorStorage(byteCount: rows * collie_activation_row_bytes(format.ggmlType, columns))
        collie_quantize_activations(format.ggmlType, x, storage.data, columns, rows)
        return storage
    }
}
