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
/// (`DataParallelGroup.localRows`); the gradients are summed over the ranks as the training step's are. Under tensor
/// parallelism the vocabulary-split logits are gathered a few rows at a time to sample (so the probabilities are one
/// process's) and the loss is the vocabulary-parallel one; under pipeline parallelism the last stage samples in the
/// micro-batches' forward order and the others advance the generator by as many numbers. The estimate equals one
/// process's in every layout.
enum HessianEstimate {
    /// Rows of logits gathered at once under tensor parallelism.
    static let sampledRowsPerGather = 64

    /// Accumulates ĝ into the parameters' gradients for the micro-batches `group` (whose shifted targets are
    /// `targets`), drawing one number from `generator` per predicted position, batch by batch, row by row; with
    /// `dataParallel`, this rank's rows only, the gradients reduced over the group; with `pipeline`, through the stages.
    static func sampledLabelBackward(_ model: any CausalLanguageModel, _ group: [PaddedBatch], targets: [[Int]],
                                     predicted: Int, generator: inout RandomGenerator, dataParallel: DataParallelGroup? = nil,
                                     pipeline: PipelineParallelGroup? = nil) {
        let rows: [(batch: PaddedBatch, weight: Double)] = group.map { dataParallel?.localRows(of: $0) ?? ($0, 1) }
        // This rank's predicted positions of each global batch (a row's are `stride` apart, prompt-tuning ones included).
        let locals: [Range<Int>] = zip(group, targets).map { globalBatch, target in
            let stride = target.count / max(globalBatch.batchSize, 1)
            let range = dataParallel?.localRowRange(batchSize: globalBatch.batchSize) ?? 0..<globalBatch.batchSize
            return range.isEmpty ? 0..<0 : (range.lowerBound * stride)..<(range.upperBound * stride)
        }
        func loss(_ index: Int, _ logits: Tensor, _ generator: inout RandomGenerator) -> Tensor {
            let width = logits.shape.last ?? 1
            let flat = logits.reshaped([logits.count / width, width])
            let sampled = sample(flat, target: targets[index], local: locals[index], model: model, generator: &generator)
            let summed = model.crossEntropy(logits: flat, targets: Tensor(ints: sampled, shape: [sampled.count]), reduction: .sum)
            return Trainer.rankLoss(summed, weight: rows[index].weight, predicted: predicted)
        }
        if let pipeline {
            var drawing = generator
            _ = pipeline.forwardBackward(
                model, microBatches: rows.map(\.batch),
                willBackward: { dataParallel?.beginBackward(last: $0 == group.count - 1) },
                didBackward: { _ in dataParallel?.endBackward() }) { index, logits in loss(index, logits, &drawing) }
            pipeline.reduceSharedGradients(model)
            dataParallel?.reduceDeferredGradients()
            if pipeline.isLastStage {
                generator = drawing
            } else {
                for target in targets { for label in target where label != Tensor.ignoreIndex { _ = generator.nextUnit() } }
            }
            return
        }
        for index in group.indices {
            let logits = rows[index].batch.trainingLogits(of: model)
            let value = loss(index, logits, &generator)
            dataParallel?.beginBackward(last: index == group.count - 1)
            value.backward()
            dataParallel?.endBackward()
        }
    }

    /// The labels sampled for this rank's `logits` [rows, width] (its part of the vocabulary under tensor
    /// parallelism), −100 where nothing is predicted: one number per predicted position of the global `target`, in
    /// order, used where the position is in `local`.
    static func sample(_ logits: Tensor, target: [Int], local: Range<Int>, model: any CausalLanguageModel,
                       generator: inout RandomGenerator) -> [Int] {
        let rows = logits.shape[0], vocabulary = model.configuration.vocabularySize
        let group = model.tensorParallelPlacement?.communicator
        var sampled = [Int](repeating: Tensor.ignoreIndex, count: rows)
        var probabilities: [Float] = [], chunk = -1
        for position in target.indices where target[position] != Tensor.ignoreIndex {
            var u = Float(generator.nextUnit()), chosen = vocabulary - 1
            guard local.contains(position) else { continue }
            let row = position - local.lowerBound
            if row / sampledRowsPerGather != chunk {
                chunk = row / sampledRowsPerGather
                let range = (chunk * sampledRowsPerGather)..<min(rows, (chunk + 1) * sampledRowsPerGather)
                var part = logits.detach().slice(axis: 0, range).contiguousCopy(dtype: .float32)
                if let group { part = TensorParallelSlices.gather(part, axis: 1, communicator: group) }
                probabilities = withNoGrad { part.softmax().floats() }
            }
            let offset = (row - chunk * sampledRowsPerGather) * vocabulary
            for token in 0..<vocabulary {
                u -= probabilities[offset + token]
                if u < 0 { chosen = token; break }
            }
            sampled[row] = chosen
        }
        return sampled
    }
}
