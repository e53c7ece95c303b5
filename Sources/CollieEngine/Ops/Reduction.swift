/// Reductions along one axis — sum, mean, max, argmax, logsumexp — and softmax / log-softmax.
/// Each views the input as [outer, n, inner] around the reduced axis.

enum Reduction {
    case sum, mean, max, logSumExp

    var name: String {
        switch self { case .sum: "sum"; case .mean: "mean"; case .max: "max"; case .logSumExp: "logsumexp" }
    }
}

extension Tensor {
    /// Sizes of the dimensions before and after `axis`.
    func around(_ axis: Int) -> (outer: Int, n: Int, inner: Int) {
        (shape[..<axis].reduce(1, *), shape[axis], shape[(axis + 1)...].reduce(1, *))
    }

    private func reduce(_ kind: Reduction, axis a: Int, keepDim: Bool) -> Tensor {
        let a = axis(a)
        let x = computeContiguous
        let (outer, n, inner) = around(a)
        var outShape = shape
        if keepDim { outShape[a] = 1 } else { outShape.remove(at: a) }
        let out = Tensor(uninitializedShape: outShape, dtype: x.dtype)
        var argmax: [Int32] = kind == .max ? [Int32](repeating: 0, count: outer * inner) : []
        func run<F: FloatElement>(_: F.Type) {
            let src = x.pointer(as: F.self), dst = out.pointer(as: F.self)
            argmax.withUnsafeMutableBufferPointer { am in
                Parallel.forEach(outer * inner, minimumChunk: Swift.max(1, 4096 / Swift.max(n, 1))) { range in
                    for row in range {
                        let o = row / inner, i = row % inner
                        let base = src + o * n * inner + i
                        switch kind {
                        case .sum, .mean:
                            var s: F = 0
                            for j in 0..<n { s += base[j * inner] }
                            dst[row] = kind == .mean ? s / F(n) : s
                        case .max:
                            var best = base[0], at = 0
                            for j in 1..<Swift.max(n, 1) where base[j * inner] > best || (base[j * inner].isNaN && !best.isNaN) {
                                best = base[j * inner]; at = j
                            }
                            dst[row] = best; am[row] = Int32(at)
                        case .logSumExp:
                            var m = -F.infinity
                            for j in 0..<n { m = Swift.max(m, base[j * inner]) }
                            if m.isInfinite { dst[row] = m; continue }  // all −inf, or a +inf term
                            var s: F = 0
                            for j in 0..<n { s += F.exp(base[j * inner] - m) }
                            dst[row] = m + F.log(s)
                        }
                    }
                }
            }
        }
        x.dtype == .float64 ? run(Double.self) : run(Float.self)
        return out.recording(kind.name, [x]) { grad, sink in
            func back<F: FloatElement>(_: F.Type) {
                let g = grad.pointer(as: F.self), xs = x.pointer(as: F.self), ys = out.pointer(as: F.self)
                sink.accumulate(0, as: F.self) { dx, beta in
                    argmax.withUnsafeBufferPointer { am in
                        Parallel.forEach(outer * inner, minimumChunk: Swift.max(1, 4096 / Swift.max(n, 1))) { range in
                            for row in range {
                                let o = row / inner, i = row % inner
                                let off = o * n * inner + i
                                for j in 0..<n {
                                    let k = off + j * inner
                                    let v: F
                                    switch kind {
                                    case .sum: v = g[row]
                                    case .mean: v = g[row] / F(n)
                                    case .max: v = j == Int(am[row]) ? g[row] : 0
                                    case .logSumExp: v = ys[row] == -F.infinity ? 0 : g[row] * F.exp(xs[k] - ys[row])
                                    }
                                    dx[k] = beta * dx[k] + v
                                }
                            }
                        }
                    }
                }
            }
            grad.dtype == .float64 ? back(Double.self) : back(Float.self)
        }
    }

