import Synchronization

/// Reverse-mode automatic differentiation over coarse, fused operations.
///
/// Every differentiable op appends one `GradNode` to the tape: its inputs and a backward closure
/// that turns the output's gradient into the inputs' gradients. `Tensor.backward()` walks the tape
/// from the newest node to the oldest, so the model's backward is its forward read in reverse.
/// A leaf's gradient is final once every node that read it has run; at that moment its
/// gradient-ready hooks fire (once per pass).
///
/// A node keeps where each input's gradient goes (`GradEdge`), not the input: the values backward reads are what its
/// closure captures (PyTorch's saved tensors), so an input no backward reads — a sum's operands, a rotation's input,
/// a layer's output that only a residual add consumed — is freed as soon as forward is done with it.

/// One recorded operation on the tape.
public final class GradNode {
    /// Position on the tape; backward visits nodes in decreasing order.
    let sequence: Int
    /// A short op name for messages.
    let name: String
    /// Where the gradient of each input the op read goes.
    let inputs: [GradEdge]
    /// Shape and dtype of the op's output, for seeding and checking gradients.
    let outputShape: [Int]
    let outputDType: DType
    /// Computes input gradients from the output gradient. Dropped after it runs.
    var backward: ((Tensor, GradientSink) -> Void)?

    /// The last sequence number handed out. Atomic: models on different threads record concurrently, and a
    /// counter shared by all of them still orders each one's tape.
    private static let lastSequence = Atomic<Int>(0)

    init(name: String, inputs: [Tensor], output: Tensor, backward: @escaping (Tensor, GradientSink) -> Void) {
        sequence = GradNode.lastSequence.wrappingAdd(1, ordering: .relaxed).newValue
        self.name = name
        self.inputs = inputs.map(GradEdge.init)
        outputShape = output.shape
        outputDType = output.dtype
        self.backward = backward
    }
}

/// One input of a recorded op as backward needs it: whether it wants a gradient, where that gradient goes — the node
/// that produced the input, or the leaf itself (kept for its `grad` and hooks) — and the input's shape and dtype.
struct GradEdge {
    /// The node that produced the input (when it wants a gradient and is not a leaf).
    let producer: GradNode?
    /// The input itself when it is a leaf that wants a gradient.
    let leaf: Tensor?
    let shape: [Int]
    let dtype: DType

    /// Whether the input wants a gradient: it has somewhere to go.
    var requiresGrad: Bool { producer != nil || leaf != nil }

    init(_ input: Tensor) {
        producer = input.requiresGrad ? input.gradNode : nil
        leaf = input.requiresGrad && input.gradNode == nil ? input : nil
        shape = input.shape
        dtype = input.dtype
    }
}

/// Whether ops record themselves for backward.
///
/// A task-local value (outside a task, local to the thread), so a model evaluated or decoding on one thread
/// never switches recording off for a model training on another.
public enum GradMode {
    @TaskLocal private static var recording = true

    /// True outside any `withNoGrad` scope.
    public static var isEnabled: Bool { recording }

    /// Runs `body` without recording operations (inference, optimizer updates).
    public static func withNoGrad<R>(_ body: () throws -> R) rethrows -> R {
        try $recording.withValue(false, operation: body)
    }

    /// Runs `body` recording operations even inside `withNoGrad` (and inside backward), as
    /// activation checkpointing needs when it recomputes a layer.
    public static func withGradEnabled<R>(_ body: () throws -> R) rethrows -> R {
        try $recording.withValue(true, operation: body)
    }
}

/// Runs `body` without recording operations.
public func withNoGrad<R>(_ body: () throws -> R) rethrows -> R {
    try GradMode.withNoGrad(body)
}

extension Tensor {
    /// Attaches a backward closure to `self`, produced by an op from `inputs`, when any input
    /// requires a gradient and recording is on. Returns `self`.
    @discardableResult
    internal func recording(_ name: String, _ inputs: [Tensor],
                            backward: @escaping (Tensor, GradientSink) -> Void) -> Tensor {
        OpProfile.current?.markForward(name)
        guard GradMode.isEnabled, inputs.contains(where: { $0.requiresGrad }) else { return self }
        requiresGrad = true
        gradNode = GradNode(name: name, inputs: inputs, output: self, backward: backward)
        return self
    }

    /// A tensor sharing this one's storage but cut from the tape: no gradient flows through it.
    public func detach() -> Tensor {
        Tensor(storage: storage, shape: shape, strides: strides, offset: offset, dtype: dtype)
    }

