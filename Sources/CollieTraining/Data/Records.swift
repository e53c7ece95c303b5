import Foundation

/// One training record as read from a dataset file, before tokenization.
public struct TrainingRecord: Equatable, Sendable {
    public enum Content: Equatable, Sendable {
        /// `{"text"}`: a language-modelling example; every token is trained.
        case text(String)
        /// `{"input", "output"}`: the loss is on the output tokens only.
        case inputOutput(input: String, output: String)
        /// `{"tokens", "labels"?}`: pre-tokenized; labels default to the tokens (−100 masks a position).
        case tokens([Int], labels: [Int]?)
        /// `{"instruction", "input"?, "output"}`: formatted with the Alpaca prompt; the response is trained.
        case alpaca(instruction: String, input: String, output: String)
    }

    public var content: Content
    /// Where the record is in its file, when it came from one.
    public var location: RecordLocation?

    public init(_ content: Content, location: RecordLocation? = nil) {
        self.content = content
        self.location = location
    }

    /// The format this record is in.
    public var format: RecordFormat {
        switch content {
        case .text: .text
        case .inputOutput: .inputOutput
        case .tokens: .tokens
        case .alpaca: .alpaca
        }
    }

    /// Reads a JSON array or JSON Lines file of training records.
    ///
    /// - Parameter format: the record format, or `.auto` to detect it from the first record's keys (keys
    ///   that fit several formats are an error). Every record must have the format's fields; other fields
    ///   are ignored.
    /// - Returns: the format used and the records, in file order.
    /// - Throws: `DatasetError` naming the file and line of a malformed line or a missing or mistyped field,
    ///   or the file when it has no records.
    public static func load(from url: URL, format: RecordFormat = .auto) throws
        -> (format: RecordFormat, records: [TrainingRecord]) {
        let raw = try RecordFile.read(url)
        let format = format == .auto ? try RecordFormat.detect(keys: raw[0].keys, location: raw[0].location) : format
        guard RecordFormat.trainingFormats.contains(format) else {
            throw DatasetError(file: url.path, "\(format.rawValue) records are for evaluation, not training")
        }
        return (format, try raw.map { try TrainingRecord($0, format: format) })
    }

    init(_ raw: RawRecord, format: RecordFormat) throws {
        switch format {
        case .text:
            content = .text(try raw.string("text"))
        case .inputOutput:
            content = .inputOutput(input: try raw.string("input"), output: try raw.string("output"))
        case .tokens:
            let tokens = try raw.integers("tokens")
            var labels: [Int]?
            if try raw.hasValue("labels") {
                labels = try raw.integers("labels")
                if labels!.count != tokens.count {
                    throw raw.error("\"labels\" has \(labels!.count) values but \"tokens\" has \(tokens.count)")
                }
            }
            content = .tokens(tokens, labels: labels)
        case .alpaca:
            content = .alpaca(instruction: try raw.string("instruction"), input: try raw.optionalString("input") ?? "",
                              output: try raw.string("output"))
        default:
            throw raw.error("\(format.rawValue) is not a training record format")
        }
        location = raw.location
    }
}

/// A generation-evaluation record (`{"text", "target"?}`, CoLLiE's `CollieDatasetForGeneration`): a prompt,
/// and the reference continuations to score the generated text against.
public struct GenerationRecord: Equatable, Sendable {
    /// The prompt.
    public var text: String
    /// The references (`target` may be one string or a list); empty without a target.
    public var targets: [String]
    public var location: RecordLocation?

    public init(text: String, targets: [String] = [], location: RecordLocation? = nil) {
        self.text = text
        self.targets = targets
        self.location = location
    }

    /// Reads a JSON array or JSON Lines file of generation records.
    /// - Throws: `DatasetError` naming the file and line of a malformed line or field.
    public static func load(from url: URL) throws -> [GenerationRecord] {
        try RecordFile.read(url).map { raw in
            let targets = try raw.hasValue("target") ? try raw.strings("target") : []
            return GenerationRecord(text: try raw.string("text"), targets: targets, location: raw.location)
        }
    }
}

/// A classification-evaluation record (`{"input", "output": [options], "target": index}`, CoLLiE's
/// `CollieDatasetForClassification`): the model scores `input + option` for each option.
public struct ClassificationRecord: Equatable, Sendable {
    public var input: String
    /// The candidate continuations.
    public var options: [String]
    /// The index of the correct option.
    public var target: Int
    public var location: RecordLocation?

    public init(input: String, options: [String], target: Int, location: RecordLocation? = nil) {
        self.input = input
        self.options = options
        self.target = target
        self.location = location
    }

    /// Reads a JSON array or JSON Lines file of classification records.
    /// - Throws: `DatasetError` naming the file and line of a malformed line, a record with fewer than two
    ///   options, or a target that is not an index of the options.
    public static func load(from url: URL) throws -> [ClassificationRecord] {
        try RecordFile.read(url).map { raw in
            let options = try raw.strings("output")
            guard options.count >= 2 else { throw raw.error("\"output\" must list at least two options, got \(options.count)") }
            let target = try raw.integer("target")
            guard options.indices.contains(target) else {
                throw raw.error("\"target\" is \(target), not an index of the \(options.count) options")
            }
            return ClassificationRecord(input: try raw.string("input"), options: options, target: target,
                                        location: raw.location)
        }
    }
}
