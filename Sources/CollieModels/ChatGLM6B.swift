import CollieEngine
import Foundation

/// ChatGLM-6B (GLM-6B, THUDM/chatglm-6b: `ChatGLMForConditionalGeneration` of the authors' remote code
/// `modeling_chatglm.py`), read top to bottom as the published file: post-scaled residual blocks (DeepNorm's
/// alpha = sqrt(2·28) on the normalized input) of self-attention with 2D rotary positions and a GELU MLP, attending
/// in both directions over each row's context (the tokens before sop) and causally after it.
///
/// Keys: `transformer.word_embeddings`, `transformer.layers.N.{input_layernorm,post_attention_layernorm}` (LayerNorms),
/// `….attention.{query_key_value,dense}`, `….mlp.{dense_h_to_4h,dense_4h_to_h}` (every linear layer with a bias),
/// `transformer.final_layernorm`, `lm_head` (no bias). `query_key_value` stays packed, [q, k, v] of head 0, then of
/// head 1, … (`view(…, np, 3·hn)`); the stored `attention.rotary_emb.inv_freq` buffers are accepted and recomputed.
///
/// The remote code numbers the tokens from the ids themselves, and so does this model (`positions(of:keyPaddingMask:)`):
/// a caller's 1D positions are not used. Class names inside the model are the file's (`GLMBlock` for pipeline
/// partitions by type).
extension ChatGLM6BForConditionalGeneration {
    /// GLM-6B's self-attention: `query_key_value` packed per head, RoPE on each half of every head (the first half by
    /// the position ids, the second by the block position ids, each as `rotate_half` on its own half), attention
    /// scaled by 1/sqrt(hn) — the file's query / (sqrt(hn)·(layer + 1)) and scores · (layer + 1) in float — over
    /// the row's context in both directions and causally after it, then `dense`.
    public final class SelfAttention: Module {
        public let queryKeyValue, dense: Linear
        let headDimension: Int
        /// The heads `query_key_value` holds (packed per head: all of them, or a tensor-parallel rank's).
        var heads: Int { queryKeyValue.outFeatures / (3 * headDimension) }

        init(_ c: LlamaConfiguration, initialization: inout Initialization) {
            headDimension = c.resolvedHeadDimension
            queryKeyValue = Linear(inFeatures: c.hiddenSize, outFeatures: 3 * c.hiddenSize, bias: true,
                                   initialization: &initialization)
            dense = Linear(inFeatures: c.hiddenSize, outFeatures: c.hiddenSize, bias: true, initialization: &initialization)
        }

        /// x: [B, T, C] → [B, T, C].
        func callAsFunction(_ x: Tensor, _ context: BlockContext) -> Tensor {
            let (b, t, d, heads) = (x.shape[0], x.shape[1], headDimension, heads)
            let perHead = queryKeyValue(x).reshaped([b, t, heads, 3, d])          // (b, t, H, [q k v], D)
            let q = Self.rotated(perHead.slice(axis: 3, 0..<1).reshaped([b, t, heads, d]), context)
            let k = Self.rotated(perHead.slice(axis: 3, 1..<2).reshaped([b, t, heads, d]), context)
            let v = perHead.slice(axis: 3, 2..<3).reshaped([b, t, heads, d])
            let past = context.cache?.append(layer: context.layer, keys: k, values: v) ?? (keys: k, values: v, mask: context.keyPaddingMask)
            let o = Self.attention(q, past.keys, past.values, keyPaddingMask: past.mask, prefix: context.bidirectionalPrefix)
            return dense(o.reshaped([b, t, heads * d]))
        }

        /// x [B, T, H, D] with its first half rotated by the tables' first half (the position ids) and its second half
        /// by their second half (the block position ids); tables [B, T, D/2].
        static func rotated(_ x: Tensor, _ context: BlockContext) -> Tensor {
            let half = x.shape[3] / 2, quarter = half / 2
            func part(_ dimensions: Range<Int>, _ table: Range<Int>) -> Tensor {
                .applyRotary(x.slice(axis: 3, dimensions), cos: context.cos.slice(axis: 2, table),
                             sin: context.sin.slice(axis: 2, table), layout: .rotateHalf)
            }
            return .concat([part(0..<half, 0..<quarter), part(half..<(2 * half), quarter..<half)], axis: 3)
        }

