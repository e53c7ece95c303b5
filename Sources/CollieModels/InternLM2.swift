import CollieEngine

/// InternLM2 (`InternLM2ForCausalLM`, the model authors' remote code `modeling_internlm2.py`): LLaMA's arithmetic
/// under its own names, with q, k and v in one packed projection. Read top to bottom as the published file.
///
/// Keys: `model.tok_embeddings`, `model.layers.N.attention.{wqkv,wo}`, `model.layers.N.feed_forward.{w1,w3,w2}`
/// (gate, up, down), `model.layers.N.{attention_norm,ffn_norm}`, `model.norm`, `output`. `wqkv` is kept as the
/// checkpoint packs it, so training, LoRA (`attention.wqkv`) and saving all see the published layout; the forward
/// pass picks q, k and v out of its output.

/// InternLM2's attention: one packed projection `wqkv` [(H + 2·KVH)·D, C], rotary embedding, grouped-query causal
/// attention, output projection `wo`. Biases on both when config.json's `bias` is true.
///
/// The packed rows are grouped by key/value head: for each of the KVH groups, its G = H / KVH query heads, then its
/// key head, then its value head (`rearrange(qkv, "b q (h gs d) -> b q h gs d", gs=2 + G)`); query head h·G + g
/// belongs to group h, the grouping GQA's attention assumes.
public final class InternLM2Attention: Module {
    public let wqkv, wo: Linear
    /// G, the query heads per key/value head.
    let groups, headDimension: Int
    /// The key/value heads (and query heads) `wqkv` holds: all of them, or a tensor-parallel rank's whole groups.
    var keyValueHeads: Int { wqkv.outFeatures / ((groups + 2) * headDimension) }
    var heads: Int { keyValueHeads * groups }

    init(_ c: LlamaConfiguration, initialization: inout Initialization) {
        let d = c.resolvedHeadDimension
        groups = c.attentionHeads / c.keyValueHeads; headDimension = d
        wqkv = Linear(inFeatures: c.hiddenSize, outFeatures: (c.attentionHeads + 2 * c.keyValueHeads) * d, bias: c.attentionBias,
                      initialization: &initialization)
        wo = Linear(inFeatures: c.attentionHeads * d, outFeatures: c.hiddenSize, bias: c.attentionBias, initialization: &initialization)
    }

    /// x: [B, T, C] → [B, T, C], as `LlamaAttention` (cache and padding mask alike).
    func callAsFunction(_ x: Tensor, _ context: BlockContext) -> Tensor {
        let (b, t) = (x.shape[0], x.shape[1])
        let (heads, keyValueHeads) = (self.heads, self.keyValueHeads)
        let qkv = wqkv(x).reshaped([b, t, keyValueHeads, groups + 2, headDimension])   // (b, t, KVH, G + 2, D)
        let q = qkv.slice(axis: 3, 0..<groups).reshaped([b, t, heads, headDimension])
        let k = qkv.slice(axis: 3, groups..<(groups + 1)).reshaped([b, t, keyValueHeads, headDimension])
        let v = qkv.slice(axis: 3, (groups + 1)..<(groups + 2)).reshaped([b, t, keyValueHeads, headDimension])
        let qr = Tensor.applyRotary(q, cos: context.cos, sin: context.sin)
        let kr = Tensor.applyRotary(k, cos: context.cos, sin: context.sin)
        let past = context.cache?.append(layer: context.layer, keys: kr, values: v) ?? (keys: kr, values: v, mask: context.keyPaddingMask)
        let o = Tensor.scaledDotProductAttention(query: qr, key: past.keys, value: past.values, causal: true,
                                                 keyPaddingMask: past.mask, sequences: context.sequences)
        return wo(o.reshaped([b, t, heads * headDimension]))
    }

    public var namedParameters: [(key: String, tensor: Tensor)] { scoped("wqkv", wqkv) + scoped("wo", wo) }
}

/// InternLM2's gated MLP: w2(silu(w1(x)) ⊙ w3(x)), no biases.
public final class InternLM2MLP: Module {
    public let w1, w3, w2: Linear

    init(_ c: LlamaConfiguration, initialization: inout Initialization) {
        w1 = Linear(inFeatures: c.hiddenSize, outFeatures: c.intermediateSize, bias: false, initialization: &initialization)
        w3 = Linear(inFeatures: c.hiddenSize, outFeatures: c.intermediateSize, bias: false, initialization: &initialization)
        w2 = Linear(inFeatures: c.intermediateSize, outFeatures: c.hiddenSize, bias: false, initialization: &initialization)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let gateAndUp = Linear.outputs(of: [w1, w3], on: x)
        return w2(.swiglu(gate: gateAndUp[0], up: gateAndUp[1]))
    }

    public var namedParameters: [(key: String, tensor: Tensor)] {
        scoped("w1", w1) + scoped("w3", w3) + scoped("w2", w2)
    }
}

/// One pre-norm decoder block: x + attention(attention_norm(x)), then h + feed_forward(ffn_norm(h)).
public final class InternLM2DecoderLayer: Module {
    public let attention: InternLM2Attention
    public let feedForward: InternLM2MLP
    public let attentionNorm, ffnNorm: RMSNorm

    init(_ c: LlamaConfiguration, initialization: inout Initialization) {
        attention = InternLM2Attention(c, initialization: &initialization)
        feedForward = InternLM2MLP(c, initialization: &initialization)
        attentionNorm = RMSNorm(dimension: c.hiddenSize, epsilon: c.rmsNormEpsilon)
        ffnNorm = RMSNorm(dimension: c.hiddenSize, epsilon: c.rmsNormEpsilon)
    }

