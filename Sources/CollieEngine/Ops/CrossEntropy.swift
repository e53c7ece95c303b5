/// Cross-entropy fused with log-softmax, processed in row chunks.
///
/// Forward computes each row's logsumexp and loss in one pass and keeps only the logsumexp (N
/// floats): no probability or log-probability matrix is formed. Backward writes
/// (softmax − one-hot)·scale straight into the logits' gradient (or adds it to one already there), so the only N×V
/// buffers are the logits and their gradient — or the logits alone, when the caller hands them over
/// (`consumingLogits`) and backward may turn them into their gradient in place.

/// How per-token losses combine.
public enum LossReduction: String, Codable, Sendable {
    /// Mean over non-ignored targets (PyTorch's default).
    case mean
    /// Sum over non-ignored targets.
    case sum
}

extension Tensor {
    /// The target value whose rows are skipped (PyTorch's `ignore_index` default).
    public static let ignoreIndex = -100

    /// Cross-entropy of `logits` [..., V] against integer `targets` [...]; rows whose target is
    /// `ignoreIndex` contribute nothing. Returns a 0-d tensor (NaN when every row is ignored and
    /// the reduction is `.mean`, as PyTorch). With `consumingLogits` the caller promises that nothing reads `logits`
    /// after this op — neither the caller nor the backward of the op that made them (a linear layer's reads only its
    /// input and weight) — and backward writes the gradient over the logits' memory where that is safe
    /// (`GradientSink.canOverwrite`): no second N×V buffer, half the memory traffic.
    public static func crossEntropy(logits: Tensor, targets: Tensor, ignoreIndex: Int = Tensor.ignoreIndex,
                                    reduction: LossReduction = .mean, consumingLogits: Bool = false) -> Tensor {
        let x = logits.computeContiguous
        let v = x.shape.last ?? 0
        let rows = x.count / Swift.max(v, 1)
        precondition(targets.count == rows, "crossEntropy: \(targets.count) targets for \(rows) rows of logits \(logits.shape)")
        let labels = targets.ints()
        for label in labels where label != ignoreIndex {
            precondition(label >= 0 && label < v, "crossEntropy: target \(label) outside the vocabulary 0..<\(v)")
        }
        let counted = labels.reduce(0) { $0 + ($1 == ignoreIndex ? 0 : 1) }
        let out = Tensor(uninitializedShape: [], dtype: x.dtype)
        let lse = Tensor(uninitializedShape: [rows], dtype: x.dtype)  // (N)
        func run<F: FloatElement>(_: F.Type) {
            let px = x.pointer(as: F.self), pl = lse.pointer(as: F.self)
            var rowLoss = [F](repeating: 0, count: rows)
            rowLoss.withUnsafeMutableBufferPointer { losses in
                Parallel.forEach(rows, minimumChunk: 8) { range in
                    for row in range {
                        let label = labels[row]
                        if label == ignoreIndex { pl[row] = 0; continue }
                        let xr = px + row * v
                        let l = VectorMath.logSumExp(xr, v)
                        pl[row] = l
                        losses[row] = l - xr[label]
                    }
                }
            }
            let total = rowLoss.reduce(0, +)
            out.pointer(as: F.self)[0] = reduction == .sum ? total : total / F(counted)
        }
        x.dtype == .float64 ? run(Double.self) : run(Float.self)
        return out.recording("cross_entropy", [x]) { grad, sink in
            func back<F: FloatElement>(_: F.Type) {
                let px = x.pointer(as: F.self), pl = lse.pointer(as: F.self)
                let scale = grad.pointer(as: F.self)[0] / (reduction == .sum ? 1 : F(counted))
                // (softmax − one-hot)·scale written into `dx` (beta 0: every element, so a fresh buffer needs no
                // zeroing) or added to the gradient already there (beta 1); `dx` may be the logits themselves.
                func write(_ dx: UnsafeMutablePointer<F>, beta: F) {
                    Parallel.forEach(rows, minimumChunk: 8) { range in
                        for row in range {
                            let label = labels[row], dr = dx + row * v
                            if label == ignoreIndex {
                                if beta == 0 { dr.update(repeating: 0, count: v) }
                                continue
                            }
                            let xr = px + row * v, l = pl[row]
                            if beta == 0 {
                                VectorMath.exponentiate(xr, to: dr, v, shift: l, scale: scale)
                            } else {
                                VectorMath.addExponentiated(xr, to: dr, v, shift: l, scale: scale)
                            }
                            dr[label] -= scale
                        }
                    }
                }
                if consumingLogits && sink.canOverwrite(x, input: 0) {
                    write(px, beta: 0)
                    sink.give(x, toInput: 0)
                } else {
                    // The logits' gradient is the step's largest buffer (N×V): written fresh, not added to zeros.
                    sink.accumulate(0, as: F.self, overwrites: true, write)
                }
            }
            grad.dtype == .float64 ? back(Double.self) : back(Float.self)
        }
    }
}
