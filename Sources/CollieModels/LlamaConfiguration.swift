import CollieEngine

/// The settings of a LLaMA-family decoder, decoded from a Hugging Face `config.json`.
public struct LlamaConfiguration: Codable, Sendable, Equatable {
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var hiddenLayers: Int
    public var attentionHeads: Int
    public var keyValueHeads: Int
    public var headDimension: Int?
    public var rmsNormEpsilon: Double
    public var ropeTheta: Double
    public var vocabularySize: Int
    public var maxPositionEmbeddings: Int
    public var tieWordEmbeddings: Bool
    public var initializerRange: Double

    enum CodingKeys: String, CodingKey {
        case hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size"
        case hiddenLayers = "num_hidden_layers"
        case attentionHeads = "num_attention_heads"
        case keyValueHeads = "num_key_value_heads"
        case headDimension = "head_dim"
        case rmsNormEpsilon = "rms_norm_eps"
        case ropeTheta = "rope_theta"
        case vocabularySize = "vocab_size"
        case maxPositionEmbeddings = "max_position_embeddings"
        case tieWordEmbeddings = "tie_word_embeddings"
        case initializerRange = "initializer_range"
    }

    public init(hiddenSize: Int, intermediateSize: Int, hiddenLayers: Int, attentionHeads: Int,
                keyValueHeads: Int, headDimension: Int? = nil, rmsNormEpsilon: Double = 1e-6,
                ropeTheta: Double = 10_000, vocabularySize: Int, maxPositionEmbeddings: Int = 2048,
                tieWordEmbeddings: Bool = false, initializerRange: Double = 0.02) {
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.hiddenLayers = hiddenLayers
        self.attentionHeads = attentionHeads
        self.keyValueHeads = keyValueHeads
        self.headDimension = headDimension
        self.rmsNormEpsilon = rmsNormEpsilon
        self.ropeTheta = ropeTheta
        self.vocabularySize = vocabularySize
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.tieWordEmbeddings = tieWordEmbeddings
        self.initializerRange = initializerRange
    }

    /// Per-head width: `head_dim` when given, else hidden_size / num_attention_heads.
    public var resolvedHeadDimension: Int { headDimension ?? hiddenSize / attentionHeads }

    /// RoPE inverse frequencies 1 / θ^(2i/d), computed as Hugging Face does (float32).
    public var inverseFrequencies: [Float] {
        let d = resolvedHeadDimension
        return stride(from: 0, to: d, by: 2).map { i in
            Float(1.0 / Foundation.pow(ropeTheta, Double(Float(i) / Float(d))))
        }
    }
}

import Foundation
