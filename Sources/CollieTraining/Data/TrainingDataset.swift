import CollieEngine
import CollieTokenizers
import Foundation

/// One tokenized training example: token ids and, position for position, the label each position is
/// trained towards (−100: not trained). Labels are not shifted; the model's loss shifts them (Hugging Face's
/// convention), so `labels[i]` is the target predicted from `tokens[..<i]`.
public struct TrainingExample: Equatable, Sendable {
    public var tokens: [Int]
    public var labels: [Int]
    /// The record this example came from.
    public var location: RecordLocation?

    public init(tokens: [Int], labels: [Int], location: RecordLocation? = nil) {
        precondition(tokens.count == labels.count, "an example needs one label per token")
        self.tokens = tokens
        self.labels = labels
        self.location = location
    }

    /// Positions after the first whose label is trained (the first token has nothing before it to predict it).
    public var trainedTokenCount: Int { labels.dropFirst().lazy.filter { $0 != Tensor.ignoreIndex }.count }
}

/// The Stanford Alpaca prompt, with and without an input (tatsu-lab/stanford_alpaca, `PROMPT_DICT`).
public enum AlpacaTemplate {
    public static let withInput = "Below is an instruction that describes a task, paired with an input that provides "
        + "further context. Write a response that appropriately completes the request.\n\n"
        + "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:"
    public static let withoutInput = "Below is an instruction that describes a task. "
        + "Write a response that appropriately completes the request.\n\n"
        + "### Instruction:\n{instruction}\n\n### Response:"

    /// The prompt for an instruction; an empty input uses the template without input, as Alpaca does.
    public static func prompt(instruction: String, input: String) -> String {
        if input.isEmpty { return withoutInput.replacingOccurrences(of: "{instruction}", with: instruction) }
        return withInput.replacingOccurrences(of: "{instruction}", with: instruction)
            .replacingOccurrences(of: "{input}", with: input)
    }
}

/// Tokenized training examples, ready for batching (CoLLiE's `CollieDatasetForTraining`).
///
/// How each record format becomes tokens and labels, with the tokenizer's own special tokens (`prefix`: what
/// it puts before a text, usually BOS; `suffix`: what it puts after, EOS only if it adds one):
///
/// - `text`: `encode(text)` with special tokens; every label is its token.
/// - `input_output`: prefix + input + output + suffix, input and output tokenized separately; labels −100 on
///   prefix and input.
/// - `alpaca`: prefix + Alpaca prompt + response + EOS (always, as Alpaca trains it); the prompt is masked.
///
/// A tokenizer with a `promptSuffix` (ChatGLM-6B's `[gMASK] <sop>`) lays out both prompt formats as its model
/// was trained: prompt + prompt suffix (masked) + response + EOS (`<eop>`).
/// - `tokens`: as given; labels as given or the tokens. Ids must be in the vocabulary.
///
/// With a `ChatFormat` (`chat_template: true`), `alpaca` and `input_output` records are one-turn conversations
/// instead: the template's prompt (masked) + the assistant's reply and turn end, no prefix or suffix added (for
/// ChatGLM3, by its role tokens: `ChatFormat.roleTokens`).
///
/// Examples longer than `maxLength` are truncated (their end is cut); an example left with no trained
/// position is skipped.
public struct TrainingDataset: RandomAccessCollection, Sendable {
    public let examples: [TrainingExample]
    /// The record format the examples were made from.
    public let format: RecordFormat
    /// How many examples were cut to `maxLength`.
    public let truncatedCount: Int
    /// How many records were left out because no token of theirs was trained (after truncation).
    public let skippedCount: Int

    public var startIndex: Int { examples.startIndex }
    public var endIndex: Int { examples.endIndex }
    public subscript(position: Int) -> TrainingExample { examples[position] }

