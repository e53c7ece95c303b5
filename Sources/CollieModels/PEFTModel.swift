import CollieEngine
import CollieIO
import Foundation

/// Adding, merging, saving and loading PEFT adapters (LoRA, prompt tuning) on any `CausalLanguageModel`.
///
/// An adapter's parameters are keyed as PEFT saves them (`base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`,
/// `prompt_embeddings`); `namedParameters` stays the base model's, so `save(to:)` still writes the base model.
extension CausalLanguageModel {
    /// File names of a PEFT adapter folder.
    public static var adapterConfigurationFileName: String { "adapter_config.json" }
    public static var adapterWeightsFileName: String { "adapter_model.safetensors" }

    /// The LoRA adapters with the paths of their layers.
    public var loraAdapters: [(path: String, adapter: LoRAAdapter)] {
        namedLinearLayers.compactMap { path, layer in layer.lora.map { (path, $0) } }
    }

    /// The adapter's parameters under the keys PEFT saves them with.
    public var adapterParameters: [(key: String, tensor: Tensor)] {
        var result: [(key: String, tensor: Tensor)] = []
        for (path, adapter) in loraAdapters {
            result.append(("base_model.model.\(path).lora_A.weight", adapter.a))
            result.append(("base_model.model.\(path).lora_B.weight", adapter.b))
        }
        if let promptEmbedding { result.append(("prompt_embeddings", promptEmbedding.embeddings)) }
        return result
    }

    /// The parameters training updates: the base model's that still require a gradient (all of them without
    /// an adapter, none with one), then the adapter's.
    public var trainableParameters: [(key: String, tensor: Tensor)] {
        namedParameters.filter(\.tensor.requiresGrad) + adapterParameters
    }

    /// Adds the adapter `configuration` describes, freezing the base model (no gradient is ever computed or
    /// stored for its parameters).
    ///
    /// - Parameters:
    ///   - seed: seeds LoRA's A matrices and random prompt embeddings.
    ///   - promptTokenIDs: for prompt tuning's TEXT initialization, the tokens of `prompt_tuning_init_text`
    ///     (with the tokenizer's special tokens, as PEFT tokenizes it).
    /// - Throws: `PEFTError` when the model already has an adapter, nothing matches `target_modules`, or the
    ///   prompt's size does not fit the model.
    public func addAdapter(_ configuration: PEFTConfiguration, seed: UInt64 = 0, promptTokenIDs: [Int]? = nil) throws {
        guard peftConfiguration == nil else { throw PEFTError("the model already has a \(peftConfiguration!.method.rawValue) adapter") }
        // The rank or virtual-token count comes from a config: the adapter must fit in memory before it is allocated.
        do {
            try ParameterMemory.check(adapterShapes(configuration).map(\.shape), for: "the \(configuration.method.rawValue) adapter")
        } catch let error as ModelConfigurationError { throw PEFTError(error.message) }
        var generator = RandomGenerator(seed: seed)
        var stored = configuration
        switch configuration {
        case .lora(let lora):
            for (_, layer) in try selectedLinearLayers(lora) {
                layer.lora = LoRAAdapter(inFeatures: layer.inFeatures, outFeatures: layer.outFeatures,
                                         configuration: lora, generator: &generator)
            }
        case .promptTuning(var prompt):
            guard self.configuration.chatGLM6B == nil else {
                throw PEFTError("prompt tuning is not supported for ChatGLM-6B: its positions and bidirectional context "
                                + "come from the token ids ([gMASK], sop), which virtual tokens do not have")
            }
            let hidden = self.configuration.hiddenSize
            prompt.tokenDimension = hidden
            prompt.attentionHeads = prompt.attentionHeads ?? self.configuration.attentionHeads
            prompt.layers = prompt.layers ?? self.configuration.hiddenLayers
            let n = prompt.virtualTokenCount
            let embeddings: Tensor
            switch prompt.initialization {
            case .random:
                embeddings = .normal([n, hidden], generator: &generator)
            case .text, .sampleVocabulary:
                var ids: [Int]
                if prompt.initialization == .text {
                    guard let tokens = promptTokenIDs, !tokens.isEmpty else {
                        throw PEFTError("prompt_tuning_init: TEXT needs the tokens of prompt_tuning_init_text")
                    }
                    ids = tokens
                    while ids.count < n { ids += tokens }
                    ids = Array(ids.prefix(n))
                } else {
                    ids = (0..<n).map { _ in Int(generator.next() % UInt64(self.configuration.vocabularySize)) }
                }
                guard ids.allSatisfy({ (0..<self.configuration.vocabularySize).contains($0) }) else {
                    throw PEFTError("prompt_tuning_init_text: a token id is outside the vocabulary (\(self.configuration.vocabularySize))")
                }
                embeddings = withNoGrad { embedTokens(Tensor(ints: ids, shape: [n])) }.contiguousCopy(dtype: .float32)
            }
            promptEmbedding = PromptEmbedding(embeddings: embeddings)
            stored = .promptTuning(prompt)
        }
        for parameter in parameters {
            parameter.requiresGrad = false
            parameter.grad = nil
        }
        peftConfiguration = stored
    }

