/// Cross-entropy fused with log-softmax, processed in row chunks.
///
/// Forward computes each row's logsumexp and loss in one pass and keeps only the logsumexp (N
/// floats): no probability or log-probability matrix is formed. Backward writes
/// (softmax − one-hot)·scale straight into the logits' gradient (or adds it to one already there), so the only N×V
/// buffers are the logits and their gradient — or the logits alone, when the caller hands them over
/// (`consumingLogits`): then forward turns each row into its gradient while the row is still in cache, and backward
/// only hands that buffer on.

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
    /// the reduction is `.mean`, as PyTorch).
    ///
    /// With `consumingLogits` the caller promises that nothing reads `logits` after this op — neither the caller nor
    /// the backward of the op that made them (a linear layer's reads only its input and weight). Where the logits
    /// own their memory and a gradient will be wanted, forward then writes each row's gradient over it right after
    /// the row's loss — (softmax − one-hot) times the gradient backward is expected to bring, `expectedGradient`
    /// (1: `loss.backward()` of this loss; 1/N for a sum the caller divides by N) — with one exp per logit and the
    /// row still in cache; backward hands that buffer on as the logits' gradient (`GradientSink.canOverwrite`), or
    /// rescales it first when the gradient that arrives differs from the expected one by more than rounding. No
    /// second N×V buffer and one pass over the logits in memory instead of three.
    public static func crossEntropy(logits: Tensor, targets: Tensor, ignoreIndex: Int = Tensor.ignoreIndex,
                                    reduction: LossReduction = .mean, consumingLogits: Bool = false,
                                    expectedGradient: Double = 1) -> Tensor {
        let x = logits.computeContiguous
        let v = x.shape.last ?? 0
        let rows = x.count / Swift.max(v, 1)
        precondition(targets.count == rows, "crossEntropy: \(targets.count) targets for \(rows) rows of logits \(logits.shape)")
        let labels = targets.ints()
        for label in labels where label != ignoreIndex {
            precondition(label >= 0 && label < v, "crossEntropy: target \(label) outside the vocabulary 0..<\(v)")
        }
        let counted = labels.reduce(0) { $0 + ($1 == ignoreIndex ? 0 : 1) }
        // The gradient's factor per logit for an upstream gradient `upstream`.
        func gradientScale<F: FloatElement>(_ upstream: F) -> F { upstream / (reduction == .sum ? 1 : F(counted)) }
        // Forward writes the gradient only where a backward will want it and the memory is the logits' alone.
        let gradientInForward = consumingLogits && GradMode.isEnabled && x.requiresGrad && x.ownsStorage && counted > 0
            && expectedGradient.isFinite && expectedGradient != 0
        let out = Tensor(uninitializedShape: [], dtype: x.dtype)
        let lse = gradientInForward ? nil : Tensor(uninitializedShape: [rows], dtype: x.dtype)  // (N)
        func run<F: FloatElement>(_: F.Type) {
            let px = x.pointer(as: F.self), pl = lse?.pointer(as: F.self)
            let scale = gradientScale(F(expectedGradient))
            var rowLoss = [F](repeating: 0, count: rows)
            rowLoss.withUnsafeMutableBufferPointer { losses in
                Parallel.forEach(rows, minimumChunk: 8) { range in
                    for row in range {
                        let label = labels[row], xr = px + row * v
                        if label == ignoreIndex {
                            pl?[row] = 0
                            if gradientInForward { xr.update(repeating: 0, count: v) }
                            continue
                        }
                        if gradientInForward {
                            losses[row] = VectorMath.crossEntropyGradient(xr, v, label: label, scale: scale)
                        } else {
                            let l = VectorMath.logSumExp(xr, v)
                            pl?[row] = l
                            losses[row] = l - xr[label]
                        }
                    }
                }
            }
            let total = rowLoss.reduce(0, +)
            out.pointer(as: F.self)[0] = reduction == .sum ? total : total / F(counted)
        }
        x.dtype == .float64 ? run(Double.self) : run(Float.self)
        return out.recording("cross_entropy", [x]) { grad, sink in
            func back<F: FloatElement>(_: F.Type) {
                let px = x.pointer(as: F.self)
                let scale = gradientScale(grad.pointer(as: F.self)[0])
                guard let lse else {
                    // x holds the gradient for `expected`; within rounding of it (a sum divided by N in float32
                    // against 1/N rounded once more) the buffer is the gradient as it is.
                    let expected = gradientScale(F(expectedGradient))
                    let factor = scale / expected
                    let exact = Swift.abs(factor - 1) <= 4 * F.ulpOfOne
                    // dx = factor·x + beta·dx, row by row on every thread.
                    func write(_ dx: UnsafeMutablePointer<F>, beta: F) {
                        Parallel.forEach(rows, minimumChunk: 8) { range in
                            for row in range {
                                VectorMath.scale(px + row * v, to: dx + row * v, v, by: exact ? 1 : factor, adding: beta)
                            }
                        }
                    }
                    if sink.canOverwrite(x, input: 0) {
                        if !exact { write(px, beta: 0) }
                        sink.give(x, toInput: 0)
                    } else {
                        sink.accumulate(0, as: F.self, overwrites: true, write)
                    }
                    return
                }
                let pl = lse.pointer(as: F.self)
                // (softmax − one-hot)·scale written into `dx` (beta 0: every element, so a fresh buffer needs no
                // zeroing) or added to the gradient already there (beta 1).
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
                // The logits' gradient is the step's largest buffer (N×V): written fresh, not added to zeros.
                sink.accumulate(0, as: F.self, overwrites: true, write)
            }
            grad.dtype == .float64 ? back(Double.self) : back(Float.self)
        }
    }
}