        /// Queries [B, T, H, D] (the last T of S positions) over keys and values [B, S, H, D]: causal, except that a
        /// query inside its row's bidirectional prefix attends the whole prefix (get_masks: every query sees
        /// keys [:context_length]; a query after the prefix sees it causally anyway). Those queries — among the first
        /// m rows — take a second, non-causal pass over the prefixes' keys.
        static func attention(_ q: Tensor, _ keys: Tensor, _ values: Tensor, keyPaddingMask: Tensor?, prefix: [Int]?) -> Tensor {
            let causal = Tensor.scaledDotProductAttention(query: q, key: keys, value: values, causal: true,
                                                          keyPaddingMask: keyPaddingMask)
            let (b, t, s) = (q.shape[0], q.shape[1], keys.shape[1])
            guard let prefix else { return causal }
            let inPrefix = prefix.map { min(max($0 - (s - t), 0), t) }   // per row: its first queries inside the prefix
            let m = inPrefix.max() ?? 0, n = min(prefix.max() ?? 0, s)
            guard m > 0 else { return causal }
            var inside = [Float](repeating: 0, count: b * m), context = [Float](repeating: 0, count: b * n)
            let padding = keyPaddingMask?.floats()
            for r in 0..<b {
                for i in 0..<inPrefix[r] { inside[r * m + i] = 1 }
                for j in 0..<min(prefix[r], n) where padding.map({ $0[r * s + j] != 0 }) ?? true { context[r * n + j] = 1 }
            }
            let whole = Tensor.scaledDotProductAttention(query: q.slice(axis: 1, 0..<m), key: keys.slice(axis: 1, 0..<n),
                                                         value: values.slice(axis: 1, 0..<n), causal: false,
                                                         keyPaddingMask: Tensor(context, shape: [b, n]))
            let head = Tensor.where(Tensor(inside, shape: [b, m, 1, 1]), whole, causal.slice(axis: 1, 0..<m))
            return m == t ? head : .concat([head, causal.slice(axis: 1, m..<t)], axis: 1)
        }

        public var namedParameters: [(key: String, tensor: Tensor)] {
            scoped("query_key_value", queryKeyValue) + scoped("dense", dense)
        }
    }

    /// GLM-6B's MLP (`GLU`, despite its name ungated): dense_4h_to_h(gelu(dense_h_to_4h(x))) with the file's tanh GELU.
    public final class GLU: Module {
        public let denseHTo4H, dense4HToH: Linear

        init(_ c: LlamaConfiguration, initialization: inout Initialization) {
            denseHTo4H = Linear(inFeatures: c.hiddenSize, outFeatures: c.intermediateSize, bias: true, initialization: &initialization)
            dense4HToH = Linear(inFeatures: c.intermediateSize, outFeatures: c.hiddenSize, bias: true, initialization: &initialization)
        }

        func callAsFunction(_ x: Tensor) -> Tensor { dense4HToH(denseHTo4H(x).gelu(approximateTanh: true)) }

        public var namedParameters: [(key: String, tensor: Tensor)] {
            scoped("dense_h_to_4h", denseHTo4H) + scoped("dense_4h_to_h", dense4HToH)
        }
    }

    /// One GLMBlock: h = input_layernorm(x); x' = h·alpha + attention(h); h' = post_attention_layernorm(x');
    /// out = h'·alpha + mlp(h'). The residuals are the normalized inputs, scaled by alpha = sqrt(2·num_layers) of
    /// GLMBlock's own `num_layers` argument, whose default, 28, ChatGLMModel never overrides: sqrt(56) for every
    /// config (chatglm-6b has 28 layers; a smaller model scales as the file runs it).
    public final class GLMBlock: Module {
        public let inputLayernorm, postAttentionLayernorm: LayerNorm
        public let attention: SelfAttention
        public let mlp: GLU
        let alpha: Double

        init(_ c: LlamaConfiguration, initialization: inout Initialization) {
            inputLayernorm = LayerNorm(dimension: c.hiddenSize, epsilon: c.rmsNormEpsilon)
            attention = SelfAttention(c, initialization: &initialization)
            postAttentionLayernorm = LayerNorm(dimension: c.hiddenSize, epsilon: c.rmsNormEpsilon)
            mlp = GLU(c, initialization: &initialization)
            alpha = (2 * 28.0).squareRoot()
        }

        func callAsFunction(_ x: Tensor, _ context: BlockContext) -> Tensor {
            let attentionInput = inputLayernorm(x)
            let h = attentionInput * alpha + attention(attentionInput, context)
            let mlpInput = postAttentionLayernorm(h)
            return mlpInput * alpha + mlp(mlpInput)
        }

        public var namedParameters: [(key: String, tensor: Tensor)] {
            scoped("input_layernorm", inputLayernorm) + scoped("attention", attention)
                + scoped("post_attention_layernorm", postAttentionLayernorm) + scoped("mlp", mlp)
        }
    }
}

