/// The shape of the records in a dataset file — CoLLiE's record fields, plus Stanford Alpaca's.
///
/// | format | fields | trains on |
/// |---|---|---|
/// | `text` | `text` | every token |
/// | `input_output` | `input`, `output` | the output tokens (input masked) |
/// | `tokens` | `tokens`, `labels`? | `labels`, or every token |
/// | `alpaca` | `instruction`, `input`?, `output` | the response and EOS (Alpaca prompt masked) |
/// | `generation` | `text`, `target`? | — (evaluation: prompt and references) |
/// | `classification` | `input`, `output` (options), `target` (index) | — (evaluation) |
public enum RecordFormat: String, Codable, CaseIterable, Sendable, ConfigEnum {
    /// Detect the format from the first record's keys.
    case auto
    case text
    case inputOutput = "input_output"
    case tokens
    case alpaca
    case generation
    case classification

    /// The formats a training dataset can have.
    public static let trainingFormats: [RecordFormat] = [.text, .inputOutput, .tokens, .alpaca]
    /// The formats the evaluation records come in.
    public static let evaluationFormats: [RecordFormat] = [.generation, .classification]

    /// The keys every record of this format has.
    public var requiredKeys: Set<String> {
        switch self {
        case .auto: []
        case .text, .generation: ["text"]
        case .inputOutput: ["input", "output"]
        case .tokens: ["tokens"]
        case .alpaca: ["instruction", "output"]
        case .classification: ["input", "output", "target"]
        }
    }

    /// The keys a record of this format may also have.
    public var optionalKeys: Set<String> {
        switch self {
        case .tokens: ["labels"]
        case .alpaca: ["input"]
        case .generation: ["target"]
        default: []
        }
    }

    /// The format among `candidates` that records with these keys have.
    ///
    /// A format matches when the record has its required keys. Of several matches, the one that accounts
    /// for every key of the record wins (`instruction`/`input`/`output` is alpaca, not input/output); other
    /// keys are allowed when only one format matches.
    /// - Throws: `DatasetError` when no format or more than one fits.
    public static func detect(keys: Set<String>, among candidates: [RecordFormat] = trainingFormats,
                              location: RecordLocation? = nil) throws -> RecordFormat {
        let matches = candidates.filter { $0 != .auto && $0.requiredKeys.isSubset(of: keys) }
        let sortedKeys = keys.sorted().joined(separator: ", ")
        if matches.count == 1 { return matches[0] }
        if matches.isEmpty {
            let expected = candidates.filter { $0 != .auto }
                .map { "\($0.rawValue) (\($0.requiredKeys.sorted().joined(separator: ", ")))" }
                .joined(separator: "; ")
            throw DatasetError(location, "the record's keys (\(sortedKeys)) fit no record format; expected \(expected)")
        }
        let exact = matches.filter { keys.isSubset(of: $0.requiredKeys.union($0.optionalKeys)) }
        if exact.count == 1 { return exact[0] }
        throw DatasetError(location, "the record's keys (\(sortedKeys)) fit several record formats ("
                           + matches.map(\.rawValue).joined(separator: ", ") + "); set record_format")
    }
}
