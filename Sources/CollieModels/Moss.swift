import CollieEngine

/// MOSS (moss-moon-003, `MossForCausalLM`, the authors' `modeling_moss.py`: CodeGen's architecture), read top to
/// bottom as the published file: each block runs attention and the MLP side by side on one LayerNorm's output and
/// adds both to its input.
///
/// Keys: `transformer.wte`, `transformer.h.N.ln_1`, `transformer.h.N.attn.{qkv_proj,out_proj}` (no biases),
/// `transformer.h.N.mlp.{fc_in,fc_out}` (biases), `transformer.ln_f`, `lm_head` (weight and bias). `qkv_proj` stays
/// packed as the checkpoint stores it; the causal-mask buffers older checkpoints carry are accepted and ignored.

/// MOSS's attention: `qkv_proj` [3C, C] in CodeGen's layout, RoPE on the first `rotary_dim` dimensions of each head
/// in interleaved pairs (GPT-J's `rotate_every_two`), causal attention, `out_proj`.
///
/// The packed output is 4 model-parallel chunks (mp_num = 4), each [its H/4 heads' queries; values; keys] —
/// `query, value, key = torch.split(qkv.reshape(…, 4, -1), C/4)` — so head h = m·(H/4) + j is chunk m's j-th head.
public final class MossAttention: Module {
    public let qkvProj, outProj: Linear
    let heads, headDimension: Int

    init(_ c: LlamaConfiguration, initialization: inout Initialization) {
        heads = c.attentionHeads; headDimension = c.resolvedHeadDimension
        qkvProj = Linear(inFeatures: c.hiddenSize, outFeatures: 3 * c.hiddenSize, bias: false, initialization: &initialization)
        outProj = Linear(inFeatures: c.hiddenSize, outFeatures: c.hiddenSize, bias: false, initialization: &initialization)
    }

    /// x: [B, T, C] → [B, T, C]. The chunks are those `qkv_proj` holds: all four, or a tensor-parallel rank's 4/P
    /// (whole chunks: their heads are contiguous).
    func callAsFunction(_ x: Tensor, _ context: BlockContext) -> Tensor {
        let (b, t, d) = (x.shape[0], x.shape[1], headDimension)
        let mp = qkvProj.outFeatures / (3 * (self.heads / 4) * d), heads = mp * (self.heads / 4)
        let chunks = qkvProj(x).reshaped([b, t, mp, 3, heads / mp, d])        // (b, t, mp, [q v k], H/mp, D)
        let q = chunks.slice(axis: 3, 0..<1).reshaped([b, t, heads, d])
        let v = chunks.slice(axis: 3, 1..<2).reshaped([b, t, heads, d])
        let k = chunks.slice(axis: 3, 2..<3).reshaped([b, t, heads, d])
        let qr = Tensor.applyRotary(q, cos: context.cos, sin: context.sin, layout: .interleaved)
        let kr = Tensor.applyRotary(k, cos: context.cos, sin: context.sin, layout: .interleaved)
        let past = context.cache?.append(layer: context.layer, keys: kr, values: v) ?? (keys: kr, values: v, mask: context.keyPaddingMask)
        let o = Tensor.scaledDotProductAttention(query: qr, key: past.keys, value: past.values, causal: true,
                                                 keyPaddingMask: past.mask, sequences: context.sequences)
        return outProj(o.reshaped([b, t, heads * d]))
    }

    public var namedParameters: [(key: String, tensor: Tensor)] { scoped("qkv_proj", qkvProj) + scoped("out_proj", outProj) }
}

/// MOSS's MLP: fc_out(gelu_new(fc_in(x))), both with biases.
public final class MossMLP: Module {
    public let fcIn, fcOut: Linear

    init(_ c: LlamaConfiguration, initialization: inout Initialization) {
        fcIn = Linear(inFeatures: c.hiddenSize, outFeatures: c.intermediateSize, bias: true, initialization: &initialization)
        fcOut = Linear(inFeatures: c.intermediateSize, outFeatures: c.hiddenSize, bias: true, initialization: &initialization)
    }

    func callAsFunction(_ x: Tensor) -> Tensor { fcOut(fcIn(x).gelu(approximateTanh: true)) }

    public var namedParameters: [(key: String, tensor: Tensor)] { scoped("fc_in", fcIn) + scoped("fc_out", fcOut) }
}

/// One MOSS block: h = ln_1(x); out = x + attn(h) + mlp(h).
public final class MossBlock: Module {
    public let ln1: LayerNorm
    public let attn: MossAttention
    public let mlp: MossMLP

    init(_ c: LlamaConfiguration, initialization: inout Initialization) {
        ln1 = LayerNorm(dimension: c.hiddenSize, epsilon: c.rmsNormEpsilon)
        attn = MossAttention(c, initialization: &initialization)
        mlp = MossMLP(c, initialization: &initialization)
    }

