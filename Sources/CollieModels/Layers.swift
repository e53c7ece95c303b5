import CollieEngine

/// y = x·Wᵀ + b with a weight [out, in] and optional `bias` [out] (`torch.nn.Linear`).
///
/// The weight is a dense parameter, or frozen quantized blocks (`QuantizedMatrix`: a GGUF model loaded with
/// `quantized: true`, or one quantized at load) that are not a parameter — never in an optimizer, a
/// `ParameterBuffer` or `namedParameters` — so only adapters train on a quantized model. Forward and backward
/// (dX only) dequantize a tile of rows at a time (`Tensor.linear(_:quantized:bias:)`).
public final class Linear: Module {
    /// The weight [out, in]: a trainable dense tensor, or frozen quantized blocks.
    public internal(set) var weight: LinearWeight
    public internal(set) var bias: Tensor?
    /// Set when the layer is a tensor-parallel slice (`splitForTensorParallelism`): column- or row-parallel.
    public internal(set) var tensorParallel: LinearParallelism?
    /// A LoRA adapter added to this layer's output (see `LoRAAdapter`); its parameters are not in
    /// `namedParameters`, which stay the base model's.
    public var lora: LoRAAdapter?
    /// The model's hidden dropout on this layer's input or output (`CausalLanguageModel.setHiddenDropout`).
    var dropout: LinearDropout?

    /// A linear layer initialized N(0, std²) with a zero bias, as Hugging Face's `_init_weights`
    /// (or left uninitialized, for weights about to be loaded).
    public init(inFeatures: Int, outFeatures: Int, bias: Bool, initialization: inout Initialization) {
        weight = .dense(parameter(initialization.linearWeight([outFeatures, inFeatures])))
        self.bias = bias ? parameter(initialization.zeros([outFeatures])) : nil
    }

    /// The dense weight [out, in], or nil when the layer keeps quantized blocks.
    public var denseWeight: Tensor? { weight.denseTensor }

    /// The quantized weight, or nil when the layer's weight is dense.
    public var quantizedWeight: QuantizedMatrix? { weight.quantizedMatrix }

    /// The input size (the weight's columns).
    public var inFeatures: Int { weight.inFeatures }

    /// The output size (the weight's rows).
    public var outFeatures: Int { weight.outFeatures }

    /// The weight as a float32 tensor [out, in]: the parameter itself, or the blocks dequantized (a new tensor:
    /// save or export one layer at a time).
    public func floatWeight() -> Tensor { weight.floatWeight() }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        guard let dropout else { return output(x) }
        switch dropout.side {
        case .input:
            // A row-parallel rank holds columns of the whole input: it draws the whole input's mask over them.
            let width = x.shape.last ?? 0
            let columns = tensorParallel.flatMap { parallelism -> DropoutMask.ColumnWindow? in
                guard case .row(let group) = parallelism else { return nil }
                return .init(offset: group.rank * width, total: group.size * width)
            }
            return output(dropout.mask(columns: columns).map { .dropout(x, $0) } ?? x)
        case .output:
            let y = output(x)   // whole on every tensor-parallel rank: the same mask
            return dropout.mask().map { .dropout(y, $0) } ?? y
        }
    }

    /// x·Wᵀ + b, plus the adapter's term; split when the layer is a tensor-parallel slice.
    private func output(_ x: Tensor) -> Tensor {
        if let tensorParallel { return parallelOutput(x, tensorParallel) }
        let y = Tensor.linear(x, weight: weight, bias: bias)
        guard let lora, !lora.isMerged else { return y }
        return lora(x, addingTo: y)
    }

    /// The dense weight (when it is one) and the bias: a quantized weight is frozen, not a parameter.
    public var namedParameters: [(key: String, tensor: Tensor)] {
        (denseWeight.map { [("weight", $0)] } ?? []) + (bias.map { [("bias", $0)] } ?? [])
    }

    /// Each of `layers` applied to `x`. While decoding (`Tensor.withDecodingKernels`) layers without an
    /// unmerged adapter run together in one pass (`Tensor.decodingLinears`, on quantized blocks too); otherwise one
    /// by one.
    public static func outputs(of layers: [Linear], on x: Tensor) -> [Tensor] {
        if layers.allSatisfy({ ($0.lora.map(\.isMerged) ?? true) && $0.tensorParallel == nil }),
           let fused = Tensor.decodingLinears(x, weights: layers.map(\.weight), biases: layers.map(\.bias)) {
            return fused
        }
        return layers.map { $0(x) }
    }
}

/// A [vocabulary, hidden] lookup table (`torch.nn.Embedding`).
///
/// The table is a dense parameter, or frozen quantized blocks when a GGUF model loaded with `quantized: true` stores
/// it in a block format (llama.cpp keeps `token_embd.weight` in Q8_0 or Q6_K): a lookup then dequantizes only the
/// rows it picks, and a tied output projection multiplies with the blocks, so decoding reads them instead of a
/// float table several times their size.
public final class Embedding: Module {
    /// The table [vocabulary, hidden]: a trainable dense tensor, or frozen quantized blocks.
    public internal(set) var weight: LinearWeight

    /// Set when the table holds one rank's rows of the vocabulary (`splitForTensorParallelism`).
    public internal(set) var vocabularyParallel: TensorParallelPlacement?

    public init(count: Int, dimension: Int, initialization: inout Initialization) {
        weight = .dense(parameter(initialization.weight([count, dimension])))
    }

    /// The tied output projection hidden [..., C] → logits [..., V] (or this rank's V/P columns of them under tensor
    /// parallelism, its input then through f).
    public func outputProjection(_ h: Tensor) -> Tensor {
        guard let vocabularyParallel, let table = denseWeight else { return .linear(h, weight: weight) }
        return .linear(.copyToTensorParallelRegion(h, vocabularyParallel.communicator), weight: table)
    }

