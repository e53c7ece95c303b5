import CollieEngine
import CollieModels
import Foundation

/// Why a sequence stopped.
public enum FinishReason: String, Sendable, Codable {
    /// It produced a stop token, or the caller asked it to stop (a stop string).
    case stop
    /// It reached `maxNewTokens`.
    case length
}

/// One sequence's result: the new tokens (a stop token included) and why it ended.
public struct GeneratedSequence: Equatable, Sendable {
    public var tokens: [Int]
    public var finishReason: FinishReason
}

/// Prefill once, then decode one token per step from a KV cache; batches are left-padded.
public final class Generator {
    public let model: any CausalLanguageModel

    public init(model: any CausalLanguageModel) { self.model = model }

    /// The positions a prompt and its new tokens may take: the model's (`max_position_embeddings`) less those
    /// of prompt tuning's virtual tokens, which go ahead of every prompt.
    public var contextLength: Int {
        model.configuration.maxPositionEmbeddings - (model.promptEmbedding?.virtualTokenCount ?? 0)
    }

    /// Continues every prompt. After each new token, `onToken(row, token)` is called (in row
    /// order); returning false ends that row (with `.stop`), as a stop string does.
    ///
    /// - Throws: `GenerationError` for bad parameters, an empty prompt, an id outside the
    ///   vocabulary, or a prompt plus `maxNewTokens` longer than the context.
    public func generate(prompts: [[Int]], parameters: GenerationParameters,
                         onToken: ((_ row: Int, _ token: Int) -> Bool)? = nil) throws -> [GeneratedSequence] {
        try parameters.validate()
        try validate(prompts, maxNewTokens: parameters.maxNewTokens)
        let vocabulary = model.configuration.vocabularySize
        let batch = prompts.count, longest = prompts.map(\.count).max() ?? 0
        // Padded slots are never attended to; any id in the vocabulary will do (config.json's may be -1).
        let padding = model.configuration.padTokenID.flatMap { (0..<vocabulary).contains($0) ? $0 : nil } ?? 0
        let cache = KVCache(model: model, batchSize: batch, tokens: longest + parameters.maxNewTokens)
        let padded = prompts.map { Array(repeating: padding, count: longest - $0.count) + $0 }
        let attend = prompts.map { Array(repeating: false, count: longest - $0.count) + Array(repeating: true, count: $0.count) }
        var seen = prompts.map { prompt -> [Bool] in
            var flags = [Bool](repeating: false, count: vocabulary)
            if parameters.repetitionPenalty != nil { for id in prompt { flags[id] = true } }
            return flags
        }
        var results = prompts.map { _ in GeneratedSequence(tokens: [], finishReason: .length) }
        var active = Array(repeating: true, count: batch)
        var generator = RandomGenerator(seed: parameters.seed)
        var logits = model.nextTokenLogits(padded, attend: attend.joined().contains(false) ? attend : nil, cache: cache)
        var last = prompts.map { $0.last ?? padding }
        for step in 0..<parameters.maxNewTokens {
            let values = logits.floats()
            for row in 0..<batch where active[row] {
                let choice = values.withUnsafeBufferPointer { all in
                    LogitsProcessing.chooseToken(UnsafeBufferPointer(rebasing: all[(row * vocabulary)..<((row + 1) * vocabulary)]),
                                                 seen: seen[row], parameters: parameters, generator: &generator)
                }
                guard let token = choice else { throw GenerationError.nonFiniteLogits(prompt: row, newToken: step + 1) }
                results[row].tokens.append(token)
                last[row] = token
                if parameters.repetitionPenalty != nil { seen[row][token] = true }
                let proceed = onToken?(row, token) ?? true
                if parameters.stopTokenIDs.contains(token) || !proceed {
                    active[row] = false
                    results[row].finishReason = .stop
                }
            }
            if !active.contains(true) || step == parameters.maxNewTokens - 1 { break }
            // Finished rows keep decoding their last token (the batch shape stays); it is never read.
            logits = model.nextTokenLogits(last.map { [$0] }, cache: cache)
        }
        return results
    }

    /// Checks prompts against the vocabulary and the context.
    public func validate(_ prompts: [[Int]], maxNewTokens: Int) throws {
        guard !prompts.isEmpty else { throw GenerationError.invalidPrompt("no prompts to continue") }
        let vocabulary = model.configuration.vocabularySize
        for (index, prompt) in prompts.enumerated() {
            guard !prompt.isEmpty else { throw GenerationError.invalidPrompt("prompt \(index) has no tokens") }
            if let bad = prompt.first(where: { $0 < 0 || $0 >= vocabulary }) {
                throw GenerationError.invalidPrompt("prompt \(index): token id \(bad) is outside the vocabulary 0..<\(vocabulary)")
            }
            // Compared without adding: max_new_tokens may be any Int.
            if maxNewTokens > contextLength - prompt.count {
                throw GenerationError.contextExceeded(promptTokens: prompt.count, maxNewTokens: maxNewTokens,
                                                      context: contextLength)
            }
        }
        // Within the context the cache may still not fit in memory (a long context, a large batch).
        let longest = prompts.map(\.count).max() ?? 0
        let capacity = longest + maxNewTokens + (model.promptEmbedding?.virtualTokenCount ?? 0)
        let available = ProcessInfo.processInfo.physicalMemory
        let bytes = KVCache.byteCount(configuration: model.configuration, batchSize: prompts.count, capacity: capacity)
        guard let bytes, UInt64(bytes) <= available else {
            throw GenerationError.invalidParameter(
                "max_new_tokens \(maxNewTokens): a KV cache of \(prompts.count) × \(capacity) positions would need "
                + (bytes.map { String(format: "%.1f GB", Double($0) / 1e9) } ?? "more bytes than can be counted")
                + String(format: ", more than this machine's %.1f GB of memory", Double(available) / 1e9))
        }
    }
}
