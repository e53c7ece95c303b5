import CollieEngine

/// ChatGLM2 and ChatGLM3 (`ChatGLMForConditionalGeneration`, the model authors' remote code `modeling_chatglm.py`),
/// read top to bottom as the published file: pre-norm blocks of multi-query self-attention and a SwiGLU MLP.
///
/// Keys: `transformer.embedding.word_embeddings`, `transformer.encoder.layers.N.{input_layernorm,
/// post_attention_layernorm}`, `….self_attention.{query_key_value,dense}`, `….mlp.{dense_h_to_4h,dense_4h_to_h}`,
/// `transformer.encoder.final_layernorm`, `transformer.output_layer`. The packed projections stay packed (HF names
/// are the keys); the stored `transformer.rotary_pos_emb.inv_freq` buffer is accepted and recomputed.

/// RMSNorm or LayerNorm, as config.json's `rmsnorm` says.
public final class ChatGLMNorm: Module {
    let rms: RMSNorm?
    let layer: LayerNorm?

    init(_ c: LlamaConfiguration) {
        let rmsNorm = c.chatGLM?.rmsNorm ?? true
        rms = rmsNorm ? RMSNorm(dimension: c.hiddenSize, epsilon: c.rmsNormEpsilon) : nil
        layer = rmsNorm ? nil : LayerNorm(dimension: c.hiddenSize, epsilon: c.rmsNormEpsilon)
    }

    func callAsFunction(_ x: Tensor) -> Tensor { rms.map { $0(x) } ?? layer!(x) }

    public var namedParameters: [(key: String, tensor: Tensor)] { rms?.namedParameters ?? layer!.namedParameters }

    static func shapes(_ key: String, _ c: LlamaConfiguration) -> [(key: String, shape: [Int])] {
        [("\(key).weight", [c.hiddenSize])] + (c.chatGLM?.rmsNorm ?? true ? [] : [("\(key).bias", [c.hiddenSize])])
    }
}

/// ChatGLM2's self-attention: one packed projection `query_key_value`, RoPE on the first half of each head in
/// interleaved pairs, causal attention over `multi_query_group_num` key/value heads, output projection `dense`.
///
/// With `multi_query_attention` the packed rows are [H·D queries; G·D keys; G·D values] and query head h reads
/// key/value group h / (H/G); without it they are [q, k, v] of head 0, then of head 1, … (`view(…, np, 3·hn)`).
public final class ChatGLMSelfAttention: Module {
    public let queryKeyValue, dense: Linear
    let heads, groups, headDimension: Int
    let multiQuery: Bool

    init(_ c: LlamaConfiguration, initialization: inout Initialization) {
        let d = c.resolvedHeadDimension
        heads = c.attentionHeads; groups = c.keyValueHeads; headDimension = d
        multiQuery = c.chatGLM?.multiQueryAttention ?? true
        queryKeyValue = Linear(inFeatures: c.hiddenSize, outFeatures: (heads + 2 * groups) * d, bias: c.hasQKVBias,
                               initialization: &initialization)
        dense = Linear(inFeatures: heads * d, outFeatures: c.hiddenSize, bias: c.mlpBias, initialization: &initialization)
    }

    /// x: [B, T, C] → [B, T, C]. The heads and groups are those `query_key_value` holds: all of them, or a
    /// tensor-parallel rank's share (H/P query heads and G/P groups, packed the same way).
    func callAsFunction(_ x: Tensor, _ context: BlockContext) -> Tensor {
        let (b, t, d) = (x.shape[0], x.shape[1], headDimension)
        let total = (self.heads + 2 * self.groups) * d
        let (heads, groups) = (self.heads * queryKeyValue.outFeatures / total, self.groups * queryKeyValue.outFeatures / total)
        let mixed = queryKeyValue(x)                                             // (b, t, (H + 2G)·D)
        let q, k, v: Tensor
        if multiQuery {
            q = mixed.slice(axis: 2, 0..<(heads * d)).reshaped([b, t, heads, d])
            k = mixed.slice(axis: 2, (heads * d)..<((heads + groups) * d)).reshaped([b, t, groups, d])
            v = mixed.slice(axis: 2, ((heads + groups) * d)..<((heads + 2 * groups) * d)).reshaped([b, t, groups, d])
        } else {
            let perHead = mixed.reshaped([b, t, heads, 3, d])                    // (b, t, H, [q k v], D)
            q = perHead.slice(axis: 3, 0..<1).reshaped([b, t, heads, d])
            k = perHead.slice(axis: 3, 1..<2).reshaped([b, t, heads, d])
            v = perHead.slice(axis: 3, 2..<3).reshaped([b, t, heads, d])
        }
        let qr = Tensor.applyRotary(q, cos: context.cos, sin: context.sin, layout: .interleaved)
        let kr = Tensor.applyRotary(k, cos: context.cos, sin: context.sin, layout: .interleaved)
        let past = context.cache?.append(layer: context.layer, keys: kr, values: v) ?? (keys: kr, values: v, mask: context.keyPaddingMask)
        let o = Tensor.scaledDotProductAttention(query: qr, key: past.keys, value: past.values, causal: true,
                                                 keyPaddingMask: past.mask, sequences: context.sequences)
        return dense(o.reshaped([b, t, heads * d]))
    }