    func callAsFunction(_ x: Tensor, _ context: BlockContext) -> Tensor {
        let h = ln1(x)
        return attn(h, context) + mlp(h) + x
    }

    public var namedParameters: [(key: String, tensor: Tensor)] {
        scoped("ln_1", ln1) + scoped("attn", attn) + scoped("mlp", mlp)
    }
}

/// A MOSS causal language model (`MossForCausalLM`), parameters keyed as its checkpoints are.
public final class MossForCausalLM: CausalLanguageModel {
    public let configuration: LlamaConfiguration
    /// `transformer.wte`.
    public let embedTokens: Embedding
    public let layers: [MossBlock]
    /// `transformer.ln_f`.
    public let lnF: LayerNorm
    /// `lm_head`, with a bias.
    public let lmHead: Linear
    public let attachments = ModelAttachments()

    /// A model whose parameters are initialized by `initialization`.
    public init(_ configuration: LlamaConfiguration, initialization: inout Initialization) {
        self.configuration = configuration
        let c = configuration
        embedTokens = Embedding(count: c.vocabularySize, dimension: c.hiddenSize, initialization: &initialization)
        layers = (0..<c.hiddenLayers).map { _ in MossBlock(c, initialization: &initialization) }
        lnF = LayerNorm(dimension: c.hiddenSize, epsilon: c.rmsNormEpsilon)
        lmHead = Linear(inFeatures: c.hiddenSize, outFeatures: c.vocabularySize, bias: true, initialization: &initialization)
    }

    public static func parameterShapes(for c: LlamaConfiguration) -> [(key: String, shape: [Int])] {
        let hidden = c.hiddenSize
        func linear(_ key: String, _ inFeatures: Int, _ outFeatures: Int, bias: Bool) -> [(key: String, shape: [Int])] {
            [("\(key).weight", [outFeatures, inFeatures])] + (bias ? [("\(key).bias", [outFeatures])] : [])
        }
        func norm(_ key: String) -> [(key: String, shape: [Int])] { [("\(key).weight", [hidden]), ("\(key).bias", [hidden])] }
        let block = norm("ln_1") + linear("attn.qkv_proj", hidden, 3 * hidden, bias: false)
            + linear("attn.out_proj", hidden, hidden, bias: false)
            + linear("mlp.fc_in", hidden, c.intermediateSize, bias: true)
            + linear("mlp.fc_out", c.intermediateSize, hidden, bias: true)
        var result: [(key: String, shape: [Int])] = [("transformer.wte.weight", [c.vocabularySize, hidden])]
        for i in 0..<c.hiddenLayers { result += block.map { ("transformer.h.\(i).\($0.key)", $0.shape) } }
        result += norm("transformer.ln_f") + linear("lm_head", hidden, c.vocabularySize, bias: true)
        return result
    }

    public var blockCount: Int { layers.count }

    public func block(_ index: Int, _ h: Tensor, _ context: BlockContext) -> Tensor { layers[index](h, context) }
    public static var blockType: Module.Type { MossBlock.self }

    public func head(_ h: Tensor) -> Tensor {
        let normed = lnF(h)
        return Tensor.withOutputProjectionActivations { lmHead(normed) }
    }

    public var unitParameters: [[Tensor]] {
        [embedTokens.parameters] + layers.map(\.parameters) + [lnF.parameters + lmHead.parameters]
    }

    public var namedParameters: [(key: String, tensor: Tensor)] {
        var result = scoped("transformer.wte", embedTokens)
        for (i, layer) in layers.enumerated() { result += scoped("transformer.h.\(i)", layer) }
        return result + scoped("transformer.ln_f", lnF) + scoped("lm_head", lmHead)
    }

    public var namedLinearLayers: [(path: String, layer: Linear)] {
        var result: [(String, Linear)] = []
        for (i, layer) in layers.enumerated() {
            for (name, linear) in [("attn.qkv_proj", layer.attn.qkvProj), ("attn.out_proj", layer.attn.outProj),
                                   ("mlp.fc_in", layer.mlp.fcIn), ("mlp.fc_out", layer.mlp.fcOut)] {
                result.append(("transformer.h.\(i).\(name)", linear))
            }
        }
        result.append(("lm_head", lmHead))
        return result
    }

    public var otherModulePaths: [String] {
        var paths = ["transformer", "transformer.wte", "transformer.drop", "transformer.h"]
        for i in layers.indices {
            let p = "transformer.h.\(i)"
            paths += [p, "\(p).ln_1", "\(p).attn", "\(p).attn.attn_dropout", "\(p).attn.resid_dropout",
                      "\(p).mlp", "\(p).mlp.act", "\(p).mlp.dropout"]
        }
        return paths + ["transformer.ln_f"]
    }
}
