import CollieTokenizers

/// A named model shape for training from random initialization; the vocabulary comes from the tokenizer.
public enum ModelPreset: String, Codable, CaseIterable, Sendable {
    /// hidden 256, 4 layers, 4 heads, intermediate 688 (~2.4M parameters besides the embeddings).
    case tiny
    /// hidden 768, 12 layers, 12 heads, intermediate 2048 (GPT-2-small-sized).
    case small
    /// TinyLlama-1.1B's shape: hidden 2048, 22 layers, 32 heads of which 4 key/value heads, intermediate 5632.
    case oneB = "1b"
    /// LLaMA-2-7B's shape: hidden 4096, 32 layers, 32 heads, intermediate 11008 (6.74B parameters with its 32,000-id
    /// vocabulary: 13.5 GB in bfloat16 — train it full-parameter with `dtype: bfloat16` and LOMO or AdaLomo).
    case sevenB = "7b"

    /// (hidden, layers, heads, key/value heads, intermediate).
    public var shape: (hidden: Int, layers: Int, heads: Int, keyValueHeads: Int, intermediate: Int) {
        switch self {
        case .tiny: (256, 4, 4, 4, 688)
        case .small: (768, 12, 12, 12, 2048)
        case .oneB: (2048, 22, 32, 4, 5632)
        case .sevenB: (4096, 32, 32, 32, 11008)
        }
    }

    /// A LLaMA configuration of this shape with `vocabularySize` ids (untied embeddings).
    public func configuration(vocabularySize: Int, maxPositionEmbeddings: Int = 2048, initializerRange: Double = 0.02,
                              bosTokenID: Int? = nil, eosTokenID: Int? = nil, padTokenID: Int? = nil)
        -> LlamaConfiguration {
        let s = shape
        return LlamaConfiguration(hiddenSize: s.hidden, intermediateSize: s.intermediate, hiddenLayers: s.layers,
                                  attentionHeads: s.heads, keyValueHeads: s.keyValueHeads, rmsNormEpsilon: 1e-6,
                                  vocabularySize: vocabularySize, maxPositionEmbeddings: maxPositionEmbeddings,
                                  initializerRange: initializerRange, bosTokenID: bosTokenID,
                                  eosTokenIDs: eosTokenID.map { [$0] } ?? [], padTokenID: padTokenID)
    }

    /// A LLaMA configuration of this shape for `tokenizer`'s vocabulary and special tokens.
    public func configuration(for tokenizer: Tokenizer, maxPositionEmbeddings: Int = 2048,
                              initializerRange: Double = 0.02) -> LlamaConfiguration {
        configuration(vocabularySize: tokenizer.vocabularySize, maxPositionEmbeddings: maxPositionEmbeddings,
                      initializerRange: initializerRange, bosTokenID: tokenizer.bosTokenID,
                      eosTokenID: tokenizer.eosTokenID, padTokenID: tokenizer.padTokenID)
    }
}