    func callAsFunction(_ x: Tensor, _ context: BlockContext) -> Tensor {
        let h = x + attention(attentionNorm(x), context)
        return h + feedForward(ffnNorm(h))
    }

    public var namedParameters: [(key: String, tensor: Tensor)] {
        scoped("attention", attention) + scoped("feed_forward", feedForward)
            + scoped("attention_norm", attentionNorm) + scoped("ffn_norm", ffnNorm)
    }
}

/// An InternLM2 causal language model (`InternLM2ForCausalLM`), parameters keyed as its checkpoints are.
public final class InternLM2ForCausalLM: CausalLanguageModel {
    public let configuration: LlamaConfiguration
    /// `model.tok_embeddings`.
    public let embedTokens: Embedding
    public let layers: [InternLM2DecoderLayer]
    public let norm: RMSNorm
    /// The output projection `output`; `nil` when tied to the embedding.
    public let output: Linear?
    public let attachments = ModelAttachments()

    /// A model whose parameters are initialized by `initialization`.
    public init(_ configuration: LlamaConfiguration, initialization: inout Initialization) {
        self.configuration = configuration
        let c = configuration
        embedTokens = Embedding(count: c.vocabularySize, dimension: c.hiddenSize, initialization: &initialization)
        layers = (0..<c.hiddenLayers).map { _ in InternLM2DecoderLayer(c, initialization: &initialization) }
        norm = RMSNorm(dimension: c.hiddenSize, epsilon: c.rmsNormEpsilon)
        output = c.tieWordEmbeddings ? nil
            : Linear(inFeatures: c.hiddenSize, outFeatures: c.vocabularySize, bias: false, initialization: &initialization)
    }

    public static func parameterShapes(for c: LlamaConfiguration) -> [(key: String, shape: [Int])] {
        let (d, hidden) = (c.resolvedHeadDimension, c.hiddenSize)
        func linear(_ key: String, _ inFeatures: Int, _ outFeatures: Int, bias: Bool) -> [(key: String, shape: [Int])] {
            [("\(key).weight", [outFeatures, inFeatures])] + (bias ? [("\(key).bias", [outFeatures])] : [])
        }
        let block = linear("attention.wqkv", hidden, (c.attentionHeads + 2 * c.keyValueHeads) * d, bias: c.attentionBias)
            + linear("attention.wo", c.attentionHeads * d, hidden, bias: c.attentionBias)
            + linear("feed_forward.w1", hidden, c.intermediateSize, bias: false)
            + linear("feed_forward.w3", hidden, c.intermediateSize, bias: false)
            + linear("feed_forward.w2", c.intermediateSize, hidden, bias: false)
            + [("attention_norm.weight", [hidden]), ("ffn_norm.weight", [hidden])]
        var result: [(key: String, shape: [Int])] = [("model.tok_embeddings.weight", [c.vocabularySize, hidden])]
        for i in 0..<c.hiddenLayers { result += block.map { ("model.layers.\(i).\($0.key)", $0.shape) } }
        result.append(("model.norm.weight", [hidden]))
        if !c.tieWordEmbeddings { result += linear("output", hidden, c.vocabularySize, bias: false) }
        return result
    }

    public var blockCount: Int { layers.count }

    public func block(_ index: Int, _ h: Tensor, _ context: BlockContext) -> Tensor { layers[index](h, context) }
    public static var blockType: Module.Type { InternLM2DecoderLayer.self }

    public func head(_ h: Tensor) -> Tensor {
        let normed = norm(h)
        return Tensor.withOutputProjectionActivations {
            output.map { $0(normed) } ?? .linear(normed, weight: embedTokens.weight)
        }
    }

    public var unitParameters: [[Tensor]] {
        [embedTokens.parameters] + layers.map(\.parameters) + [norm.parameters + (output?.parameters ?? embedTokens.parameters)]
    }

    public var namedParameters: [(key: String, tensor: Tensor)] {
        var result = scoped("model.tok_embeddings", embedTokens)
        for (i, layer) in layers.enumerated() { result += scoped("model.layers.\(i)", layer) }
        result += scoped("model.norm", norm)
        if let output { result += scoped("output", output) }
        return result
    }

    public var namedLinearLayers: [(path: String, layer: Linear)] {
        var result: [(String, Linear)] = []
        for (i, layer) in layers.enumerated() {
            let a = layer.attention, m = layer.feedForward
            for (name, linear) in [("attention.wqkv", a.wqkv), ("attention.wo", a.wo), ("feed_forward.w1", m.w1),
                                   ("feed_forward.w3", m.w3), ("feed_forward.w2", m.w2)] {
                result.append(("model.layers.\(i).\(name)", linear))
            }
        }
        if let output { result.append(("output", output)) }
        return result
    }

    public var otherModulePaths: [String] {
        var paths = ["model", "model.tok_embeddings", "model.layers", "model.norm"]
        for i in layers.indices {
            paths += ["model.layers.\(i)", "model.layers.\(i).attention", "model.layers.\(i).attention.rotary_emb",
                      "model.layers.\(i).feed_forward", "model.layers.\(i).feed_forward.act_fn",
                      "model.layers.\(i).attention_norm", "model.layers.\(i).ffn_norm"]
        }
        return paths
    }
}