    public var namedParameters: [(key: String, tensor: Tensor)] {
        scoped("query_key_value", queryKeyValue) + scoped("dense", dense)
    }
}

/// ChatGLM2's MLP: dense_4h_to_h(silu(gate) ⊙ up) where [gate; up] = dense_h_to_4h(x) (`torch.chunk(x, 2)`).
public final class ChatGLMMLP: Module {
    public let denseHTo4H, dense4HToH: Linear

    init(_ c: LlamaConfiguration, initialization: inout Initialization) {
        denseHTo4H = Linear(inFeatures: c.hiddenSize, outFeatures: 2 * c.intermediateSize, bias: c.mlpBias,
                            initialization: &initialization)
        dense4HToH = Linear(inFeatures: c.intermediateSize, outFeatures: c.hiddenSize, bias: c.mlpBias,
                            initialization: &initialization)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let packed = denseHTo4H(x)
        let last = packed.shape.count - 1
        let intermediate = denseHTo4H.outFeatures / 2                            // a tensor-parallel rank's share
        return dense4HToH(.swiglu(gate: packed.slice(axis: last, 0..<intermediate),
                                  up: packed.slice(axis: last, intermediate..<(2 * intermediate))))
    }

    public var namedParameters: [(key: String, tensor: Tensor)] {
        scoped("dense_h_to_4h", denseHTo4H) + scoped("dense_4h_to_h", dense4HToH)
    }
}

/// One GLMBlock: h = r₁ + attention(input_layernorm(x)), out = r₂ + mlp(post_attention_layernorm(h)), where the
/// residuals r are the block's inputs, or with `apply_residual_connection_post_layernorm` the normalized ones.
public final class GLMBlock: Module {
    public let inputLayernorm, postAttentionLayernorm: ChatGLMNorm
    public let selfAttention: ChatGLMSelfAttention
    public let mlp: ChatGLMMLP
    let residualFromNormalized: Bool

    init(_ c: LlamaConfiguration, initialization: inout Initialization) {
        inputLayernorm = ChatGLMNorm(c)
        selfAttention = ChatGLMSelfAttention(c, initialization: &initialization)
        postAttentionLayernorm = ChatGLMNorm(c)
        mlp = ChatGLMMLP(c, initialization: &initialization)
        residualFromNormalized = c.chatGLM?.residualFromNormalized ?? false
    }

    func callAsFunction(_ x: Tensor, _ context: BlockContext) -> Tensor {
        let normed = inputLayernorm(x)
        let h = (residualFromNormalized ? normed : x) + selfAttention(normed, context)
        let normedH = postAttentionLayernorm(h)
        return (residualFromNormalized ? normedH : h) + mlp(normedH)
    }

    public var namedParameters: [(key: String, tensor: Tensor)] {
        scoped("input_layernorm", inputLayernorm) + scoped("self_attention", selfAttention)
            + scoped("post_attention_layernorm", postAttentionLayernorm) + scoped("mlp", mlp)
    }
}

/// A ChatGLM2/ChatGLM3 causal language model (`ChatGLMForConditionalGeneration`), parameters keyed as its
/// checkpoints are.
public final class ChatGLMForConditionalGeneration: CausalLanguageModel {
    public let configuration: LlamaConfiguration
    /// `transformer.embedding.word_embeddings`.
    public let embedTokens: Embedding
    public let layers: [GLMBlock]
    /// `transformer.encoder.final_layernorm`, nil when `post_layer_norm` is false.
    public let finalLayernorm: ChatGLMNorm?
    /// `transformer.output_layer` (never tied, no bias).
    public let outputLayer: Linear
    public let attachments = ModelAttachments()

