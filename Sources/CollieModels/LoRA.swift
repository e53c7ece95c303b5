import CollieEngine

/// A low-rank update of one linear layer (LoRA, as PEFT's `lora.Linear`): the layer's output gains
/// scaling · B·A·dropout(x), with A [r, in] and B [out, r] trainable and the layer's own weight frozen.
///
/// Merging adds scaling · B·A to the base weight (PEFT's `merge`), after which the layer computes the same
/// function with one matrix product; unmerging subtracts it again.
public final class LoRAAdapter {
    /// `lora_A.weight` [r, in].
    public internal(set) var a: Tensor
    /// `lora_B.weight` [out, r].
    public internal(set) var b: Tensor
    /// α/r (or α/√r with rsLoRA).
    public let scaling: Double
    /// Dropout probability on the adapter's input while `isTraining`.
    public let dropout: Double
    /// Dropout is applied only while training (PEFT: `module.training`).
    public var isTraining = false
    /// Seeds the dropout mask: every training forward draws its mask afresh from this seed, so a forward that
    /// activation checkpointing recomputes in backward gets the same mask. The trainer sets a new seed per
    /// micro-batch (a function of the run's seed and position, so runs resume exactly).
    public var dropoutSeed: UInt64 = 0
    /// True while scaling · B·A is folded into the base weight (the adapter then adds nothing).
    public private(set) var isMerged = false

    /// An adapter for a layer [out, in] initialized as `configuration` says, drawing from `generator`.
    public init(inFeatures: Int, outFeatures: Int, configuration: LoRAConfiguration, generator: inout RandomGenerator) {
        let r = configuration.rank
        switch configuration.initialization {
        case .kaimingUniform:
            // kaiming_uniform_(a=√5): bound = gain·√(3/fan_in) with gain = √(2/(1+5)), i.e. 1/√fan_in.
            let bound = 1 / Double(inFeatures).squareRoot()
            a = .uniform([r, inFeatures], low: -bound, high: bound, generator: &generator)
        case .gaussian:
            a = .normal([r, inFeatures], std: 1 / Double(r), generator: &generator)
        }
        b = .zeros([outFeatures, r])
        a.requiresGrad = true
        b.requiresGrad = true
        scaling = configuration.scaling
        dropout = configuration.dropout
    }

    /// `base` + scaling · B·A·dropout(x) for `x` [..., in]: B's product added to the layer's output `base` in place
    /// (`Tensor.linear(_:weight:addingTo:)`), which nothing may read afterwards.
    public func callAsFunction(_ x: Tensor, addingTo base: Tensor) -> Tensor {
        // Scaled at rank r rather than at the output: the same product (up to rounding), and no extra tensor of
        // the layer's output size stays alive for backward.
        .linear(reduced(x) * scaling, weight: b, addingTo: base)
    }

    /// A·dropout(x): with dropout, A's product draws the mask from `dropoutSeed` and keeps `x` itself for backward,
    /// neither a mask nor a dropped-out copy (the query, key and value adapters share one normalized input). `x` may
    /// be `columns` of the layer's whole input (a row-parallel rank's part): it gets the whole input's mask there.
    func reduced(_ x: Tensor, columns: DropoutMask.ColumnWindow? = nil) -> Tensor {
        guard isTraining, dropout > 0 else { return .linear(x, weight: a) }
        return .linear(x, droppingOut: DropoutMask(probability: dropout, seed: dropoutSeed, columns: columns), weight: a)
    }

    /// scaling · B·A [out, in], the change merging makes to the base weight (PEFT's `get_delta_weight`).
    public var deltaWeight: Tensor { withNoGrad { Tensor.matmul(b.detach(), a.detach()) * scaling } }

    /// Adds `deltaWeight` to `layer`'s weight in place, so the adapter's effect is part of the weight. A quantized
    /// weight is dequantized first: the merged layer is dense float32.
    public func merge(into layer: Linear) {
        precondition(layer.lora === self, "merge(into:) takes the layer this adapter belongs to")
        guard !isMerged else { return }
        if let quantized = layer.quantizedWeight { layer.weight = .dense(quantized.dequantized()) }
        addDelta(to: layer.floatWeight(), sign: 1)
        isMerged = true
    }

    /// Subtracts `deltaWeight` from `layer`'s weight again, restoring the base weight.
    public func unmerge(from layer: Linear) {
        precondition(layer.lora === self, "unmerge(from:) takes the layer this adapter belongs to")
        guard isMerged else { return }
        addDelta(to: layer.floatWeight(), sign: -1)
        isMerged = false
    }

    private func addDelta(to weight: Tensor, sign: Float) {
        precondition(weight.dtype == .float32 && weight.isContiguous, "merging needs a contiguous float32 weight")
        let delta = deltaWeight.contiguous()
        let w = weight.pointer(as: Float.self), d = delta.pointer(as: Float.self)
        for i in 0..<weight.count { w[i] += sign * d[i] }
    }
}
