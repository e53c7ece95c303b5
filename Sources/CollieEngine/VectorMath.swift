import CCollieKernels
import RealModule

/// Vectorized row primitives for the softmax-shaped kernels (attention, cross-entropy, softmax,
/// SwiGLU): max, Σ exp(x − shift), in-place exp, and SwiGLU's two passes.
///
/// Each entry point is generic so the kernels that call it stay generic, but dispatches at once:
/// `Float` goes to the C kernels in `CCollieKernels` (AVX2 + FMA intrinsics chosen at run time,
/// polynomial exp within 2 ulp; Swift's SIMD types lower mask operations lane by lane, so these
/// few loops are written in C), and `Double` takes plain scalar loops with the C library's exp, so
/// gradient checks stay exact.
enum VectorMath {
    /// `p` as float32: for the float32 paths of generic kernels, where F is Float.
    @inline(__always)
    static func floats<F>(_ p: UnsafePointer<F>) -> UnsafePointer<Float> {
        UnsafeRawPointer(p).assumingMemoryBound(to: Float.self)
    }

    @inline(__always)
    static func floats<F>(_ p: UnsafeMutablePointer<F>) -> UnsafeMutablePointer<Float> {
        UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self)
    }

    /// The largest of `p[0..<n]` (−∞ when empty).
    static func maximum<F: FloatElement>(_ p: UnsafePointer<F>, _ n: Int) -> F {
        if F.self == Float.self { return unsafeBitCast(collie_max_f32(floats(p), n), to: F.self) }
        var m = -F.infinity
        for i in 0..<n where p[i] > m { m = p[i] }
        return m
    }

    /// Values per block of `logSumExp`: 8 KB of float32, read from memory once and again from L1.
    static let logSumExpBlock = 2048

    /// log Σ exp(p[i]) over `n` elements (−∞ when empty), shifted by the running maximum: block by block, each
    /// block's maximum and then its Σ exp while it is still in L1, the sum so far rescaled when the maximum grows. One
    /// pass over memory instead of two (a row of a 32,000-word vocabulary is 128 KB); within float rounding of
    /// max + log Σ exp(p[i] − max).
    static func logSumExp<F: FloatElement>(_ p: UnsafePointer<F>, _ n: Int) -> F {
        blockwiseLogSumExp(p, n) { start, count, shift in sumExp(p + start, count, shift: shift) }
    }

    /// `logSumExp`'s loop: `blockSum(start, count, m)` gives Σ exp(p − m) over the block of `count` values at `start`,
    /// m the running maximum with the block's own folded in.
    private static func blockwiseLogSumExp<F: FloatElement>(_ p: UnsafePointer<F>, _ n: Int,
                                                            _ blockSum: (Int, Int, F) -> F) -> F {
        var m = -F.infinity, s: F = 0
        for start in stride(from: 0, to: n, by: logSumExpBlock) {
            let count = Swift.min(logSumExpBlock, n - start)
            let blockMax = maximum(p + start, count)
            if blockMax > m {
                s = m == -F.infinity ? 0 : s * F.exp(m - blockMax)
                m = blockMax
            }
            s += blockSum(start, count, m)
        }
        return m + F.log(s)
    }

    /// Turns the row of logits `p[0..<n]` into its cross-entropy gradient, (softmax − one-hot at `label`)·`scale`,
    /// in place; returns the row's loss, logsumexp − p[label]. One exp per value: `logSumExp`'s blocks, each stored
    /// as exp(p − m) with m the running maximum as it sums them, then each block times exp(m − logsumexp)·scale while
    /// the row is still in L2. Within float rounding of exp(p − logsumexp)·scale.
    static func crossEntropyGradient<F: FloatElement>(_ p: UnsafeMutablePointer<F>, _ n: Int, label: Int,
                                                      scale: F) -> F {
        let target = p[label]
        let blocks = (n + logSumExpBlock - 1) / logSumExpBlock
        return withUnsafeTemporaryAllocation(of: F.self, capacity: Swift.max(blocks, 1)) { shifts in
            let logSumExp = blockwiseLogSumExp(UnsafePointer(p), n) { start, count, shift in
                shifts[start / logSumExpBlock] = shift
                return exponentiate(p + start, count, shift: shift)
            }
            for start in stride(from: 0, to: n, by: logSumExpBlock) {
                let factor = F.exp(shifts[start / logSumExpBlock] - logSumExp) * scale
                self.scale(p + start, to: p + start, Swift.min(logSumExpBlock, n - start), by: factor)
            }
            p[label] -= scale
            return logSumExp - target
        }
    }

    /// dst[i] = src[i]·factor + beta·dst[i] over `n` elements (beta 0 writes without reading dst; dst may be src).
    static func scale<F: FloatElement>(_ src: UnsafePointer<F>, to dst: UnsafeMutablePointer<F>, _ n: Int, by factor: F,
                                       adding beta: F = 0) {
        if beta == 0 {
            for i in 0..<n { dst[i] = src[i] * factor }
        } else {
            for i in 0..<n { dst[i] = src[i] * factor + beta * dst[i] }
        }
    }

    /// Σ exp(p[i] − shift) over `n` elements.
    static func sumExp<F: FloatElement>(_ p: UnsafePointer<F>, _ n: Int, shift: F) -> F {
        if F.self == Float.self {
            return unsafeBitCast(collie_sum_exp_f32(floats(p), n, unsafeBitCast(shift, to: Float.self)), to: F.self)
        }
        var s: F = 0
        for i in 0..<n { s += F.exp(p[i] - shift) }
        return s
    }

    /// p[i] = exp(p[i] − shift) · scale in place; returns Σ exp(p[i] − shift).
    @discardableResult
    static func exponentiate<F: FloatElement>(_ p: UnsafeMutablePointer<F>, _ n: Int, shift: F, scale: F = 1) -> F {
        exponentiate(UnsafePointer(p), to: p, n, shift: shift, scale: scale)
    }

    /// dst[i] = exp(src[i] − shift) · scale (one pass: no copy of src into dst first); returns Σ exp(src[i] − shift).
    @discardableResult
    static func exponentiate<F: FloatElement>(_ src: UnsafePointer<F>, to dst: UnsafeMutablePointer<F>, _ n: Int,
                                              shift: F, scale: F = 1) -> F {
        if F.self == Float.self {
            return unsafeBitCast(collie_exponentiate_f32(floats(src), floats(dst), n, unsafeBitCast(shift, to: Float.self),
                                                          unsafeBitCast(scale, to: Float.self)), to: F.self)
        }
        var s: F = 0
        for i in 0..<n {
            let e = F.exp(src[i] - shift)
            s += e
            dst[i] = e * scale
        }
        return s
    }

    /// dst[i] += exp(src[i] − shift) · scale.
    static func addExponentiated<F: FloatElement>(_ src: UnsafePointer<F>, to dst: UnsafeMutablePointer<F>, _ n: Int,
                                                  shift: F, scale: F) {
        if F.self == Float.self {
            collie_add_exponentiated_f32(floats(src), floats(dst), n, unsafeBitCast(shift, to: Float.self),
                                         unsafeBitCast(scale, to: Float.self))
            return
        }
        for i in 0..<n { dst[i] += F.exp(src[i] - shift) * scale }
    }

    /// out = silu(gate) · up over `n` elements.
    static func swiglu<F: FloatElement>(gate: UnsafePointer<F>, up: UnsafePointer<F>, out: UnsafeMutablePointer<F>, _ n: Int) {
        if F.self == Float.self { collie_swiglu_f32(floats(gate), floats(up), floats(out), n); return }
        for i in 0..<n { let x = gate[i]; out[i] = x / (1 + F.exp(-x)) * up[i] }
    }

    /// SwiGLU's backward: dGate = d·up·σ(x)(1 + x(1 − σ(x))), dUp = d·x·σ(x) (either may be nil).
    static func swigluBackward<F: FloatElement>(gate: UnsafePointer<F>, up: UnsafePointer<F>, gradient: UnsafePointer<F>,
                                                gateGradient: UnsafeMutablePointer<F>?, upGradient: UnsafeMutablePointer<F>?,
                                                _ n: Int) {
        if F.self == Float.self {
            collie_swiglu_backward_f32(floats(gate), floats(up), floats(gradient), gateGradient.map(floats),
                                       upGradient.map(floats), n)
            return
        }
        for i in 0..<n {
            let x = gate[i], s = 1 / (1 + F.exp(-x))
            gateGradient?[i] = gradient[i] * up[i] * s * (1 + x * (1 - s))
            upGradient?[i] = gradient[i] * x * s
        }
    }
}
