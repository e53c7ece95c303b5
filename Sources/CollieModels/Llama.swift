import CollieEngine

/// The LLaMA family (LLaMA 1/2/3, Mistral, Qwen2): attention, MLP, decoder block and the causal LM, read top to
/// bottom as transformers' `modeling_llama.py`. Only the architecture lives here; the forward pass around the blocks
/// (parameter-unit hooks, activation checkpointing, prompt tuning, the KV cache's bookkeeping), PEFT and checkpoint
/// IO are written once for every `CausalLanguageModel`.

/// LLaMA's attention: q/k/v/o projections, rotary embedding, grouped-query causal attention.
public final class LlamaAttention: Module {
    public let qProj, kProj, vProj, oProj: Linear
    let headDimension: Int
    let slidingWindow: Int?
    /// The query and key/value heads this module computes: all of them, or under tensor parallelism this rank's
    /// (read from the projections' sizes, so the code is the same).
    var heads: Int { qProj.outFeatures / headDimension }
    var keyValueHeads: Int { kProj.outFeatures / headDimension }

    init(_ c: LlamaConfiguration, initialization: inout Initialization) {
        let d = c.resolvedHeadDimension
        let (heads, keyValueHeads) = (c.attentionHeads, c.keyValueHeads)
        headDimension = d
        slidingWindow = c.slidingWindow
        let qkvBias = c.hasQKVBias
        qProj = Linear(inFeatures: c.hiddenSize, outFeatures: heads * d, bias: qkvBias, initialization: &initialization)
        kProj = Linear(inFeatures: c.hiddenSize, outFeatures: keyValueHeads * d, bias: qkvBias, initialization: &initialization)
        vProj = Linear(inFeatures: c.hiddenSize, outFeatures: keyValueHeads * d, bias: qkvBias, initialization: &initialization)
        oProj = Linear(inFeatures: heads * d, outFeatures: c.hiddenSize, bias: c.hasOutputBias, initialization: &initialization)
    }

