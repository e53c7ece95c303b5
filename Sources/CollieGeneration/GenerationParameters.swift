/// How to choose each new token and when to stop (`transformers`' `GenerationConfig`, the
/// subset that changes the result).
///
/// Processing order is Hugging Face's: repetition penalty, then temperature, top-k and top-p;
/// then the argmax (greedy, `temperature == 0`) or a draw from the remaining distribution.
public struct GenerationParameters: Equatable, Sendable {
    /// The most tokens to add per sequence.
    public var maxNewTokens: Int
    /// Divides the logits before sampling; 0 means greedy decoding (always the most likely token).
    public var temperature: Double
    /// Keep only the k most likely tokens (nil or 0: all).
    public var topK: Int?
    /// Keep the smallest set of most likely tokens whose probability reaches p (nil or 1: all).
    public var topP: Double?
    /// > 1 discourages tokens already in the sequence (CTRL's penalty; 1 or nil: none).
    public var repetitionPenalty: Double?
    /// Token ids that end a sequence (kept as its last token, as `transformers` does).
    public var stopTokenIDs: Set<Int>
    /// Texts that end a sequence when the decoded continuation contains them (left out of the text).
    public var stopStrings: [String]
    /// Seeds the sampler: the same seed, prompt and parameters give the same tokens.
    public var seed: UInt64

    public init(maxNewTokens: Int = 128, temperature: Double = 0, topK: Int? = nil, topP: Double? = nil,
                repetitionPenalty: Double? = nil, stopTokenIDs: Set<Int> = [], stopStrings: [String] = [],
                seed: UInt64 = 0) {
        self.maxNewTokens = maxNewTokens
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.repetitionPenalty = repetitionPenalty
        self.stopTokenIDs = stopTokenIDs
        self.stopStrings = stopStrings
        self.seed = seed
    }

    /// Whether tokens are drawn at random (otherwise the argmax is taken).
    public var isSampling: Bool { temperature > 0 }

    /// Throws a `GenerationError` naming the first parameter outside its range.
    public func validate() throws {
        func check(_ ok: Bool, _ message: String) throws { if !ok { throw GenerationError.invalidParameter(message) } }
        try check(maxNewTokens >= 1, "max_new_tokens must be at least 1, got \(maxNewTokens)")
        try check(temperature >= 0 && temperature.isFinite, "temperature must be a finite number >= 0, got \(temperature)")
        if let topK { try check(topK >= 0, "top_k must be >= 0, got \(topK)") }
        if let topP { try check(topP > 0 && topP <= 1, "top_p must be in (0, 1], got \(topP)") }
        if let repetitionPenalty {
            try check(repetitionPenalty > 0 && repetitionPenalty.isFinite,
                      "repetition_penalty must be a finite number > 0, got \(repetitionPenalty)")
        }
        try check(stopStrings.allSatisfy { !$0.isEmpty }, "stop strings must not be empty")
    }
}

/// Why generation failed before it started.
public enum GenerationError: Error, Equatable, CustomStringConvertible {
    /// A parameter is out of range; the message names it.
    case invalidParameter(String)
    /// The prompt (plus the tokens to generate) does not fit the model's context.
    case contextExceeded(promptTokens: Int, maxNewTokens: Int, context: Int)
    /// A prompt is empty or holds an id outside the vocabulary.
    case invalidPrompt(String)
    /// The model's logits for prompt `prompt` (0-based) at new token `newToken` (1-based) hold a NaN or an
    /// infinity: no token can be drawn from them.
    case nonFiniteLogits(prompt: Int, newToken: Int)

    public var description: String {
        switch self {
        case .invalidParameter(let message): message
        case .contextExceeded(let prompt, let new, let context):
            "the prompt has \(prompt) tokens; with max_new_tokens \(new) that exceeds the model's context of \(context) positions"
        case .invalidPrompt(let message): message
        case .nonFiniteLogits(let prompt, let newToken):
            "the model's logits for prompt \(prompt) at new token \(newToken) are not finite (NaN or infinite); "
                + "its weights are likely damaged (a diverged training run?)"
        }
    }
}
