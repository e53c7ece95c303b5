import CollieEngine

/// LLaMA's attention: q/k/v/o projections, rotary embedding, grouped-query causal attention.
public final class LlamaAttention: Module {
    public let qProj, kProj, vProj, oProj: Linear
    let heads, keyValueHeads, headDimension: Int
    let slidingWindow: Int?

    init(_ c: LlamaConfiguration, initialization: inout Initialization) {
        let d = c.resolvedHeadDimension
        heads = c.attentionHeads; keyValueHeads = c.keyValueHeads; headDimension = d
        slidingWindow = c.slidingWindow
        let qkvBias = c.hasQKVBias
        qProj = Linear(inFeatures: c.hiddenSize, outFeatures: heads * d, bias: qkvBias, initialization: &initialization)
        kProj = Linear(inFeatures: c.hiddenSize, outFeatures: keyValueHeads * d, bias: qkvBias, initialization: &initialization)
        vProj = Linear(inFeatures: c.hiddenSize, outFeatures: keyValueHeads * d, bias: qkvBias, initialization: &initialization)
        oProj = Linear(inFeatures: heads * d, outFeatures: c.hiddenSize, bias: c.hasOutputBias, initialization: &initialization)
    }

    /// x: [B, T, C]; cos/sin: rotary tables [B or 1, T, D/2].
    func callAsFunction(_ x: Tensor, cos: Tensor, sin: Tensor, keyPaddingMask: Tensor?) -> Tensor {
        let (b, t) = (x.shape[0], x.shape[1])
        let q = Tensor.applyRotary(qProj(x).reshaped([b, t, heads, headDimension]), cos: cos, sin: sin)
        let k = Tensor.applyRotary(kProj(x).reshaped([b, t, keyValueHeads, headDimension]), cos: cos, sin: sin)
        let v = vProj(x).reshaped([b, t, keyValueHeads, headDimension])
        let o = Tensor.scaledDotProductAttention(query: q, key: k, value: v, causal: true, keyPaddingMask: keyPaddingMask,
                                                 slidingWindow: slidingWindow)
        return oProj(o.reshaped([b, t, heads * headDimension]))
    }

    public var namedParameters: [(key: String, tensor: Tensor)] {
        scoped("q_proj", qProj) + scoped("k_proj", kProj) + scoped("v_proj", vProj) + scoped("o_proj", oProj)
    }
}

/// LLaMA's gated MLP: down(silu(gate(x)) ⊙ up(x)).
public final class LlamaMLP: Module {
    public let gateProj, upProj, downProj: Linear

    init(_ c: LlamaConfiguration, initialization: inout Initialization) {
        gateProj = Linear(inFeatures: c.hiddenSize, outFeatures: c.intermediateSize, bias: c.mlpBias, initialization: &initialization)
        upProj = Linear(inFeatures: c.hiddenSize, outFeatures: c.intermediateSize, bias: c.mlpBias, initialization: &initialization)
        downProj = Linear(inFeatures: c.intermediateSize, outFeatures: c.hiddenSize, bias: c.mlpBias, initialization: &initialization)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let gateAndUp = Linear.outputs(of: [gateProj, upProj], on: x)
        return downProj(.swiglu(gate: gateAndUp[0], up: gateAndUp[1]))
    }

    public var namedParameters: [(key: String, tensor: Tensor)] {
        scoped("gate_proj", gateProj) + scoped("up_proj", upProj) + scoped("down_proj", downProj)
    }
}

/// One pre-norm decoder block: x + attn(norm(x)), then h + mlp(norm(h)).
public final class LlamaDecoderLayer: Module {
    public let selfAttention: LlamaAttention
    public let mlp: LlamaMLP
    public let inputLayerNorm, postAttentionLayerNorm: RMSNorm

    init(_ c: LlamaConfiguration, initialization: inout Initialization) {
        selfAttention = LlamaAttention(c, initialization: &initialization)
        mlp = LlamaMLP(c, initialization: &initialization)
        inputLayerNorm = RMSNorm(dimension: c.hiddenSize, epsilon: c.rmsNormEpsilon)
        postAttentionLayerNorm = RMSNorm(dimension: c.hiddenSize, epsilon: c.rmsNormEpsilon)
    }

    func callAsFunction(_ x: Tensor, cos: Tensor, sin: Tensor, keyPaddingMask: Tensor?) -> Tensor {
        let h = x + selfAttention(inputLayerNorm(x), cos: cos, sin: sin, keyPaddingMask: keyPaddingMask)
        return h + mlp(postAttentionLayerNorm(h))
    }