    /// The dense table, or nil when it is kept in quantized blocks.
    public var denseWeight: Tensor? { weight.denseTensor }

    /// The quantized table, or nil when it is dense.
    public var quantizedWeight: QuantizedMatrix? { weight.quantizedMatrix }

    public func callAsFunction(_ ids: Tensor) -> Tensor {
        if let vocabularyParallel, let table = denseWeight {
            return .vocabularyParallelEmbedding(ids, weight: table, start: vocabularyParallel.vocabulary.lowerBound,
                                                communicator: vocabularyParallel.communicator)
        }
        switch weight {
        case .dense(let tensor): return .embedding(ids, weight: tensor)
        case .quantized(let matrix): return .embedding(ids, quantized: matrix)
        }
    }

    /// The dense table; a quantized one is frozen, not a parameter.
    public var namedParameters: [(key: String, tensor: Tensor)] { denseWeight.map { [("weight", $0)] } ?? [] }
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

/// Layer normalization with a learned scale and shift (`torch.nn.LayerNorm`; ChatGLM with `rmsnorm: false`, MOSS).
public final class LayerNorm: Module {
    public let weight, bias: Tensor
    public let epsilon: Double

    public init(dimension: Int, epsilon: Double) {
        weight = parameter(.ones([dimension]))
        bias = parameter(.zeros([dimension]))
        self.epsilon = epsilon
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { .layerNorm(x, weight: weight, bias: bias, epsilon: epsilon) }

    public var namedParameters: [(key: String, tensor: Tensor)] { [("weight", weight), ("bias", bias)] }
}

/// The distribution a random initialization draws weight matrices from (CoLLiE's `init_method`, after `torch.nn.init`).
/// A weight [out, in] has fan_in = in and fan_out = out (an embedding [vocabulary, hidden]: fan_in = hidden).
public enum WeightDistribution: String, Codable, CaseIterable, Sendable {
    /// N(0, std²), std the model's `initializer_range` (Hugging Face's `_init_weights`).
    case normal
    /// N(0, 2 / (fan_in + fan_out)): `xavier_normal_` (gain 1).
    case xavierNormal = "xavier_normal"
    /// U(−a, a), a = √(6 / (fan_in + fan_out)): `xavier_uniform_` (gain 1).
    case xavierUniform = "xavier_uniform"
    /// N(0, 2 / fan_in): `kaiming_normal_` (a = 0, mode fan_in, gain √2).
    case kaimingNormal = "kaiming_normal"
    /// U(−b, b), b = √(6 / fan_in): `kaiming_uniform_` (a = 0, mode fan_in, gain √2).
    case kaimingUniform = "kaiming_uniform"

    /// A weight of `shape` (rank ≥ 2: [out, in, …]) drawn from this distribution; `std` is the normal one's.
    func sample(_ shape: [Int], std: Double, dtype: DType, generator: inout RandomGenerator) -> Tensor {
        if self == .normal { return Tensor.normal(shape, std: std, dtype: dtype, generator: &generator) }
        precondition(shape.count >= 2, "\(rawValue) needs a weight of rank 2 or more, got \(shape)")
        let receptive = Double(shape.dropFirst(2).reduce(1, *))
        let fanIn = Double(shape[1]) * receptive, fanOut = Double(shape[0]) * receptive
        // Every one has variance 2 / fans: Glorot's fans are fan_in + fan_out, He's fan_in (his gain √2).
        let fans = self == .xavierNormal || self == .xavierUniform ? fanIn + fanOut : fanIn
        if self == .xavierNormal || self == .kaimingNormal {
            return Tensor.normal(shape, std: (2 / fans).squareRoot(), dtype: dtype, generator: &generator)
        }
        let bound = (6 / fans).squareRoot()   // U(−b, b) has variance b² / 3
        return Tensor.uniform(shape, low: -bound, high: bound, dtype: dtype, generator: &generator)
    }
}

/// How new parameters get their values.
public enum Initialization {
    /// Weights drawn from `distribution` (N(0, std²) by default) with a seeded generator, zero biases, unit norms
    /// (Hugging Face's `_init_weights`); weights and biases stored in `dtype` (a bfloat16 model is drawn straight into
    /// bfloat16, never whole in float32).
    case random(std: Double, generator: RandomGenerator, dtype: DType = .float32, distribution: WeightDistribution = .normal)
    /// No values yet: the caller loads them from a checkpoint.
    case uninitialized
    /// No values yet, and no memory for linear layers' weights either: the loader gives each linear layer its
    /// weight (quantized blocks, or a dense tensor), so a quantized model never holds its float32 weights.
    case uninitializedWithoutLinearWeights

    /// A weight matrix of `shape`: drawn from the distribution, or uninitialized.
    mutating func weight(_ shape: [Int]) -> Tensor {
        guard case .random(let std, var generator, let dtype, let distribution) = self else {
            return Tensor(uninitializedShape: shape)
        }
        let t = distribution.sample(shape, std: std, dtype: dtype, generator: &generator)
        self = .random(std: std, generator: generator, dtype: dtype, distribution: distribution)
        return t
    }

    func zeros(_ shape: [Int]) -> Tensor {
        if case .random(_, _, let dtype, _) = self { return .zeros(shape, dtype: dtype) }
        return Tensor(uninitializedShape: shape)
    }

    /// A linear layer's weight: `weight(shape)`, or without linear weights a placeholder of that shape viewing one
    /// value, replaced when the model loads.
    mutating func linearWeight(_ shape: [Int]) -> Tensor {
        guard case .uninitializedWithoutLinearWeights = self else { return weight(shape) }
        return Tensor.zeros([1, 1]).expanded(to: shape)
    }
}
