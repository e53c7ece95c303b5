import CollieEngine
import CollieIO

/// Tensor parallelism (Megatron) for every family (LLaMA, InternLM, InternLM2, ChatGLM, MOSS), as wrappers around the
/// layers rather than model code.
///
/// `splitForTensorParallelism(_:)` replaces each weight by this rank's slice and marks its layer:
///
///     q/k/v, gate/up, lm_head     column-parallel  W[out/P, in], bias[out/P]   input through f (all-reduce in backward)
///     o, down                     row-parallel     W[out, in/P], bias whole    output through g (all-reduce in forward), bias added once
///     embed_tokens                vocabulary rows  [V/P, C]                    masked lookup + all-reduce
///     norms                       replicated
///
/// Heads split by kv group: rank r holds query heads [r·H/P, (r+1)·H/P) and kv heads [r·KVH/P, (r+1)·KVH/P), which
/// are exactly the kv heads those query heads read. The attention reads its head counts from its layers' sizes, so
/// the model code runs unchanged on the slices. The logits stay split over the vocabulary ([N, V/P] per rank) and
/// the loss is `Tensor.vocabularyParallelCrossEntropy`, which never gathers them.
///
/// LoRA adapters are split with their base layer: a column-parallel base keeps A [r, in] whole and B's rows
/// [out/P, r], with f between A and B (A's gradient sums every rank's B); a row-parallel base keeps A's columns
/// [r, in/P], its r-dim output all-reduced (g), and B whole, added once after the reduction.
///
/// `gatherTensorParallelSlices()` undoes the split (all-gathers every slice on every rank): what follows training —
/// saving one Hugging Face folder, sample answers, `collie generate` — then sees one whole model.
public enum LinearParallelism {
    /// Output features split: this rank holds rows of W (and of the bias) — with `segments`, its part of each (a packed
    /// projection's [q; k; v] or [gate; up]: see `TensorParallelSplit`).
    case column(Communicator, segments: [Int]? = nil)
    /// Input features split: this rank holds columns of W; the bias is whole.
    case row(Communicator)
}

/// How a tensor is split over a tensor-parallel group: along `axis`, each of `segments` (the whole tensor's extents
/// along that axis, in order; nil is one segment) in equal contiguous parts, rank r holding the r-th part of each.
/// ChatGLM2's packed `query_key_value` rows [H·D queries; G·D keys; G·D values] split as segments, so a rank holds
/// H/P query heads, G/P key heads and G/P value heads, packed the same way.
public struct TensorParallelSplit: Equatable, Sendable {
    public let axis: Int
    public let segments: [Int]?

    public init(axis: Int, segments: [Int]? = nil) {
        self.axis = axis
        self.segments = segments
    }

    /// The ranges along `axis` of a whole tensor with `extent` there that rank `rank` of `size` holds, in order.
    public func ranges(extent: Int, rank: Int, size: Int) -> [Range<Int>] {
        var start = 0
        return (segments ?? [extent]).map { segment in
            defer { start += segment }
            let n = segment / size
            return (start + rank * n)..<(start + (rank + 1) * n)
        }
    }

    /// Rank `rank`'s part of `whole`, contiguous, in `dtype`.
    public func part(of whole: Tensor, rank: Int, size: Int, dtype: DType) -> Tensor {
        let pieces = ranges(extent: whole.shape[axis], rank: rank, size: size).map { whole.slice(axis: axis, $0) }
        guard pieces.count > 1 else { return pieces[0].contiguousCopy(dtype: dtype) }
        return Tensor.concat(pieces.map { $0.contiguousCopy(dtype: .float32) }, axis: axis).contiguousCopy(dtype: dtype)
    }
}

/// The vocabulary ids this rank's embedding rows and logits columns hold, and the tensor-parallel group.
public struct TensorParallelPlacement {
    public let communicator: Communicator
    /// Ids `vocabulary.lowerBound ..< vocabulary.upperBound` of the whole vocabulary.
    public let vocabulary: Range<Int>
}