    public var namedParameters: [(key: String, tensor: Tensor)] {
        scoped("self_attn", selfAttention) + scoped("mlp", mlp)
            + scoped("input_layernorm", inputLayerNorm) + scoped("post_attention_layernorm", postAttentionLayerNorm)
    }
}

/// A LLaMA-family causal language model (`LlamaForCausalLM`), parameters keyed as in Hugging Face.
public final class LlamaForCausalLM: Module {
    public let configuration: LlamaConfiguration
    public let embedTokens: Embedding
    public let layers: [LlamaDecoderLayer]
    public let norm: RMSNorm
    /// The output projection; `nil` when tied to the embedding.
    public let lmHead: Linear?
    /// Prompt tuning's virtual-token embeddings, prepended to every input (see `PromptEmbedding`).
    public var promptEmbedding: PromptEmbedding?
    /// The PEFT method added to this model (`addAdapter`), if any.
    public internal(set) var peftConfiguration: PEFTConfiguration?
    /// Recompute each decoder layer's activations in backward instead of keeping them (CoLLiE's
    /// `checkpointing`): memory for activations drops to one [B, T, C] input per layer, for one
    /// more forward pass per step. Gradients are identical.
    public var activationCheckpointing = false
    /// Called around each parameter unit — the embedding (0), decoder layer i (i + 1), the final norm with the
    /// output projection (layers + 1) — in forward (ZeRO stage 3 gathers a unit's parameters just in time).
    public weak var parameterUnitHooks: ParameterUnitHooks?
    /// The last rotary tables and the positions they are for.
    private var rotaryCache: (positions: [Int], shape: [Int], cos: Tensor, sin: Tensor)?

    /// A randomly initialized model (seeded), initialized as Hugging Face does.
    public convenience init(_ configuration: LlamaConfiguration, seed: UInt64 = 0) {
        var initialization = Initialization.random(std: configuration.initializerRange, generator: RandomGenerator(seed: seed))
        self.init(configuration, initialization: &initialization)
    }

    /// A model whose parameters are initialized by `initialization`.
    public init(_ configuration: LlamaConfiguration, initialization: inout Initialization) {
        self.configuration = configuration
        let c = configuration
        embedTokens = Embedding(count: c.vocabularySize, dimension: c.hiddenSize, initialization: &initialization)
        layers = (0..<c.hiddenLayers).map { _ in LlamaDecoderLayer(c, initialization: &initialization) }
        norm = RMSNorm(dimension: c.hiddenSize, epsilon: c.rmsNormEpsilon)
        lmHead = c.tieWordEmbeddings ? nil
            : Linear(inFeatures: c.hiddenSize, outFeatures: c.vocabularySize, bias: false, initialization: &initialization)
    }

    /// Logits [B, T, V] for token ids [B, T]. Positions default to 0..<T.
    /// With prompt tuning the logits are those of the real tokens only (see `PromptEmbedding`).
    public func callAsFunction(_ ids: Tensor, positions: Tensor? = nil, keyPaddingMask: Tensor? = nil) -> Tensor {
        if let promptEmbedding { return promptEmbedding.realTokenLogits(self, ids, positions: positions, keyPaddingMask: keyPaddingMask) }
        _ = parameterUnitHooks?.unitWillRun(0, input: ids)
        var embeddings = embedTokens(ids)
        if let hooks = parameterUnitHooks { embeddings = hooks.unitDidRun(0, output: embeddings) }
        return logits(inputEmbeddings: embeddings, positions: positions, keyPaddingMask: keyPaddingMask)
    }

    /// Logits [B, T, V] for input embeddings [B, T, C] (Hugging Face's `inputs_embeds`). Positions default to 0..<T.
    public func logits(inputEmbeddings: Tensor, positions: Tensor? = nil, keyPaddingMask: Tensor? = nil) -> Tensor {
        let length = inputEmbeddings.shape[1]
        let (cos, sin) = rotaryTables(positions?.ints() ?? Array(0..<length), shape: positions?.shape ?? [length])
        var h = inputEmbeddings
        for (index, layer) in layers.enumerated() {
            if let hooks = parameterUnitHooks { h = hooks.unitWillRun(index + 1, input: h) }
            if activationCheckpointing {
                h = .checkpoint(h) { layer($0, cos: cos, sin: sin, keyPaddingMask: keyPaddingMask) }
            } else {
                h = layer(h, cos: cos, sin: sin, keyPaddingMask: keyPaddingMask)
            }
            if let hooks = parameterUnitHooks { h = hooks.unitDidRun(index + 1, output: h) }
        }
        if let hooks = parameterUnitHooks { h = hooks.unitWillRun(layers.count + 1, input: h) }
        h = norm(h)
        let logits = lmHead.map { $0(h) } ?? .linear(h, weight: embedTokens.weight)
        return parameterUnitHooks?.unitDidRun(layers.count + 1, output: logits) ?? logits
    }

