import CollieEngine

/// Prompt tuning (PEFT's `PromptEmbedding` for a causal LM): `virtualTokenCount` learned embeddings are
/// prepended to every input's token embeddings; everything else is frozen.
///
/// As in PEFT, the virtual tokens are always attended to (their padding mask is 1) and their labels are −100,
/// so the last virtual token predicts the first real token. Positions: without explicit positions the
/// sequence is numbered 0..<(n + T), which is what PEFT does (it drops `position_ids`); explicit positions
/// (the trainer's, which ignore left padding) are shifted by n after the virtual tokens' 0..<n.
public final class PromptEmbedding {
    /// `prompt_embeddings` [n, hidden].
    public let embeddings: Tensor

    /// The number of virtual tokens n.
    public var virtualTokenCount: Int { embeddings.shape[0] }

    /// Virtual tokens with the given embeddings [n, hidden], trainable.
    public init(embeddings: Tensor) {
        precondition(embeddings.rank == 2, "prompt embeddings are [virtual tokens, hidden], got \(embeddings.shape)")
        self.embeddings = embeddings
        embeddings.requiresGrad = true
    }

    /// `embeddings` [B, T, C] with the n virtual tokens' embeddings in front: [B, n + T, C].
    public func prepended(to embeddings: Tensor) -> Tensor {
        let prompts = self.embeddings.unsqueezed(axis: 0).expanded(to: [embeddings.shape[0], virtualTokenCount, embeddings.shape[2]])
        return Tensor.concat([prompts.to(embeddings.dtype), embeddings], axis: 1)
    }

    /// Logits [B, n + T, V] for ids [B, T], virtual positions first (what PEFT's forward returns).
    public func logits(_ model: some CausalLanguageModel, _ ids: Tensor, positions: Tensor? = nil,
                       keyPaddingMask: Tensor? = nil) -> Tensor {
        let inputs = prepended(to: model.embedTokens(ids))
        let prefixed = self.prefixed(positions: positions, keyPaddingMask: keyPaddingMask)
        return model.logits(inputEmbeddings: inputs, positions: prefixed.positions, keyPaddingMask: prefixed.keyPaddingMask)
    }

    /// The real tokens' `positions` ([B, T] or [T]) and `keyPaddingMask` ([B, T]) for the n + T positions with the
    /// virtual tokens in front: positions 0..<n, then the given ones shifted by n; the virtual tokens always attended
    /// to. Nil stays nil (positions then number all n + T from 0, as PEFT's forward does).
    public func prefixed(positions: Tensor?, keyPaddingMask: Tensor?) -> (positions: Tensor?, keyPaddingMask: Tensor?) {
        let n = virtualTokenCount
        var prefixedPositions: Tensor?
        if let positions {
            let rows = positions.rank == 2 ? positions.shape[0] : 1, t = positions.shape.last ?? 0
            let given = positions.ints()
            var values: [Int] = []
            for row in 0..<rows { values += Array(0..<n) + given[(row * t)..<((row + 1) * t)].map { $0 + n } }
            prefixedPositions = Tensor(ints: values, shape: positions.rank == 2 ? [rows, n + t] : [n + t])
        }
        var prefixedMask: Tensor?
        if let keyPaddingMask {
            let (b, t) = (keyPaddingMask.shape[0], keyPaddingMask.shape[1])
            let given = keyPaddingMask.dtype.isFloatingPoint ? keyPaddingMask.floats().map { $0 != 0 }
                : keyPaddingMask.ints().map { $0 != 0 }
            var values: [Int] = []
            for row in 0..<b { values += [Int](repeating: 1, count: n) + given[(row * t)..<((row + 1) * t)].map { $0 ? 1 : 0 } }
            prefixedMask = Tensor(ints: values, shape: [b, n + t])
        }
        return (prefixedPositions, prefixedMask)
    }

    /// The logits of the real tokens [B, T, V]: what generation, scoring and evaluation read.
    public func realTokenLogits(_ model: some CausalLanguageModel, _ ids: Tensor, positions: Tensor? = nil,
                                keyPaddingMask: Tensor? = nil) -> Tensor {
        let n = virtualTokenCount
        return logits(model, ids, positions: positions, keyPaddingMask: keyPaddingMask)
            .slice(axis: 1, n..<(n + ids.shape[1]))
    }

    /// `labels` [B, T] (flattened) with the virtual tokens' n labels, −100, put in front of each row:
    /// the labels of `logits(…)`'s positions.
    public func prefixedLabels(_ labels: [Int], batchSize: Int) -> [Int] {
        let t = labels.count / max(batchSize, 1)
        var result: [Int] = []
        result.reserveCapacity(labels.count + batchSize * virtualTokenCount)
        for row in 0..<batchSize {
            result += [Int](repeating: Tensor.ignoreIndex, count: virtualTokenCount) + labels[(row * t)..<((row + 1) * t)]
        }
        return result
    }
}
