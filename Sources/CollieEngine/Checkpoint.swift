/// Activation checkpointing: run a block without keeping its intermediate tensors, and recompute
/// them during backward.
///
/// The forward pass records one node that holds only the block's input. When backward reaches it,
/// the block runs again on that input with recording on, and a nested backward pass carries the
/// upstream gradient through it: the block's parameters receive their gradients (and their
/// gradient-ready hooks fire) inside that nested pass, and the input's gradient continues
/// outward. Memory per checkpointed block drops from all its activations to its input; the cost is
/// one more forward of the block.
///
/// The block must be deterministic (no dropout) and its parameters must not be used outside it:
/// their gradients are final when the nested pass ends.
extension Tensor {
    public static func checkpoint(_ input: Tensor, _ block: @escaping (Tensor) -> Tensor) -> Tensor {
        guard GradMode.isEnabled else { return block(input) }
        let output = withNoGrad { block(input.detach()) }
        let node = GradNode(name: "checkpoint", inputs: [input], output: output) { grad, sink in
            let replayInput = input.detach()
            replayInput.requiresGrad = input.requiresGrad
            let replayed = GradMode.withGradEnabled { block(replayInput) }
            guard replayed.requiresGrad else { return }   // nothing in the block wants a gradient
            replayed.backward(gradient: grad)
            if let inputGradient = replayInput.grad { sink.give(inputGradient, toInput: 0) }
        }
        // Recorded even when the input needs no gradient (a frozen embedding under LoRA): the block's
        // own parameters may.
        output.requiresGrad = true
        output.gradNode = node
        return output
    }
}
