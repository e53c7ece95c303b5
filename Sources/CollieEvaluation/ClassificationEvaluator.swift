import CollieEngine
import CollieMetrics
import CollieModels
import CollieTokenizers
import CollieTraining
import Foundation

/// Multiple-choice classification (CoLLiE's `EvaluatorForClassification`): each record has an input, options
/// and the index of the right one. Metrics: `accuracy`, `f1_macro`, `f1_micro`, `precision_macro`,
/// `recall_macro` (scikit-learn's definitions over option indices; a HELM answer matching no option is −1).
public final class ClassificationEvaluator: Evaluator {
    public let name: String
    public let records: [ClassificationRecord]
    public let tokenizer: Tokenizer
    public let style: ClassificationStyle
    /// For `helm`: how much is generated.
    public var settings: GenerationSettings
    public var generator: ContinuationGenerator
    /// The chosen option per record in the last `evaluate(_:)`.
    public private(set) var choices: [Int] = []

    public init(name: String, records: [ClassificationRecord], tokenizer: Tokenizer, style: ClassificationStyle,
                settings: GenerationSettings = .init(maxNewTokens: 8), generator: @escaping ContinuationGenerator = greedyGenerator) throws {
        guard !records.isEmpty else { throw EvaluationError("\(name): no records to evaluate") }
        self.name = name
        self.records = records
        self.tokenizer = tokenizer
        self.style = style
        self.settings = settings
        self.generator = generator
    }

    /// The summed NLL of `continuation` following `context` and its token count (one forward pass).
    public static func negativeLogLikelihood(of continuation: [Int], after context: [Int],
                                             model: any CausalLanguageModel) -> (sum: Double, count: Int) {
        precondition(!context.isEmpty && !continuation.isEmpty, "context and continuation need a token each")
        let example = TrainingExample(tokens: context + continuation,
                                      labels: [Int](repeating: Tensor.ignoreIndex, count: context.count) + continuation)
        let batch = Padder(padTokenID: 0).pad([example])
        let targets = batch.nextTokenTargets(for: model)
        let sum = withNoGrad { Double(batch.summedNegativeLogLikelihood(of: model, targets: targets).item) }
        return (sum, continuation.count)
    }

    /// The option with the lowest mean NLL per token (the first on a tie) and every option's mean NLL.
    public static func harnessChoice(context: [Int], options: [[Int]], model: any CausalLanguageModel) -> (choice: Int, meanNLL: [Double]) {
        let means = options.map { option in
            let (sum, count) = negativeLogLikelihood(of: option, after: context, model: model)
            return sum / Double(count)
        }
        var best = 0
        for index in means.indices where means[index] < means[best] { best = index }
        return (best, means)
    }

    /// Context and option ids as lm-evaluation-harness splits them: the tokens of input + option after those
    /// of the input alone (so a word piece joining the two stays whole), or the option alone when the input's
    /// tokens are not a prefix. A tokenizer with a prompt suffix (ChatGLM-6B's `[gMASK] <sop>`) ends the context
    /// with it and encodes each option alone, as its training layout puts an answer after the prompt.
    func tokenized(_ record: ClassificationRecord) throws -> (context: [Int], options: [[Int]]) {
        let special = SpecialTokens(tokenizer)
        let input = special.prefix + tokenizer.encode(record.input, addSpecialTokens: false)
        let context = input + special.promptSuffix
        let options = try record.options.enumerated().map { index, option in
            let whole = special.promptSuffix.isEmpty
                ? special.prefix + tokenizer.encode(record.input + option, addSpecialTokens: false) : []
            let continuation = !whole.isEmpty && whole.starts(with: input) ? Array(whole[input.count...])
                : tokenizer.encode(option, addSpecialTokens: false)
            guard !continuation.isEmpty else {
                throw EvaluationError("\(name): \(record.location.map { "\($0): " } ?? "")option \(index) has no tokens")
            }
            return continuation
        }
        guard !context.isEmpty else {
            throw EvaluationError("\(name): \(record.location.map { "\($0): " } ?? "")the input has no tokens and the tokenizer adds no BOS")
        }
        return (context, options)
    }

    /// HELM's match: the option whose trimmed, lowercased text starts the trimmed, lowercased answer (the
    /// longest such option), −1 when none does.
    static func helmChoice(answer: String, options: [String]) -> Int {
        let normalize = { (text: String) in text.trimmingCharacters(in: .whitespacesAndNewlines).lowercased() }
        let answer = normalize(answer)
        var best = -1
        for (index, option) in options.enumerated() {
            let option = normalize(option)
            if !option.isEmpty, answer.hasPrefix(option), best < 0 || option.count > normalize(options[best]).count {
                best = index
            }
        }
        return best
    }

    public func evaluate(_ model: any CausalLanguageModel) throws -> [String: Double] {
        choices = try records.map { record in
            let (context, options) = try tokenized(record)
            switch style {
            case .harness:
                return Self.harnessChoice(context: context, options: options, model: model).choice
            case .helm:
                var generated = try generator(model, context, settings)
                if let last = generated.last, Set(settings.stopTokenIDs ?? model.configuration.eosTokenIDs).contains(last) {
                    generated.removeLast()
                }
                return Self.helmChoice(answer: try tokenizer.decode(generated, skipSpecialTokens: true), options: record.options)
            }
        }
        let scores = try ClassificationScores(predictions: choices, references: records.map(\.target))
        return ["accuracy": scores.accuracy, "f1_macro": scores.macro.f1, "f1_micro": scores.micro.f1,
                "precision_macro": scores.macro.precision, "recall_macro": scores.macro.recall]
    }
}
