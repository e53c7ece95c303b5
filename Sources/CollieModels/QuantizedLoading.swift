import CollieEngine
import CollieIO
import Foundation

/// How a model's linear layers keep their weights when it loads: in quantized blocks instead of float32. The norms
/// stay dense float32.
public enum WeightQuantization: Equatable, Sendable {
    /// Keep a GGUF file's quantized weights in their blocks, as stored (`quantized: true`), as llama.cpp runs them:
    /// the decoder blocks' linear weights, the token embedding (a tied output projection multiplies with its blocks)
    /// and an untied output projection. Float weights stay dense, and so do an embedding or output projection stored
    /// in a format Collie cannot keep (they are dequantized); a decoder-block weight in such a format is an error.
    case keepBlocks
    /// Quantize every decoder-block linear weight to `format` right after it is read (`quantize: q4_0`), so the model
    /// never holds more than one float32 layer. The embedding and output projection stay dense, as in QLoRA.
    case quantize(BlockFormat)
}

extension CausalLanguageModel {
    /// The model of `configuration` with the weights of `source`, its decoder blocks' linear weights kept in quantized
    /// blocks as `quantization` says (nil: all dense, as `load(from:configuration:)`).
    ///
    /// Shapes, and whether every linear weight can be kept or quantized, are checked before anything is allocated.
    public static func load(from source: some WeightSource, configuration: LlamaConfiguration,
                            quantization: WeightQuantization?) throws -> Self {
        guard let quantization else { return try load(from: source, configuration: configuration) }
        guard configuration.hiddenLayers <= source.names.count else {
            throw CheckpointError(file: source.configurationPath,
                                  "num_hidden_layers is \(configuration.hiddenLayers), but the weights hold only \(source.names.count) tensors")
        }
        let shapes = parameterShapes(for: configuration)
        try checkWeights(source, expected: shapes, configuration: configuration)
        for (key, shape) in shapes where isQuantizedWeight(key) {
            switch quantization {
            case .keepBlocks:
                if let reason = source.unkeepableReason(of: key) {
                    throw CheckpointError(file: source.path(of: key), "tensor '\(source.displayName(of: key))' \(reason)")
                }
            case .quantize(let format):
                try checkQuantizable(format, shape: shape, name: source.displayName(of: key))
            }
        }
        var initialization = Initialization.uninitializedWithoutLinearWeights
        let model = Self(configuration, initialization: &initialization)
        /// The blocks `key` keeps with `.keepBlocks`, when the file stores them in a format Collie keeps.
        func keptBlocks(_ key: String) throws -> QuantizedMatrix? {
            guard quantization == .keepBlocks, source.unkeepableReason(of: key) == nil else { return nil }
            return try source.quantizedWeight(key)
        }
        for (path, layer) in model.namedLinearLayers {
            let key = path + ".weight"
            if let blocks = try keptBlocks(key) {
                layer.weight = .quantized(blocks)
                continue
            }
            if isQuantizedWeight(key), case .quantize(let format) = quantization {
                layer.weight = .quantized(try quantized(source.tensor(key), as: format, name: source.displayName(of: key)))
                continue
            }
            layer.weight = .dense(parameter(Tensor(uninitializedShape: [layer.outFeatures, layer.inFeatures])))
        }
        if let blocks = try keptBlocks(configuration.embeddingKey) { model.embedTokens.weight = .quantized(blocks) }
        for (key, parameter) in model.namedParameters { parameter.assignValues(from: try source.tensor(key)) }
        return model
    }

    /// Quantizes every decoder-block linear weight that is still dense to `format`, one layer at a time (a preset
    /// initialized at random, `quantize:` on a model built in memory).
    /// - Throws: `ModelConfigurationError` when `format` has no quantizer or a layer's input size is not a multiple
    ///   of its block; no layer has changed then.
    public func quantizeLinearLayers(as format: BlockFormat) throws {
        let layers = namedLinearLayers.filter { Self.isQuantizedWeight($0.path + ".weight") }
        for (path, layer) in layers {
            try Self.checkQuantizable(format, shape: [layer.outFeatures, layer.inFeatures], name: path + ".weight")
        }
        for (path, layer) in layers {
            guard let dense = layer.denseWeight else { continue }
            layer.weight = .quantized(try Self.quantized(dense.detach(), as: format, name: path + ".weight"))
        }
    }

    /// The number of weights a saved model holds (`savedWeights`): `parameterCount` plus the values of the quantized
    /// weights.
    public var weightCount: Int { savedWeights().reduce(0) { $0 + $1.shape.reduce(1, *) } }

    /// Whether some linear layer or the embedding keeps quantized blocks: they are frozen (only adapters train).
    public var isQuantized: Bool {
        embedTokens.quantizedWeight != nil || namedLinearLayers.contains { $0.layer.quantizedWeight != nil }
    }

    /// Whether the weight `key` is a decoder block's linear weight: the ones `quantize:` quantizes and `keepBlocks`
    /// requires to be in a kept format (the embedding and output projection it keeps when they are, else dequantizes).
    static func isQuantizedWeight(_ key: String) -> Bool {
        if key.hasPrefix("model.layers.") {
            return key.hasSuffix("_proj.weight") || internLM2Projections.contains { key.hasSuffix(".\($0).weight") }
        }
        // ChatGLM2's, ChatGLM-6B's and MOSS's block projections.
        if key.hasPrefix("transformer.encoder.layers.") || key.hasPrefix("transformer.layers.") {
            return ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"].contains { key.hasSuffix(".\($0).weight") }
        }
        return key.hasPrefix("transformer.h.") && ["qkv_proj", "out_proj", "fc_in", "fc_out"].contains { key.hasSuffix(".\($0).weight") }
    }

    /// InternLM2's block projections (`attention.wqkv`, `attention.wo`, `feed_forward.w1/w2/w3`).
    private static var internLM2Projections: [String] { ["wqkv", "wo", "w1", "w2", "w3"] }

    private static func checkQuantizable(_ format: BlockFormat, shape: [Int], name: String) throws {
        guard format.isQuantizable else {
            throw ModelConfigurationError("quantize: Collie has no quantizer for \(format.rawValue) (it quantizes to "
                + BlockFormat.allCases.filter(\.isQuantizable).map(\.rawValue).joined(separator: ", ") + ")")
        }
        guard shape.count == 2, shape[1] % format.blockElements == 0 else {
            let columns = shape.last ?? 0
            let fitting = BlockFormat.allCases.filter { $0.isQuantizable && columns % $0.blockElements == 0 }
            throw ModelConfigurationError("quantize: \(format.rawValue) packs \(format.blockElements) values per block, but "
                + "'\(name)' has \(columns) inputs per row, not a multiple of it; "
                + (fitting.isEmpty ? "no block format fits this layer (blocks hold 32 or 256 values)"
                   : "choose " + fitting.map(\.rawValue).joined(separator: ", ")))
        }
    }

    private static func quantized(_ weight: Tensor, as format: BlockFormat, name: String) throws -> QuantizedMatrix {
        do {
            return try QuantizedMatrix(quantizing: weight.contiguousCopy(dtype: .float32), as: format)
        } catch {
            throw ModelConfigurationError("quantize: cannot quantize '\(name)' to \(format.rawValue): \(error)")
        }
    }
}
