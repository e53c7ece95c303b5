import CollieEngine

/// A decoder-only language model, seen from everything that is not its architecture.
///
/// An architecture provides its modules (an embedding, `blockCount` decoder blocks, a head) and the paths PEFT
/// names them by. Everything around the blocks is written once, in extensions of this protocol: the forward pass
/// with its parameter-unit hooks (ZeRO-3 gathering) and activation checkpointing, prompt tuning's virtual tokens,
/// KV-cache decoding (`nextTokenLogits`), the next-token loss, PEFT adapters and Hugging Face folders. So a second
/// architecture is one file of model code.
public protocol CausalLanguageModel: Module {
    /// A model of `configuration`'s shape whose parameters `initialization` fills.
    init(_ configuration: LlamaConfiguration, initialization: inout Initialization)
    /// The key and shape of every parameter a model of `configuration` has (`namedParameters`' keys and shapes),
    /// computed without building it: a folder's weights are checked against them before anything is allocated.
    /// Call it on a validated configuration (`LlamaConfiguration.validate()`), whose sizes multiply without overflow.
    static func parameterShapes(for configuration: LlamaConfiguration) -> [(key: String, shape: [Int])]
    /// The model's config.json (the LLaMA family's fields, which the supported architectures share).
    var configuration: LlamaConfiguration { get }
    /// The token embedding [vocabulary, hidden] (prompt tuning initializes from it).
    var embedTokens: Embedding { get }
    /// The number of decoder blocks.
    var blockCount: Int { get }
    /// The class of the decoder blocks (named as in the Hugging Face modeling file: pipeline partitions match it).
    static var blockType: Module.Type { get }
    /// Decoder block `index` on hidden states [B, T, C]; with `context.cache` it appends its keys and values there
    /// and attends over every cached position.
    func block(_ index: Int, _ h: Tensor, _ context: BlockContext) -> Tensor
    /// Final norm and output projection: hidden states [..., C] → logits [..., V].
    func head(_ h: Tensor) -> Tensor
    /// The parameters of each unit the forward pass runs — the embedding, each block, the head — in order. A
    /// tensor that two units share (a tied output projection) is listed in both.
    var unitParameters: [[Tensor]] { get }
    /// Every linear layer with its module path (`model.layers.0.self_attn.q_proj`, …), for LoRA.
    var namedLinearLayers: [(path: String, layer: Linear)] { get }
    /// The paths of the modules that are not linear layers, as PEFT sees transformers' model.
    var otherModulePaths: [String] { get }
    /// What is attached to the model from outside its architecture: adapters, hooks, run-time switches.
    var attachments: ModelAttachments { get }
    /// The positions this architecture reads from token ids [B, T] themselves (`keyPaddingMask` [B, T]: 0 for
    /// padding, which takes no position), or nil when it takes the caller's (0, 1, … by default). Only GLM-6B
    /// derives them: 2D positions [B, 2, T] from each row's [gMASK] and sop, as its remote code does.
    func positions(of ids: Tensor, keyPaddingMask: Tensor?) -> Tensor?
    /// What the blocks read of the last `count` of the positions' columns: positions [T] or [B, T] (nil: 0..<count)
    /// for RoPE; an architecture that derives its own positions gets them as it made them.
    func positionEncoding(_ positions: Tensor?, count: Int) -> PositionEncoding
    /// Whether the architecture's attention takes rows of packed sequences (`BlockContext.sequences`, padding-free
    /// batches); GLM-6B, whose positions and bidirectional context come from each row's own tokens, does not.
    var packsSequences: Bool { get }
}

/// The rotary tables of the positions a block sees and, for a prefix language model, the keys each row attends
/// in both directions.
public struct PositionEncoding {
    /// Rotary tables [B or 1, T, R/2].
    public var cos, sin: Tensor
    /// Per row: the number of leading keys every query of the row attends (GLM-6B's context); keys after them are
    /// attended causally. nil: causal throughout.
    public var bidirectionalPrefix: [Int]?

