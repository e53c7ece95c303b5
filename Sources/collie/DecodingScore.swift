import Collie

extension CausalLanguageModel {
    /// The summed negative log-likelihood of tokens 2…n given their prefix and the count n − 1, computed one token
    /// at a time through the KV cache: decoding's arithmetic (the matrix-vector kernels; on quantized blocks with
    /// `Tensor.quantizedActivations`, so int8 activations score as llama.cpp computes), where
    /// `negativeLogLikelihood(of:)` runs the whole sequence in one forward pass.
    func decodingNegativeLogLikelihood(of tokens: [Int]) -> (sum: Double, count: Int) {
        precondition(tokens.count >= 2, "scoring needs at least two tokens")
        let cache = KVCache(model: self, batchSize: 1, tokens: tokens.count)
        var sum = 0.0
        for (token, next) in zip(tokens, tokens.dropFirst()) {
            let logits = nextTokenLogits([[token]], cache: cache)
            sum += Double(withNoGrad {
                Tensor.crossEntropy(logits: logits, targets: Tensor(ints: [next], shape: [1]), reduction: .sum)
            }.item)
        }
        return (sum, tokens.count - 1)
    }
}