/// Why a model cannot be split for tensor parallelism.
public struct TensorParallelError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension Linear {
    /// The layer's output when it is a tensor-parallel slice (see `LinearParallelism`).
    func parallelOutput(_ x: Tensor, _ parallelism: LinearParallelism) -> Tensor {
        let adapter = lora.flatMap { $0.isMerged ? nil : $0 }
        switch parallelism {
        case .column(let group, _):
            var y = Tensor.linear(.copyToTensorParallelRegion(x, group), weight: weight, bias: bias)
            if let adapter {
                let u = adapter.reduced(x) * adapter.scaling       // [..., r], whole on every rank (the same masks)
                y = .linear(.copyToTensorParallelRegion(u, group), weight: adapter.b, addingTo: y)
            }
            return y
        case .row(let group):
            var y = Tensor.reduceFromTensorParallelRegion(.linear(x, weight: weight, bias: nil), group)
            if let bias { y = y + bias }
            if let adapter {
                // [..., r], this rank's part; dropout draws the whole input's mask over this rank's columns.
                let width = x.shape.last ?? 0
                let u = adapter.reduced(x, columns: .init(offset: group.rank * width, total: group.size * width))
                    * adapter.scaling
                y = .linear(.reduceFromTensorParallelRegion(u, group), weight: adapter.b, addingTo: y)
            }
            return y
        }
    }
}

extension CausalLanguageModel {
    /// The tensor-parallel placement, when the model is split (`splitForTensorParallelism`).
    public var tensorParallelPlacement: TensorParallelPlacement? { attachments.tensorParallel }

    /// The linear layers a tensor-parallel rank splits by output features (column: q/k/v, gate/up and the output
    /// projection; InternLM2's packed `wqkv`, whose rows come in whole kv groups, so a contiguous slice is a rank's
    /// groups; ChatGLM-6B's `query_key_value`, packed per head) and by input features (row: o, down); nil for the
    /// families not split yet.
    var tensorParallelRoles: (column: [(layer: Linear, segments: [Int]?)], row: [Linear])? {
        func whole(_ layers: [Linear]) -> [(layer: Linear, segments: [Int]?)] { layers.map { ($0, nil) } }
        var row: [Linear] { blockOutputProjections.flatMap { [$0.attention, $0.mlp] } }
        if let model = self as? LlamaForCausalLM, [.llama, .mistral, .qwen2, .internlm].contains(configuration.modelType) {
            let column = model.layers.flatMap { [$0.selfAttention.qProj, $0.selfAttention.kProj, $0.selfAttention.vProj,
                                                 $0.mlp.gateProj, $0.mlp.upProj] }
            return (whole(column + (model.lmHead.map { [$0] } ?? [])), row)
        }
        if let model = self as? ChatGLM6BForConditionalGeneration {
            let column = model.layers.flatMap { [$0.attention.queryKeyValue, $0.mlp.denseHTo4H] }
            return (whole(column + [model.lmHead]), row)
        }
        if let model = self as? InternLM2ForCausalLM {
            let column = model.layers.flatMap { [$0.attention.wqkv, $0.feedForward.w1, $0.feedForward.w3] }
            return (whole(column + (model.output.map { [$0] } ?? [])), row)
        }
        if let model = self as? MossForCausalLM {
            // qkv_proj's rows are CodeGen's 4 model-parallel chunks, each with its H/4 heads' q, v and k.
            let column = model.layers.flatMap { [$0.attn.qkvProj, $0.mlp.fcIn] }
            return (whole(column + [model.lmHead]), row)
        }
        if let model = self as? ChatGLMForConditionalGeneration {
            // Multi-query groups pack [all q; all k; all v]; per-head packing ([q k v] of each head) splits whole heads.
            let c = configuration, d = c.resolvedHeadDimension
            let qkv = c.chatGLM?.multiQueryAttention ?? true ? [c.attentionHeads * d, c.keyValueHeads * d, c.keyValueHeads * d] : nil
            let column = model.layers.flatMap { [($0.selfAttention.queryKeyValue, qkv), ($0.mlp.denseHTo4H, [c.intermediateSize, c.intermediateSize])] }
            return (column + [(model.outputLayer, nil)], row)
        }
        return nil
    }