    public init(cos: Tensor, sin: Tensor, bidirectionalPrefix: [Int]? = nil) {
        self.cos = cos
        self.sin = sin
        self.bidirectionalPrefix = bidirectionalPrefix
    }
}

/// What a decoder block reads besides its input: the rotary tables of the positions, the padding mask, and when
/// decoding the KV cache and the block's index in it.
public struct BlockContext {
    /// Rotary tables [B or 1, T, D/2].
    public var cos, sin: Tensor
    /// [B, T] (1 = attend), or nil when nothing is padding; with a cache the cache keeps the mask.
    public var keyPaddingMask: Tensor?
    /// See `PositionEncoding.bidirectionalPrefix` (counted in keys: with a cache, cached positions included).
    public var bidirectionalPrefix: [Int]? = nil
    public var cache: KVCache?
    /// The block's index (its layer in `cache`).
    public var layer: Int
    /// The sequences packed into the one row of a padding-free batch (each attends only to itself), or nil.
    public var sequences: PackedSequences? = nil
}

/// State attached to a model from outside its architecture (one per model instance): the PEFT adapter's
/// prompt embedding and configuration, activation checkpointing, the parameter-unit hooks of ZeRO-3, and the
/// last rotary tables.
public final class ModelAttachments {
    public var promptEmbedding: PromptEmbedding?
    public var peftConfiguration: PEFTConfiguration?
    public var activationCheckpointing = false
    /// CoLLiE's `dropout`, shared by the blocks' output projections (`setHiddenDropout`).
    public internal(set) var hiddenDropout: HiddenDropout?
    public weak var parameterUnitHooks: ParameterUnitHooks?
    /// Set while the model is split for tensor parallelism (`splitForTensorParallelism`).
    public internal(set) var tensorParallel: TensorParallelPlacement?
    var rotaryCache: (positions: [Int], shape: [Int], cos: Tensor, sin: Tensor)?
    /// Set while whole-model calls run through pipeline stages (`CausalLanguageModel.pipelineStage`).
    public var pipelineStage: PipelineStage?

    public init() {}
}

/// Hooks around the parameter units of a model's forward pass (see `CausalLanguageModel.parameterUnitHooks`).
public protocol ParameterUnitHooks: AnyObject {
    /// Before unit `unit` runs on `input` (token ids for the embedding); returns the tensor the unit reads.
    func unitWillRun(_ unit: Int, input: Tensor) -> Tensor
    /// After unit `unit` produced `output`; returns the tensor the model continues with.
    func unitDidRun(_ unit: Int, output: Tensor) -> Tensor
}

extension CausalLanguageModel {
    /// A randomly initialized model (seeded), initialized as Hugging Face does — or its weight matrices drawn from
    /// `distribution` — its weights drawn straight into `dtype` (float32, or bfloat16/float16: the values of a float32
    /// model rounded, without a float32 copy of the model).
    public init(_ configuration: LlamaConfiguration, seed: UInt64 = 0, dtype: DType = .float32,
                distribution: WeightDistribution = .normal) {
        var initialization = Initialization.random(std: configuration.initializerRange, generator: RandomGenerator(seed: seed),
                                                   dtype: dtype, distribution: distribution)
        self.init(configuration, initialization: &initialization)
    }

    /// Prompt tuning's virtual-token embeddings, prepended to every input (see `PromptEmbedding`).
    public var promptEmbedding: PromptEmbedding? {
        get { attachments.promptEmbedding }
        set { attachments.promptEmbedding = newValue }
    }

    /// The PEFT method added to this model (`addAdapter`), if any.
    public internal(set) var peftConfiguration: PEFTConfiguration? {
        get { attachments.peftConfiguration }
        set { attachments.peftConfiguration = newValue }
    }

    /// Recompute each decoder block's activations in backward instead of keeping them (CoLLiE's
    /// `checkpointing`): memory for activations drops to one [B, T, C] input per block, for one more forward pass
    /// per step. Gradients are identical.
    public var activationCheckpointing: Bool {
        get { attachments.activationCheckpointing }
        set { attachments.activationCheckpointing = newValue }
    }

