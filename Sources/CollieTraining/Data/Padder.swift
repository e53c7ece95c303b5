import CollieEngine
import CollieTokenizers

/// Which end of a row padding goes to.
public enum PaddingSide: String, Codable, CaseIterable, Sendable, ConfigEnum {
    /// Tokens first, padding after (training).
    case right
    /// Padding first, tokens last (batched generation, where every row must end at the same column).
    case left
}

/// A batch of examples padded to one length: [B, T] arrays, row-major.
public struct PaddedBatch: Equatable, Sendable {
    /// B and T.
    public let batchSize: Int, length: Int
    /// Token ids, pad id at padding. [B, T]
    public var tokens: [Int]
    /// Targets, −100 at padding and at each row's first token (nothing precedes it). [B, T]
    public var labels: [Int]
    /// 1 for tokens, 0 for padding (the key-padding mask attention takes). [B, T]
    public var attentionMask: [Int]
    /// Position ids: 0, 1, … from each row's first token; 0 at padding. [B, T]
    public var positions: [Int]
    /// The dataset indices of the rows' examples.
    public var exampleIndices: [Int]
    /// Set by `flattened()`: the one row holds the examples one after another, of these lengths.
    public var sequences: PackedSequences? = nil

    /// Tokens that are not padding.
    public var tokenCount: Int { attentionMask.reduce(0, +) }
    /// Labels the loss counts.
    public var trainedTokenCount: Int { labels.lazy.filter { $0 != Tensor.ignoreIndex }.count }

    /// `tokens` as an int64 tensor [B, T].
    public var tokenTensor: Tensor { Tensor(ints: tokens, shape: [batchSize, length]) }
    /// `labels` as an int64 tensor [B, T].
    public var labelTensor: Tensor { Tensor(ints: labels, shape: [batchSize, length]) }
    /// `attentionMask` as an int64 tensor [B, T], for `keyPaddingMask:`.
    public var attentionMaskTensor: Tensor { Tensor(ints: attentionMask, shape: [batchSize, length]) }
    /// `positions` as an int64 tensor [B, T].
    public var positionTensor: Tensor { Tensor(ints: positions, shape: [batchSize, length]) }
    /// True when some row has padding.
    public var hasPadding: Bool { attentionMask.contains(0) }

    /// The rows' tokens one after another in a single row without padding (a padding-free batch, as transformers'
    /// `DataCollatorWithFlattening` makes): each example keeps its positions, and its first label becomes −100 (in a
    /// row of its own no position predicts it), so no target crosses from one example into the next; `sequences` marks
    /// where each begins, so that attention keeps them apart. The same loss as this batch's, with no work spent on
    /// padding. A batch with no tokens, or one already flattened, is returned as it is.
    public func flattened() -> PaddedBatch {
        guard sequences == nil, tokenCount > 0 else { return self }
        var kept: [Int] = [], lengths: [Int] = []
        for row in 0..<batchSize {
            let real = (row * length..<(row + 1) * length).filter { attentionMask[$0] != 0 }
            if !real.isEmpty { lengths.append(real.count) }
            kept += real
        }
        let sequences = PackedSequences(lengths: lengths)
        var labels = kept.map { self.labels[$0] }
        for start in sequences.starts { labels[start] = Tensor.ignoreIndex }
        return PaddedBatch(batchSize: 1, length: kept.count, tokens: kept.map { tokens[$0] }, labels: labels,
                           attentionMask: [Int](repeating: 1, count: kept.count), positions: kept.map { positions[$0] },
                           exampleIndices: exampleIndices, sequences: sequences)
    }
}

/// Pads examples into a `PaddedBatch` (CoLLiE's `ColliePadder`): tokens with the pad id, labels with −100,
/// the attention mask with 0, on the left or the right.
public struct Padder: Equatable, Sendable {
    public var side: PaddingSide
    /// The token id padding positions get; any valid id works, since padding is masked and never trained.
    public var padTokenID: Int
    /// The label padding positions get.
    public var labelPadID: Int
    /// Rows are padded to a multiple of this (1: to the longest row).
    public var lengthMultiple: Int

    public init(side: PaddingSide = .right, padTokenID: Int, labelPadID: Int = Tensor.ignoreIndex, lengthMultiple: Int = 1) {
        precondition(lengthMultiple >= 1, "lengthMultiple must be at least 1")
        self.side = side
        self.padTokenID = padTokenID
        self.labelPadID = labelPadID
        self.lengthMultiple = lengthMultiple
    }

    /// A padder using the tokenizer's pad token, else its EOS, else id 0.
    public init(tokenizer: Tokenizer, side: PaddingSide = .right) {
        self.init(side: side, padTokenID: tokenizer.padTokenID ?? tokenizer.eosTokenID ?? 0)
    }

    /// Pads `examples` to the longest (rounded up to `lengthMultiple`).
    /// - Parameter indices: the examples' dataset indices, recorded in the batch.
    public func pad(_ examples: [TrainingExample], indices: [Int]? = nil) -> PaddedBatch {
        precondition(!examples.isEmpty, "a batch needs at least one example")
        let longest = examples.map(\.tokens.count).max()!
        let t = (longest + lengthMultiple - 1) / lengthMultiple * lengthMultiple
        let b = examples.count
        var tokens = [Int](repeating: padTokenID, count: b * t)
        var labels = [Int](repeating: labelPadID, count: b * t)
        var mask = [Int](repeating: 0, count: b * t)
        var positions = [Int](repeating: 0, count: b * t)
        for (row, example) in examples.enumerated() {
            let n = example.tokens.count
            let start = row * t + (side == .left ? t - n : 0)
            for i in 0..<n {
                tokens[start + i] = example.tokens[i]
                labels[start + i] = i == 0 ? labelPadID : example.labels[i]
                mask[start + i] = 1
                positions[start + i] = i
            }
        }
        return PaddedBatch(batchSize: b, length: t, tokens: tokens, labels: labels, attentionMask: mask,
                           positions: positions, exampleIndices: indices ?? Array(0..<b))
    }
}