    /// Why `tensorParallelSize` ranks cannot split this model (naming the config key), or nil: only the families of
    /// `tensorParallelRoles` in dense weights, and tp_size must divide the heads, kv heads, intermediate size and
    /// vocabulary.
    public func tensorParallelRefusal(tensorParallelSize p: Int) -> String? {
        guard p > 1 else { return nil }
        let c = configuration
        guard tensorParallelRoles != nil else {
            return "tp_size: \(p): tensor parallelism supports the LLaMA family (model_type llama, mistral, qwen2), "
                + "internlm, internlm2, chatglm (ChatGLM-6B, ChatGLM2/3) and moss, not \(c.modelType.rawValue); set tp_size: 1"
        }
        if self is MossForCausalLM, 4 % p != 0 {
            return "tp_size: \(p) does not divide MOSS's 4 model-parallel chunks of qkv_proj; choose 2 or 4"
        }
        if isQuantized { return "tp_size: \(p): quantized weights cannot be split; set tp_size: 1 or load dense weights" }
        for (value, key) in [(c.attentionHeads, "num_attention_heads"), (c.keyValueHeads, "num_key_value_heads"),
                             (c.intermediateSize, "intermediate_size"), (c.vocabularySize, "vocab_size")] where value % p != 0 {
            return "tp_size: \(p) does not divide the model's \(key) (\(value)); choose a tp_size that divides it"
        }
        return nil
    }

    /// Replaces every weight by this rank's slice for tensor parallelism over `communicator` (one model replica's
    /// ranks, in tp order) and marks the layers, so forward, backward and the loss run split. Every rank must have
    /// the same whole model before (the same checkpoint, or the same seed). Adapters are split with their layers.
    /// - Throws: `TensorParallelError` when `tensorParallelRefusal` gives a reason.
    public func splitForTensorParallelism(_ communicator: Communicator) throws {
        let p = communicator.size
        guard p > 1 else { return }
        if let reason = tensorParallelRefusal(tensorParallelSize: p) { throw TensorParallelError(reason) }
        guard let roles = tensorParallelRoles else { return }
        let r = communicator.rank
        func part(_ count: Int) -> Range<Int> { (r * count / p)..<((r + 1) * count / p) }
        // Slices are copied (in float32, as a loaded model's parameters: the weights may be views of a mapped file in
        // its stored dtype, `loadMapped`), so only this rank's part of a mapped weight is ever read.
        func copy(_ t: Tensor, axis: Int?) -> Tensor {
            let source = axis.map { t.detach().slice(axis: $0, part(t.shape[$0])) } ?? t.detach()
            let slice = source.contiguousCopy(dtype: t.dtype == .float64 ? .float64 : .float32)
            slice.requiresGrad = t.requiresGrad
            return slice
        }
        func split(_ t: Tensor, axis: Int) -> Tensor { copy(t, axis: axis) }
        func column(_ layer: Linear, segments: [Int]?) {
            guard let segments else {
                layer.weight = .dense(split(layer.denseWeight!, axis: 0))
                layer.bias = layer.bias.map { split($0, axis: 0) }
                if let lora = layer.lora { lora.b = split(lora.b, axis: 0) }
                layer.tensorParallel = .column(communicator)
                return
            }
            let rows = TensorParallelSplit(axis: 0, segments: segments)
            func part(_ t: Tensor) -> Tensor {
                let slice = rows.part(of: t.detach(), rank: r, size: p, dtype: t.dtype == .float64 ? .float64 : .float32)
                slice.requiresGrad = t.requiresGrad
                return slice
            }
            layer.weight = .dense(part(layer.denseWeight!))
            layer.bias = layer.bias.map(part)
            if let lora = layer.lora { lora.b = part(lora.b) }
            layer.tensorParallel = .column(communicator, segments: segments)
        }
        func row(_ layer: Linear) {
            layer.weight = .dense(split(layer.denseWeight!, axis: 1))
            layer.bias = layer.bias.map { copy($0, axis: nil) }
            if let lora = layer.lora { lora.a = split(lora.a, axis: 1) }
            layer.tensorParallel = .row(communicator)
        }
        for (layer, segments) in roles.column { column(layer, segments: segments) }
        roles.row.forEach(row)
        let vocabulary = part(configuration.vocabularySize)
        embedTokens.weight = .dense(split(embedTokens.denseWeight!, axis: 0))
        embedTokens.vocabularyParallel = TensorParallelPlacement(communicator: communicator, vocabulary: vocabulary)
        attachments.tensorParallel = TensorParallelPlacement(communicator: communicator, vocabulary: vocabulary)
    }

