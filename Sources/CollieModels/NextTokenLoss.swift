import CollieEngine

/// Next-token prediction, as Hugging Face computes its loss: the logits at position t predict the label at t + 1,
/// and label −100 (`Tensor.ignoreIndex`) predicts nothing. The shift is written here once; the trainer, the
/// evaluators, `collie score` and the model's own `loss` use it.
public enum NextTokenLoss {
    /// `labels` [B, T] (row-major) shifted left by one, with −100 at each row's end.
    public static func shiftedTargets(_ labels: [Int], batchSize: Int) -> [Int] {
        let b = max(batchSize, 1), t = labels.count / b
        var shifted = [Int](repeating: Tensor.ignoreIndex, count: b * t)
        for row in 0..<b where t > 1 {
            for i in 0..<(t - 1) { shifted[row * t + i] = labels[row * t + i + 1] }
        }
        return shifted
    }

    /// How many of `targets` are predicted (not −100).
    public static func predictedCount(_ targets: [Int]) -> Int {
        targets.lazy.filter { $0 != Tensor.ignoreIndex }.count
    }
}

extension CausalLanguageModel {
    /// The next-token targets of `labels` [B, T] for `trainingLogits`: shifted left by one; with prompt tuning first
    /// prefixed with the virtual tokens' −100s, as PEFT does, since those logits cover the virtual positions too.
    public func nextTokenTargets(labels: [Int], batchSize: Int) -> [Int] {
        NextTokenLoss.shiftedTargets(promptEmbedding?.prefixedLabels(labels, batchSize: batchSize) ?? labels,
                                     batchSize: batchSize)
    }

    /// The logits `nextTokenTargets` are for: [B, T, V], or with prompt tuning [B, n + T, V] (virtual positions first).
    /// `sequences`: a padding-free row (see `callAsFunction`).
    public func trainingLogits(_ ids: Tensor, positions: Tensor? = nil, keyPaddingMask: Tensor? = nil,
                               sequences: PackedSequences? = nil) -> Tensor {
        guard let promptEmbedding else {
            return self(ids, positions: positions, keyPaddingMask: keyPaddingMask, sequences: sequences)
        }
        if let pipelineStage {
            return stagedLogits(pipelineStage, ids, positions: positions, keyPaddingMask: keyPaddingMask, virtualPositions: true)
        }
        precondition(sequences == nil, "prompt tuning does not take packed sequences")
        return promptEmbedding.logits(self, ids, positions: positions, keyPaddingMask: keyPaddingMask)
    }

    /// The summed next-token NLL of `targets` (from `nextTokenTargets`) given ids [B, T] (a 0-d tensor on the tape).
    /// `expectedGradient`: the gradient backward will bring to this sum (1/N when the caller divides it by N), for
    /// which forward writes the logits' gradient while they are in cache (`Tensor.crossEntropy`); any other is
    /// still right, at the cost of one more pass over the logits.
    public func summedNegativeLogLikelihood(_ ids: Tensor, targets: [Int], positions: Tensor? = nil,
                                            keyPaddingMask: Tensor? = nil, sequences: PackedSequences? = nil,
                                            expectedGradient: Double = 1) -> Tensor {
        nextTokenCrossEntropy(logits: trainingLogits(ids, positions: positions, keyPaddingMask: keyPaddingMask,
                                                     sequences: sequences),
                              targets: targets, reduction: .sum, consumingLogits: true, expectedGradient: expectedGradient)
    }

    /// The summed next-token NLL of `targets` given the logits [B, T, V] the model made (or its last pipeline stage).
    public func summedNegativeLogLikelihood(logits: Tensor, targets: [Int]) -> Tensor {
        nextTokenCrossEntropy(logits: logits, targets: targets, reduction: .sum, consumingLogits: false)
    }

    /// Mean next-token cross-entropy of ids [B, T] against `labels` [B, T] (label −100 is ignored), over the real
    /// tokens' logits (with prompt tuning, too).
    public func loss(ids: Tensor, labels: Tensor, keyPaddingMask: Tensor? = nil) -> Tensor {
        nextTokenCrossEntropy(logits: self(ids, keyPaddingMask: keyPaddingMask),
                              targets: NextTokenLoss.shiftedTargets(labels.ints(), batchSize: ids.shape[0]),
                              reduction: .mean, consumingLogits: true)
    }

    /// Cross-entropy of logits [B, T, V] (any leading shape of `targets.count` rows) against `targets`.
    /// `consumingLogits`: the logits are the model's own, made here by its head (a linear layer, whose backward never
    /// reads them), and read by nothing else, so they may be turned into their gradient in place. They are passed
    /// as they are, not reshaped: a view would share their memory and keep them from being overwritten.
    private func nextTokenCrossEntropy(logits: Tensor, targets: [Int], reduction: LossReduction,
                                       consumingLogits: Bool, expectedGradient: Double = 1) -> Tensor {
        let rows = logits.shape.last == logitsWidth ? logits : logits.reshaped([targets.count, logitsWidth])
        return crossEntropy(logits: rows, targets: Tensor(ints: targets, shape: [targets.count]), reduction: reduction,
                            consumingLogits: consumingLogits, expectedGradient: expectedGradient)
    }

    /// The summed negative log-likelihood of `tokens[1...]`, each given its prefix, and how many tokens that is
    /// (`collie score`). No gradient is recorded.
    public func negativeLogLikelihood(of tokens: [Int]) -> (sum: Double, count: Int) {
        precondition(tokens.count >= 2, "scoring needs at least two tokens")
        let n = tokens.count
        let sum = withNoGrad {
            crossEntropy(logits: self(Tensor(ints: tokens, shape: [1, n])).reshaped([n, logitsWidth]),
                         targets: Tensor(ints: NextTokenLoss.shiftedTargets(tokens, batchSize: 1), shape: [n]),
                         reduction: .sum)
        }
        return (Double(sum.item), n - 1)
    }
}
