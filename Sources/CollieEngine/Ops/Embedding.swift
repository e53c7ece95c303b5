import CCollieKernels

/// Embedding lookup: rows of a [V, C] table picked by integer ids; backward scatter-adds into
/// the table's gradient, split over columns so repeated ids never race.
extension Tensor {
    /// Looks up `ids` (any shape, integers) in `weight` [V, C]; returns [ids.shape..., C].
    public static func embedding(_ ids: Tensor, weight: Tensor) -> Tensor {
        precondition(weight.rank == 2, "embedding weight must be [V, C], got \(weight.shape)")
        // A bf16/f16 table is read row by row into float32 output; no float32 copy of the table.
        let half = !weight.dtype.isCompute && weight.isContiguous
        let w = half ? weight : weight.computeContiguous
        let (vocab, c) = (w.shape[0], w.shape[1])
        let index = ids.ints()
        for i in index { precondition(i >= 0 && i < vocab, "token id \(i) outside the embedding table 0..<\(vocab)") }
        let out = Tensor(uninitializedShape: ids.shape + [c], dtype: half ? .float32 : w.dtype)
        if half {
            let po = out.pointer(as: Float.self)
            let raw = (weight.storage.data + weight.offset * 2).assumingMemoryBound(to: UInt16.self)
            let isBFloat16 = weight.dtype == .bfloat16
            Parallel.forEach(index.count, minimumChunk: 16) { r in
                for n in r {
                    let src = raw + index[n] * c, dst = po + n * c
                    if isBFloat16 {
                        for j in 0..<c { dst[j] = Float(bitPattern: UInt32(src[j]) << 16) }
                    } else {
                        collie_f16_to_f32(src, dst, c)
                    }
                }
            }
        }
        func run<F: FloatElement>(_: F.Type) {
            let pw = w.pointer(as: F.self), po = out.pointer(as: F.self)
            Parallel.forEach(index.count, minimumChunk: 16) { r in
                for n in r { (po + n * c).update(from: pw + index[n] * c, count: c) }
            }
        }
        if !half { w.dtype == .float64 ? run(Double.self) : run(Float.self) }
        return out.recording("embedding", [w]) { grad, sink in
            func back<F: FloatElement>(_: F.Type) {
                let g = grad.pointer(as: F.self)
                sink.accumulate(0, as: F.self) { dw, _ in
                    Parallel.forEach(c, minimumChunk: 16) { cols in
                        for (n, i) in index.enumerated() {
                            let d = dw + i * c, s = g + n * c
                            for j in cols { d[j] += s[j] }
                        }
                    }
                }
            }
            grad.dtype == .float64 ? back(Double.self) : back(Float.self)
        }
    }
}

/// Embedding lookup in a frozen quantized table: each picked row is dequantized (gguf's exact float32 values) and
/// nothing else is read; no gradient flows to the table.
extension Tensor {
    /// Looks up `ids` (any shape, integers) in the quantized `table` [V, C]; returns float32 [ids.shape..., C].
    public static func embedding(_ ids: Tensor, quantized table: QuantizedMatrix) -> Tensor {
        let (vocab, c) = (table.rows, table.columns)
        let index = ids.ints()
        for i in index { precondition(i >= 0 && i < vocab, "token id \(i) outside the embedding table 0..<\(vocab)") }
        let out = Tensor(uninitializedShape: ids.shape + [c])
        let po = out.pointer(as: Float.self)
        Parallel.forEach(index.count, minimumChunk: 16) { r in
            for n in r { table.dequantize(rows: index[n]..<(index[n] + 1), into: po + n * c) }
        }
        return out
    }
}