    /// Called around each parameter unit — the embedding (0), block i (i + 1), the head (blocks + 1) — in forward
    /// (ZeRO stage 3 gathers a unit's parameters just in time). Held weakly.
    public var parameterUnitHooks: ParameterUnitHooks? {
        get { attachments.parameterUnitHooks }
        set { attachments.parameterUnitHooks = newValue }
    }

    /// The parameter-index ranges (into `parameters`) of the units `ParameterUnitHooks` sees, in order; nil when
    /// the parameters are not laid out unit after unit or two units share a tensor (a tied output projection).
    public var parameterUnits: [Range<Int>]? {
        let order = parameters.map(ObjectIdentifier.init)
        var units: [Range<Int>] = [], start = 0
        for unit in unitParameters {
            let end = start + unit.count
            guard end <= order.count, unit.map(ObjectIdentifier.init) == Array(order[start..<end]) else { return nil }
            units.append(start..<end)
            start = end
        }
        return start == order.count ? units : nil
    }

    // MARK: - Forward

    /// Logits [B, T, V] for token ids [B, T]. Positions default to 0..<T.
    /// With prompt tuning the logits are those of the real tokens only (see `PromptEmbedding`).
    /// `sequences`: the one row (B = 1) holds these sequences one after another, each attending only to itself (a
    /// padding-free batch; give each its positions from 0). Not with prompt tuning, pipeline stages or a model that
    /// does not `packsSequences`.
    public func callAsFunction(_ ids: Tensor, positions: Tensor? = nil, keyPaddingMask: Tensor? = nil,
                               sequences: PackedSequences? = nil) -> Tensor {
        precondition(sequences == nil || takesPackedSequences,
                     "packed sequences need a model that packs them, without pipeline stages or prompt tuning")
        if let pipelineStage { return stagedLogits(pipelineStage, ids, positions: positions, keyPaddingMask: keyPaddingMask) }
        if let promptEmbedding {
            return promptEmbedding.realTokenLogits(self, ids, positions: positions, keyPaddingMask: keyPaddingMask)
        }
        return logits(inputEmbeddings: embeddings(of: ids),
                      positions: self.positions(of: ids, keyPaddingMask: keyPaddingMask) ?? positions,
                      keyPaddingMask: keyPaddingMask, sequences: sequences)
    }

    /// Every architecture but GLM-6B packs sequences.
    public var packsSequences: Bool { true }

    /// Whether `callAsFunction` takes packed sequences now: the architecture packs them, and no prompt tuning (virtual
    /// tokens in front of every row) or pipeline stage (rows of one sequence through the stages) is attached.
    public var takesPackedSequences: Bool { packsSequences && promptEmbedding == nil && pipelineStage == nil }

    /// Takes the caller's positions.
    public func positions(of ids: Tensor, keyPaddingMask: Tensor?) -> Tensor? { nil }

    /// The token embeddings [B, T, C] of ids [B, T] (the first parameter unit).
    public func embeddings(of ids: Tensor) -> Tensor {
        let hooks = parameterUnitHooks
        _ = hooks?.unitWillRun(0, input: ids)
        let embeddings = embedTokens(ids)
        return hooks?.unitDidRun(0, output: embeddings) ?? embeddings
    }

    /// Logits [B, T, V] for input embeddings [B, T, C] (Hugging Face's `inputs_embeds`). Positions default to 0..<T.
    /// `sequences` as in `callAsFunction`.
    public func logits(inputEmbeddings: Tensor, positions: Tensor? = nil, keyPaddingMask: Tensor? = nil,
                       sequences: PackedSequences? = nil) -> Tensor {
        run(blocks: 0..<blockCount, head: true, inputEmbeddings, positions: positions, keyPaddingMask: keyPaddingMask,
            sequences: sequences)
    }