    /// x: [B, T, C] → [B, T, C]. Without a cache the T positions attend to each other (causally, under
    /// `context.keyPaddingMask`); with one, their keys and values are appended to it and they attend to every
    /// cached position too.
    func callAsFunction(_ x: Tensor, _ context: BlockContext) -> Tensor {
        let (b, t) = (x.shape[0], x.shape[1])
        let qkv = Linear.outputs(of: [qProj, kProj, vProj], on: x)
        let q = Tensor.applyRotary(qkv[0].reshaped([b, t, heads, headDimension]), cos: context.cos, sin: context.sin)
        let k = Tensor.applyRotary(qkv[1].reshaped([b, t, keyValueHeads, headDimension]), cos: context.cos, sin: context.sin)
        let v = qkv[2].reshaped([b, t, keyValueHeads, headDimension])
        let past = context.cache?.append(layer: context.layer, keys: k, values: v) ?? (keys: k, values: v, mask: context.keyPaddingMask)
        let o = Tensor.scaledDotProductAttention(query: q, key: past.keys, value: past.values, causal: true,
                                                 keyPaddingMask: past.mask, sequences: context.sequences,
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

    func callAsFunction(_ x: Tensor, _ context: BlockContext) -> Tensor {
        let h = x + selfAttention(inputLayerNorm(x), context)
        return h + mlp(postAttentionLayerNorm(h))
    }

    public var namedParameters: [(key: String, tensor: Tensor)] {
        scoped("self_attn", selfAttention) + scoped("mlp", mlp)
            + scoped("input_layernorm", inputLayerNorm) + scoped("post_attention_layernorm", postAttentionLayerNorm)
    }
}

/// A LLaMA-family causal language model (`LlamaForCausalLM`), parameters keyed as in Hugging Face.
public final class LlamaForCausalLM: CausalLanguageModel {
    public let configuration: LlamaConfiguration
    public let embedTokens: Embedding
    public let layers: [LlamaDecoderLayer]
    public let norm: RMSNorm
    /// The output projection; `nil` when tied to the embedding.
    public let lmHead: Linear?
    public let attachments = ModelAttachments()

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

    public static func parameterShapes(for c: LlamaConfiguration) -> [(key: String, shape: [Int])] {
        let (d, hidden) = (c.resolvedHeadDimension, c.hiddenSize)
        func linear(_ key: String, _ inFeatures: Int, _ outFeatures: Int, bias: Bool) -> [(key: String, shape: [Int])] {
            [("\(key).weight", [outFeatures, inFeatures])] + (bias ? [("\(key).bias", [outFeatures])] : [])
        }
        let block = linear("self_attn.q_proj", hidden, c.attentionHeads * d, bias: c.hasQKVBias)
            + linear("self_attn.k_proj", hidden, c.keyValueHeads * d, bias: c.hasQKVBias)
            + linear("self_attn.v_proj", hidden, c.keyValueHeads * d, bias: c.hasQKVBias)
            + linear("self_attn.o_proj", c.attentionHeads * d, hidden, bias: c.hasOutputBias)
            + linear("mlp.gate_proj", hidden, c.intermediateSize, bias: c.mlpBias)
            + linear("mlp.up_proj", hidden, c.intermediateSize, bias: c.mlpBias)
            + linear("mlp.down_proj", c.intermediateSize, hidden, bias: c.mlpBias)
            + [("input_layernorm.weight", [hidden]), ("post_attention_layernorm.weight", [hidden])]
        var result: [(key: String, shape: [Int])] = [("model.embed_tokens.weight", [c.vocabularySize, hidden])]
        for i in 0..<c.hiddenLayers { result += block.map { ("model.layers.\(i).\($0.key)", $0.shape) } }
        result.append(("model.norm.weight", [hidden]))
        if !c.tieWordEmbeddings { result += linear("lm_head", hidden, c.vocabularySize, bias: false) }
        return result
    }

    public var blockCount: Int { layers.count }

    public func block(_ index: Int, _ h: Tensor, _ context: BlockContext) -> Tensor { layers[index](h, context) }
    public static var blockType: Module.Type { LlamaDecoderLayer.self }

    public func head(_ h: Tensor) -> Tensor {
        let normed = norm(h)
        return Tensor.withOutputProjectionActivations {
            lmHead.map { $0(normed) } ?? embedTokens.outputProjection(normed)
        }
    }

    public var unitParameters: [[Tensor]] {
        [embedTokens.parameters] + layers.map(\.parameters) + [norm.parameters + (lmHead?.parameters ?? embedTokens.parameters)]
    }

    public var namedParameters: [(key: String, tensor: Tensor)] {
        var result = scoped("model.embed_tokens", embedTokens)
        for (i, layer) in layers.enumerated() { result += scoped("model.layers.\(i)", layer) }
        result += scoped("model.norm", norm)
        if let lmHead { result += scoped("lm_head", lmHead) }
        return result
    }

    public var namedLinearLayers: [(path: String, layer: Linear)] {
        var result: [(String, Linear)] = []
        for (i, layer) in layers.enumerated() {
            let a = layer.selfAttention, m = layer.mlp
            for (name, linear) in [("self_attn.q_proj", a.qProj), ("self_attn.k_proj", a.kProj), ("self_attn.v_proj", a.vProj),
                                   ("self_attn.o_proj", a.oProj), ("mlp.gate_proj", m.gateProj), ("mlp.up_proj", m.upProj),
                                   ("mlp.down_proj", m.downProj)] {
                result.append(("model.layers.\(i).\(name)", linear))
            }
        }
        if let lmHead { result.append(("lm_head", lmHead)) }
        return result
    }

    public var otherModulePaths: [String] {
        var paths = ["model", "model.embed_tokens", "model.layers", "model.norm", "model.rotary_emb"]
        for i in layers.indices {
            paths += ["model.layers.\(i)", "model.layers.\(i).self_attn", "model.layers.\(i).mlp",
                      "model.layers.\(i).mlp.act_fn", "model.layers.\(i).input_layernorm",
                      "model.layers.\(i).post_attention_layernorm"]
        }
        return paths
    }
}