/// A ChatGLM-6B causal language model (`ChatGLMForConditionalGeneration` of chatglm-6b), parameters keyed as its
/// checkpoints are.
public final class ChatGLM6BForConditionalGeneration: CausalLanguageModel {
    public let configuration: LlamaConfiguration
    /// `transformer.word_embeddings`.
    public let embedTokens: Embedding
    public let layers: [GLMBlock]
    /// `transformer.final_layernorm`.
    public let finalLayernorm: LayerNorm
    /// `lm_head` (no bias, never tied).
    public let lmHead: Linear
    public let attachments = ModelAttachments()
    /// RotaryEmbedding's inv_freq: 1 / 10000^(2i / (D/2)) for each half of a head, rounded to float16 as the file
    /// stores it (`inv_freq.half()`, which a float32 model keeps).
    let inverseFrequencies: [Float]

    /// A model whose parameters are initialized by `initialization`.
    public init(_ configuration: LlamaConfiguration, initialization: inout Initialization) {
        self.configuration = configuration
        let c = configuration
        embedTokens = Embedding(count: c.vocabularySize, dimension: c.hiddenSize, initialization: &initialization)
        layers = (0..<c.hiddenLayers).map { _ in GLMBlock(c, initialization: &initialization) }
        finalLayernorm = LayerNorm(dimension: c.hiddenSize, epsilon: c.rmsNormEpsilon)
        lmHead = Linear(inFeatures: c.hiddenSize, outFeatures: c.vocabularySize, bias: false, initialization: &initialization)
        inverseFrequencies = c.inverseFrequencies().map { Float(Float16($0)) }
    }

    public static func parameterShapes(for c: LlamaConfiguration) -> [(key: String, shape: [Int])] {
        let (hidden, inner) = (c.hiddenSize, c.intermediateSize)
        func linear(_ key: String, _ inFeatures: Int, _ outFeatures: Int, bias: Bool = true) -> [(key: String, shape: [Int])] {
            [("\(key).weight", [outFeatures, inFeatures])] + (bias ? [("\(key).bias", [outFeatures])] : [])
        }
        func norm(_ key: String) -> [(key: String, shape: [Int])] { [("\(key).weight", [hidden]), ("\(key).bias", [hidden])] }
        let block = norm("input_layernorm") + linear("attention.query_key_value", hidden, 3 * hidden)
            + linear("attention.dense", hidden, hidden) + norm("post_attention_layernorm")
            + linear("mlp.dense_h_to_4h", hidden, inner) + linear("mlp.dense_4h_to_h", inner, hidden)
        var result: [(key: String, shape: [Int])] = [("transformer.word_embeddings.weight", [c.vocabularySize, hidden])]
        for i in 0..<c.hiddenLayers { result += block.map { ("transformer.layers.\(i).\($0.key)", $0.shape) } }
        return result + norm("transformer.final_layernorm") + linear("lm_head", hidden, c.vocabularySize, bias: false)
    }

    public var blockCount: Int { layers.count }

    public func block(_ index: Int, _ h: Tensor, _ context: BlockContext) -> Tensor { layers[index](h, context) }
    public static var blockType: Module.Type { GLMBlock.self }

    public func head(_ h: Tensor) -> Tensor {
        let normed = finalLayernorm(h)
        return Tensor.withOutputProjectionActivations { lmHead(normed) }
    }

    /// Its positions and bidirectional context come from each row's tokens: one sequence per row.
    public var packsSequences: Bool { false }

    // MARK: - Positions from the ids

    /// The remote code's position_ids [B, 2, T] for ids [B, T], counted over each row's real tokens (padding gets
    /// 0 and 0): see `ChatGLM6BPositions`.
    public func positions(of ids: Tensor, keyPaddingMask: Tensor?) -> Tensor? {
        let (b, t) = (ids.shape[0], ids.shape[1])
        let tokens = ids.ints(), attend = keyPaddingMask?.floats()
        let settings = configuration.chatGLM6B ?? ChatGLM6BSettings(maskTokenID: 150_000, gmaskTokenID: 150_001)
        var result = [Int](repeating: 0, count: b * 2 * t)
        for r in 0..<b {
            let real = (0..<t).filter { (attend?[r * t + $0] ?? 1) != 0 }
            let row = ChatGLM6BPositions(real.map { tokens[r * t + $0] }, settings: settings,
                                         sop: configuration.bosTokenID ?? 150_004)
            for (k, j) in real.enumerated() {
                result[2 * r * t + j] = row.positions[k]
                result[(2 * r + 1) * t + j] = row.blockPositions[k]
            }
        }
        return Tensor(ints: result, shape: [b, 2, t])
    }

