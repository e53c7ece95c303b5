import CollieEngine

/// The logits processors and the token choice, one row of V logits at a time.
///
/// Each processor matches its `transformers` counterpart (`RepetitionPenaltyLogitsProcessor`,
/// `TemperatureLogitsWarper`, `TopKLogitsWarper`, `TopPLogitsWarper`); removed tokens get −∞.
enum LogitsProcessing {
    /// Divides positive logits of `seen` tokens by `penalty` and multiplies negative ones by it. In Double, so a
    /// penalty below Float's range divides instead of giving 0/0 (the result, rounded once, equals Float's).
    static func penalizeRepetition(_ logits: inout [Float], seen: [Bool], penalty: Double) {
        for i in logits.indices where seen[i] {
            let value = Double(logits[i])
            logits[i] = Float(value < 0 ? value * penalty : value / penalty)
        }
    }

    /// Divides every logit by `temperature`. When the largest quotient would not be finite (a temperature that
    /// Float rounds to 0, or small enough to overflow it), the logits are first shifted by their maximum, which
    /// softmax ignores, and divided in Double: the most likely tokens get 0 and the others −∞, so a vanishing
    /// temperature decodes greedily (ties shared) instead of sampling from NaN.
    static func scale(_ logits: inout [Float], temperature: Double) {
        let t = Float(temperature), top = logits.max() ?? 0
        if t > 0, top.isFinite, (top / t).isFinite {
            for i in logits.indices { logits[i] /= t }
            return
        }
        for i in logits.indices {
            logits[i] = logits[i] == top ? 0 : Float(Double(logits[i] - top) / temperature)
        }
    }

    /// Removes every token whose logit is below the k-th largest (ties with it stay).
    static func keepTopK(_ logits: inout [Float], k: Int) {
        guard k > 0 && k < logits.count else { return }
        let threshold = logits.sorted(by: >)[k - 1]
        for i in logits.indices where logits[i] < threshold { logits[i] = -.infinity }
    }

    /// Removes the least likely tokens whose cumulative probability (ascending) stays at or below
    /// 1 − p; the most likely token always stays.
    static func keepTopP(_ logits: inout [Float], p: Double) {
        guard p < 1 else { return }
        let probabilities = softmax(logits)
        // Ascending by probability; a stable sort so ties keep index order, as torch.sort does here.
        let order = logits.indices.sorted { (logits[$0], $0) < (logits[$1], $1) }
        var cumulative: Float = 0
        for (rank, i) in order.enumerated() {
            cumulative += probabilities[i]
            if cumulative <= Float(1 - p) && rank < order.count - 1 { logits[i] = -.infinity } else { break }
        }
    }

    /// exp(x − max) / Σ, in float32.
    static func softmax(_ logits: [Float]) -> [Float] {
        let top = logits.max() ?? 0
        let exps = logits.map { $0 == -.infinity ? 0 : Float.exp($0 - top) }
        let sum = exps.reduce(0, +)
        return exps.map { $0 / sum }
    }

    /// The index of the largest logit (the first one on ties, as `torch.argmax`).
    static func argmax(_ logits: UnsafeBufferPointer<Float>) -> Int {
        var best = 0
        for i in logits.indices where logits[i] > logits[best] { best = i }
        return best
    }

    /// Applies `parameters` to one row and picks the next token; nil when the row holds a NaN or infinite
    /// logit (a damaged model), from which no token can be chosen. `seen` marks the tokens already in the
    /// sequence (prompt and generated), for the repetition penalty.
    static func chooseToken(_ row: UnsafeBufferPointer<Float>, seen: [Bool], parameters: GenerationParameters,
                            generator: inout RandomGenerator) -> Int? {
        guard row.allSatisfy(\.isFinite) else { return nil }
        let penalty = parameters.repetitionPenalty ?? 1
        if !parameters.isSampling && penalty == 1 { return argmax(row) }
        var logits = Array(row)
        if penalty != 1 { penalizeRepetition(&logits, seen: seen, penalty: penalty) }
        if !parameters.isSampling { return logits.withUnsafeBufferPointer(argmax) }
        scale(&logits, temperature: parameters.temperature)
        if let k = parameters.topK { keepTopK(&logits, k: k) }
        if let p = parameters.topP { keepTopP(&logits, p: p) }
        let probabilities = softmax(logits)
        let u = Float(generator.nextUnit())
        var cumulative: Float = 0
        var last = 0
        for (i, probability) in probabilities.enumerated() where probability > 0 {
            cumulative += probability
            last = i
            if u < cumulative { return i }
        }
        return last
    }
}