    /// Undoes `splitForTensorParallelism`: every rank all-gathers every slice and holds the whole model again (no
    /// layer marked). Every rank of the group must call it. Parameters become new tensors (a trainer's flat buffer
    /// no longer holds them).
    public func gatherTensorParallelSlices() {
        guard let placement = attachments.tensorParallel else { return }
        let group = placement.communicator
        func gather(_ t: Tensor, axis: Int, segments: [Int]? = nil) -> Tensor {
            let full = TensorParallelSlices.gather(t, TensorParallelSplit(axis: axis, segments: segments), communicator: group)
            full.requiresGrad = t.requiresGrad
            return full
        }
        func restore(_ layer: Linear) {
            switch layer.tensorParallel {
            case .column(_, let segments):
                layer.weight = .dense(gather(layer.denseWeight!, axis: 0, segments: segments))
                layer.bias = layer.bias.map { gather($0, axis: 0, segments: segments) }
                if let lora = layer.lora { lora.b = gather(lora.b, axis: 0, segments: segments) }
            case .row:
                layer.weight = .dense(gather(layer.denseWeight!, axis: 1))
                if let lora = layer.lora { lora.a = gather(lora.a, axis: 1) }
            case nil: return
            }
            layer.tensorParallel = nil
        }
        for (_, layer) in namedLinearLayers { restore(layer) }
        embedTokens.weight = .dense(gather(embedTokens.denseWeight!, axis: 0))
        embedTokens.vocabularyParallel = nil
        attachments.tensorParallel = nil
    }

    /// A whole copy of this split model (and of its LoRA adapter or virtual tokens), gathered from the tensor-parallel
    /// group — every rank of the group must call it — for what needs the whole model while training goes on split:
    /// checkpoints and the best model. The copy shares nothing with this model; the model itself stays split.
    public func gatheredCopy() throws -> any CausalLanguageModel {
        guard let placement = attachments.tensorParallel else { return self }
        var initialization = Initialization.uninitialized
        let copy = Self(configuration, initialization: &initialization)
        let splits = Dictionary(tensorParallelSlices.map { (ObjectIdentifier($0.tensor), $0.split) }, uniquingKeysWith: { a, _ in a })
        func whole(_ t: Tensor) -> Tensor {
            splits[ObjectIdentifier(t)].map { TensorParallelSlices.gather(t, $0, communicator: placement.communicator) } ?? t
        }
        let own = Dictionary(namedParameters.map { ($0.key, $0.tensor) }, uniquingKeysWith: { a, _ in a })
        for (key, parameter) in copy.namedParameters { parameter.assignValues(from: whole(own[key]!)) }
        if case .lora(let lora)? = peftConfiguration {
            try copy.addAdapter(.lora(lora))
            let adapters = Dictionary(loraAdapters.map { ($0.path, $0.adapter) }, uniquingKeysWith: { a, _ in a })
            for (path, adapter) in copy.loraAdapters {
                adapter.a.assignValues(from: whole(adapters[path]!.a))
                adapter.b.assignValues(from: whole(adapters[path]!.b))
            }
        }
        if let promptEmbedding {
            // Replicated: every rank holds the whole virtual tokens.
            for parameter in copy.parameters { parameter.requiresGrad = false }
            copy.promptEmbedding = PromptEmbedding(embeddings: promptEmbedding.embeddings.contiguousCopy(dtype: .float32))
            copy.peftConfiguration = peftConfiguration
        }
        return copy
    }

