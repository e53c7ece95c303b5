/// Sequences of different lengths packed one after another into a single row of T positions, with no padding
/// between or after them (FlashAttention's `cu_seqlens`, transformers' padding-free batches): attention lets each
/// position see only the positions of its own sequence.
public struct PackedSequences: Equatable, Sendable {
    /// The sequences' lengths, in row order; each at least 1.
    public let lengths: [Int]
    /// Where each sequence begins in the row: 0, then the running sum of `lengths`.
    public let starts: [Int]

    /// Sequences of `lengths` (each ≥ 1), packed in that order.
    public init(lengths: [Int]) {
        precondition(!lengths.isEmpty && lengths.allSatisfy { $0 >= 1 }, "packed sequences need lengths of at least 1")
        self.lengths = lengths
        var starts: [Int] = []
        var total = 0
        for length in lengths {
            starts.append(total)
            total += length
        }
        self.starts = starts
    }

    /// The row's length: the sum of the lengths.
    public var totalLength: Int { (starts.last ?? 0) + (lengths.last ?? 0) }
}