    /// A model whose parameters are initialized by `initialization`.
    public init(_ configuration: LlamaConfiguration, initialization: inout Initialization) {
        self.configuration = configuration
        let c = configuration
        embedTokens = Embedding(count: c.vocabularySize, dimension: c.hiddenSize, initialization: &initialization)
        layers = (0..<c.hiddenLayers).map { _ in GLMBlock(c, initialization: &initialization) }
        finalLayernorm = c.chatGLM?.finalNorm ?? true ? ChatGLMNorm(c) : nil
        outputLayer = Linear(inFeatures: c.hiddenSize, outFeatures: c.vocabularySize, bias: false, initialization: &initialization)
    }

    public static func parameterShapes(for c: LlamaConfiguration) -> [(key: String, shape: [Int])] {
        let (d, hidden) = (c.resolvedHeadDimension, c.hiddenSize)
        func linear(_ key: String, _ inFeatures: Int, _ outFeatures: Int, bias: Bool) -> [(key: String, shape: [Int])] {
            [("\(key).weight", [outFeatures, inFeatures])] + (bias ? [("\(key).bias", [outFeatures])] : [])
        }
        let block = ChatGLMNorm.shapes("input_layernorm", c)
            + linear("self_attention.query_key_value", hidden, (c.attentionHeads + 2 * c.keyValueHeads) * d, bias: c.hasQKVBias)
            + linear("self_attention.dense", c.attentionHeads * d, hidden, bias: c.mlpBias)
            + ChatGLMNorm.shapes("post_attention_layernorm", c)
            + linear("mlp.dense_h_to_4h", hidden, 2 * c.intermediateSize, bias: c.mlpBias)
            + linear("mlp.dense_4h_to_h", c.intermediateSize, hidden, bias: c.mlpBias)
        var result: [(key: String, shape: [Int])] = [("transformer.embedding.word_embeddings.weight", [c.vocabularySize, hidden])]
        for i in 0..<c.hiddenLayers { result += block.map { ("transformer.encoder.layers.\(i).\($0.key)", $0.shape) } }
        if c.chatGLM?.finalNorm ?? true { result += ChatGLMNorm.shapes("transformer.encoder.final_layernorm", c) }
        result += linear("transformer.output_layer", hidden, c.vocabularySize, bias: false)
        return result
    }

    public var blockCount: Int { layers.count }

    public func block(_ index: Int, _ h: Tensor, _ context: BlockContext) -> Tensor { layers[index](h, context) }
    public static var blockType: Module.Type { GLMBlock.self }

    public func head(_ h: Tensor) -> Tensor {
        let normed = finalLayernorm.map { $0(h) } ?? h
        return Tensor.withOutputProjectionActivations { outputLayer(normed) }
    }

    public var unitParameters: [[Tensor]] {
        [embedTokens.parameters] + layers.map(\.parameters) + [(finalLayernorm?.parameters ?? []) + outputLayer.parameters]
    }

    public var namedParameters: [(key: String, tensor: Tensor)] {
        var result = scoped("transformer.embedding.word_embeddings", embedTokens)
        for (i, layer) in layers.enumerated() { result += scoped("transformer.encoder.layers.\(i)", layer) }
        if let finalLayernorm { result += scoped("transformer.encoder.final_layernorm", finalLayernorm) }
        result += scoped("transformer.output_layer", outputLayer)
        return result
    }

    public var namedLinearLayers: [(path: String, layer: Linear)] {
        var result: [(String, Linear)] = []
        for (i, layer) in layers.enumerated() {
            let a = layer.selfAttention, m = layer.mlp
            for (name, linear) in [("self_attention.query_key_value", a.queryKeyValue), ("self_attention.dense", a.dense),
                                   ("mlp.dense_h_to_4h", m.denseHTo4H), ("mlp.dense_4h_to_h", m.dense4HToH)] {
                result.append(("transformer.encoder.layers.\(i).\(name)", linear))
            }
        }
        result.append(("transformer.output_layer", outputLayer))
        return result
    }

    public var otherModulePaths: [String] {
        var paths = ["transformer", "transformer.embedding", "transformer.embedding.word_embeddings",
                     "transformer.rotary_pos_emb", "transformer.encoder", "transformer.encoder.layers"]
        for i in layers.indices {
            let p = "transformer.encoder.layers.\(i)"
            paths += [p, "\(p).input_layernorm", "\(p).self_attention", "\(p).self_attention.core_attention",
                      "\(p).self_attention.core_attention.attention_dropout", "\(p).post_attention_layernorm", "\(p).mlp"]
        }
        if finalLayernorm != nil { paths.append("transformer.encoder.final_layernorm") }
        return paths
    }
}