    /// Computes gradients of this tensor with respect to every leaf that requires one.
    ///
    /// Without `gradient` the tensor must hold one element and the seed is 1. Gradients are
    /// added to each leaf's `grad` (so two passes accumulate); intermediate gradients are freed
    /// as soon as they are used. The recorded graph is released unless `retainGraph` is true
    /// (torch's `retain_graph`), which allows a second backward through it — LOMO's two-pass
    /// clipping first gathers gradient norms, then updates.
    public func backward(gradient: Tensor? = nil, retainGraph: Bool = false) {
        precondition(requiresGrad, "backward() on a tensor that does not require a gradient")
        let seed: Tensor
        if let gradient {
            precondition(gradient.shape == shape, "gradient shape \(gradient.shape) does not match \(shape)")
            seed = gradient.contiguousCopy()   // the engine owns every upstream gradient (GradientSink.give)
        } else {
            precondition(count == 1, "backward() without a gradient needs a one-element tensor, got \(shape)")
            seed = Tensor.full(shape, 1, dtype: dtype)
        }
        guard let root = gradNode else {
            // A leaf: its gradient is the seed.
            GradientSink(node: nil, inputs: [GradEdge(self)], table: GradientTable()).add(seed, toInput: 0)
            fireHooks(self)
            return
        }
        GradMode.withNoGrad { runBackward(root: root, seed: seed, retainGraph: retainGraph) }
    }

    private func runBackward(root: GradNode, seed: Tensor, retainGraph: Bool) {
        // Collect the reachable nodes and, for each leaf, how many edges lead into it.
        var nodes: [GradNode] = []
        var seen: Set<ObjectIdentifier> = []
        var pending: [ObjectIdentifier: Int] = [:]
        var stack = [root]
        seen.insert(ObjectIdentifier(root))
        while let node = stack.popLast() {
            nodes.append(node)
            for edge in node.inputs where edge.requiresGrad {
                if let child = edge.producer {
                    if seen.insert(ObjectIdentifier(child)).inserted { stack.append(child) }
                } else if let leaf = edge.leaf {
                    pending[ObjectIdentifier(leaf), default: 0] += 1
                }
            }
        }
        nodes.sort { $0.sequence > $1.sequence }

        let table = GradientTable()
        table.gradients[ObjectIdentifier(root)] = seed
        for node in nodes {
            guard let upstream = table.gradients.removeValue(forKey: ObjectIdentifier(node)) else {
                // No gradient reached this node; its leaves still count the edge as done.
                finishLeaves(of: node, pending: &pending)
                continue
            }
            guard let backward = node.backward else {
                preconditionFailure("backward through '\(node.name)' a second time: the graph was released")
            }
            let sink = GradientSink(node: node, inputs: node.inputs, table: table, retainsGraph: retainGraph)
            if let profile = OpProfile.current {
                profile.timeBackward(node.name) { backward(upstream, sink) }
                if !retainGraph { node.backward = nil }
                profile.timeHooks { finishLeaves(of: node, pending: &pending) }
            } else {
                backward(upstream, sink)
                if !retainGraph { node.backward = nil }
                finishLeaves(of: node, pending: &pending)
            }
        }
    }

    private func finishLeaves(of node: GradNode, pending: inout [ObjectIdentifier: Int]) {
        for edge in node.inputs {
            guard let leaf = edge.leaf else { continue }
            let key = ObjectIdentifier(leaf)
            guard let left = pending[key] else { continue }
            if left == 1 {
                pending[key] = nil
                if leaf.grad != nil { fireHooks(leaf) }
            } else {
                pending[key] = left - 1
            }
        }
    }

    private func fireHooks(_ leaf: Tensor) {
        for hook in leaf.gradientReadyHooks { hook(leaf) }
    }
}

/// Where a backward closure puts the gradients of its op's inputs.
///
/// Gradients of leaves accumulate straight into `grad`; gradients of intermediate tensors
/// accumulate into buffers the engine frees once the producing node has run.
public final class GradientSink {
    let node: GradNode?
    let inputs: [GradEdge]
    let table: GradientTable
    /// Whether the graph outlives this pass (`backward(retainGraph: true)`): a second pass reads the inputs again.
    let retainsGraph: Bool

    init(node: GradNode?, inputs: [GradEdge], table: GradientTable, retainsGraph: Bool = false) {
        self.node = node
        self.inputs = inputs
        self.table = table
        self.retainsGraph = retainsGraph
    }

    /// Whether input `index` wants a gradient.
    public func needsGradient(_ index: Int) -> Bool { inputs[index].requiresGrad }

    private func existing(_ index: Int) -> Tensor? {
        let edge = inputs[index]
        if let child = edge.producer { return table.gradients[ObjectIdentifier(child)] }
        return edge.leaf?.grad
    }

    private func store(_ gradient: Tensor, _ index: Int) {
        let edge = inputs[index]
        if let child = edge.producer { table.gradients[ObjectIdentifier(child)] = gradient } else { edge.leaf?.grad = gradient }
    }

