import CCollieKernels

/// RMSNorm (LLaMA) and LayerNorm over the last dimension, each one pass forward and one pass
/// backward. The per-row inverse standard deviation is saved; the weight (and bias) gradients are
/// summed per thread and then combined, so rows run in parallel without races. Float32 rows run in C
/// (`collie_norm_rows_f32`, `collie_norm_backward_rows_f32`: vectorized row sums); float64 in the loops below.
extension Tensor {
    /// RMSNorm as in Hugging Face's `LlamaRMSNorm`: x / sqrt(mean(x²) + eps) · weight.
    public static func rmsNorm(_ x: Tensor, weight: Tensor, epsilon: Double) -> Tensor {
        normalize(x, weight: weight, bias: nil, epsilon: epsilon, centered: false)
    }

    /// LayerNorm over the last dimension: (x − mean) / sqrt(var + eps) · weight + bias
    /// (biased variance, as PyTorch).
    public static func layerNorm(_ x: Tensor, weight: Tensor, bias: Tensor?, epsilon: Double) -> Tensor {
        normalize(x, weight: weight, bias: bias, epsilon: epsilon, centered: true)
    }

    private static func normalize(_ x: Tensor, weight: Tensor, bias: Tensor?, epsilon: Double, centered: Bool) -> Tensor {
        let xin = x.computeContiguous
        let c = x.shape.last ?? 1
        precondition(weight.shape == [c], "norm weight must be [\(c)], got \(weight.shape)")
        let w = weight.computeView.to(xin.dtype).contiguous()
        let b = bias.map { $0.computeView.to(xin.dtype).contiguous() }
        if let b { precondition(b.shape == [c], "norm bias must be [\(c)], got \(b.shape)") }
        let rows = xin.count / Swift.max(c, 1)
        let out = Tensor(uninitializedShape: x.shape, dtype: xin.dtype)
        let inverseStd = Tensor(uninitializedShape: [rows], dtype: xin.dtype)  // (rows)
        let means = centered ? Tensor(uninitializedShape: [rows], dtype: xin.dtype) : nil  // (rows)
        func run<F: FloatElement>(_: F.Type) {
            let px = xin.pointer(as: F.self), py = out.pointer(as: F.self), pw = w.pointer(as: F.self)
            let pb = b?.pointer(as: F.self), pr = inverseStd.pointer(as: F.self), pm = means?.pointer(as: F.self)
            let eps = F(epsilon)
            Parallel.forEach(rows, minimumChunk: Swift.max(1, 8192 / Swift.max(c, 1))) { range in
                if F.self == Float.self {
                    let f = VectorMath.floats as (UnsafeMutablePointer<F>) -> UnsafeMutablePointer<Float>
                    let at = range.lowerBound * c
                    collie_norm_rows_f32(f(px) + at, f(pw), pb.map(f), f(py) + at, f(pr) + range.lowerBound,
                                         pm.map { f($0) + range.lowerBound }, range.count, c, Float(epsilon),
                                         centered ? 1 : 0)
                    return
                }
                for row in range {
                    let xr = px + row * c, yr = py + row * c
                    var mean: F = 0
                    if centered { for j in 0..<c { mean += xr[j] }; mean /= F(c) }
                    var sq: F = 0
                    for j in 0..<c { let d = xr[j] - mean; sq += d * d }
                    let r = 1 / (sq / F(c) + eps).squareRoot()
                    pr[row] = r
                    pm?[row] = mean
                    if let pb {
                        for j in 0..<c { yr[j] = (xr[j] - mean) * r * pw[j] + pb[j] }
                    } else {
                        for j in 0..<c { yr[j] = pw[j] * ((xr[j] - mean) * r) }
                    }
                }
            }
        }
        xin.dtype == .float64 ? run(Double.self) : run(Float.self)
        let inputs = b.map { [xin, w, $0] } ?? [xin, w]
        return out.recording(centered ? "layer_norm" : "rms_norm", inputs) { grad, sink in
            func back<F: FloatElement>(_: F.Type) {
                let g = grad.pointer(as: F.self), px = xin.pointer(as: F.self), pw = w.pointer(as: F.self)
                let pr = inverseStd.pointer(as: F.self), pm = means?.pointer(as: F.self)
                let threads = Swift.max(1, Parallel.threadCount)
                // Per-chunk partial sums of dW and dB: (chunks, c) each, from the storage pool.
                let chunks = Swift.min(threads, Swift.max(1, rows))
                let partialW = Tensor.zeros([chunks, c], dtype: F.dtype)
                let partialB = inputs.count == 3 ? Tensor.zeros([chunks, c], dtype: F.dtype) : nil
                let dwBase = partialW.pointer(as: F.self), dbBase = partialB?.pointer(as: F.self)
                defer { withExtendedLifetime((partialW, partialB)) {} }
                let needX = sink.needsGradient(0)
                var dxTensor: Tensor? = needX ? Tensor(uninitializedShape: xin.shape, dtype: F.dtype) : nil
                let pdx = dxTensor?.pointer(as: F.self)
                Parallel.forEach(chunks) { chunkRange in
                    for chunk in chunkRange {
                        let start = rows * chunk / chunks, end = rows * (chunk + 1) / chunks
                        let dw = dwBase + chunk * c, db = dbBase.map { $0 + chunk * c }
                        if F.self == Float.self {
                            let f = VectorMath.floats as (UnsafeMutablePointer<F>) -> UnsafeMutablePointer<Float>
                            collie_norm_backward_rows_f32(
                                f(px) + start * c, f(pw), f(g) + start * c, f(pr) + start,
                                pm.map { f($0) + start }, end - start, c, pdx.map { f($0) + start * c },
                                f(dw), db.map(f))
                            continue
                        }
                        for row in start..<end {
                            let xr = px + row * c, gr = g + row * c
                            let r = pr[row], mean = pm?[row] ?? 0
                            var sumG: F = 0, sumGX: F = 0
                            for j in 0..<c {
                                let xhat = (xr[j] - mean) * r
                                let gx = gr[j] * pw[j]
                                dw[j] += gr[j] * xhat
                                db?[j] += gr[j]
                                sumG += gx
                                sumGX += gx * xhat
                            }
                            guard let pdx else { continue }
                            let meanG = centered ? sumG / F(c) : 0, meanGX = sumGX / F(c)
                            let dxr = pdx + row * c
                            for j in 0..<c {
                                let xhat = (xr[j] - mean) * r
                                dxr[j] = r * (gr[j] * pw[j] - meanG - xhat * meanGX)
                            }
                        }
                    }
                }
                if let dx = dxTensor { sink.give(dx, toInput: 0); dxTensor = nil }
                func reduceChunks(_ partial: UnsafeMutablePointer<F>, into index: Int) {
                    sink.accumulate(index, as: F.self) { d, beta in
                        for j in 0..<c {
                            var s: F = 0
                            for chunk in 0..<chunks { s += partial[chunk * c + j] }
                            d[j] = beta * d[j] + s
                        }
                    }
                }
                reduceChunks(dwBase, into: 1)
                if let dbBase { reduceChunks(dbBase, into: 2) }
            }
            grad.dtype == .float64 ? back(Double.self) : back(Float.self)
        }
    }
}
