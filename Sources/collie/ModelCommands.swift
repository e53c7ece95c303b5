import ArgumentParser
import Collie
import Foundation

/// `collie score`: per-record mean negative log-likelihood and corpus perplexity.
struct Score: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score JSON-lines records with a model: mean NLL per record and corpus perplexity.",
        discussion: """
        Each line of --data is a record {"tokens": [ids]}. For each, the mean negative log-likelihood of \
        tokens 2…n given their prefix is written as {"index": i, "nll": x, "count": n} (to --output, or \
        stdout); the corpus perplexity exp(total NLL / total count) is printed last (to stderr when the \
        records go to stdout). A record longer than the model's positions is scored with a warning; an NLL \
        that is NaN or infinite (a broken model) is written as null.
        """)

    @Option(help: "A Hugging Face model folder or a .gguf file.") var model: String
    @Option(help: "A JSON-lines file of {\"tokens\": [ids]} records.") var data: String
    @Option(help: "Where to write the per-record JSON lines (default: stdout).") var output: String?
    @Option(help: "A PEFT adapter folder (LoRA or prompt tuning) to apply to the model.") var adapter: String?
    @OptionGroup var quantization: QuantizationOptions
    @Option(help: """
        Score one token at a time through the KV cache (decoding's kernels) with these activations against quantized \
        weights: float, int8 (llama.cpp's arithmetic), bfloat16 or automatic. Default: each record in one forward pass.
        """)
    var activations: QuantizedActivations?

    func run() throws {
        let lm = try PretrainedModel.model(.at(URL(fileURLWithPath: model)),
                                           adapter: adapter.map { .folder(URL(fileURLWithPath: $0)) },
                                           quantization: quantization.weightQuantization(model: model))
        let records = try TokenRecords.read(data, vocabularySize: lm.configuration.vocabularySize)
        guard !records.isEmpty else {
            throw ValidationError("\(data): no records to score (an empty file); each line is {\"tokens\": [ids]}")
        }
        // Like transformers, a record longer than the model's positions is scored (rotary positions extend) with a
        // warning: its NLL is outside what the model was trained for, so it is not comparable with the others.
        let positions = lm.configuration.maxPositionEmbeddings
        var lines: [String] = []
        var totalNLL = 0.0, totalCount = 0, nonFinite = 0
        // The records' forward passes, like evaluation steps, on the spinning pool (a sleeping worker is slow to wake for
        // the many short loops of a short record).
        try Parallel.withTrainingWorkers {
            for (index, tokens) in records.enumerated() {
                guard tokens.count >= 2 else {
                    throw ValidationError("\(data): record \(index + 1) has \(tokens.count) token(s); scoring needs at least 2")
                }
                if tokens.count > positions {
                    ConsoleOutput.standardError("warning: \(data): record \(index + 1) has \(tokens.count) tokens, more than the "
                                                + "model's \(positions) positions (max_position_embeddings); scored anyway\n")
                }
                let (sum, count) = activations.map { mode in
                    Tensor.withQuantizedActivations(mode) { lm.decodingNegativeLogLikelihood(of: tokens) }
                } ?? lm.negativeLogLikelihood(of: tokens)
                totalNLL += sum
                totalCount += count
                let nll = sum / Double(count)
                if !nll.isFinite { nonFinite += 1 }
                // JSON has no NaN or infinity: such a value is null.
                lines.append(#"{"index": \#(index), "nll": \#(nll.isFinite ? "\(nll)" : "null"), "count": \#(count)}"#)
            }
        }
        if nonFinite > 0 {
            ConsoleOutput.standardError("warning: \(nonFinite) record(s) scored a NaN or infinite NLL (written as null): the "
                                        + "model's weights are probably not finite\n")
        }
        let perplexity = Foundation.exp(totalNLL / Double(max(totalCount, 1)))
        if let output {
            try AtomicFile.write(Data((lines.joined(separator: "\n") + "\n").utf8), to: URL(fileURLWithPath: output))
            print("perplexity \(perplexity) over \(totalCount) tokens in \(records.count) records")
        } else {
            for line in lines { print(line) }
            ConsoleOutput.standardError("perplexity \(perplexity) over \(totalCount) tokens in \(records.count) records\n")
        }
    }
}