    /// Tokenizes records (all of one format) on all cores; `chatFormat` renders prompt/response records as chats.
    /// - Throws: `DatasetError` for an id outside the vocabulary (naming the record's line), or when no
    ///   example is left.
    public init(records: [TrainingRecord], tokenizer: Tokenizer, maxLength: Int? = nil, chatFormat: ChatFormat? = nil) throws {
        guard let first = records.first else { throw DatasetError(nil, "the dataset has no records") }
        format = first.format
        if chatFormat != nil, first.format != .alpaca, first.format != .inputOutput {
            throw DatasetError(first.location, "chat_template renders alpaca and input_output records as chats, not "
                               + "\(first.format.rawValue) records")
        }
        let special = SpecialTokens(tokenizer)
        var built: [TrainingExample] = []
        built.reserveCapacity(records.count)
        switch first.format {
        case .text:
            let texts = try records.map { record -> String in
                guard case .text(let text) = record.content else { throw mixed(record, first) }
                return text
            }
            for (ids, record) in zip(tokenizer.encode(batch: texts), records) {
                built.append(TrainingExample(tokens: ids, labels: ids, location: record.location))
            }
        case .inputOutput, .alpaca:
            let pairs = try records.map { record -> (prompt: String, response: String) in
                let pair: (String, String)
                switch (record.content, first.format) {
                case (.inputOutput(let input, let output), .inputOutput):
                    pair = (input, output)
                case (.alpaca(let instruction, let input, let output), .alpaca):
                    pair = chatFormat == nil ? (AlpacaTemplate.prompt(instruction: instruction, input: input), output)
                        : (ChatFormat.userMessage(instruction: instruction, input: input), output)
                default: throw mixed(record, first)
                }
                guard let chatFormat, !chatFormat.usesRoleTokens else { return pair }
                do { return try chatFormat.split(user: pair.0, assistant: pair.1) } catch {
                    throw DatasetError(record.location, "chat_template: \(error)")
                }
            }
            if chatFormat?.usesRoleTokens == true {
                for (pair, record) in zip(pairs, records) {
                    let masked: [Int], trained: [Int]
                    do {
                        masked = try tokenizer.chatGLM3Input([("user", "", pair.prompt)])
                        trained = try tokenizer.chatGLM3Reply(pair.response)
                    } catch { throw DatasetError(record.location, "chat_template: \(error)") }
                    built.append(TrainingExample(tokens: masked + trained,
                                                 labels: [Int](repeating: Tensor.ignoreIndex, count: masked.count) + trained,
                                                 location: record.location))
                }
                break
            }
            let prompts = tokenizer.encode(batch: pairs.map(\.prompt), addSpecialTokens: false)
            let responses = tokenizer.encode(batch: pairs.map(\.response), addSpecialTokens: false)
            // A chat's special tokens come from its template.
            let prefix = chatFormat == nil ? special.prefix : []
            let promptSuffix = chatFormat == nil ? special.promptSuffix : []
            let suffix = chatFormat != nil ? [] : first.format == .alpaca || !promptSuffix.isEmpty
                ? special.suffixEndingWithEOS : special.suffix
            for index in records.indices {
                let masked = prefix + prompts[index] + promptSuffix
                let trained = responses[index] + suffix
                built.append(TrainingExample(tokens: masked + trained,
                                             labels: [Int](repeating: Tensor.ignoreIndex, count: masked.count) + trained,
                                             location: records[index].location))
            }
        case .tokens:
            let vocabulary = tokenizer.vocabularySize
            for record in records {
                guard case .tokens(let tokens, let labels) = record.content else { throw mixed(record, first) }
                if let bad = tokens.firstIndex(where: { !(0..<vocabulary).contains($0) }) {
                    throw DatasetError(record.location, "token id \(tokens[bad]) (tokens[\(bad)]) is outside the vocabulary (\(vocabulary) ids)")
                }
                if let labels, let bad = labels.firstIndex(where: { $0 != Tensor.ignoreIndex && !(0..<vocabulary).contains($0) }) {
                    throw DatasetError(record.location,
                                       "label \(labels[bad]) (labels[\(bad)]) is outside the vocabulary (\(vocabulary) ids) and is not -100")
                }
                built.append(TrainingExample(tokens: tokens, labels: labels ?? tokens, location: record.location))
            }
        case .auto, .generation, .classification:
            throw DatasetError(first.location, "\(first.format.rawValue) is not a training record format")
        }

        var truncated = 0, skipped = 0
        var kept: [TrainingExample] = []
        kept.reserveCapacity(built.count)
        for var example in built {
            if let maxLength, example.tokens.count > maxLength {
                example.tokens.removeLast(example.tokens.count - maxLength)
                example.labels.removeLast(example.labels.count - maxLength)
                truncated += 1
            }
            if example.trainedTokenCount == 0 { skipped += 1 } else { kept.append(example) }
        }
        guard !kept.isEmpty else {
            let file = first.location.map { "\($0.file): " } ?? ""
            throw DatasetError(nil, "\(file)no example has a token to train (\(skipped) records skipped"
                               + (maxLength.map { " with max_length \($0)" } ?? "") + ")")
        }
        examples = kept
        truncatedCount = truncated
        skippedCount = skipped
    }

