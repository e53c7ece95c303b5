import CCollieKernels

/// Rotary position embedding (RoPE) applied to [B, T, H, D] queries or keys.
///
/// Two layouts: `.rotateHalf` pairs dimension i with i + R/2 (Hugging Face LLaMA, NeoX) and
/// `.interleaved` pairs 2i with 2i + 1 (GPT-J, ChatGLM). Only the first R = 2·(table width)
/// dimensions rotate (partial rotary); the rest pass through. The backward is the inverse rotation.

/// Which dimensions RoPE rotates together.
public enum RotaryLayout: String, Codable, Sendable {
    /// (i, i + R/2) pairs, as Hugging Face's `rotate_half`.
    case rotateHalf
    /// (2i, 2i + 1) pairs, as GPT-J and ChatGLM.
    case interleaved
}

extension Tensor {
    /// cos and sin tables for `positions` ([T] or [B, T] integers) and per-pair inverse frequencies,
    /// each [B or 1, T, R/2] float32, computed as Hugging Face does: angle = float(position) · inv_freq
    /// in float32, then scaled by `attentionScaling`.
    public static func rotaryTables(positions: Tensor, inverseFrequencies: [Float],
                                    attentionScaling: Float = 1) -> (cos: Tensor, sin: Tensor) {
        let pos = positions.ints()
        let batch = positions.rank == 2 ? positions.shape[0] : 1
        let t = positions.shape.last ?? 0
        let half = inverseFrequencies.count
        let cosT = Tensor(uninitializedShape: [batch, t, half]), sinT = Tensor(uninitializedShape: [batch, t, half])
        let pc = cosT.pointer(as: Float.self), ps = sinT.pointer(as: Float.self)
        for (i, p) in pos.enumerated() {
            for j in 0..<half {
                let angle = Float(p) * inverseFrequencies[j]
                pc[i * half + j] = Float.cos(angle) * attentionScaling
                ps[i * half + j] = Float.sin(angle) * attentionScaling
            }
        }
        return (cosT, sinT)
    }

    /// Rotates `x` [B, T, H, D] by the angles whose cos/sin are given as [B or 1, T, R/2] (R ≤ D).
    public static func applyRotary(_ x: Tensor, cos: Tensor, sin: Tensor, layout: RotaryLayout = .rotateHalf) -> Tensor {
        precondition(x.rank == 4, "applyRotary expects [B, T, H, D], got \(x.shape)")
        let (bsz, t, h, d) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        precondition(cos.shape == sin.shape && cos.rank == 3 && cos.shape[1] == t && (cos.shape[0] == bsz || cos.shape[0] == 1),
                     "rotary tables \(cos.shape) do not fit \(x.shape)")
        let half = cos.shape[2]
        precondition(2 * half <= d, "rotary dimension \(2 * half) exceeds head dimension \(d)")
        let xin = x.computeContiguous
        let c = cos.to(xin.dtype).contiguousStorageView(), s = sin.to(xin.dtype).contiguousStorageView()
        let tableBatchStride = cos.shape[0] == 1 ? 0 : t * half
        let out = Tensor(uninitializedShape: x.shape, dtype: xin.dtype)

        // Applies the rotation (sign = 1) or its inverse (sign = −1) from src to dst.
        func rotate<F: FloatElement>(_ src: UnsafePointer<F>, _ dst: UnsafeMutablePointer<F>, sign: F) {
            let pc = c.pointer(as: F.self), ps = s.pointer(as: F.self)
            Parallel.forEach(bsz * t, minimumChunk: Swift.max(1, 2048 / Swift.max(h * d, 1))) { range in
                for bt in range {
                    let b = bt / t, pos = bt % t
                    let cr = pc + b * tableBatchStride + pos * half, sr = ps + b * tableBatchStride + pos * half
                    if F.self == Float.self {
                        collie_rotary_f32(VectorMath.floats(src) + bt * h * d, VectorMath.floats(dst) + bt * h * d,
                                          VectorMath.floats(cr), VectorMath.floats(sr), h, d, half,
                                          unsafeBitCast(sign, to: Float.self), layout == .rotateHalf ? 0 : 1)
                        continue
                    }
                    for head in 0..<h {
                        let base = (bt * h + head) * d
                        let xs = src + base, ys = dst + base
                        for i in 0..<half {
                            let (ia, ib) = layout == .rotateHalf ? (i, i + half) : (2 * i, 2 * i + 1)
                            let a = xs[ia], bv = xs[ib], co = cr[i], si = sign * sr[i]
                            ys[ia] = a * co - bv * si
                            ys[ib] = bv * co + a * si
                        }
                        for i in (2 * half)..<d { ys[i] = xs[i] }
                    }
                }
            }
        }
        if xin.dtype == .float64 {
            rotate(xin.pointer(as: Double.self), out.pointer(as: Double.self), sign: 1)
        } else {
            rotate(xin.pointer(as: Float.self), out.pointer(as: Float.self), sign: 1)
        }
        return out.recording("rotary", [xin]) { grad, sink in
            let dx = Tensor(uninitializedShape: grad.shape, dtype: grad.dtype)
            if grad.dtype == .float64 {
                rotate(grad.pointer(as: Double.self), dx.pointer(as: Double.self), sign: -1)
            } else {
                rotate(grad.pointer(as: Float.self), dx.pointer(as: Float.self), sign: -1)
            }
            sink.give(dx, toInput: 0)
        }
    }
}
