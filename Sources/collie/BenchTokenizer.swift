import ArgumentParser
import Collie
import Foundation

/// `collie bench tokenizer`: tokenizer.json load time and one-thread encode throughput, beside Hugging Face
/// `tokenizers` measured in the same run (scripts/bench/bench_tokenizer.py) on the same documents.
///
/// Every figure is the median of `--repeats` runs after one warm-up. Both sides encode without special
/// tokens; the id counts and checksums are compared, so a speed is only reported for identical ids.
struct BenchTokenizer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer",
        abstract: "Time loading and encoding of tokenizer.json files against Hugging Face tokenizers.",
        discussion: """
            Documents: a .jsonl file gives one per record's "text"; other files are cut after a newline once a \
            document reaches --chunk bytes. Collie encodes them one by one on one thread; tokenizers runs \
            encode_batch_fast with RAYON_NUM_THREADS=1.
            """)

    @Option(help: "A tokenizer.json to measure (repeatable; default: the bundled Llama-3 and Qwen2).")
    var tokenizer: [String] = ["tokenizers/llama3/tokenizer.json", "tokenizers/qwen2/tokenizer.json"]

    @Option(help: "A text (.txt) or JSON-lines (.jsonl) file to encode (repeatable).")
    var text: [String] = ["data/tinyshakespeare.txt", "Tests/CollieTokenizersTests/Fixtures/corpus.jsonl"]

    @Option(help: "Timed repeats per measurement; the median is reported (after one warm-up run).")
    var repeats = 5

    @Option(help: "Bytes per document when cutting a plain text file.")
    var chunk = 4096

    @Option(help: "The Python that runs scripts/bench/bench_tokenizer.py.")
    var python = "python3"

    @Flag(help: "Measure Collie only.")
    var noReference = false

    @Flag(help: "Print the results as JSON instead of a table.")
    var json = false

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        guard chunk >= 1 else { throw ValidationError("--chunk must be at least 1") }
    }

    struct TextResult: Codable {
        var text: String
        var documents: Int
        var bytes: Int
        var mb_per_s: Double
        var ids: Int
        var checksum: UInt64
    }

    struct Result: Codable {
        var tokenizer: String
        var load_ms: Double
        var texts: [TextResult]
    }

    struct Report: Codable {
        var library: String
        var results: [Result]
    }

    func run() throws {
        let corpora = try text.map { ($0, try BenchTokenizer.documents($0, chunk: chunk)) }
        var collie = Report(library: "Collie \(Collie.version)", results: [])
        for path in tokenizer {
            let url = URL(fileURLWithPath: path)
            let load = try Timing.measure(repeats: repeats) { _ = try Tokenizer(tokenizerJSON: url) }
            let tokenizer = try Tokenizer(tokenizerJSON: url)
            var result = Result(tokenizer: path, load_ms: load * 1000, texts: [])
            for (textPath, documents) in corpora {
                let bytes = documents.reduce(0) { $0 + $1.utf8.count }
                let seconds = Timing.measure(repeats: repeats) {
                    for document in documents { _ = tokenizer.encode(document, addSpecialTokens: false) }
                }
                var count = 0
                var checksum: UInt64 = 0
                for document in documents {
                    for id in tokenizer.encode(document, addSpecialTokens: false) {
                        count += 1
                        checksum = checksum &+ UInt64(count) &* UInt64(id)
                    }
                }
                result.texts.append(TextResult(text: textPath, documents: documents.count, bytes: bytes,
                                               mb_per_s: Double(bytes) / seconds / 1e6, ids: count,
                                               checksum: checksum % (1 << 61)))
            }
            collie.results.append(result)
        }
        let reference = noReference ? nil : runReference()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let both = ["collie": collie, "reference": reference ?? Report(library: "not run", results: [])]
            print(String(decoding: try encoder.encode(both), as: UTF8.self))
        } else {
            printTable(collie, reference)
        }
    }

    /// Runs scripts/bench/bench_tokenizer.py with the same settings and reads its JSON.
    private func runReference() -> Report? {
        let arguments = [python, "scripts/bench/bench_tokenizer.py", "--repeats", String(repeats), "--chunk", String(chunk)]
            + tokenizer.flatMap { ["--tokenizer", $0] } + text.flatMap { ["--text", $0] }
        do {
            return try JSONDecoder().decode(Report.self, from: ChildProcess.output("/usr/bin/env", arguments))
        } catch {
            ConsoleOutput.standardError("reference skipped: \(error)\n")
            return nil
        }
    }

    private func printTable(_ collie: Report, _ reference: Report?) {
        print("One thread, no special tokens; median of \(repeats) after a warm-up. \(collie.library)"
              + (reference.map { " vs \($0.library)" } ?? ""))
        for result in collie.results {
            let other = reference?.results.first { $0.tokenizer == result.tokenizer }
            print("\n\(result.tokenizer)")
            print("  load            \(format(result.load_ms)) ms" + (other.map { "   tokenizers \(format($0.load_ms)) ms" } ?? ""))
            for text in result.texts {
                let theirs = other?.texts.first { $0.text == text.text }
                var line = "  encode \(URL(fileURLWithPath: text.text).lastPathComponent) (\(text.documents) docs, "
                    + "\(format(Double(text.bytes) / 1e6)) MB): \(format(text.mb_per_s)) MB/s"
                if let theirs {
                    let same = theirs.ids == text.ids && theirs.checksum == text.checksum
                    line += "   tokenizers \(format(theirs.mb_per_s)) MB/s   ×\(format(text.mb_per_s / theirs.mb_per_s))"
                        + (same ? "   ids identical" : "   IDS DIFFER (\(text.ids) vs \(theirs.ids))")
                }
                print(line)
            }
        }
    }

    private func format(_ value: Double) -> String { String(format: value < 10 ? "%.2f" : "%.1f", value) }

    /// The documents of a file, cut as scripts/bench/bench_tokenizer.py cuts them.
    static func documents(_ path: String, chunk: Int) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("cannot read \(path)")
        }
        let bytes = [UInt8](data)
        if path.hasSuffix(".jsonl") {
            struct Record: Decodable { let text: String }
            return try bytes.split(separator: UInt8(ascii: "\n")).map { try JSONDecoder().decode(Record.self, from: Data($0)).text }
        }
        var documents: [String] = []
        var start = 0
        while start < bytes.count {
            var end = min(start + chunk, bytes.count)
            while end < bytes.count, bytes[end] != UInt8(ascii: "\n") { end += 1 }
            end = min(end + 1, bytes.count)
            documents.append(String(decoding: bytes[start..<end], as: UTF8.self))
            start = end
        }
        return documents
    }
}
