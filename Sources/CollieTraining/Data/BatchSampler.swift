import CollieEngine

/// What happens to the last batch of an epoch when the examples do not fill it (CoLLiE's `last_batch`).
public enum LastBatchMode: String, Codable, CaseIterable, Sendable, ConfigEnum {
    /// Keep it short.
    case normal
    /// Leave it out.
    case drop
    /// Complete it with examples from the start of the epoch's order, wrapping as often as needed.
    case fill
}

/// Splits an epoch's examples into batches of indices (CoLLiE's `CollieBatchSampler`), in order or shuffled.
///
/// Shuffling is seeded and depends on the epoch: epoch `e` is a Fisher–Yates shuffle driven by xoshiro256**
/// seeded with `seed ⊕ e`, so every run — and every resumed run — sees the same order for the same epoch.
public struct BatchSampler: Equatable, Sendable {
    /// How many examples there are.
    public let count: Int
    public let batchSize: Int
    public let lastBatch: LastBatchMode
    public let shuffle: Bool
    public let seed: UInt64

    public init(count: Int, batchSize: Int, lastBatch: LastBatchMode = .normal, shuffle: Bool = false, seed: UInt64 = 42) {
        precondition(count >= 0 && batchSize >= 1, "a sampler needs a count ≥ 0 and a batch size ≥ 1")
        self.count = count
        self.batchSize = batchSize
        self.lastBatch = lastBatch
        self.shuffle = shuffle
        self.seed = seed
    }

    /// Batches per epoch.
    public var batchesPerEpoch: Int {
        // ⌈count / batchSize⌉ without overflowing for a huge batch size.
        lastBatch == .drop ? count / batchSize : count / batchSize + (count % batchSize == 0 ? 0 : 1)
    }

    /// The order examples are visited in during `epoch`.
    public func order(epoch: Int) -> [Int] {
        var order = Array(0..<count)
        guard shuffle, count > 1 else { return order }
        var generator = RandomGenerator(seed: seed ^ UInt64(truncatingIfNeeded: epoch))
        for i in stride(from: count - 1, to: 0, by: -1) {
            order.swapAt(i, Int(BatchSampler.uniform(below: UInt64(i + 1), using: &generator)))
        }
        return order
    }

    /// Batch `index` of an epoch visited in `order` (from `order(epoch:)`).
    public func batch(_ index: Int, in order: [Int]) -> [Int] {
        precondition((0..<batchesPerEpoch).contains(index), "batch \(index) of \(batchesPerEpoch)")
        let start = index * batchSize
        let end = min(start + batchSize, count)
        var batch = Array(order[start..<end])
        if lastBatch == .fill {
            var next = 0
            while batch.count < batchSize {
                batch.append(order[next])
                next = (next + 1) % count
            }
        }
        return batch
    }

    /// All batches of `epoch`.
    public func batches(epoch: Int) -> [[Int]] {
        let order = order(epoch: epoch)
        return (0..<batchesPerEpoch).map { batch($0, in: order) }
    }

    /// A uniform integer in 0..<bound without modulo bias (rejection sampling), fixed for reproducibility.
    static func uniform(below bound: UInt64, using generator: inout RandomGenerator) -> UInt64 {
        let threshold = (0 &- bound) % bound  // 2^64 mod bound
        while true {
            let value = generator.next()
            if value >= threshold { return value % bound }
        }
    }
}
