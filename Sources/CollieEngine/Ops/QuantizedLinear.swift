import CCollieKernels

/// Linear layer on a frozen quantized weight: y = x·Wᵀ + b with W a `QuantizedMatrix` [out, in] (QLoRA's base
/// layers, GGUF models loaded quantized).
///
/// Forward and backward walk W in tiles of `quantizedTileRows` rows: a tile is dequantized (gguf's exact float32
/// values) into a scratch buffer and handed to BLAS, so the result is `linear(x, weight: W.dequantized())` up to
/// BLAS's blocking while memory holds one tile, never the whole float matrix:
///   forward   Y[:, tile] = X · W[tile]ᵀ (+ b[tile])
///   backward  dX += dY[:, tile] · W[tile]    (summed over tiles: BLAS's beta)
///             db += Σ_rows dY
/// W gets no gradient (it is frozen); x and the bias do. While decoding (`withDecodingKernels`) a few gradient-free
/// rows go to the block kernels instead (LinearDecoding.swift).
extension Tensor {
    /// Weight rows per dequantized tile: 128 rows of SmolLM2's 1536 columns are 768 KiB of float32, about L2.
    static let quantizedTileRows = 128

    /// Applies a linear map with a quantized weight to the last dimension: `x` [..., in], `weight` [out, in],
    /// `bias` [out].
    public static func linear(_ x: Tensor, quantized weight: QuantizedMatrix, bias: Tensor? = nil) -> Tensor {
        if let decoded = decodingLinears(x, weights: [.quantized(weight)], biases: [bias])?[0] { return decoded }
        let (inFeatures, outFeatures) = (weight.columns, weight.rows)
        precondition(x.shape.last == inFeatures, "linear: input \(x.shape) does not end in \(inFeatures)")
        var xin = x.computeContiguous
        if xin.dtype != .float32 { xin = xin.to(.float32) }
        var b = bias?.computeView
        if let bb = b, bb.dtype != .float32 { b = bb.to(.float32) }
        if let b { precondition(b.shape == [outFeatures], "linear bias must be [\(outFeatures)], got \(b.shape)") }
        let bc = b?.contiguous()
        let rows = xin.count / Swift.max(inFeatures, 1)
        let out = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [outFeatures])
        let y = out.pointer(as: Float.self), px = xin.pointer(as: Float.self)
        var beta: Float = 0
        if let bc {
            let pb = bc.pointer(as: Float.self)
            Parallel.forEach(rows, minimumChunk: 64) { r in
                for row in r { (y + row * outFeatures).update(from: pb, count: outFeatures) }
            }
            beta = 1
        }
        if rows > 0 {
            forEachDequantizedTile(of: weight) { tile, w in   // Y[:, tile] = X · W[tile]ᵀ
                Float.gemm(transA: false, transB: true, m: rows, n: tile.count, k: inFeatures, alpha: 1,
                           a: px, lda: inFeatures, b: w, ldb: inFeatures, beta: beta, c: y + tile.lowerBound,
                           ldc: outFeatures)
            }
        }
        let inputs = bc.map { [xin, $0] } ?? [xin]
        let hasBias = bc != nil   // backward reads the blocks and the bias's gradient, never X
        return out.recording("linear", inputs) { grad, sink in
            let gc = grad.isContiguous ? grad : grad.contiguous()
            let g = gc.pointer(as: Float.self)
            defer { withExtendedLifetime(gc) {} }
            sink.accumulate(0, as: Float.self) { dx, beta in   // dX = Σ_tiles dY[:, tile] · W[tile]
                guard rows > 0 else { return }
                var first = true
                forEachDequantizedTile(of: weight) { tile, w in
                    Float.gemm(transA: false, transB: false, m: rows, n: inFeatures, k: tile.count, alpha: 1,
                               a: g + tile.lowerBound, lda: outFeatures, b: w, ldb: inFeatures,
                               beta: first ? beta : 1, c: dx, ldc: inFeatures)
                    first = false
                }
            }
            if hasBias {
                sink.accumulate(1, as: Float.self) { db, beta in
                    if beta == 0 { db.initialize(repeating: 0, count: outFeatures) }
                    for row in 0..<rows {
                        let gr = g + row * outFeatures
                        for j in 0..<outFeatures { db[j] += gr[j] }
                    }
                }
            }
        }
    }

    /// Calls `body(tile, w)` for consecutive tiles of `quantizedTileRows` rows of `weight`, in order, with `w` the
    /// tile's float32 rows [tile.count, columns] (valid during the call). Each tile is dequantized on all cores;
    /// `body` runs BLAS, which threads itself.
    static func forEachDequantizedTile(of weight: QuantizedMatrix,
                                       _ body: (Range<Int>, UnsafePointer<Float>) -> Void) {
        let tileRows = Swift.min(quantizedTileRows, weight.rows), columns = weight.columns
        guard tileRows > 0, columns > 0 else { return }
        let scratch = TensorStorage(byteCount: tileRows * columns * MemoryLayout<Float>.stride)
        let w = scratch.data.assumingMemoryBound(to: Float.self)
        for start in stride(from: 0, to: weight.rows, by: tileRows) {
            let tile = start..<Swift.min(start + tileRows, weight.rows)
            Parallel.forEach(tile.count, minimumChunk: 16) { part in
                weight.dequantize(rows: (start + part.lowerBound)..<(start + part.upperBound),
                                  into: w + part.lowerBound * columns)
            }
            body(tile, w)
        }
        withExtendedLifetime(scratch) {}
    }
}
