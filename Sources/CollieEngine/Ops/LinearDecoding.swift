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

    /// The dense tensor, or nil for quantized blocks.
    public var denseTensor: Tensor? {
        if case .dense(let tensor) = self { return tensor }
        return nil
    }

    /// The quantized blocks, or nil for a dense tensor.
    public var quantizedMatrix: QuantizedMatrix? {
        if case .quantized(let matrix) = self { return matrix }
        return nil
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
    /// Activations rounded to bfloat16 and AVX512_BF16 dot products (vdpbf16ps) with the blocks' integers: the
    /// dequantized weights times the rounded activations, up to summation order. Below kernel level 4 (no
    /// AVX512_BF16) the same sums run in plain C: correct, but slow.
    case bfloat16
    /// The fastest measured for the format and row count (Zen 4; docs/PERFORMANCE.md). Q8_0 with AVX-512 VNNI (kernel
    /// level 3 and 4): `int8` at any row count (from 2 rows its wide kernel, 8 blocks per register; single-thread GB/s,
    /// int8 / bfloat16, Q8_0 576×1536 at 8 rows: 4.98 / 3.26). Otherwise, with AVX512_BF16 (level 4): `bfloat16` for
    /// the other 32-value formats from 2 input rows and Q4_1 from 1 (bfloat16 / float / int8, Q4_1 576×1536: one row
    /// 12.7 / 4.9 / 10.8, 8 rows 3.6 / 3.2 / 3.0). Otherwise `int8` for one input row, where reading the blocks bounds
    /// the step, and `float` for more, where arithmetic bounds it. SmolLM2 Q4_1 end to end, 2 threads, tokens/s: batch
    /// 1 144 (bfloat16 alone 157, int8 147, float 79: within the noise), batch 8 340 (bfloat16 alone 335, float 306,
    /// int8 278). The output projection takes `bfloat16` (level 4) or `float` at any batch
    /// (`withOutputProjectionActivations`). Where AVX512_BF16's dot products are slower than the float32 FMA
    /// (`collie_bf16_pairs_in_use`; an Emerald Rapids without AMX: SmolLM2 Q4_1 batch 8 bfloat16 264, float 397, int8
    /// 319 tokens/s; batch 1 112 / 104 / 132), level 4 resolves as level 3. The default.
    case automatic

    /// The arithmetic for `rows` input rows against `format` blocks at kernel level `level`, with AVX512_BF16's pair
    /// dot products in use or not (`pairs`).
    func resolved(rows: Int, format: BlockFormat, level: Int32 = collie_kernel_level(),
                  pairs: Bool = collie_bf16_pairs_in_use() != 0) -> QuantizedActivations {
        guard self == .automatic else { return self }
        if level >= 3, format == .q8_0 { return .int8 }
        if level >= 4, pairs, format.blockElements == 32, rows > 1 || format == .q4_1 { return .bfloat16 }
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

    /// Runs `body`, a model's output projection, with `.automatic` activations resolved to `.bfloat16` where the CPU
    /// has AVX512_BF16 (kernel level 4) and its pair dot products are in use, and to `.float` elsewhere, at any batch:
    /// the logits that pick the next token stay within bfloat16 rounding of the dequantized weights' own, while still
    /// read from the blocks. 8-bit
    /// activations moved SmolLM2's logits by ~0.2, enough to swap two first-token candidates 0.08 apart and derail an
    /// answer; bfloat16 kept it and decodes as fast as int8 (SmolLM2 Q4_1 and q8_0, batch 1, docs/PERFORMANCE.md).
    /// `.int8` asked for explicitly stays (llama.cpp's arithmetic, which parity checks need).
    public static func withOutputProjectionActivations<R>(_ body: () throws -> R) rethrows -> R {
        guard activationsOfTask == .automatic else { return try body() }
        return try $activationsOfTask.withValue(collie_bf16_pairs_in_use() != 0 ? .bfloat16 : .float, operation: body)
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
        // Each quantized weight's arithmetic; x quantized to 8 bits once per format that needs it, rounded to
        // bfloat16 once for all that need that.
        let activations = quantizedActivations
        let arithmetic = weights.map { weight -> QuantizedActivations in
            guard case .quantized(let matrix) = weight else { return .float }
            return activations.resolved(rows: rows, format: matrix.format)
        }
        var quantizedInputs: [BlockFormat: TensorStorage] = [:]
        var bfloat16Input: TensorStorage?
        for (weight, kind) in zip(weights, arithmetic) {
            guard case .quantized(let matrix) = weight else { continue }
            if kind == .int8, quantizedInputs[matrix.format] == nil {
                quantizedInputs[matrix.format] = quantizeActivations(px, rows: rows, columns: inFeatures,
                                                                     for: matrix.format)
            } else if kind == .bfloat16, bfloat16Input == nil {
                let storage = TensorStorage(byteCount: rows * inFeatures * 2)
                collie_activations_to_bf16(px, storage.data.assumingMemoryBound(to: UInt16.self), rows * inFeatures)
                bfloat16Input = storage
            }
        }
        let pxb = bfloat16Input.map { UnsafePointer($0.data.assumingMemoryBound(to: UInt16.self)) }
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
                    let (format, blocks) = (matrix.format.ggmlType, matrix.storage.data)
                    if arithmetic[i] == .int8, let xq = quantizedInputs[matrix.format] {
                        collie_qgemv_q8(format, blocks, xq.data, py, inFeatures, out, rows, begin, end)
                    } else if arithmetic[i] == .bfloat16, let pxb {
                        collie_qgemv_bf16(format, blocks, pxb, py, inFeatures, out, rows, begin, end)
                    } else {
                        collie_qgemv_f32(format, blocks, px, py, inFeatures, out, rows, begin, end)
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
        withExtendedLifetime(bfloat16Input) {}
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
