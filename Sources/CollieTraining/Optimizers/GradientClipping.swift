import CCollieKernels
import CollieEngine
import Foundation

/// Clipping gradients by their global L2 norm, as `torch.nn.utils.clip_grad_norm_`.
///
/// The total norm is the L2 norm of all gradients seen as one vector (summed in double precision
/// here; torch sums per tensor in float32, so the two agree to float32 rounding). The scale
/// `max_norm / (total + 1e-6)` is formed in float32 exactly as torch forms it and applied only
/// when it is below 1. A non-finite norm is returned, not thrown: the caller decides whether to
/// skip the step.
public enum GradientClipping {
    /// The global L2 norm of the gradients of `parameters` (those without one are skipped).
    public static func globalNorm(_ parameters: [Tensor]) -> Double {
        var sum = 0.0
        for p in parameters {
            guard let g = p.grad else { continue }
            sum += sumOfSquares(g.isContiguous ? g : g.contiguousCopy())
        }
        return sum.squareRoot()
    }

    /// Scales the gradients of `parameters` so their global norm is at most `maxNorm`, one
    /// parameter at a time. Returns the norm before clipping (what torch returns).
    @discardableResult
    public static func clipByGlobalNorm(_ parameters: [Tensor], maxNorm: Double) -> Double {
        let total = globalNorm(parameters)
        guard let scale = scale(total: total, maxNorm: maxNorm) else { return total }
        for p in parameters {
            guard let g = p.grad else { continue }
            if !g.isContiguous { p.grad = g.contiguousCopy() }
            multiply(p.grad!, by: scale)
        }
        return total
    }

    /// Like `clipByGlobalNorm(_:maxNorm:)` for the parameters of `buffer`, in one pass over its
    /// flat gradient buffer when `attachGradients()` gave it one.
    @discardableResult
    public static func clipByGlobalNorm(_ buffer: ParameterBuffer, maxNorm: Double) -> Double {
        guard let flat = buffer.gradients, isFlat(buffer) else {
            return clipByGlobalNorm(buffer.parameters, maxNorm: maxNorm)
        }
        let total = sumOfSquares(flat).squareRoot()
        if let scale = scale(total: total, maxNorm: maxNorm) { multiply(flat, by: scale) }
        return total
    }

    /// torch's `clamp(max_norm / (total + 1e-6), max=1)` in float32 (`a / t` is evaluated as
    /// `t.reciprocal() * a` by torch's `__rtruediv__`); nil when it is 1, so nothing changes.
    static func scale(total: Double, maxNorm: Double) -> Float? {
        let coefficient = (1 / (Float(total) + Float(1e-6))) * Float(maxNorm)
        return coefficient < 1 ? coefficient : nil
    }

    /// Whether every parameter's gradient is still its view of the flat gradient buffer (a
    /// caller may have replaced one).
    private static func isFlat(_ buffer: ParameterBuffer) -> Bool {
        guard let flat = buffer.gradients else { return false }
        return zip(buffer.parameters, buffer.offsets).allSatisfy { p, offset in
            guard let g = p.grad else { return false }
            return g.storage === flat.storage && g.offset == offset && g.isContiguous
        }
    }

    /// Σ g² in double over a contiguous gradient, in 64K-value chunks across threads, each chunk's sum in a fixed order
    /// (float32: `collie_square_sum_f32`'s), the chunks' added in order — the same bits on any thread count.
    static func sumOfSquares(_ g: Tensor) -> Double {
        switch g.dtype {
        case .float32:
            let x = g.pointer(as: Float.self)
            return chunkedSum(g.count) { start, count, out in collie_square_sum_f32(x + start, count, out) }
        case .float64:
            let x = g.pointer(as: Double.self)
            return chunkedSum(g.count) { start, count, out in
                var sum = 0.0
                for i in start..<(start + count) { sum += x[i] * x[i] }
                out.pointee = sum
            }
        default: return sumOfSquares(g.contiguousCopy(dtype: .float32))
        }
    }

    /// Σ over n values of `chunkSum(start, count, into)` for 64K-value chunks split across threads, added in order.
    private static func chunkedSum(_ n: Int,
                                   _ chunkSum: (Int, Int, UnsafeMutablePointer<Double>) -> Void) -> Double {
        let chunk = 1 << 16
        let chunks = (n + chunk - 1) / chunk
        var partials = [Double](repeating: 0, count: chunks)
        partials.withUnsafeMutableBufferPointer { out in
            let out = out.baseAddress!
            Parallel.forEach(chunks) { range in
                for c in range { chunkSum(c * chunk, Swift.min(n, (c + 1) * chunk) - c * chunk, out + c) }
            }
        }
        return partials.reduce(0, +)
    }

    static func multiply(_ g: Tensor, by scale: Float) {
        switch g.dtype {
        case .float32:
            let p = g.pointer(as: Float.self)
            Parallel.forEach(g.count, minimumChunk: 1 << 16) { r in for i in r { p[i] *= scale } }
        case .float64:
            // torch multiplies by the float32 coefficient converted to the gradient's dtype.
            let p = g.pointer(as: Double.self), s = Double(scale)
            Parallel.forEach(g.count, minimumChunk: 1 << 16) { r in for i in r { p[i] *= s } }
        default:
            preconditionFailure("gradients are float32 or float64, got \(g.dtype)")
        }
    }
}
