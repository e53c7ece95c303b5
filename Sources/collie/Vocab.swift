import ArgumentParser
import Collie
import Foundation

/// `collie vocab`: vocabulary tools.
struct Vocab: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Vocabulary tools: expand a SentencePiece vocabulary and the model that uses it.",
        subcommands: [VocabMerge.self])
}

/// `collie vocab merge`: CoLLiE's expand_vocab example as one command.
struct VocabMerge: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Merge a second SentencePiece vocabulary into a base one, and grow a model to match.",
        discussion: """
            Writes OUT/tokenizer.model: the base model with every piece of --add that it lacks appended (score 0, \
            type NORMAL), the base's trainer and normalizer settings kept — Chinese-LLaMA's merge_tokenizers.py, \
            byte for byte — and OUT/tokenizer_config.json. With --model (a Hugging Face folder trained with the base \
            tokenizer) OUT also becomes that model with the new vocabulary: the token embedding and the output \
            projection grow by one row per new piece, each new row the mean of the old rows (as CoLLiE's example), \
            and config.json's vocab_size follows; `collie train --set model=OUT` then continues pretraining. Each \
            file is written atomically; nothing else in OUT is touched. With --measure, prints tokens per character \
            of a JSON or JSON-lines file of records (text, or instruction/input/output) before and after the merge.
            """)

    @Option(help: "The base SentencePiece model (e.g. LLaMA-2's tokenizer.model).") var base: String
    @Option(help: "The SentencePiece model whose pieces are added (e.g. a Chinese model).") var add: String
    @Option(help: "The output folder (created when missing).") var out: String
    @Option(help: "A Hugging Face model folder trained with --base, to grow to the merged vocabulary.") var model: String?
    @Option(help: "Weight dtype of the saved model: float32, bfloat16 or float16 (default: the folder's torch_dtype).")
    var dtype: WeightDType?
    @Option(help: "A JSON or JSON-lines file of records whose tokens per character are printed before and after.")
    var measure: String?

    func run() throws {
        let outURL = URL(fileURLWithPath: out).standardizedFileURL
        let modelURL = model.map { URL(fileURLWithPath: $0).standardizedFileURL }
        if let modelURL {
            guard modelURL.resolvingSymlinksInPath().path != outURL.resolvingSymlinksInPath().path else {
                throw ValidationError("--out must not be the --model folder (\(modelURL.path)): write the grown model elsewhere")
            }
        }
        if FileManager.default.fileExists(atPath: outURL.path) { try InputFile.checkFolder(outURL) }
        // A tokenizer.json in OUT would be loaded instead of the merged tokenizer.model; it is not ours to delete.
        let shadowing = outURL.appendingPathComponent("tokenizer.json")
        if FileManager.default.fileExists(atPath: shadowing.path) {
            throw ValidationError("\(shadowing.path) exists and would be loaded instead of the merged tokenizer.model: "
                                  + "choose another --out or remove it")
        }
        let baseURL = URL(fileURLWithPath: base), addURL = URL(fileURLWithPath: add)
        let merge = try SentencePieceMerge(base: baseURL, add: addURL)

        // The model first: a folder that does not fit the base tokenizer fails before anything is written.
        var grown: (any CausalLanguageModel)?
        var saveDType = DType.float32
        if let modelURL {
            let expanded = try VocabularyExpansion.expandedModel(folder: modelURL, expectedVocabularySize: merge.basePieceCount,
                                                                 vocabularySize: merge.pieceCount)
            saveDType = dtype?.dtype ?? WeightDType(rawValue: expanded.configuration.torchDType ?? "")?.dtype ?? .float32
            grown = expanded
        }
        try UserFolder.create(outURL)
        try AtomicFile.write(merge.model, to: outURL.appendingPathComponent("tokenizer.model"))
        try AtomicFile.write(merge.tokenizerConfigurationJSON(), to: outURL.appendingPathComponent("tokenizer_config.json"))
        print("merged \(merge.basePieceCount) + \(merge.addedPieces.count) new pieces = \(merge.pieceCount) pieces: "
              + outURL.appendingPathComponent("tokenizer.model").path)
        if let grown {
            try grown.save(to: outURL, dtype: saveDType)
            let c = grown.configuration
            print("model: the token embedding and the output projection grown to \(c.vocabularySize) rows "
                  + "(new rows = mean of the \(merge.basePieceCount) old), saved as \(saveDType) to \(outURL.path)")
        }
        if let measure {
            let texts = try MeasuredRecords.texts(in: URL(fileURLWithPath: measure))
            let before = try Tokenizer(sentencePieceModel: baseURL)
            let after = try Tokenizer(sentencePieceModel: merge.model, file: "merged tokenizer.model")
            let characters = texts.reduce(0) { $0 + $1.unicodeScalars.count }
            func count(_ tokenizer: Tokenizer) -> Int {
                tokenizer.encode(batch: texts, addSpecialTokens: false).reduce(0) { $0 + $1.count }
            }
            let (tokensBefore, tokensAfter) = (count(before), count(after))
            func ratio(_ tokens: Int) -> String { String(format: "%.4f", Double(tokens) / Double(max(characters, 1))) }
            print("\(measure): \(texts.count) records, \(characters) characters: \(tokensBefore) tokens before "
                  + "(\(ratio(tokensBefore)) per character), \(tokensAfter) after (\(ratio(tokensAfter)) per character)")
        }
    }
}

/// The texts of a file of records for `--measure`: a JSON array or JSON lines of objects with `text`, or
/// `instruction` / `input` / `output` (joined by newlines, empty ones left out).
enum MeasuredRecords {
    struct Record: Decodable {
        var text, instruction, input, output: String?

        var joined: String {
            if let text { return text }
            return [instruction, input, output].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: "\n")
        }
    }

    static func texts(in url: URL) throws -> [String] {
        let data = try InputFile.contents(of: url, limit: 1 << 30)
        let decoder = JSONDecoder()
        if data.first(where: { ![0x20, 0x0A, 0x0D, 0x09].contains($0) }) == UInt8(ascii: "[") {
            do { return try decoder.decode([Record].self, from: data).map(\.joined) } catch {
                throw ValidationError("--measure: \(url.path): not a JSON array of records (\(error))")
            }
        }
        var texts: [String] = []
        for (index, line) in data.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() where !line.allSatisfy({ $0 == 0x20 || $0 == 0x0D }) {
            do { texts.append(try decoder.decode(Record.self, from: Data(line)).joined) } catch {
                throw ValidationError("--measure: \(url.path): line \(index + 1) is not a JSON record (\(error))")
            }
        }
        return texts
    }
}