    /// Reads and tokenizes a dataset file (JSON array or JSON Lines).
    /// - Parameter format: the record format, or `.auto` to detect it from the first record.
    /// - Throws: `DatasetError` naming the file and line of the first problem.
    public static func load(from url: URL, format: RecordFormat = .auto, tokenizer: Tokenizer,
                            maxLength: Int? = nil, chatFormat: ChatFormat? = nil) throws -> TrainingDataset {
        let (_, records) = try TrainingRecord.load(from: url, format: format)
        return try TrainingDataset(records: records, tokenizer: tokenizer, maxLength: maxLength, chatFormat: chatFormat)
    }

    /// The training (or, with `evaluation`, the evaluation) dataset a config names, tokenized to its `max_length`.
    /// - Throws: `DatasetError`, or `ConfigError` when the config names no such dataset.
    public static func load(config: CollieConfig, evaluation: Bool = false, tokenizer: Tokenizer) throws -> TrainingDataset {
        guard let path = evaluation ? config.evalData : config.trainData else {
            throw ConfigError(keyPath: evaluation ? "eval_data" : "train_data", "no dataset given")
        }
        return try load(from: URL(fileURLWithPath: path), format: config.recordFormat, tokenizer: tokenizer,
                        maxLength: config.maxLength)
    }

    /// Total tokens over all examples.
    public var tokenCount: Int { examples.reduce(0) { $0 + $1.tokens.count } }

    /// A digest of every example's tokens and labels, in order (FNV-1a, 64 bits, as 16 hex digits): a checkpoint
    /// records it so that resuming on changed data of the same size is refused.
    public var fingerprint: String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ value: Int) {
            var word = UInt64(bitPattern: Int64(value))
            for _ in 0..<8 {
                hash = (hash ^ (word & 0xff)) &* 0x0000_0100_0000_01b3
                word >>= 8
            }
        }
        for example in examples {
            mix(example.tokens.count)
            example.tokens.forEach(mix)
            example.labels.forEach(mix)
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

private func mixed(_ record: TrainingRecord, _ first: TrainingRecord) -> DatasetError {
    DatasetError(record.location, "a \(record.format.rawValue) record among \(first.format.rawValue) records")
}

/// What a tokenizer adds around a text when it adds special tokens, found as CoLLiE does: by comparing the
/// encoding of a short text with and without them.
public struct SpecialTokens {
    /// What comes before the text (BOS), and after it.
    public let prefix: [Int]
    public let suffix: [Int]
    /// What comes between a prompt and its answer (`Tokenizer.promptSuffix`: ChatGLM-6B's `[gMASK] <sop>`); it
    /// is not part of `suffix`.
    public let promptSuffix: [Int]
    public let eos: Int?

    public init(_ tokenizer: Tokenizer) {
        promptSuffix = tokenizer.promptSuffix
        let with = tokenizer.encode("a", addSpecialTokens: true)
        let without = tokenizer.encode("a", addSpecialTokens: false)
        var found: Int?
        if !without.isEmpty, with.count >= without.count {
            for start in 0...(with.count - without.count) where Array(with[start..<(start + without.count)]) == without {
                found = start
                break
            }
        }
        if let start = found {
            prefix = Array(with[..<start])
            let after = Array(with[(start + without.count)...])
            suffix = after.starts(with: promptSuffix) ? Array(after.dropFirst(promptSuffix.count)) : after
        } else {
            prefix = []
            suffix = []
        }
        eos = tokenizer.eosTokenID
    }

    /// The suffix, with EOS appended unless it already ends with it.
    var suffixEndingWithEOS: [Int] {
        guard let eos, suffix.last != eos else { return suffix }
        return suffix + [eos]
    }
}

extension TrainingDataset {
    /// A dataset of already tokenized examples (labels −100 where nothing is predicted).
    /// - Throws: `DatasetError` when `examples` is empty.
    public init(examples: [TrainingExample], format: RecordFormat = .tokens) throws {
        guard !examples.isEmpty else { throw DatasetError(nil, "the dataset has no examples") }
        self.examples = examples
        self.format = format
        truncatedCount = 0
        skippedCount = 0
    }
}
