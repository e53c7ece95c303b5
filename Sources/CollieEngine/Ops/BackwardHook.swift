extension Tensor {
    /// `x` unchanged, with `body` run during backward just before the gradient flows on to `x`: at the point
    /// of the backward pass that mirrors where this op stands in the forward pass. ZeRO stage 3 gathers a
    /// layer's parameters at the hook after the layer (its backward is next) and frees them at the hook before.
    /// Without recording (no input needs a gradient, or inside `withNoGrad`) `x` itself is returned.
    public static func backwardHook(_ x: Tensor, _ body: @escaping () -> Void) -> Tensor {
        guard GradMode.isEnabled, x.requiresGrad else { return x }
        let output = Tensor(storage: x.storage, shape: x.shape, strides: x.strides, offset: x.offset, dtype: x.dtype)
        return output.recording("backward_hook", [x]) { upstream, sink in
            body()
            // The upstream gradient was taken off the tape for this node: nothing else holds it.
            sink.give(upstream, toInput: 0)
        }
    }
}