    /// The linear layers (with their paths) `lora`'s `target_modules` and `exclude_modules` select.
    /// - Throws: `PEFTError` when the selection names a module that is not a linear layer, or no linear layer.
    private func selectedLinearLayers(_ lora: LoRAConfiguration) throws -> [(path: String, layer: Linear)] {
        var selected: [(path: String, layer: Linear)] = []
        for (path, layer) in namedLinearLayers {
            let isOutput = path == configuration.outputProjectionPath
            guard try lora.targetModules.matches(path, isOutputProjection: isOutput),
                  try lora.excludeModules?.matches(path, isOutputProjection: isOutput) != true else { continue }
            selected.append((path, layer))
        }
        // PEFT matches every module, and refuses a selection that names one it cannot adapt; so does Collie,
        // so that the adapters it saves load in PEFT.
        // (`all-linear` selects linear layers only.)
        for path in otherModulePaths where lora.targetModules != .pattern("all-linear") {
            guard try lora.targetModules.matches(path), try lora.excludeModules?.matches(path) != true else { continue }
            throw PEFTError("target_modules: \(lora.targetModules) selects \(path), which is not a linear layer "
                            + "(LoRA adapts linear layers: \(namedLinearLayers.first?.path ?? "none"), …)")
        }
        guard !selected.isEmpty else {
            throw PEFTError("target_modules: \(lora.targetModules) matches none of the model's linear layers "
                            + "(e.g. \(namedLinearLayers.first?.path ?? "none"))")
        }
        return selected
    }

    /// The keys and shapes of the parameters `configuration`'s adapter gets on this model (`adapterParameters`
    /// once added), computed without allocating them.
    /// - Throws: `PEFTError` when the adapter does not fit the model (a LoRA selection, prompt tuning's token_dim).
    func adapterShapes(_ configuration: PEFTConfiguration) throws -> [(key: String, shape: [Int])] {
        switch configuration {
        case .lora(let lora):
            return try selectedLinearLayers(lora).flatMap { path, layer in
                [("base_model.model.\(path).lora_A.weight", [lora.rank, layer.inFeatures]),
                 ("base_model.model.\(path).lora_B.weight", [layer.outFeatures, lora.rank])]
            }
        case .promptTuning(let prompt):
            let hidden = self.configuration.hiddenSize
            if let dimension = prompt.tokenDimension, dimension != hidden {
                throw PEFTError("token_dim: \(dimension) differs from the model's hidden size \(hidden)")
            }
            return [("prompt_embeddings", [prompt.virtualTokenCount, hidden])]
        }
    }

    /// Folds every LoRA adapter into its layer's weight (W += scaling · B·A, as PEFT's `merge_adapter`).
    public func mergeLoRA() {
        for (path, adapter) in loraAdapters { adapter.merge(into: linearLayer(path)) }
    }

    /// Takes every merged LoRA adapter out of its layer's weight again (PEFT's `unmerge_adapter`).
    public func unmergeLoRA() {
        for (path, adapter) in loraAdapters { adapter.unmerge(from: linearLayer(path)) }
    }

    private func linearLayer(_ path: String) -> Linear {
        namedLinearLayers.first { $0.path == path }!.layer
    }

    /// Switches LoRA dropout on (training) or off (evaluation, generation).
    public func setAdapterTraining(_ isTraining: Bool) {
        for (_, adapter) in loraAdapters { adapter.isTraining = isTraining }
    }

    /// Gives every LoRA adapter its own dropout seed derived from `seed`, so masks are a function of the seed.
    public func reseedAdapterDropout(seed: UInt64) {
        for (i, (_, adapter)) in loraAdapters.enumerated() {
            adapter.dropoutSeed = seed &+ UInt64(i + 1) &* 0x9E37_79B9_7F4A_7C15
        }
    }

    // MARK: - PEFT folders

    /// Writes the adapter as PEFT does (`adapter_config.json` + `adapter_model.safetensors`, PEFT's key names),
    /// each file atomically, so `PeftModel.from_pretrained(base, folder)` loads it.
    /// - Parameter baseModelNameOrPath: recorded as `base_model_name_or_path`.
    public func saveAdapter(to folder: URL, baseModelNameOrPath: String? = nil) throws {
        guard var configuration = peftConfiguration else { throw PEFTError("the model has no adapter to save") }
        guard tensorParallelPlacement == nil else {
            throw TensorParallelError("the model is split for tensor parallelism: gather its slices "
                                      + "(gatherTensorParallelSlices) before saving the adapter")
        }
        switch configuration {
        case .lora(var lora):
            if let baseModelNameOrPath { lora.baseModelNameOrPath = baseModelNameOrPath }
            configuration = .lora(lora)
        case .promptTuning(var prompt):
            if let baseModelNameOrPath { prompt.baseModelNameOrPath = baseModelNameOrPath }
            configuration = .promptTuning(prompt)
        }
        try UserFolder.create(folder)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write(encoder.encode(configuration), to: folder.appendingPathComponent(Self.adapterConfigurationFileName))
        try SafeTensorsWriter.write(adapterParameters.map { ($0.key, $0.tensor.detach().contiguousCopy(dtype: .float32)) },
                                    to: folder.appendingPathComponent(Self.adapterWeightsFileName))
    }

