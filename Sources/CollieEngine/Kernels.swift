/// Small shared kernels and the dtype dispatch every op goes through.
enum Kernels {
    /// `destination += source` elementwise; both contiguous, same shape and compute dtype.
    static func addInPlace(_ destination: Tensor, _ source: Tensor) {
        precondition(destination.shape == source.shape, "cannot add \(source.shape) into \(destination.shape)")
        precondition(destination.isContiguous)
        let source = source.contiguousStorageView()
        switch destination.dtype {
        case .float64: addInPlace(destination.pointer(as: Double.self), source.pointer(as: Double.self), destination.count)
        case .float32: addInPlace(destination.pointer(as: Float.self), source.pointer(as: Float.self), destination.count)
        default: preconditionFailure("gradients are float32 or float64, not \(destination.dtype)")
        }
    }

    static func addInPlace<F: FloatElement>(_ d: UnsafeMutablePointer<F>, _ s: UnsafePointer<F>, _ n: Int) {
        Parallel.forEach(n, minimumChunk: 1 << 15) { r in for i in r { d[i] += s[i] } }
    }
}

extension Tensor {
    /// This tensor in a compute dtype: itself for float32/float64, a differentiable float32 copy otherwise.
    var computeView: Tensor {
        precondition(dtype.isFloatingPoint, "this op needs a floating-point tensor, got \(dtype)")
        return dtype.isCompute ? self : to(.float32)
    }

    /// The compute view, contiguous (differentiable).
    var computeContiguous: Tensor {
        let t = computeView
        return t.isContiguous ? t : t.contiguous()
    }
}