    /// Adds `gradient` (the shape of input `index`) to that input's gradient. The tensor is copied
    /// if it has to be stored, so the caller may pass the same tensor to several inputs.
    public func add(_ gradient: Tensor, toInput index: Int) {
        add(gradient, toInput: index, transferringOwnership: false)
    }

    /// Like `add`, but a freshly made `gradient` that nothing else references may be stored as it
    /// is, without a copy. The caller must not use it afterwards or pass it to another input. The upstream gradient a
    /// backward closure receives (or a view of it) is such a tensor too: the engine hands each node's gradient to its
    /// closure alone and drops it after, so an op that passes it on (reshape, add) gives it to one input at most.
    public func give(_ gradient: Tensor, toInput index: Int) {
        add(gradient, toInput: index, transferringOwnership: true)
    }

    private func add(_ gradient: Tensor, toInput index: Int, transferringOwnership: Bool) {
        let input = inputs[index]
        guard input.requiresGrad else { return }
        precondition(gradient.shape == input.shape,
                     "gradient of shape \(gradient.shape) for input of shape \(input.shape) in '\(node?.name ?? "leaf")'")
        let dtype = Tensor.gradientDType(of: input.dtype)
        if let current = existing(index) {
            Kernels.addInPlace(current, gradient.dtype == current.dtype ? gradient : gradient.converted(to: current.dtype))
        } else if transferringOwnership && gradient.isContiguous && gradient.dtype == dtype {
            store(gradient, index)
        } else {
            store(gradient.contiguousCopy(dtype: dtype), index)
        }
    }

    /// Whether `input`, input `index` of this op (which its backward closure kept), may be overwritten with its
    /// gradient and then handed over (`give`), for an op whose caller promises that nothing reads that input after the
    /// op (its producer's backward included): this pass releases the graph (no second pass reads the input), the
    /// input wants a gradient of its own dtype and has none yet, it starts its storage contiguously, and no other
    /// tensor shares that storage.
    public func canOverwrite(_ input: Tensor, input index: Int) -> Bool {
        !retainsGraph && inputs[index].requiresGrad && input.shape == inputs[index].shape && existing(index) == nil
            && Tensor.gradientDType(of: input) == input.dtype && input.ownsStorage
    }

    /// Lets a kernel write input `index`'s gradient in place: `body` receives the contiguous
    /// gradient buffer and `beta`, 0 when the buffer is fresh (zero-filled, so it may be
    /// overwritten or added to) and 1 when it already holds a gradient (add to it) — BLAS's `beta`. With `overwrites`
    /// the body promises to write every element when `beta` is 0 (a GEMM with beta 0), so a fresh buffer is not zeroed,
    /// and a leaf's gradient marked zero (`ParameterBuffer.zeroGradients()`) is handed over as it is, with beta 0.
    public func accumulate<F: FloatElement>(_ index: Int, as type: F.Type, overwrites: Bool = false,
                                            _ body: (UnsafeMutablePointer<F>, F) -> Void) {
        let input = inputs[index]
        guard input.requiresGrad else { return }
        precondition(Tensor.gradientDType(of: input.dtype) == F.dtype, "gradient dtype mismatch in '\(node?.name ?? "leaf")'")
        // A leaf's gradient marked zero (`ParameterBuffer.zeroGradients()`) is written over as a fresh buffer would be.
        let markedZero = overwrites && input.leaf?.gradientIsZero == true
        if let current = markedZero ? input.leaf?.storedGradient : existing(index), current.isContiguous,
           current.dtype == F.dtype {
            if markedZero { input.leaf?.gradientIsZero = false }
            body(current.pointer(as: F.self), markedZero ? 0 : 1)
        } else {
            let fresh = overwrites ? Tensor(uninitializedShape: input.shape, dtype: F.dtype)
                                   : Tensor.zeros(input.shape, dtype: F.dtype)
            body(fresh.pointer(as: F.self), 0)
            if let current = existing(index) { Kernels.addInPlace(current, fresh) } else { store(fresh, index) }
        }
    }
}

/// Gradients of intermediate tensors during one backward pass, keyed by their producing node.
final class GradientTable {
    var gradients: [ObjectIdentifier: Tensor] = [:]
}

extension Tensor {
    /// The dtype gradients of `tensor` are kept in: its own compute dtype, or float32 for storage types.
    static func gradientDType(of tensor: Tensor) -> DType { gradientDType(of: tensor.dtype) }

    /// The dtype gradients of a tensor of `dtype` are kept in.
    static func gradientDType(of dtype: DType) -> DType { dtype == .float64 ? .float64 : .float32 }
}
