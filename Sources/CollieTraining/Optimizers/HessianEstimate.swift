import CollieEngine
import CollieModels

/// The gradients of SophiaG's Gauss–Newton–Bartlett Hessian estimate, as the authors' training loop computes
/// them: at every position the update predicts, a label sampled from the model's own distribution; the summed
/// loss against those labels over the update's token count, back-propagated micro-batch by micro-batch.
///
///     p      = softmax(logits)                      per predicted position
///     ŷ      = the first token where u − Σ p < 0     u uniform in [0, 1) from the run's seeded generator
///     ĝ     += ∇ Σ NLL(ŷ) / N                        N = the update's predicted tokens
///
/// Under data parallelism every rank draws the whole group's numbers in that order and uses those of its own rows
/// (`DataParallelGroup.localRows`); the gradients are summed over the ranks as the training step's are, so the
/// estimate equals one process's.
enum HessianEstimate {
    /// Accumulates ĝ into the parameters' gradients for the micro-batches `group` (whose shifted targets are
    /// `targets`), drawing one number from `generator` per predicted position, batch by batch, row by row; with
    /// `dataParallel`, this rank's rows only, the gradients reduced over the group.
    static func sampledLabelBackward(_ model: any CausalLanguageModel, _ group: [PaddedBatch], targets: [[Int]],
                                     predicted: Int, generator: inout RandomGenerator, dataParallel: DataParallelGroup? = nil) {
        let vocabulary = model.configuration.vocabularySize
        for (index, (globalBatch, target)) in zip(group, targets).enumerated() {
            let (batch, weight) = dataParallel?.localRows(of: globalBatch) ?? (globalBatch, 1)
            let rowRange = dataParallel.map { DataParallelGroup.partition(globalBatch.batchSize, into: $0.communicator.size)[$0.communicator.rank] }
                ?? 0..<globalBatch.batchSize
            // Each row's predicted positions (its tokens, and a prompt-tuning adapter's virtual ones) are `stride` apart.
            let stride = target.count / max(globalBatch.batchSize, 1)
            let local = weight == 0 ? 0..<0 : (rowRange.lowerBound * stride)..<(rowRange.upperBound * stride)
            let rows = batch.batchSize * stride
            let logits = batch.trainingLogits(of: model).reshaped([rows, vocabulary])
            let probabilities = withNoGrad { logits.detach().softmax().floats() }
            var sampled = [Int](repeating: Tensor.ignoreIndex, count: rows)
            for position in target.indices where target[position] != Tensor.ignoreIndex {
                var u = Float(generator.nextUnit()), chosen = vocabulary - 1
                guard local.contains(position) else { continue }
                let row = position - local.lowerBound
                for token in 0..<vocabulary {
                    u -= probabilities[row * vocabulary + token]
                    if u < 0 { chosen = token; break }
                }
                sampled[row] = chosen
            }
            let summed = Tensor.crossEntropy(logits: logits, targets: Tensor(ints: sampled, shape: [rows]), reduction: .sum)
            dataParallel?.beginBackward(last: index == group.count - 1)
            (weight == 0 ? summed * 0.0 : summed / Double(max(predicted, 1))).backward()
            dataParallel?.endBackward()
        }
    }
}
