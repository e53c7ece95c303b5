import CollieMetrics
import Foundation

extension BLEUTokenizer: ConfigEnum {}
extension BLEU.Smoothing: ConfigEnum {}

/// One entry of `evaluators:` in a config: what to evaluate, on which records, with which metrics.
///
/// ```yaml
/// evaluators:
///   - name: xsum
///     type: generation                 # perplexity | generation | classification
///     data: ../../data/eval/xsum.jsonl
///     metrics: [rouge, decode]         # generation: bleu, rouge, exact_match, decode
///     rouge: {types: [rouge1, rouge2, rougeL, rougeLsum], use_stemmer: true}
///     generation: {max_new_tokens: 24}
///     max_examples: 10
/// ```
public struct EvaluatorSettings: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, CaseIterable, Sendable, ConfigEnum {
        /// Corpus perplexity of `data` (training-format records, e.g. `text` or `input_output`).
        case perplexity
        /// Generate from `text`, score against `target` (generation records).
        case generation
        /// Pick one of `output`'s options for `input` (classification records).
        case classification
    }

    /// The metrics a generation evaluator can compute.
    public enum MetricName: String, Codable, CaseIterable, Sendable, ConfigEnum {
        case bleu, rouge, exactMatch = "exact_match", decode
    }

    /// sacrebleu's options.
    public struct BLEUOptions: Codable, Equatable, Sendable {
        public var tokenize: BLEUTokenizer = .thirteenA
        public var smoothMethod: BLEU.Smoothing = .exponential
        public var smoothValue: Double?
        public var lowercase = false
        public var maxNGramOrder = 4
        public var effectiveOrder = false

        enum CodingKeys: String, CodingKey, CaseIterable {
            case tokenize, smoothMethod = "smooth_method", smoothValue = "smooth_value", lowercase,
                 maxNGramOrder = "max_ngram_order", effectiveOrder = "effective_order"
        }

        public init() {}

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            tokenize = try c.value(.tokenize, default: tokenize)
            smoothMethod = try c.value(.smoothMethod, default: smoothMethod)
            smoothValue = try c.decodeIfPresent(Double.self, forKey: .smoothValue)
            lowercase = try c.value(.lowercase, default: lowercase)
            maxNGramOrder = try c.value(.maxNGramOrder, default: maxNGramOrder)
            effectiveOrder = try c.value(.effectiveOrder, default: effectiveOrder)
        }

        public var metric: BLEU {
            BLEU(tokenizer: tokenize, lowercase: lowercase, smoothing: smoothMethod, smoothValue: smoothValue,
                 maxNGramOrder: maxNGramOrder, effectiveOrder: effectiveOrder)
        }
    }

    /// rouge-score's options.
    public struct ROUGEOptions: Codable, Equatable, Sendable {
        public var types = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
        public var useStemmer = false

        enum CodingKeys: String, CodingKey, CaseIterable { case types, useStemmer = "use_stemmer" }

        public init() {}

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            types = try c.value(.types, default: types)
            useStemmer = try c.value(.useStemmer, default: useStemmer)
        }

        public func metric() throws -> ROUGE { ROUGE(types: try types.map(ROUGE.Kind.init(name:)), stemming: useStemmer) }
    }

    /// Prefix of the metric names; defaults to the data file's name without extension.
    public var name: String?
    public var kind: Kind
    /// The records (JSON array or JSON Lines); a relative path in a config file is relative to the file.
    public var data: String
    public var metrics: [MetricName] = []
    /// Evaluate only the first n records.
    public var maxExamples: Int?
    public var generation = GenerationSettings()
    public var bleu = BLEUOptions()
    public var rouge = ROUGEOptions()
    /// How a classification evaluator chooses.
    public var style: ClassificationStyle = .harness

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, kind = "type", data, metrics, maxExamples = "max_examples", generation, bleu, rouge, style
    }

    public init(name: String? = nil, kind: Kind, data: String, metrics: [MetricName] = []) {
        self.name = name
        self.kind = kind
        self.data = data
        self.metrics = metrics
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        kind = try c.decode(Kind.self, forKey: .kind)
        data = try c.decode(String.self, forKey: .data)
        metrics = try c.value(.metrics, default: metrics)
        maxExamples = try c.decodeIfPresent(Int.self, forKey: .maxExamples)
        generation = try c.value(.generation, default: generation)
        bleu = try c.value(.bleu, default: bleu)
        rouge = try c.value(.rouge, default: rouge)
        style = try c.value(.style, default: style)
    }

    /// The name metrics are prefixed with.
    public var resolvedName: String {
        name ?? URL(fileURLWithPath: data).deletingPathExtension().lastPathComponent
    }

    /// Problems with these settings, each naming its key under `keyPath` (`evaluators[0]`).
    func issues(at keyPath: String) -> [ConfigError.Issue] {
        var issues: [ConfigError.Issue] = []
        func fail(_ key: String, _ message: String) { issues.append(.init(keyPath: "\(keyPath).\(key)", message: message)) }
        if kind == .generation, metrics.isEmpty { fail("metrics", "a generation evaluator needs at least one metric") }
        if kind != .generation, !metrics.isEmpty {
            fail("metrics", "only generation evaluators take metrics (\(kind.rawValue) evaluators report fixed ones)")
        }
        if let maxExamples, maxExamples < 1 { fail("max_examples", "must be at least 1, got \(maxExamples)") }
        if generation.maxNewTokens < 1 { fail("generation.max_new_tokens", "must be at least 1, got \(generation.maxNewTokens)") }
        if bleu.maxNGramOrder < 1 { fail("bleu.max_ngram_order", "must be at least 1, got \(bleu.maxNGramOrder)") }
        for type in rouge.types {
            do { _ = try ROUGE.Kind(name: type) } catch { fail("rouge.types", "\(error)") }
        }
        return issues
    }
}

/// How a classification evaluator picks an option.
public enum ClassificationStyle: String, Codable, CaseIterable, Sendable, ConfigEnum {
    /// lm-evaluation-harness style: score each option's tokens after the input; the lowest mean NLL wins.
    case harness
    /// HELM style: generate after the input and pick the option the text starts with (none: wrong).
    case helm
}

/// How generation-based evaluators generate (`generation:` in an evaluator's config).
public struct GenerationSettings: Codable, Equatable, Sendable {
    /// At most this many new tokens per prompt.
    public var maxNewTokens: Int
    /// Token ids that end generation; nil uses the model's EOS ids.
    public var stopTokenIDs: [Int]?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case maxNewTokens = "max_new_tokens", stopTokenIDs = "eos_token_id"
    }

    public init(maxNewTokens: Int = 32, stopTokenIDs: [Int]? = nil) {
        self.maxNewTokens = maxNewTokens
        self.stopTokenIDs = stopTokenIDs
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(maxNewTokens: try c.value(.maxNewTokens, default: 32),
                  stopTokenIDs: try c.decodeIfPresent([Int].self, forKey: .stopTokenIDs))
    }
}
