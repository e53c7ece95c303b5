import Foundation

/// Megatron's tensor-parallel communication ops, forward and backward side by side.
///
/// A tensor-parallel group of P ranks splits each large matrix: a column-parallel linear layer holds rows
/// [r·out/P, (r+1)·out/P) of W (its output features), a row-parallel one columns [r·in/P, (r+1)·in/P) (its input
/// features). Between them travel two conjugate ops:
///
///     f = copyToTensorParallelRegion:       forward y = x,            backward dx = Σ_ranks dy   (before column-parallel)
///     g = reduceFromTensorParallelRegion:   forward y = Σ_ranks x,    backward dx = dy           (after row-parallel)
///
/// so a block costs one all-reduce in forward (g after o_proj / down_proj) and one in backward (f before
/// q/k/v and gate/up). The embedding and the loss are split over the vocabulary: each rank holds the ids
/// [start, start + V/P) and never the whole [N, V] logits.
extension Tensor {
    /// f: `x` in forward; in backward the gradient summed over `communicator`'s ranks.
    public static func copyToTensorParallelRegion(_ x: Tensor, _ communicator: Communicator) -> Tensor {
        guard communicator.size > 1 else { return x }
        let output = Tensor(storage: x.storage, shape: x.shape, strides: x.strides, offset: x.offset, dtype: x.dtype)
        return output.recording("tp_copy", [x]) { upstream, sink in
            let g = upstream.contiguousCopy(dtype: .float32)
            communicator.allReduce(g)
            sink.give(upstream.dtype == .float32 ? g : g.converted(to: upstream.dtype), toInput: 0)
        }
    }

    /// g: the sum of `x` over `communicator`'s ranks in forward; the gradient unchanged in backward.
    public static func reduceFromTensorParallelRegion(_ x: Tensor, _ communicator: Communicator) -> Tensor {
        guard communicator.size > 1 else { return x }
        let output = x.contiguousCopy(dtype: .float32)
        communicator.allReduce(output)
        return output.recording("tp_reduce", [x]) { upstream, sink in
            sink.add(upstream, toInput: 0)
        }
    }

    /// The vocabulary-parallel embedding: ids [...] looked up in this rank's rows `weight` [V/P, C], which hold the
    /// ids `start ..< start + V/P`; ids outside give zero rows, and the sum over the ranks is every id's row.
    /// Backward adds into this rank's rows only (the gradient [..., C] is the same on every rank).
    public static func vocabularyParallelEmbedding(_ ids: Tensor, weight: Tensor, start: Int,
                                                   communicator: Communicator) -> Tensor {
        let rows = weight.shape[0]
        let global = ids.ints()
        let local = global.map { (start..<(start + rows)).contains($0) ? $0 - start : 0 }
        let mask = global.map { (start..<(start + rows)).contains($0) ? Float(1) : 0 }
        let looked = Tensor.embedding(Tensor(ints: local, shape: ids.shape), weight: weight)
        let masked = looked * Tensor(mask, shape: ids.shape + [1], dtype: .float32)
        return reduceFromTensorParallelRegion(masked, communicator)
    }

    /// The vocabulary-parallel fused cross-entropy: `logits` [N, V/P] are this rank's columns (ids `start ..<
    /// start + V/P`) of the full [N, V] logits, which are never gathered. Per row the maximum, the sum of
    /// exp(x − max) and the target's logit are all-reduced (three collectives of N doubles), so every rank gets
    /// the full loss Σ (logsumexp − x[target]) over rows whose target is not `ignoreIndex` (`reduction` as in
    /// `crossEntropy`). Backward is local: dx = (softmax − one-hot)·scale on this rank's columns.
    public static func vocabularyParallelCrossEntropy(logits: Tensor, targets: Tensor, start: Int,
                                                      communicator: Communicator, ignoreIndex: Int = Tensor.ignoreIndex,
                                                      reduction: LossReduction = .mean) -> Tensor {
        let x = logits.dtype == .float32 ? logits.computeContiguous : logits.contiguousCopy(dtype: .float32)
        let v = x.shape.last ?? 0
        let rows = x.count / Swift.max(v, 1)
        precondition(targets.count == rows, "vocabularyParallelCrossEntropy: \(targets.count) targets for \(rows) rows")
        let labels = targets.ints()
        let counted = labels.reduce(0) { $0 + ($1 == ignoreIndex ? 0 : 1) }
        let px = x.pointer(as: Float.self)
        // The maximum over the whole vocabulary.
        var maxima = [Double](repeating: -Double.infinity, count: rows)
        maxima.withUnsafeMutableBufferPointer { m in
            Parallel.forEach(rows, minimumChunk: 8) { range in
                for row in range { m[row] = Double(VectorMath.maximum(px + row * v, v)) }
            }
        }
        maxima.withUnsafeMutableBufferPointer { communicator.allReduce($0, .max) }
        // Σ exp(x − max) and the target's logit, each summed over the ranks.
        var sums = [Double](repeating: 0, count: 2 * rows)
        sums.withUnsafeMutableBufferPointer { s in
            Parallel.forEach(rows, minimumChunk: 8) { range in
                for row in range where labels[row] != ignoreIndex {
                    s[row] = Double(VectorMath.sumExp(px + row * v, v, shift: Float(maxima[row])))
                    let local = labels[row] - start
                    if (0..<v).contains(local) { s[rows + row] = Double(px[row * v + local]) }
                }
            }
        }
        sums.withUnsafeMutableBufferPointer { communicator.allReduce($0, .sum) }
        let lse = (0..<rows).map { labels[$0] == ignoreIndex ? 0 : maxima[$0] + Foundation.log(sums[$0]) }
        var total = 0.0
        for row in 0..<rows where labels[row] != ignoreIndex { total += lse[row] - sums[rows + row] }
        let out = Tensor([Float(reduction == .sum ? total : total / Double(counted))], shape: [], dtype: .float32)
        return out.recording("vocabulary_parallel_cross_entropy", [x]) { grad, sink in
            let seed = grad.contiguousCopy(dtype: .float32)
            let scale = seed.pointer(as: Float.self)[0] / (reduction == .sum ? 1 : Float(counted))
            let px = x.pointer(as: Float.self)   // the closure keeps x (the node keeps no input)
            sink.accumulate(0, as: Float.self) { dx, _ in
                Parallel.forEach(rows, minimumChunk: 8) { range in
                    for row in range where labels[row] != ignoreIndex {
                        let xr = px + row * v, dr = dx + row * v
                        VectorMath.addExponentiated(xr, to: dr, v, shift: Float(lse[row]), scale: scale)
                        let local = labels[row] - start
                        if (0..<v).contains(local) { dr[local] -= scale }
                    }
                }
            }
        }
    }
}