    /// Runs the parameter units `units` — 0 the embedding, i + 1 block i, `blockCount + 1` the head — on `input`:
    /// token ids [B, T] when the range starts at the embedding, else the hidden states [B, T′, C] the unit before it
    /// made. Returns the hidden states after its last unit, or the logits [B, T′, V] when that is the head: one
    /// pipeline stage's forward (all units together are `trainingLogits`). With prompt tuning T′ = n + T: the
    /// embedding puts the virtual tokens in front and every stage prefixes the real tokens' `positions` and
    /// `keyPaddingMask` as `PromptEmbedding.prefixed` does. `sequences` as in `callAsFunction` (every stage of a
    /// padding-free batch gets them).
    public func forward(units: Range<Int>, _ input: Tensor, positions: Tensor? = nil, keyPaddingMask: Tensor? = nil,
                        sequences: PackedSequences? = nil) -> Tensor {
        precondition(!units.isEmpty && units.lowerBound >= 0 && units.upperBound <= blockCount + 2,
                     "units \(units) of a model with \(blockCount + 2)")
        precondition(sequences == nil || (packsSequences && promptEmbedding == nil),
                     "packed sequences need a model that packs them, without prompt tuning")
        var h = units.lowerBound == 0 ? embeddings(of: input) : input
        var positions = (units.lowerBound == 0 ? self.positions(of: input, keyPaddingMask: keyPaddingMask) : nil) ?? positions
        var mask = keyPaddingMask
        if let promptEmbedding {
            if units.lowerBound == 0 { h = promptEmbedding.prepended(to: h) }
            (positions, mask) = promptEmbedding.prefixed(positions: positions, keyPaddingMask: mask)
        }
        let blocks = max(units.lowerBound - 1, 0)..<min(units.upperBound - 1, blockCount)
        return run(blocks: blocks, head: units.upperBound == blockCount + 2, h, positions: positions,
                   keyPaddingMask: mask, sequences: sequences)
    }

    /// The length of the hidden states a forward of `tokens` tokens per row passes between units: with prompt tuning
    /// the virtual tokens' n more.
    public func hiddenLength(tokens: Int) -> Int { tokens + (promptEmbedding?.virtualTokenCount ?? 0) }

    /// Hidden states [B, T, C] through `blocks`, then through the head when `head`.
    func run(blocks: Range<Int>, head runsHead: Bool, _ input: Tensor, positions: Tensor?, keyPaddingMask: Tensor?,
             sequences: PackedSequences? = nil) -> Tensor {
        let encoding = positionEncoding(positions, count: input.shape[1])
        let hooks = parameterUnitHooks, checkpointing = activationCheckpointing
        var h = input
        for index in blocks {
            if let hooks { h = hooks.unitWillRun(index + 1, input: h) }
            let context = BlockContext(cos: encoding.cos, sin: encoding.sin, keyPaddingMask: keyPaddingMask,
                                       bidirectionalPrefix: encoding.bidirectionalPrefix, cache: nil, layer: index,
                                       sequences: sequences)
            h = checkpointing ? .checkpoint(h) { self.block(index, $0, context) } : block(index, h, context)
            if let hooks { h = hooks.unitDidRun(index + 1, output: h) }
        }
        guard runsHead else { return h }
        if let hooks { h = hooks.unitWillRun(blockCount + 1, input: h) }
        let logits = head(h)
        return hooks?.unitDidRun(blockCount + 1, output: logits) ?? logits
    }

    /// RoPE's cos/sin tables for `positions`, reused while the positions repeat (every training step of a fixed
    /// sequence length), so the step computes no trigonometry.
    public func positionEncoding(_ positions: Tensor?, count: Int) -> PositionEncoding {
        let (cos, sin) = rotaryTables(positions?.ints() ?? Array(0..<count), shape: positions?.shape ?? [count])
        return PositionEncoding(cos: cos, sin: sin)
    }

    private func rotaryTables(_ positions: [Int], shape: [Int]) -> (cos: Tensor, sin: Tensor) {
        if let cached = attachments.rotaryCache, cached.positions == positions, cached.shape == shape {
            return (cached.cos, cached.sin)
        }
        let longest = (positions.max() ?? 0) + 1
        let (cos, sin) = Tensor.rotaryTables(positions: Tensor(ints: positions, shape: shape),
                                             inverseFrequencies: configuration.inverseFrequencies(sequenceLength: longest))
        attachments.rotaryCache = (positions, shape, cos, sin)
        return (cos, sin)
    }