    /// For 2D positions [B, 2, S]: tables [B, count, D/2] of the last `count` columns — the first D/4 columns of
    /// each from the position ids, the rest from the block position ids — and, per row, the leading keys whose block
    /// position is 0 (padding and context) as the bidirectional prefix. Other positions (a caller's [B, T] or none,
    /// as through `logits(inputEmbeddings:)`) are position ids with block positions 0, attended causally.
    public func positionEncoding(_ positions: Tensor?, count: Int) -> PositionEncoding {
        let b: Int, s: Int, values: [Int]
        if let positions, positions.rank == 3, positions.shape[1] == 2 {
            (b, s, values) = (positions.shape[0], positions.shape[2], positions.ints())
        } else {
            let given = positions?.ints() ?? Array(0..<count)
            (b, s) = (positions?.rank == 2 ? positions!.shape[0] : 1, count)
            values = (0..<b).flatMap { r in Array(given[(r * s)..<((r + 1) * s)]) + Array(repeating: 0, count: s) }
        }
        let quarter = inverseFrequencies.count, half = 2 * quarter
        var cos = [Float](repeating: 0, count: b * count * half), sin = cos
        for r in 0..<b {
            for i in 0..<count {
                let column = s - count + i
                for (part, position) in [values[2 * r * s + column], values[(2 * r + 1) * s + column]].enumerated() {
                    for j in 0..<quarter {
                        let angle = Float(position) * inverseFrequencies[j]
                        cos[(r * count + i) * half + part * quarter + j] = Foundation.cos(angle)
                        sin[(r * count + i) * half + part * quarter + j] = Foundation.sin(angle)
                    }
                }
            }
        }
        let prefix = positions?.rank == 3 ? (0..<b).map { r in
            (0..<s).first { values[(2 * r + 1) * s + $0] != 0 } ?? s
        } : nil
        return PositionEncoding(cos: Tensor(cos, shape: [b, count, half]), sin: Tensor(sin, shape: [b, count, half]),
                                bidirectionalPrefix: prefix)
    }

    // MARK: - Parameters by name

    public var unitParameters: [[Tensor]] {
        [embedTokens.parameters] + layers.map(\.parameters) + [finalLayernorm.parameters + lmHead.parameters]
    }

    public var namedParameters: [(key: String, tensor: Tensor)] {
        var result = scoped("transformer.word_embeddings", embedTokens)
        for (i, layer) in layers.enumerated() { result += scoped("transformer.layers.\(i)", layer) }
        return result + scoped("transformer.final_layernorm", finalLayernorm) + scoped("lm_head", lmHead)
    }

    public var namedLinearLayers: [(path: String, layer: Linear)] {
        var result: [(String, Linear)] = []
        for (i, layer) in layers.enumerated() {
            let a = layer.attention, m = layer.mlp
            for (name, linear) in [("attention.query_key_value", a.queryKeyValue), ("attention.dense", a.dense),
                                   ("mlp.dense_h_to_4h", m.denseHTo4H), ("mlp.dense_4h_to_h", m.dense4HToH)] {
                result.append(("transformer.layers.\(i).\(name)", linear))
            }
        }
        result.append(("lm_head", lmHead))
        return result
    }

    public var otherModulePaths: [String] {
        var paths = ["transformer", "transformer.word_embeddings", "transformer.layers"]
        for i in layers.indices {
            let p = "transformer.layers.\(i)"
            paths += [p, "\(p).input_layernorm", "\(p).attention", "\(p).attention.rotary_emb",
                      "\(p).post_attention_layernorm", "\(p).mlp"]
        }
        return paths + ["transformer.final_layernorm"]
    }
}

/// One row's position ids and block position ids, as the remote code's `get_position_ids` makes them (with
/// position_encoding_2d): the context is the tokens before the first sop (bos); the position ids count 0, 1, … over
/// the context and stay at the mask's index — the first [gMASK], else the first [MASK] — from sop on; the block
/// position ids are 0 over the context and count 1, 2, … from sop on.
///
/// Where the remote code fails (`list.index` of a token the row lacks), this numbering goes on: a row without sop is
/// all generated span (context length 0: causal, block positions 1, 2, …), and a row without [gMASK] or [MASK] takes
/// the index before sop (where a prompt's [gMASK] stands), or 0.
struct ChatGLM6BPositions {
    var positions: [Int], blockPositions: [Int]

    init(_ row: [Int], settings: ChatGLM6BSettings, sop: Int) {
        let context = row.firstIndex(of: sop) ?? 0
        let mask = row.firstIndex(of: settings.gmaskTokenID) ?? row.firstIndex(of: settings.maskTokenID) ?? max(context - 1, 0)
        positions = row.indices.map { $0 < context ? $0 : mask }
        blockPositions = row.indices.map { $0 < context ? 0 : $0 - context + 1 }
    }
}