    /// The parameters (and adapter tensors) that are slices under tensor parallelism; the others (norms, a
    /// row-parallel layer's bias, LoRA's whole A or B) are replicated, with the same gradient on every rank. A
    /// global gradient norm sums the slices' squares over the group and counts the replicated ones once.
    public var tensorParallelSlices: [(tensor: Tensor, split: TensorParallelSplit)] {
        guard attachments.tensorParallel != nil else { return [] }
        let (rows, columns) = (TensorParallelSplit(axis: 0), TensorParallelSplit(axis: 1))
        var result: [(tensor: Tensor, split: TensorParallelSplit)] = embedTokens.denseWeight.map { [($0, rows)] } ?? []
        for (_, layer) in namedLinearLayers {
            switch layer.tensorParallel {
            case .column(_, let segments):
                let split = TensorParallelSplit(axis: 0, segments: segments)
                result += [(layer.denseWeight!, split)] + (layer.bias.map { [($0, split)] } ?? []) + (layer.lora.map { [($0.b, split)] } ?? [])
            case .row:
                result += [(layer.denseWeight!, columns)] + (layer.lora.map { [($0.a, columns)] } ?? [])
            case nil: break
            }
        }
        return result
    }

    /// For each of `parameters`, how it is split under tensor parallelism, or nil when it is replicated.
    public func tensorParallelSplits(of parameters: [Tensor]) -> [TensorParallelSplit?] {
        let splits = Dictionary(tensorParallelSlices.map { (ObjectIdentifier($0.tensor), $0.split) }, uniquingKeysWith: { a, _ in a })
        return parameters.map { splits[ObjectIdentifier($0)] }
    }

    /// For each of `parameters`, the axis it is a tensor-parallel slice along, or nil when it is replicated.
    public func tensorParallelSplitAxes(of parameters: [Tensor]) -> [Int?] { tensorParallelSplits(of: parameters).map { $0?.axis } }

    /// The width of the logits this rank computes: the vocabulary, or its slice under tensor parallelism.
    public var logitsWidth: Int { attachments.tensorParallel?.vocabulary.count ?? configuration.vocabularySize }

    /// Cross-entropy of `logits` [N, logitsWidth] against `targets` [N]: the fused one, or under tensor parallelism
    /// the vocabulary-parallel one (the same value on every rank of the group). `consumingLogits` and
    /// `expectedGradient`: as `Tensor.crossEntropy`'s (the fused one may turn the logits into their gradient in place).
    public func crossEntropy(logits: Tensor, targets: Tensor, reduction: LossReduction,
                             consumingLogits: Bool = false, expectedGradient: Double = 1) -> Tensor {
        guard let placement = attachments.tensorParallel else {
            return .crossEntropy(logits: logits, targets: targets, reduction: reduction, consumingLogits: consumingLogits,
                                 expectedGradient: expectedGradient)
        }
        return .vocabularyParallelCrossEntropy(logits: logits, targets: targets, start: placement.vocabulary.lowerBound,
                                               communicator: placement.communicator, reduction: reduction)
    }
}