    // MARK: - Decoding

    /// Appends `ids` (B rows of T tokens; `attend[b][t]` false marks left padding) to `cache` and returns the
    /// logits [B, V] of each row's last position, running only the new tokens through the same blocks as the
    /// forward pass. Records no gradient. A tensor-parallel rank (every rank of its group calls together) keeps its
    /// heads in `cache` and returns the whole vocabulary's logits.
    ///
    /// With prompt tuning the first call (an empty cache) puts the virtual tokens in front of every row, at
    /// positions 0..<n, as PEFT's forward does; the prompt follows them (after any left padding, which, as
    /// everywhere here, takes no position). Size the cache with `KVCache(model:batchSize:tokens:)`.
    public func nextTokenLogits(_ ids: [[Int]], attend: [[Bool]]? = nil, cache: KVCache) -> Tensor {
        precondition(!ids.isEmpty && !ids[0].isEmpty, "decoding needs at least one token")
        let (b, t) = (ids.count, ids[0].count)
        let virtual = cache.length == 0 ? promptEmbedding : nil
        let n = virtual?.virtualTokenCount ?? 0
        // A step of a few tokens is ~100 short parallel loops: run them on spinning workers. A prefill spins as a
        // training step does (`withTrainingWorkers`): when its products run on Collie's GEMM, whose threads are the
        // pool's, not on OpenBLAS, whose threads the spinning would crowd.
        let spin: (() -> Tensor) -> Tensor = {
            b * t <= Tensor.decodingRowLimit ? Parallel.withSpinningWorkers($0) : Parallel.withTrainingWorkers($0)
        }
        return withNoGrad { Tensor.withDecodingKernels { spin {
            let mask = attend ?? Array(repeating: Array(repeating: true, count: t), count: b)
            let positions = cache.reserve(mask.map { Array(repeating: true, count: n) + $0 },
                                          tokens: ids.map { Array(repeating: -1, count: n) + $0 })
            let held = cache.heldTokens(adding: n + t)
            let encoding: PositionEncoding
            if let derived = self.positions(of: held.ids, keyPaddingMask: held.attend) {
                encoding = positionEncoding(derived, count: n + t)
            } else {
                let (cos, sin) = Tensor.rotaryTables(positions: Tensor(ints: positions, shape: [b, n + t]),
                                                     inverseFrequencies: cache.inverseFrequencies)
                encoding = PositionEncoding(cos: cos, sin: sin)
            }
            // Under pipeline stages (see `PipelineStage`) this rank runs only its blocks; the last stage's logits
            // reach every rank.
            let stage = pipelineStage
            var h: Tensor
            if let stage, !stage.runsEmbedding {
                h = stage.receiveHidden([b, n + t, configuration.hiddenSize])
            } else {
                let tokens = embedTokens(Tensor(ints: ids.flatMap { $0 }, shape: [b, t]))
                h = virtual?.prepended(to: tokens) ?? tokens
            }
            for index in stage?.blocks(of: self) ?? 0..<blockCount {
                h = block(index, h, BlockContext(cos: encoding.cos, sin: encoding.sin, keyPaddingMask: nil,
                                                 bidirectionalPrefix: encoding.bidirectionalPrefix, cache: cache,
                                                 layer: index))
            }
            cache.advance(by: n + t)
            if let stage, !stage.runsHead(of: self) {
                stage.sendHidden(h)
                return stage.logitsFromLastStage(nil, shape: [b, configuration.vocabularySize])
            }
            let last = n + t == 1 ? h : h.slice(axis: 1, (n + t - 1)..<(n + t))
            var logits = head(last).reshaped([b, logitsWidth])
            // A tensor-parallel rank's head makes its part of the vocabulary: every rank of the group gets all of it.
            if let placement = tensorParallelPlacement {
                logits = TensorParallelSlices.gather(logits, axis: 1, communicator: placement.communicator)
            }
            return stage?.logitsFromLastStage(logits, shape: [b, configuration.vocabularySize]) ?? logits
        } } }
    }
}