/// `collie convert`: rewrite a model folder (or a GGUF file) as a Hugging Face folder in another dtype or shard size.
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load a Hugging Face model folder or a .gguf file and save it as a Hugging Face folder (dtype, sharding) or a GGUF file, optionally with a LoRA adapter merged in.",
        discussion: """
        The destination folder gets the weights, config.json, generation_config.json and the tokenizer's files \
        (tokenizer.json, tokenizer_config.json, chat_template.jinja, …): copied from a source folder, or made from \
        a GGUF file's metadata as transformers converts it, so transformers' from_pretrained loads the folder alone. \
        An --out ending in .gguf is a GGUF file for llama.cpp instead, with the metadata, tensor names and types \
        llama.cpp's convert_hf_to_gguf.py writes (--outtype). With --quantized (a QLoRA base) the GGUF file's \
        blocks are loaded as they are and each layer is dequantized when it is merged or written: the output equals \
        converting the dequantized model (merging a LoRA adapter trained on the blocks, or re-exporting with --outtype).
        """)

    @Option(help: "The source: a Hugging Face model folder or a .gguf file (dequantized).") var model: String
    @Option(help: "The destination folder, or a file ending in .gguf for llama.cpp.") var out: String
    @Option(help: "GGUF tensor type (--out *.gguf): f32, f16 (default), bf16, q8_0, q4_0, q4_1, q5_0 or q5_1.")
    var outtype: GGUFOutputType?
    @Option(help: "Weight dtype: float32, bfloat16 or float16.") var dtype: WeightDType = .float32
    @Option(help: "Largest shard, e.g. 2GB (10⁹ bytes) or 500MiB (2²⁰).") var maxShardSize = "2GB"
    @Option(help: "A PEFT LoRA adapter folder to merge into the weights (W + scaling·B·A, PEFT's merge_and_unload).")
    var adapter: String?
    @OptionGroup var quantization: QuantizationOptions

    func run() throws {
        let gguf = out.lowercased().hasSuffix(".gguf")
        if outtype != nil && !gguf { throw ValidationError("--outtype is for GGUF files: give an --out ending in .gguf") }
        let limit = try ByteSize.parse(maxShardSize)
        // Before the model loads, so that an --out that is a file fails at once.
        if FileManager.default.fileExists(atPath: out), !gguf { try InputFile.checkFolder(URL(fileURLWithPath: out)) }
        let source = URL(fileURLWithPath: model)
        // A quantized base (QLoRA's) is written dequantized: an adapted layer gets its merged float32 weight, the
        // others their blocks' values.
        let lm = try PretrainedModel.model(.at(source), adapter: adapter.map { .folder(URL(fileURLWithPath: $0)) },
                                           quantization: quantization.weightQuantization(model: model))
        let sourceGGUF: GGUFFile?
        let tokenizerFiles: TokenizerFiles?
        do {
            sourceGGUF = GGUFModelFile.isGGUF(source) ? try GGUFFile(url: source) : nil
            tokenizerFiles = try sourceGGUF.map(GGUFModelFile.tokenizerFiles(of:)) ?? .folder(source)
        } catch { throw ValidationError("--model: \(error)") }
        let quantizedBase = lm.isQuantized
        if let adapter {
            guard case .lora = lm.peftConfiguration else {
                throw ValidationError("--adapter: \(adapter) is a prompt-tuning adapter; only LoRA merges into weights")
            }
            // Merged as each layer is written (PEFT's merge_and_unload), one layer widened at a time.
            print("merging \(lm.loraAdapters.count) LoRA adapters from \(adapter)"
                  + (quantizedBase ? " into the dequantized weights" : ""))
        }
        let merging = adapter != nil
        let parameters = lm.savedWeights().reduce(0) { $0 + $1.shape.reduce(1, *) }
        if gguf {
            let type = outtype ?? .f16
            // A GGUF source's tokenizer keys are kept as they are; a folder's are made as convert_hf_to_gguf does.
            let tokenizer = try sourceGGUF.map { $0.metadata.filter { $0.key.hasPrefix("tokenizer.") } }
                ?? GGUFTokenizerMetadata.metadata(for: source, family: .init(lm.configuration.modelType))
            try lm.saveGGUF(to: URL(fileURLWithPath: out), outputType: type,
                            name: source.deletingPathExtension().lastPathComponent, tokenizerMetadata: tokenizer,
                            mergingLoRA: merging)
            print("saved \(parameters) parameters as GGUF \(type.rawValue) to \(out)")
            return
        }
        try lm.save(to: URL(fileURLWithPath: out), dtype: dtype.dtype, maxShardBytes: limit, mergingLoRA: merging)
        try tokenizerFiles?.write(to: URL(fileURLWithPath: out))
        try RemoteCode.copy(from: source, to: URL(fileURLWithPath: out))
        print("saved \(parameters) parameters as \(dtype.rawValue) to \(out)")
    }
}

