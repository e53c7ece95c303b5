import CollieEngine
import CollieIO
import Foundation

/// Loading and saving Hugging Face model folders, for every architecture.
extension CausalLanguageModel {
    /// Loads `config.json` and the weights (single or sharded safetensors; f32, bf16 or f16) of
    /// the Hugging Face folder `folder`. Parameters are converted to float32 (a trainer moves them
    /// into one flat buffer, in bf16 when training with bf16 weights). A missing or unexpected tensor, or one of the
    /// wrong shape, is an error listing them.
    public static func load(from folder: URL) throws -> Self {
        try load(from: folder, configuration: LlamaConfiguration.load(from: folder))
    }

    /// The model of `configuration` (already read from `folder`) with the folder's weights.
    public static func load(from folder: URL, configuration: LlamaConfiguration) throws -> Self {
        try load(from: CheckpointFolder(url: folder), configuration: configuration)
    }

    /// The model of `configuration` with the weights of `source` (a Hugging Face folder or a GGUF file).
    ///
    /// The source's shapes are checked against the shapes `configuration` implies before any parameter is
    /// allocated, so a configuration whose sizes do not match its weights (or a source whose weights are missing)
    /// fails with an error instead of allocating what the configuration asks for.
    public static func load(from source: some WeightSource, configuration: LlamaConfiguration) throws -> Self {
        try checkLoadable(source, configuration: configuration)
        var initialization = Initialization.uninitialized
        let model = Self(configuration, initialization: &initialization)
        try model.assignWeights(from: source)
        return model
    }

    /// Checks `source`'s names and shapes against those `configuration` implies, before anything is allocated.
    static func checkLoadable(_ source: some WeightSource, configuration: LlamaConfiguration) throws {
        // Every block holds at least one tensor: a layer count beyond the tensor count is wrong before the
        // expected shapes (one entry per parameter) are even listed.
        guard configuration.hiddenLayers <= source.names.count else {
            throw CheckpointError(file: source.configurationPath,
                                  "num_hidden_layers is \(configuration.hiddenLayers), but the weights hold only \(source.names.count) tensors")
        }
        try checkWeights(source, expected: parameterShapes(for: configuration), configuration: configuration)
    }

    /// Copies the weights of the Hugging Face folder `folder` (single or sharded safetensors) into this model's
    /// parameters, tensor by tensor, converting to each parameter's dtype; no second model is built, so a
    /// trainer restores weights in place (parameters in a flat buffer stay there).
    /// - Throws: `CheckpointError` naming the folder and the keys when tensors are missing or unexpected, or the
    ///   file and the key when a tensor has another shape or is not floating point.
    public func loadWeights(from folder: URL) throws {
        try assignWeights(from: CheckpointFolder(url: folder))
    }

    private func assignWeights(from source: some WeightSource) throws {
        let expected = namedParameters
        try Self.checkWeights(source, expected: expected.map { ($0.key, $0.tensor.shape) }, configuration: configuration)
        for (key, parameter) in expected { parameter.assignValues(from: try source.tensor(key)) }
    }

    /// Checks the source's shapes against the parameters `expected` (key and shape), reading no tensor.
    static func checkWeights(_ source: some WeightSource, expected: [(key: String, shape: [Int])],
                                     configuration: LlamaConfiguration) throws {
        let expectedKeys = Set(expected.map(\.key))
        // Buffers older checkpoints store but that are computed, and lm_head when tied.
        let ignorable = { (key: String) in
            key.hasSuffix("rotary_emb.inv_freq") || key == "transformer.rotary_pos_emb.inv_freq"
                || (configuration.modelType == .moss && (key.hasSuffix(".attn.causal_mask") || key.hasSuffix(".attn.masked_bias")))
                || (configuration.tieWordEmbeddings && key == configuration.outputProjectionPath + ".weight")
        }
        let missing = expectedKeys.subtracting(source.names).sorted()
        let unexpected = source.names.subtracting(expectedKeys).filter { !ignorable($0) }.sorted()
        if !missing.isEmpty || !unexpected.isEmpty {
            func list(_ keys: [String]) -> String {
                let names = keys.map(source.displayName(of:))
                return names.count <= 10 ? names.joined(separator: ", ")
                    : names.prefix(10).joined(separator: ", ") + ", … (\(names.count) in all)"
            }
            var parts: [String] = []
            if !missing.isEmpty { parts.append("missing: " + list(missing)) }
            if !unexpected.isEmpty { parts.append("unexpected: " + list(unexpected)) }
            throw CheckpointError(file: source.path, "weights do not match the \(configuration.modelType.rawValue) model of \(source.configurationName) (" + parts.joined(separator: "; ") + ")")
        }
        for (key, shape) in expected {
            let name = source.displayName(of: key)
            let stored = source.shape(of: key)
            guard stored == shape else {
                throw CheckpointError(file: source.path(of: key),
                                      "tensor '\(name)' has shape \(stored ?? []), but \(source.configurationName) implies \(shape)")
            }
            if let reason = source.unusableReason(of: key) {
                throw CheckpointError(file: source.path(of: key), "tensor '\(name)' \(reason)")
            }
        }
    }

    /// Writes a Hugging Face folder `transformers` loads: `config.json`, `generation_config.json`
    /// and the weights in `dtype`, sharded above `maxShardBytes` (with an index). Each file is
    /// written atomically. Quantized linear weights are written dequantized, and with `mergingLoRA` LoRA adapters
    /// merged into their layers' weights (`savedWeights(mergingLoRA:)`; the model itself is unchanged).
    public func save(to folder: URL, dtype: DType = .float32, maxShardBytes: Int = 2 << 30, mergingLoRA: Bool = false) throws {
        precondition(dtype.isFloatingPoint, "weights are saved as float32, bfloat16 or float16")
        guard tensorParallelPlacement == nil else {
            throw TensorParallelError("the model is split for tensor parallelism: gather its slices "
                                      + "(gatherTensorParallelSlices) before saving one Hugging Face folder")
        }
        try UserFolder.create(folder)
        var configuration = self.configuration
        configuration.torchDType = dtype.torchName
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(encoder.encode(configuration), to: folder.appendingPathComponent("config.json"))
        try AtomicFile.write(encoder.encode(GenerationConfiguration(model: configuration)),
                             to: folder.appendingPathComponent(GenerationConfiguration.fileName))
        // Each tensor is made when its turn comes: one dequantized or merged layer at a time.
        let entries = savedWeights(mergingLoRA: mergingLoRA).map { key, shape, values in
            SafeTensorsWriter.Entry(name: key, shape: shape, dtype: dtype) { values().contiguousCopy(dtype: dtype) }
        }
        try SafeTensorsWriter.writeSharded(entries: entries, to: folder, maxShardBytes: maxShardBytes)
    }
}

extension DType {
    /// PyTorch's name for a floating-point dtype (`torch_dtype` in config.json).
    var torchName: String {
        switch self {
        case .float32: "float32"
        case .float64: "float64"
        case .bfloat16: "bfloat16"
        case .float16: "float16"
        case .int32: "int32"
        case .int64: "int64"
        }
    }
}
