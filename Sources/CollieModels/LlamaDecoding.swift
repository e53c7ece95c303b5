import CollieEngine

/// Incremental decoding: run only the new tokens, reading earlier positions from a `KVCache`.
///
/// The block structure mirrors `LlamaDecoderLayer`'s forward; every projection goes through its
/// `Linear`, so whatever a `Linear` applies (adapters included) applies here too.
extension LlamaForCausalLM {
    /// Appends `ids` (B rows of T tokens; `attend[b][t]` false marks left padding) to `cache` and
    /// returns the logits [B, V] of each row's last position. Records no gradient.
    ///
    /// With prompt tuning the first call (an empty cache) puts the virtual tokens in front of every row,
    /// at positions 0..<n, as PEFT's forward does; the prompt follows them (after any left padding,
    /// which, as everywhere here, takes no position). Size the cache with `KVCache(model:batchSize:tokens:)`.
    public func nextTokenLogits(_ ids: [[Int]], attend: [[Bool]]? = nil, cache: KVCache) -> Tensor {
        precondition(!ids.isEmpty && !ids[0].isEmpty, "decoding needs at least one token")
        let (b, t) = (ids.count, ids[0].count)
        let virtual = cache.length == 0 ? promptEmbedding : nil
        let n = virtual?.virtualTokenCount ?? 0
        // A step of a few tokens is ~100 short parallel loops: run them on spinning workers (a prefill's large
        // products are BLAS's, whose threads the spinning would crowd).
        let spin: (() -> Tensor) -> Tensor = { b * t <= Tensor.decodingRowLimit ? Parallel.withSpinningWorkers($0) : $0() }
        return withNoGrad { Tensor.withDecodingKernels { spin {
            let mask = attend ?? Array(repeating: Array(repeating: true, count: t), count: b)
            let positions = cache.reserve(mask.map { Array(repeating: true, count: n) + $0 })
            let (cos, sin) = Tensor.rotaryTables(positions: Tensor(ints: positions, shape: [b, n + t]),
                                                 inverseFrequencies: cache.inverseFrequencies)
            let tokens = embedTokens(Tensor(ints: ids.flatMap { $0 }, shape: [b, t]))
            var h = virtual?.prepended(to: tokens) ?? tokens
            for (index, layer) in layers.enumerated() {
                h = h + layer.selfAttention(layer.inputLayerNorm(h), cos: cos, sin: sin, cache: cache, layer: index)
                h = h + layer.mlp(layer.postAttentionLayerNorm(h))
            }
            cache.advance(by: n + t)
            let last = norm(n + t == 1 ? h : h.slice(axis: 1, (n + t - 1)..<(n + t)))
            let logits = lmHead.map { $0(last) } ?? .linear(last, weight: embedTokens.weight)
            return logits.reshaped([b, configuration.vocabularySize])
        } } }
    }
}

extension LlamaAttention {
    /// Attention of the new positions x [B, T, C] over the cached ones and themselves.
    func callAsFunction(_ x: Tensor, cos: Tensor, sin: Tensor, cache: KVCache, layer: Int) -> Tensor {
        let (b, t) = (x.shape[0], x.shape[1])
        let qkv = Linear.outputs(of: [qProj, kProj, vProj], on: x)
        let q = Tensor.applyRotary(qkv[0].reshaped([b, t, heads, headDimension]), cos: cos, sin: sin)
        let k = Tensor.applyRotary(qkv[1].reshaped([b, t, keyValueHeads, headDimension]), cos: cos, sin: sin)
        let v = qkv[2].reshaped([b, t, keyValueHeads, headDimension])
        let past = cache.append(layer: layer, keys: k, values: v)
        let o = Tensor.scaledDotProductAttention(query: q, key: past.keys, value: past.values, causal: true,
                                                 keyPaddingMask: past.mask, slidingWindow: slidingWindow)
        return oProj(o.reshaped([b, t, heads * headDimension]))
    }
}
