import CollieTokenizers

/// A named model shape for training from random initialization; the vocabulary comes from the tokenizer.
public enum ModelPreset: String, Codable, CaseIterable, Sendable {
    /// hidden 256, 4 layers, 4 heads, intermediate 688 (~2.4M parameters besides the embeddings).
    case tiny
    /// hidden 768, 12 layers, 12 heads, intermediate 2048 (GPT-2-small-sized).
    case small

    /// (hidden, layers, heads, intermediate).
    public var shape: (hidden: Int, layers: Int, heads: Int, intermediate: Int) {
        switch self {
        case .tiny: (256, 4, 4, 688)
        case .small: (768, 12, 12, 2048)
        }
    }

    /// A LLaMA configuration of this shape with `vocabularySize` ids (multi-head attention, untied embeddings).
    public func configuration(vocabularySize: Int, maxPositionEmbeddings: Int = 2048, initializerRange: Double = 0.02,
                              bosTokenID: Int? = nil, eosTokenID: Int? = nil, padTokenID: Int? = nil)
        -> LlamaConfiguration {
        let s = shape
        return LlamaConfiguration(hiddenSize: s.hidden, intermediateSize: s.intermediate, hiddenLayers: s.layers,
                                  attentionHeads: s.heads, keyValueHeads: s.heads, rmsNormEpsilon: 1e-6,
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
