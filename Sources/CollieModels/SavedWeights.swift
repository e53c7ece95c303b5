import CollieEngine

/// The weights a checkpoint or a GGUF export writes, made one at a time.
///
/// A quantized linear layer (QLoRA's base) has no float32 weight in memory and its blocks are not a parameter, so a
/// saved model reads each such weight dequantized when the writer asks for it; a LoRA adapter can be merged the
/// same way (PEFT's `merge_and_unload`: W + scaling · B·A), without changing the model and without holding more than
/// one merged layer — what `collie convert --adapter` of a quantized base writes.
extension CausalLanguageModel {
    /// Every weight by its Hugging Face key, in `parameterShapes(for:)`' order (a dense model's `namedParameters`):
    /// dense parameters as they are, each quantized weight (a linear layer's or the embedding's) as its blocks
    /// dequantized (gguf's values), and with `mergingLoRA` each unmerged LoRA adapter's `deltaWeight` added to its
    /// layer's weight. `values` makes a new float32 tensor for a computed weight, a view of the parameter otherwise.
    public func savedWeights(mergingLoRA: Bool = false) -> [(key: String, shape: [Int], values: () -> Tensor)] {
        let parameters = Dictionary(namedParameters.map { ($0.key, $0.tensor) }, uniquingKeysWith: { first, _ in first })
        let layers = Dictionary(namedLinearLayers.map { ($0.path + ".weight", $0.layer) }, uniquingKeysWith: { first, _ in first })
        return Self.parameterShapes(for: configuration).compactMap { key, shape in
            if let layer = layers[key], layer.quantizedWeight != nil || (mergingLoRA && layer.lora.map { !$0.isMerged } == true) {
                return (key, shape, { Self.savedWeight(of: layer, mergingLoRA: mergingLoRA) })
            }
            if key == configuration.embeddingKey, let table = embedTokens.quantizedWeight {
                return (key, shape, { table.dequantized() })
            }
            guard let parameter = parameters[key] else { return nil }
            return (key, shape, { parameter.detach() })
        }
    }

    /// `layer`'s float32 weight, plus its unmerged adapter's delta when `mergingLoRA`.
    private static func savedWeight(of layer: Linear, mergingLoRA: Bool) -> Tensor {
        var weight = layer.floatWeight().detach()
        if mergingLoRA, let lora = layer.lora, !lora.isMerged {
            if layer.quantizedWeight == nil { weight = weight.contiguousCopy(dtype: .float32) }   // never the parameter
            let delta = lora.deltaWeight.contiguous()
            let w = weight.pointer(as: Float.self), d = delta.pointer(as: Float.self)
            for i in 0..<weight.count { w[i] += d[i] }
        }
        return weight
    }
}
