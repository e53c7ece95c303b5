import CollieEngine
import CollieMetrics
import CollieModels

/// The next-token loss of padded batches (`NextTokenLoss` with a batch's padding mask and positions), and the one
/// loop that sums it over a data set: the trainer's evaluation loss and the perplexity evaluator both use it.
extension PaddedBatch {
    /// The next-token targets of this batch's labels for `model`'s training logits (with prompt tuning, prefixed
    /// with the virtual tokens' −100s).
    public func nextTokenTargets(for model: some CausalLanguageModel) -> [Int] {
        model.nextTokenTargets(labels: labels, batchSize: batchSize)
    }

    /// The logits `nextTokenTargets(for:)` are for, with this batch's padding mask (or packed sequences) and positions.
    public func trainingLogits(of model: some CausalLanguageModel) -> Tensor {
        model.trainingLogits(tokenTensor, positions: positionTensor, keyPaddingMask: hasPadding ? attentionMaskTensor : nil,
                             sequences: sequences)
    }

    /// The summed next-token NLL of `targets` (a 0-d tensor on the tape); `expectedGradient` as
    /// `CausalLanguageModel.summedNegativeLogLikelihood`'s.
    public func summedNegativeLogLikelihood(of model: some CausalLanguageModel, targets: [Int],
                                            expectedGradient: Double = 1) -> Tensor {
        model.summedNegativeLogLikelihood(tokenTensor, targets: targets, positions: positionTensor,
                                          keyPaddingMask: hasPadding ? attentionMaskTensor : nil, sequences: sequences,
                                          expectedGradient: expectedGradient)
    }
}

extension DataLoader {
    /// The summed NLL of every predicted token in one pass over the batches, batch by batch (perplexity is
    /// exp(sum / count)). With `rank` and `ranks`, only every `ranks`-th batch from `rank` on (one rank's share
    /// of an evaluation). `summed(batch, targets)` gives a batch's summed NLL when the model does not run whole
    /// here (a pipeline's stages). Records no gradient.
    /// `paddingFree`: each batch goes through the model (or `summed`) flattened (`PaddedBatch.flattened()`) where
    /// the model `takesPackedSequences`.
    public func negativeLogLikelihood(of model: some CausalLanguageModel, rank: Int = 0, ranks: Int = 1,
                                      paddingFree: Bool = false,
                                      summed: ((PaddedBatch, [Int]) -> Double)? = nil) -> Perplexity {
        withNoGrad {
            var perplexity = Perplexity()
            for (position, padded) in batches(epochs: 1) where position.batchIndex % ranks == rank {
                let batch = paddingFree && model.takesPackedSequences ? padded.flattened() : padded
                let targets = batch.nextTokenTargets(for: model)
                let sum = summed?(batch, targets) ?? Double(batch.summedNegativeLogLikelihood(of: model, targets: targets).item)
                perplexity.add(negativeLogLikelihood: sum, tokens: NextTokenLoss.predictedCount(targets))
            }
            return perplexity
        }
    }
}