    /// The cos/sin tables for `positions`, reused while the positions repeat (every training step
    /// of a fixed sequence length), so the step computes no trigonometry.
    private func rotaryTables(_ positions: [Int], shape: [Int]) -> (cos: Tensor, sin: Tensor) {
        if let cached = rotaryCache, cached.positions == positions, cached.shape == shape { return (cached.cos, cached.sin) }
        let longest = (positions.max() ?? 0) + 1
        let (cos, sin) = Tensor.rotaryTables(positions: Tensor(ints: positions, shape: shape),
                                             inverseFrequencies: configuration.inverseFrequencies(sequenceLength: longest))
        rotaryCache = (positions, shape, cos, sin)
        return (cos, sin)
    }

    /// Mean next-token cross-entropy: logits at position t predict `labels` at t + 1 (Hugging
    /// Face's shift); label −100 is ignored.
    public func loss(ids: Tensor, labels: Tensor, keyPaddingMask: Tensor? = nil) -> Tensor {
        let (b, t) = (ids.shape[0], ids.shape[1])
        let logits = self(ids, keyPaddingMask: keyPaddingMask)
        // Shift labels left and pad with −100, so the last position predicts nothing.
        let given = labels.ints()
        var shifted = [Int](repeating: Tensor.ignoreIndex, count: b * t)
        for row in 0..<b { for i in 0..<(t - 1) { shifted[row * t + i] = given[row * t + i + 1] } }
        let v = configuration.vocabularySize
        return .crossEntropy(logits: logits.reshaped([b * t, v]), targets: Tensor(ints: shifted, shape: [b * t]))
    }

    /// The summed negative log-likelihood of `tokens[1...]`, each given its prefix, and how many
    /// tokens that is (`collie score`, perplexity evaluation). No gradient is recorded.
    public func negativeLogLikelihood(of tokens: [Int]) -> (sum: Double, count: Int) {
        precondition(tokens.count >= 2, "scoring needs at least two tokens")
        return withNoGrad {
            let n = tokens.count
            let logits = self(Tensor(ints: tokens, shape: [1, n]))
            let targets = Tensor(ints: Array(tokens.dropFirst()) + [Tensor.ignoreIndex], shape: [n])
            let sum = Tensor.crossEntropy(logits: logits.reshaped([n, configuration.vocabularySize]), targets: targets,
                                          reduction: .sum)
            return (Double(sum.item), n - 1)
        }
    }

    public var namedParameters: [(key: String, tensor: Tensor)] {
        var result = scoped("model.embed_tokens", embedTokens)
        for (i, layer) in layers.enumerated() { result += scoped("model.layers.\(i)", layer) }
        result += scoped("model.norm", norm)
        if let lmHead { result += scoped("lm_head", lmHead) }
        return result
    }
}

/// Hooks around the parameter units of a model's forward pass (see `LlamaForCausalLM.parameterUnitHooks`).
public protocol ParameterUnitHooks: AnyObject {
    /// Before unit `unit` runs on `input` (token ids for the embedding); returns the tensor the unit reads.
    func unitWillRun(_ unit: Int, input: Tensor) -> Tensor
    /// After unit `unit` produced `output`; returns the tensor the model continues with.
    func unitDidRun(_ unit: Int, output: Tensor) -> Tensor
}

extension LlamaForCausalLM {
    /// The parameter-index ranges (into `parameters`) of the units `ParameterUnitHooks` sees, in order; nil when
    /// the parameters are not laid out unit after unit or the output projection is tied to the embedding.
    public var parameterUnits: [Range<Int>]? {
        guard lmHead != nil else { return nil }
        let order = parameters.map(ObjectIdentifier.init)
        var units: [Range<Int>] = [], start = 0
        for unit in [embedTokens.parameters] + layers.map(\.parameters) {
            let end = start + unit.count
            guard end <= order.count, unit.map(ObjectIdentifier.init) == Array(order[start..<end]) else { return nil }
            units.append(start..<end)
            start = end
        }
        units.append(start..<order.count)
        return units
    }
}