    /// Sum along `axis`.
    public func sum(axis: Int, keepDim: Bool = false) -> Tensor { reduce(.sum, axis: axis, keepDim: keepDim) }
    /// Mean along `axis`.
    public func mean(axis: Int, keepDim: Bool = false) -> Tensor { reduce(.mean, axis: axis, keepDim: keepDim) }
    /// Maximum along `axis`; the gradient goes to the first maximal element.
    public func max(axis: Int, keepDim: Bool = false) -> Tensor { reduce(.max, axis: axis, keepDim: keepDim) }
    /// log Σ exp along `axis`, computed stably.
    public func logSumExp(axis: Int, keepDim: Bool = false) -> Tensor { reduce(.logSumExp, axis: axis, keepDim: keepDim) }
    /// Sum of all elements (a 0-d tensor).
    public func sum() -> Tensor { reshaped([count]).sum(axis: 0) }
    /// Mean of all elements (a 0-d tensor).
    public func mean() -> Tensor { reshaped([count]).mean(axis: 0) }

    /// Index of the first maximum along `axis` (int64; not differentiable).
    public func argmax(axis a: Int, keepDim: Bool = false) -> Tensor {
        let a = axis(a)
        let x = computeContiguous.detach()
        let (outer, n, inner) = around(a)
        var outShape = shape
        if keepDim { outShape[a] = 1 } else { outShape.remove(at: a) }
        let values = x.floats()
        var result = [Int](repeating: 0, count: outer * inner)
        for row in 0..<(outer * inner) {
            let o = row / inner, i = row % inner
            var best = -Float.infinity, at = 0
            for j in 0..<n {
                let v = values[(o * n + j) * inner + i]
                if v > best || (v.isNaN && !best.isNaN) { best = v; at = j; if v.isNaN { break } }
            }
            result[row] = at
        }
        return Tensor(ints: result, shape: outShape)
    }

    private func softmax(axis a: Int, log: Bool) -> Tensor {
        let a = axis(a)
        let x = computeContiguous
        let (outer, n, inner) = around(a)
        let out = Tensor(uninitializedShape: shape, dtype: x.dtype)
        func run<F: FloatElement>(_: F.Type) {
            let src = x.pointer(as: F.self), dst = out.pointer(as: F.self)
            Parallel.forEach(outer * inner, minimumChunk: Swift.max(1, 4096 / Swift.max(n, 1))) { range in
                for row in range {
                    let off = (row / inner) * n * inner + row % inner
                    if inner == 1 {   // the common case, vectorized: a contiguous row
                        let lse = VectorMath.logSumExp(src + off, n)
                        if log {
                            for j in 0..<n { dst[off + j] = src[off + j] - lse }
                        } else {
                            VectorMath.exponentiate(src + off, to: dst + off, n, shift: lse)
                        }
                        continue
                    }
                    var m = -F.infinity
                    for j in 0..<n { m = Swift.max(m, src[off + j * inner]) }
                    var s: F = 0
                    for j in 0..<n { s += F.exp(src[off + j * inner] - m) }
                    let lse = m + F.log(s)
                    for j in 0..<n {
                        let k = off + j * inner
                        dst[k] = log ? src[k] - lse : F.exp(src[k] - lse)
                    }
                }
            }
        }
        x.dtype == .float64 ? run(Double.self) : run(Float.self)
        return out.recording(log ? "log_softmax" : "softmax", [x]) { grad, sink in
            func back<F: FloatElement>(_: F.Type) {
                let g = grad.pointer(as: F.self), ys = out.pointer(as: F.self)
                sink.accumulate(0, as: F.self) { dx, beta in
                    Parallel.forEach(outer * inner, minimumChunk: Swift.max(1, 4096 / Swift.max(n, 1))) { range in
                        for row in range {
                            let off = (row / inner) * n * inner + row % inner
                            var dot: F = 0
                            for j in 0..<n { let k = off + j * inner; dot += log ? g[k] : g[k] * ys[k] }
                            for j in 0..<n {
                                let k = off + j * inner
                                // softmax: y·(g − Σ g·y); log-softmax: g − exp(y)·Σ g.
                                let v = log ? g[k] - F.exp(ys[k]) * dot : ys[k] * (g[k] - dot)
                                dx[k] = beta * dx[k] + v
                            }
                        }
                    }
                }
            }
            grad.dtype == .float64 ? back(Double.self) : back(Float.self)
        }
    }

    /// Softmax along `axis` (default: the last).
    public func softmax(axis: Int = -1) -> Tensor { softmax(axis: axis, log: false) }
    /// Log-softmax along `axis` (default: the last).
    public func logSoftmax(axis: Int = -1) -> Tensor { softmax(axis: axis, log: true) }
}
