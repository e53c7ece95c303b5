import CollieEngine
import CollieModels

/// The gradients of SophiaG's Gauss–Newton–Bartlett Hessian estimate, as the authors' training loop computes
/// them: at every position the update predicts, a label sampled from the model's own distribution; the summed
/// loss against those labels over the update's token count, back-propagated micro-batch by micro-batch.
///
///     p      = softmax(logits)                      per predicted position
///     ŷ      = the first token where u − Σ p < 0     u uniform in [0, 1) from the run's seeded generator
///     ĝ     += ∇ Σ NLL(ŷ) / N                        N = the update's predicted tokens
enum HessianEstimate {
    /// Accumulates ĝ into the parameters' gradients for the micro-batches `group` (whose shifted targets are
    /// `targets`), drawing one number from `generator` per predicted position, batch by batch, row by row.
    static func sampledLabelBackward(_ model: any CausalLanguageModel, _ group: [PaddedBatch], targets: [[Int]],
                                     predicted: Int, generator: inout RandomGenerator) {
        let vocabulary = model.configuration.vocabularySize
        for (batch, target) in zip(group, targets) {
            let rows = target.count
            let logits = batch.trainingLogits(of: model).reshaped([rows, vocabulary])
            let probabilities = withNoGrad { logits.detach().softmax().floats() }
            var sampled = [Int](repeating: Tensor.ignoreIndex, count: rows)
            for row in 0..<rows where target[row] != Tensor.ignoreIndex {
                var u = Float(generator.nextUnit()), chosen = vocabulary - 1
                for token in 0..<vocabulary {
                    u -= probabilities[row * vocabulary + token]
                    if u < 0 { chosen = token; break }
                }
                sampled[row] = chosen
            }
            let loss = Tensor.crossEntropy(logits: logits, targets: Tensor(ints: sampled, shape: [rows]), reduction: .sum)
            (loss / Double(max(predicted, 1))).backward()
        }
    }
}
