import CollieTokenizers

/// Where a data loader is: the epoch, and the index of the next batch in that epoch. Saved with a checkpoint,
/// it lets a resumed run see exactly the batches the uninterrupted run would have seen.
public struct DataPosition: Codable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var epoch: Int
    /// The next batch to read in `epoch`.
    public var batchIndex: Int

    enum CodingKeys: String, CodingKey { case epoch, batchIndex = "batch_index" }

    public init(epoch: Int, batchIndex: Int) {
        self.epoch = epoch
        self.batchIndex = batchIndex
    }

    /// The first batch of the first epoch.
    public static let start = DataPosition(epoch: 0, batchIndex: 0)

    public static func < (lhs: DataPosition, rhs: DataPosition) -> Bool {
        (lhs.epoch, lhs.batchIndex) < (rhs.epoch, rhs.batchIndex)
    }

    public var description: String { "epoch \(epoch), batch \(batchIndex)" }
}

/// Batches of a dataset: sampled (in order or shuffled by epoch), padded, and addressable by `DataPosition`.
///
/// ```swift
/// let loader = try DataLoader(training: dataset, config: config, tokenizer: tokenizer)
/// var batches = loader.batches(from: savedPosition ?? .start, epochs: config.trainEpochs)
/// while let (position, batch) = batches.next() {
///     // … train on batch; to checkpoint, save `batches.position` (the next batch)
/// }
/// ```
public struct DataLoader: Sendable {
    public let dataset: TrainingDataset
    public let sampler: BatchSampler
    public let padder: Padder

    /// - Throws: `DatasetError` when `lastBatch` is `.drop` and the dataset does not fill one batch.
    public init(dataset: TrainingDataset, batchSize: Int, lastBatch: LastBatchMode = .normal, shuffle: Bool = false,
                seed: UInt64 = 42, padder: Padder) throws {
        precondition(batchSize >= 1, "batch size must be at least 1")
        sampler = BatchSampler(count: dataset.count, batchSize: batchSize, lastBatch: lastBatch, shuffle: shuffle, seed: seed)
        guard sampler.batchesPerEpoch > 0 else {
            throw DatasetError(nil, "\(dataset.count) examples do not fill one batch of \(batchSize) (last_batch: drop)")
        }
        self.dataset = dataset
        self.padder = padder
    }

    /// The training loader a config describes: `train_micro_batch_size`, `last_batch`, `shuffle`, `seed`,
    /// `padding_side`, padding with the tokenizer's pad token.
    public init(training dataset: TrainingDataset, config: CollieConfig, tokenizer: Tokenizer) throws {
        try self.init(dataset: dataset, batchSize: config.trainMicroBatchSize, lastBatch: config.lastBatch,
                      shuffle: config.shuffle, seed: UInt64(bitPattern: Int64(config.seed)),
                      padder: Padder(tokenizer: tokenizer, side: config.paddingSide))
    }

    /// The evaluation loader a config describes: `eval_batch_size`, in order, every example once.
    public init(evaluation dataset: TrainingDataset, config: CollieConfig, tokenizer: Tokenizer) throws {
        try self.init(dataset: dataset, batchSize: config.evalBatchSize, lastBatch: .normal, shuffle: false,
                      padder: Padder(tokenizer: tokenizer, side: config.paddingSide))
    }

    public var batchesPerEpoch: Int { sampler.batchesPerEpoch }

    /// The batch at `position` (computes the epoch's order; iterate with `batches(from:epochs:)` to reuse it).
    public func batch(at position: DataPosition) -> PaddedBatch {
        batch(position.batchIndex, in: sampler.order(epoch: position.epoch))
    }

    func batch(_ index: Int, in order: [Int]) -> PaddedBatch {
        let indices = sampler.batch(index, in: order)
        return padder.pad(indices.map { dataset[$0] }, indices: indices)
    }

    /// The batches from `position` to the end of epoch `epochs - 1`, each with its position.
    public func batches(from position: DataPosition = .start, epochs: Int) -> BatchIterator {
        BatchIterator(loader: self, position: position, epochs: epochs)
    }
}

/// Iterates a `DataLoader` across epochs. `position` is always the next batch's: save it to resume there.
public struct BatchIterator: Sequence, IteratorProtocol, Sendable {
    public let loader: DataLoader
    /// The next batch to produce (normalized: a batch index past the epoch's end moves to the next epoch).
    public private(set) var position: DataPosition
    /// Iteration ends before this epoch.
    public let epochs: Int
    private var order: (epoch: Int, indices: [Int])?

    init(loader: DataLoader, position: DataPosition, epochs: Int) {
        self.loader = loader
        self.epochs = epochs
        self.position = position
        normalize()
    }

    private mutating func normalize() {
        let perEpoch = loader.batchesPerEpoch
        if position.batchIndex >= perEpoch {
            position = DataPosition(epoch: position.epoch + position.batchIndex / perEpoch, batchIndex: position.batchIndex % perEpoch)
        }
    }

    /// The next batch and its position, or nil after the last epoch.
    public mutating func next() -> (position: DataPosition, batch: PaddedBatch)? {
        guard position.epoch < epochs, position.batchIndex >= 0 else { return nil }
        if order?.epoch != position.epoch {
            order = (position.epoch, loader.sampler.order(epoch: position.epoch))
        }
        let current = position
        let batch = loader.batch(current.batchIndex, in: order!.indices)
        position.batchIndex += 1
        normalize()
        return (current, batch)
    }
}