extension CausalLanguageModel {
    /// The model of `configuration` for a tensor-parallel rank: its linear weights and biases and its embedding are
    /// views of `source`'s memory-mapped tensors (nothing copied, nothing read yet), the norms are copied. Call
    /// `splitForTensorParallelism` next: it copies this rank's slices, so a rank reads only its part of each large
    /// weight from the file and never holds the whole model. The views are read-only: never train without splitting.
    public static func loadMapped(from source: some WeightSource, configuration: LlamaConfiguration) throws -> Self {
        try checkLoadable(source, configuration: configuration)
        var initialization = Initialization.uninitializedWithoutLinearWeights
        let model = Self(configuration, initialization: &initialization)
        var viewed = Set<ObjectIdentifier>()
        func view(_ key: String) throws -> Tensor {
            let tensor = try source.tensor(key)
            tensor.requiresGrad = true
            viewed.insert(ObjectIdentifier(tensor))
            return tensor
        }
        for (path, layer) in model.namedLinearLayers {
            layer.weight = .dense(try view(path + ".weight"))
            if layer.bias != nil { layer.bias = try view(path + ".bias") }
        }
        model.embedTokens.weight = .dense(try view(configuration.embeddingKey))
        for (key, parameter) in model.namedParameters where !viewed.contains(ObjectIdentifier(parameter)) {
            parameter.assignValues(from: try source.tensor(key))
        }
        return model
    }
}

/// Gathering the slices of a tensor split along one axis.
public enum TensorParallelSlices {
    /// The whole tensor on every rank of `communicator` from each rank's equal slice `t` along `axis` (0 or 1 of a
    /// matrix, 0 of a vector), in `t`'s dtype.
    public static func gather(_ t: Tensor, _ split: TensorParallelSplit, communicator: Communicator) -> Tensor {
        let full = gather(t, axis: split.axis, communicator: communicator)
        guard let segments = split.segments, segments.count > 1 else { return full }
        // The gathered tensor holds rank 0's parts of every segment, then rank 1's, …: put each segment back together.
        let (p, n) = (communicator.size, t.shape[split.axis])
        var pieces: [Tensor] = [], offset = 0
        for segment in segments {
            let m = segment / p
            for k in 0..<p { pieces.append(full.slice(axis: split.axis, (k * n + offset)..<(k * n + offset + m)).contiguousCopy(dtype: .float32)) }
            offset += m
        }
        return Tensor.concat(pieces, axis: split.axis).contiguousCopy(dtype: t.dtype == .float32 ? .float32 : t.dtype)
    }

    /// `gather` of a tensor split along `axis` in one segment.
    public static func gather(_ t: Tensor, axis: Int, communicator: Communicator) -> Tensor {
        let p = communicator.size, r = communicator.rank
        let local = t.contiguousCopy(dtype: .float32)
        let n = local.count
        let parts = Tensor.zeros([p * n])
        let pointer = parts.pointer(as: Float.self)
        (pointer + r * n).update(from: local.pointer(as: Float.self), count: n)
        communicator.allGather(UnsafeMutableBufferPointer(start: pointer, count: p * n), counts: Array(repeating: n, count: p))
        var shape = t.shape
        shape[axis] *= p
        let full: Tensor
        if axis == 0 {
            full = parts.reshaped(shape)
        } else {
            // Rank k's [rows, k·cols ..< (k+1)·cols] of the whole matrix.
            let (rows, cols) = (t.shape[0], t.shape[1])
            full = Tensor.zeros(shape)
            let out = full.pointer(as: Float.self)
            for k in 0..<p {
                for i in 0..<rows {
                    (out + i * cols * p + k * cols).update(from: pointer + k * n + i * cols, count: cols)
                }
            }
        }
        return t.dtype == .float32 ? full.contiguousCopy(dtype: .float32) : full.contiguousCopy(dtype: t.dtype)
    }
}
