import CollieEngine

/// y = x·Wᵀ + b with `weight` [out, in] and optional `bias` [out] (`torch.nn.Linear`).
public final class Linear: Module {
    public let weight: Tensor
    public let bias: Tensor?
    /// A LoRA adapter added to this layer's output (see `LoRAAdapter`); its parameters are not in
    /// `namedParameters`, which stay the base model's.
    public var lora: LoRAAdapter?

    /// A linear layer initialized N(0, std²) with a zero bias, as Hugging Face's `_init_weights`
    /// (or left uninitialized, for weights about to be loaded).
    public init(inFeatures: Int, outFeatures: Int, bias: Bool, initialization: inout Initialization) {
        weight = parameter(initialization.normal([outFeatures, inFeatures]))
        self.bias = bias ? parameter(initialization.zeros([outFeatures])) : nil
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let y = Tensor.linear(x, weight: weight, bias: bias)
        guard let lora, !lora.isMerged else { return y }
        return y + lora(x)
    }

    public var namedParameters: [(key: String, tensor: Tensor)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }

    /// Each of `layers` applied to `x`. While decoding (`Tensor.withDecodingKernels`) layers without an
    /// unmerged adapter run together in one pass (`Tensor.decodingLinears`); otherwise one by one.
    public static func outputs(of layers: [Linear], on x: Tensor) -> [Tensor] {
        if layers.allSatisfy({ $0.lora.map(\.isMerged) ?? true }),
           let fused = Tensor.decodingLinears(x, weights: layers.map(\.weight), biases: layers.map(\.bias)) {
            return fused
        }
        return layers.map { $0(x) }
    }
}

/// A [vocabulary, hidden] lookup table (`torch.nn.Embedding`).
public final class Embedding: Module {
    public let weight: Tensor

    public init(count: Int, dimension: Int, initialization: inout Initialization) {
        weight = parameter(initialization.normal([count, dimension]))
    }

    public func callAsFunction(_ ids: Tensor) -> Tensor { .embedding(ids, weight: weight) }

    public var namedParameters: [(key: String, tensor: Tensor)] { [("weight", weight)] }
}

/// Root-mean-square normalization with a learned scale (`LlamaRMSNorm`).
public final class RMSNorm: Module {
    public let weight: Tensor
    public let epsilon: Double

    public init(dimension: Int, epsilon: Double) {
        weight = parameter(.ones([dimension]))
        self.epsilon = epsilon
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { .rmsNorm(x, weight: weight, epsilon: epsilon) }

    public var namedParameters: [(key: String, tensor: Tensor)] { [("weight", weight)] }
}

/// How new parameters get their values.
public enum Initialization {
    /// N(0, std²) weights drawn from a seeded generator, zero biases, unit norms (Hugging Face's `_init_weights`).
    case random(std: Double, generator: RandomGenerator)
    /// No values yet: the caller loads them from a checkpoint.
    case uninitialized

    mutating func normal(_ shape: [Int]) -> Tensor {
        guard case .random(let std, var generator) = self else { return Tensor(uninitializedShape: shape) }
        let t = Tensor.normal(shape, std: std, generator: &generator)
        self = .random(std: std, generator: generator)
        return t
    }

    func zeros(_ shape: [Int]) -> Tensor {
        if case .uninitialized = self { return Tensor(uninitializedShape: shape) }
        return .zeros(shape)
    }
}
