import CollieEngine

/// The keys and values every layer has computed so far, for decoding one token at a time
/// without recomputing the prefix (`transformers`' `DynamicCache`, preallocated).
///
/// Storage is one [B, capacity, KVH, D] key and value tensor per layer (KVH key/value heads, so a
/// grouped-query model stores H/KVH times less than its query heads would need). Rows are
/// left-padded: every row has the same length, padded slots are never attended to, and each row's
/// rotary positions count only its real tokens, as Hugging Face numbers them from the attention mask.
public final class KVCache {
    /// Rows (sequences) in the batch.
    public let batchSize: Int
    /// The most positions the cache holds (prompt plus generated tokens).
    public let capacity: Int
    /// Slots filled so far (the same for every row; padded slots included).
    public private(set) var length = 0
    let keyValueHeads: Int, headDimension: Int
    private(set) var keys: [Tensor], values: [Tensor]
    /// [B, capacity]: 1 where a slot holds a real token, 0 for padding.
    private let attend: Tensor
    /// Whether any filled slot is padding (otherwise attention needs no mask).
    private var hasPadding = false
    /// The rotary position the next real token of each row gets.
    private var nextPositions: [Int]
    /// [B, capacity]: the token id in each reserved slot (−1 for prompt tuning's virtual tokens), for architectures
    /// that read positions from the ids (`CausalLanguageModel.positions(of:keyPaddingMask:)`).
    private var tokenIDs: [Int]
    let inverseFrequencies: [Float]

    /// An empty cache for `batchSize` rows of up to `capacity` positions of a model with `configuration`: of its
    /// `keyValueHeads`, or of all `num_key_value_heads` when nil (one tensor-parallel rank keeps its own heads' keys).
    public init(configuration: LlamaConfiguration, batchSize: Int, capacity: Int, keyValueHeads: Int? = nil) {
        precondition(batchSize > 0 && capacity > 0, "a KV cache needs at least one row and one position")
        self.batchSize = batchSize
        self.capacity = capacity
        self.keyValueHeads = keyValueHeads ?? configuration.keyValueHeads
        headDimension = configuration.resolvedHeadDimension
        let shape = [batchSize, capacity, self.keyValueHeads, headDimension]
        keys = (0..<configuration.hiddenLayers).map { _ in Tensor(uninitializedShape: shape) }
        values = (0..<configuration.hiddenLayers).map { _ in Tensor(uninitializedShape: shape) }
        attend = .zeros([batchSize, capacity])
        nextPositions = Array(repeating: 0, count: batchSize)
        tokenIDs = Array(repeating: 0, count: batchSize * capacity)
        inverseFrequencies = configuration.inverseFrequencies(sequenceLength: capacity)
    }

    /// The bytes the keys and values of a cache for `batchSize` rows of `capacity` positions take, nil when they
    /// do not fit an `Int`: what a caller checks before asking for a cache whose size comes from a request.
    public static func byteCount(configuration: LlamaConfiguration, batchSize: Int, capacity: Int) -> Int? {
        var bytes = 2 * MemoryLayout<Float>.size
        for factor in [configuration.hiddenLayers, batchSize, capacity, configuration.keyValueHeads,
                       configuration.resolvedHeadDimension] {
            let (product, overflow) = bytes.multipliedReportingOverflow(by: factor)
            guard !overflow else { return nil }
            bytes = product
        }
        return bytes
    }

    /// A cache for `batchSize` rows of up to `tokens` prompt and generated tokens each, plus the slots
    /// `model`'s prompt-tuning virtual tokens take (see `CausalLanguageModel.nextTokenLogits`); of a tensor-parallel
    /// rank's kv heads when the model is split (heads split by kv group).
    public convenience init(model: some CausalLanguageModel, batchSize: Int, tokens: Int) {
        let heads = model.configuration.keyValueHeads / (model.tensorParallelPlacement?.communicator.size ?? 1)
        self.init(configuration: model.configuration, batchSize: batchSize,
                  capacity: tokens + (model.promptEmbedding?.virtualTokenCount ?? 0), keyValueHeads: heads)
    }

    /// Free slots left.
    public var remaining: Int { capacity - length }

    /// Reserves the next `mask[0].count` slots for `tokens`: `mask[b][t]` says whether row b's token t is real
    /// (false = left padding). Returns each new token's rotary position, [B·T] row-major; a padding
    /// slot gets position 1 (as `transformers` fills it), which no real token ever attends.
    func reserve(_ mask: [[Bool]], tokens: [[Int]]) -> [Int] {
        precondition(mask.count == batchSize, "the cache holds \(batchSize) rows, got \(mask.count)")
        let t = mask[0].count
        precondition(length + t <= capacity, "the KV cache is full (\(length) + \(t) > \(capacity) positions)")
        var positions: [Int] = []
        positions.reserveCapacity(batchSize * t)
        let flags = attend.pointer(as: Float.self)
        for (b, row) in mask.enumerated() {
            precondition(row.count == t, "every row must add the same number of tokens")
            for (i, real) in row.enumerated() {
                flags[b * capacity + length + i] = real ? 1 : 0
                tokenIDs[b * capacity + length + i] = tokens[b][i]
                if real {
                    positions.append(nextPositions[b])
                    nextPositions[b] += 1
                } else {
                    positions.append(1)
                    hasPadding = true
                }
            }
        }
        return positions
    }

    /// The token ids [B, S] and padding mask [B, S] (1 = real) of every slot up to and including the `count` just
    /// reserved (S = length + count).
    func heldTokens(adding count: Int) -> (ids: Tensor, attend: Tensor) {
        let s = length + count
        let ids = (0..<batchSize).flatMap { b in tokenIDs[(b * capacity)..<(b * capacity + s)] }
        return (Tensor(ints: ids, shape: [batchSize, s]), attend.slice(axis: 1, 0..<s).contiguous())
    }

    /// Copies layer `layer`'s new keys and values [B, T, KVH, D] into the reserved slots
    /// `length..<length + T` and returns the keys, values [B, S, KVH, D] and padding mask [B, S]
    /// (nil when nothing is padding) of every slot up to and including them (S = length + T).
    func append(layer: Int, keys newKeys: Tensor, values newValues: Tensor)
        -> (keys: Tensor, values: Tensor, mask: Tensor?) {
        let t = newKeys.shape[1]
        let row = keyValueHeads * headDimension
        for (cache, new) in [(keys[layer], newKeys.contiguous()), (values[layer], newValues.contiguous())] {
            let source = new.pointer(as: Float.self), destination = cache.pointer(as: Float.self)
            for b in 0..<batchSize {
                (destination + (b * capacity + length) * row).update(from: source + b * t * row, count: t * row)
            }
        }
        let s = length + t
        let mask = hasPadding ? attend.slice(axis: 1, 0..<s) : nil
        return (keys[layer].slice(axis: 1, 0..<s), values[layer].slice(axis: 1, 0..<s), mask)
    }

    /// Marks the `count` reserved slots as filled (after every layer has appended them).
    func advance(by count: Int) { length += count }
}
