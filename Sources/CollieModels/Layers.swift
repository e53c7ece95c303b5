import CollieEngine

/// y = x·Wᵀ + b with `weight` [out, in] and optional `bias` [out] (`torch.nn.Linear`).
public final class Linear: Module {
    public let weight: Tensor
    public let bias: Tensor?

    /// A linear layer initialized N(0, std²) with a zero bias, as Hugging Face's `_init_weights`.
    public init(inFeatures: Int, outFeatures: Int, bias: Bool, std: Double, generator: inout RandomGenerator) {
        weight = parameter(.normal([outFeatures, inFeatures], std: std, generator: &generator))
        self.bias = bias ? parameter(.zeros([outFeatures])) : nil
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { .linear(x, weight: weight, bias: bias) }

    public var namedParameters: [(key: String, tensor: Tensor)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }
}

/// A [vocabulary, hidden] lookup table (`torch.nn.Embedding`).
public final class Embedding: Module {
    public let weight: Tensor

    public init(count: Int, dimension: Int, std: Double, generator: inout RandomGenerator) {
        weight = parameter(.normal([count, dimension], std: std, generator: &generator))
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