extension GGUFOutputType: ExpressibleByArgument {}

/// Weight dtypes a checkpoint can be written in.
enum WeightDType: String, ExpressibleByArgument, CaseIterable {
    case float32, bfloat16, float16

    var dtype: DType {
        switch self {
        case .float32: .float32
        case .bfloat16: .bfloat16
        case .float16: .float16
        }
    }
}

/// Sizes such as "2GB", "500MiB", "1024".
enum ByteSize {
    /// The bytes `text` names, at least 1; a size beyond `Int` (larger than any model) is `Int.max`.
    static func parse(_ text: String) throws -> Int {
        let units: [(String, Int)] = [("KIB", 1 << 10), ("MIB", 1 << 20), ("GIB", 1 << 30),
                                      ("KB", 1_000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("B", 1), ("", 1)]
        let upper = text.uppercased().trimmingCharacters(in: .whitespaces)
        for (suffix, scale) in units where upper.hasSuffix(suffix) {
            if let value = Double(upper.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), value.isFinite, value > 0 {
                let bytes = value * Double(scale)
                guard bytes >= 1 else { throw ValidationError("'\(text)' is less than one byte") }
                return bytes >= Double(Int.max) ? Int.max : Int(bytes)
            }
        }
        throw ValidationError("'\(text)' is not a size such as 2GB, 500MB or 1GiB")
    }
}

/// Reading `{"tokens": [ids]}` JSON lines.
enum TokenRecords {
    static func read(_ path: String, vocabularySize: Int) throws -> [[Int]] {
        let data: Data
        do { data = try InputFile.contents(of: URL(fileURLWithPath: path), limit: .max) } catch let error as CheckpointError {
            throw ValidationError(error.description)
        }
        guard let text = String(data: data, encoding: .utf8) else { throw ValidationError("'\(path)' is not UTF-8 text") }
        struct Record: Decodable { let tokens: [Int] }
        var records: [[Int]] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            let record: Record
            do {
                record = try JSONDecoder().decode(Record.self, from: Data(trimmed.utf8))
            } catch {
                throw ValidationError("\(path):\(number + 1): expected {\"tokens\": [ids]} (\(error.localizedDescription))")
            }
            if let bad = record.tokens.first(where: { $0 < 0 || $0 >= vocabularySize }) {
                throw ValidationError("\(path):\(number + 1): token id \(bad) is outside the vocabulary 0..<\(vocabularySize)")
            }
            records.append(record.tokens)
        }
        return records
    }
}
