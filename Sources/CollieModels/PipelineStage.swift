import CollieEngine

/// A pipeline stage's part in whole-model calls while the model is split into stages (evaluation during training):
/// the blocks this rank runs, and how hidden states and logits travel between the stages. Every stage makes the same
/// call with the same ids; the first embeds them, each runs its blocks and sends its hidden states on, and the
/// last's logits reach every stage, so callers (evaluators, the generator's decoding loop) run unchanged on every rank.
public protocol PipelineStage: AnyObject {
    /// The parameter units this stage runs: 0 the embedding, i + 1 block i, `blockCount + 1` the head.
    var units: Range<Int> { get }
    /// The hidden states of `shape` the stage before sends.
    func receiveHidden(_ shape: [Int]) -> Tensor
    /// Sends hidden states to the stage after.
    func sendHidden(_ hidden: Tensor)
    /// The last stage's `logits` (nil elsewhere) of `shape`, on every stage.
    func logitsFromLastStage(_ logits: Tensor?, shape: [Int]) -> Tensor
}

extension PipelineStage {
    /// The decoder blocks among `units`.
    func blocks(of model: some CausalLanguageModel) -> Range<Int> {
        max(units.lowerBound - 1, 0)..<min(units.upperBound - 1, model.blockCount)
    }

    /// Whether this stage runs the embedding (the first stage).
    var runsEmbedding: Bool { units.lowerBound == 0 }

    /// Whether this stage runs `model`'s head (the last stage).
    func runsHead(of model: some CausalLanguageModel) -> Bool { units.upperBound == model.blockCount + 2 }
}

extension CausalLanguageModel {
    /// Set while whole-model calls (`callAsFunction`, `nextTokenLogits`) run through pipeline stages; nil otherwise.
    public var pipelineStage: PipelineStage? {
        get { attachments.pipelineStage }
        set { attachments.pipelineStage = newValue }
    }

    /// Logits [B, T, V] of ids [B, T] through the stages (see `PipelineStage`). With prompt tuning the first stage
    /// puts the virtual tokens in front, every stage runs n + T positions, and the virtual ones' logits are dropped
    /// unless `virtualPositions` (then [B, n + T, V], as `trainingLogits`).
    func stagedLogits(_ stage: PipelineStage, _ ids: Tensor, positions: Tensor?, keyPaddingMask: Tensor?,
                      virtualPositions: Bool = false) -> Tensor {
        let (b, t) = (ids.shape[0], ids.shape[1])
        let length = hiddenLength(tokens: t), n = length - t
        let input = stage.runsEmbedding ? ids : stage.receiveHidden([b, length, configuration.hiddenSize])
        // Every stage numbers the tokens alike, also where an architecture reads its positions from the ids.
        let output = forward(units: stage.units, input, positions: self.positions(of: ids, keyPaddingMask: keyPaddingMask) ?? positions,
                             keyPaddingMask: keyPaddingMask)
        if !stage.runsHead(of: self) { stage.sendHidden(output) }
        // Under tensor parallelism each rank's part of the vocabulary (`logitsWidth`), which the losses take as it is.
        let logits = stage.logitsFromLastStage(stage.runsHead(of: self) ? output : nil, shape: [b, length, logitsWidth])
        return n == 0 || virtualPositions ? logits : logits.slice(axis: 1, n..<length)
    }
}