    /// Reads a PEFT folder's `adapter_config.json`.
    /// - Throws: `PEFTError` naming the file and the field Collie cannot use.
    public static func adapterConfiguration(in folder: URL) throws -> PEFTConfiguration {
        let url = folder.appendingPathComponent(adapterConfigurationFileName)
        do { try InputFile.checkFolder(folder) } catch { throw PEFTError("\(error) (a PEFT adapter folder holds \(adapterConfigurationFileName) and \(adapterWeightsFileName))") }
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw PEFTError("\(url.path): no such file (a PEFT adapter folder holds \(adapterConfigurationFileName) and \(adapterWeightsFileName))")
        }
        let data: Data
        do { data = try InputFile.contents(of: url) } catch { throw PEFTError("\(error)") }
        do {
            return try JSONDecoder().decode(PEFTConfiguration.self, from: data)
        } catch let error as PEFTError {
            throw PEFTError("\(url.path): \(error)")
        } catch let DecodingError.dataCorrupted(context) {
            let integerKeys = ["r", "num_virtual_tokens", "token_dim", "num_attention_heads", "num_layers",
                               "num_transformer_submodules"]
            if context.codingPath.isEmpty, let key = integerKeyOutOfRange(in: data, keys: integerKeys) {
                throw PEFTError("\(url.path): \(key): must be an integer (within ±\(Int.max))")
            }
            throw PEFTError("\(url.path): \(context.debugDescription)")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            let key = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw PEFTError("\(url.path): \(key): \(context.debugDescription)")
        } catch let DecodingError.keyNotFound(key, _) {
            throw PEFTError("\(url.path): \(key.stringValue) is missing")
        }
    }

    /// Loads the PEFT adapter in `folder` (saved by PEFT or by `saveAdapter`): adds it when the model has none
    /// (freezing the base model), else checks it is the same kind and shape; then copies its tensors.
    /// - Throws: `PEFTError` naming the file and the missing, unexpected or wrong-shaped tensors.
    public func loadAdapter(from folder: URL) throws {
        let configuration = try Self.adapterConfiguration(in: folder)
        if loraAdapters.contains(where: { $0.adapter.isMerged }) {
            throw PEFTError("\(folder.path): the model's LoRA adapters are merged into its weights; unmerge them first")
        }
        let url = folder.appendingPathComponent(Self.adapterWeightsFileName)
        let file: SafeTensorsFile
        do { file = try SafeTensorsFile(url: url) } catch { throw PEFTError("\(error)") }
        if let current = peftConfiguration {
            guard current.method == configuration.method else {
                throw PEFTError("\(folder.path): a \(configuration.method.rawValue) adapter cannot load into a \(current.method.rawValue) model")
            }
        } else {
            // The rank or virtual-token count of adapter_config.json must match the file before anything is allocated.
            let shapes: [(key: String, shape: [Int])]
            do { shapes = try adapterShapes(configuration) } catch { throw PEFTError("\(folder.path): \(error)") }
            try Self.checkAdapterWeights(file, expected: shapes)
            if case .promptTuning(var prompt) = configuration, prompt.initialization != .random {
                prompt.initialization = .random   // the values come from the file
                try addAdapter(.promptTuning(prompt))
            } else {
                try addAdapter(configuration)
            }
        }
        let expected = adapterParameters
        try Self.checkAdapterWeights(file, expected: expected.map { ($0.key, $0.tensor.shape) })
        for (key, parameter) in expected { parameter.assignValues(from: try file.tensor(key)) }
    }

    /// Checks an adapter file's header against the parameters `expected` (key and shape), reading no tensor.
    private static func checkAdapterWeights(_ file: SafeTensorsFile, expected: [(key: String, shape: [Int])]) throws {
        let stored = Set(file.entries.keys), wanted = Set(expected.map(\.key))
        let missing = wanted.subtracting(stored).sorted(), unexpected = stored.subtracting(wanted).sorted()
        if !missing.isEmpty || !unexpected.isEmpty {
            var parts: [String] = []
            if !missing.isEmpty { parts.append("missing: " + missing.joined(separator: ", ")) }
            if !unexpected.isEmpty { parts.append("unexpected: " + unexpected.joined(separator: ", ")) }
            throw PEFTError("\(file.path): tensors do not match the adapter (" + parts.joined(separator: "; ") + ")")
        }
        for (key, shape) in expected {
            guard let entry = file.entries[key], entry.shape == shape, entry.dtype.dtype?.isFloatingPoint == true else {
                let entry = file.entries[key]
                throw PEFTError("\(file.path): tensor '\(key)' is \(entry?.dtype.rawValue ?? "?") \(entry?.shape ?? []), "
                                + "expected floating point \(shape)")
            }
        }
    }
}
