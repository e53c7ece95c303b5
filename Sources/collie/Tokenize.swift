import ArgumentParser
import Collie
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `collie tokenize`: JSON lines of text to JSON lines of token ids, or back with `--decode`.
///
/// Reads `{"text": …}` records (other keys are ignored) from a file or standard input and writes one
/// `{"ids": [...]}` line per record, in order; with `--decode`, reads `{"ids": [...]}` and writes
/// `{"text": …}`. Records are encoded in batches on all cores.
struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Encode JSON lines {\"text\": …} to {\"ids\": […]}, or decode them back with --decode.",
        discussion: """
            The tokenizer is a model folder (tokenizer.json, else tokenizer.model, with tokenizer_config.json), \
            a tokenizer.json file, a SentencePiece .model file or a .gguf file (its tokenizer metadata, as \
            transformers converts it). Blank input lines are skipped.
            """)

    @Option(help: "The tokenizer: a model folder, a tokenizer.json, a SentencePiece .model or a .gguf file.")
    var tokenizer: String

    @Flag(help: "Do not add special tokens (BOS, …) when encoding; leave them out when decoding.")
    var noSpecial = false

    @Flag(help: "Read {\"ids\": [...]} lines and write {\"text\": …} lines.")
    var decode = false

    @Argument(help: "A file of JSON lines (default: standard input).")
    var input: String?

    func run() throws {
        let url = URL(fileURLWithPath: self.tokenizer)
        let tokenizer = try PretrainedModel.tokenizer(at: url).tokenizer
        let reader = try LineReader(path: input)
        let name = input ?? "<stdin>"
        var output = OutputBuffer()
        var batch: [(line: Int, text: String)] = []
        let batchSize = 2048

        func flush() throws {
            if decode {
                for record in batch {
                    let ids = try Tokenize.ids(of: record.text, file: name, line: record.line)
                    let text: String
                    do {
                        text = try tokenizer.decode(ids, skipSpecialTokens: noSpecial)
                    } catch {
                        throw TokenizeError("\(name):\(record.line): \(error)")
                    }
                    output.append("{\"text\":")
                    output.appendJSONString(text)
                    output.append("}\n")
                }
            } else {
                let texts = try batch.map { try Tokenize.text(of: $0.text, file: name, line: $0.line) }
                for ids in tokenizer.encode(batch: texts, addSpecialTokens: !noSpecial) {
                    output.append("{\"ids\":[")
                    output.append(ids.map(String.init).joined(separator: ","))
                    output.append("]}\n")
                }
            }
            output.flush()
            batch.removeAll(keepingCapacity: true)
        }

        var lineNumber = 0
        while let line = reader.next() {
            lineNumber += 1
            if line.allSatisfy(\.isWhitespace) { continue }
            batch.append((lineNumber, line))
            if batch.count == batchSize { try flush() }
        }
        try flush()
    }

    private struct TextRecord: Decodable { let text: String }
    private struct IDsRecord: Decodable { let ids: [Int] }

    /// The record's "text", or an error naming the file and line.
    static func text(of line: String, file: String, line number: Int) throws -> String {
        try decode(TextRecord.self, line, key: "text", expected: "a string", file: file, line: number).text
    }

    /// The record's "ids", or an error naming the file and line.
    static func ids(of line: String, file: String, line number: Int) throws -> [Int] {
        try decode(IDsRecord.self, line, key: "ids", expected: "an array of integers", file: file, line: number).ids
    }

    private static func decode<T: Decodable>(_ type: T.Type, _ line: String, key: String, expected: String,
                                             file: String, line number: Int) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(line.utf8))
        } catch DecodingError.keyNotFound {
            throw TokenizeError("\(file):\(number): the record has no \"\(key)\"")
        } catch DecodingError.typeMismatch {
            throw TokenizeError("\(file):\(number): \"\(key)\" must be \(expected)")
        } catch {
            throw TokenizeError("\(file):\(number): not a JSON object: \(line.prefix(80))")
        }
    }
}

/// An input problem, reported as `file:line: message`.
struct TokenizeError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Lines of a file or standard input, read as they come (so a pipe streams).
private final class LineReader {
    private let file: UnsafeMutablePointer<FILE>
    private let ownsFile: Bool
    private var buffer: UnsafeMutablePointer<CChar>?
    private var capacity = 0

    init(path: String?) throws {
        if let path {
            guard let file = fopen(path, "r") else { throw TokenizeError("\(path): cannot open the file") }
            self.file = file
            ownsFile = true
        } else {
            // A stream of our own on descriptor 0 (C's `stdin` is a mutable global); nothing else reads it.
            guard let file = fdopen(STDIN_FILENO, "r") else { throw TokenizeError("standard input: cannot open it") }
            self.file = file
            ownsFile = false
        }
    }

    deinit {
        free(buffer)
        if ownsFile { fclose(file) }
    }

    /// The next line without its line break, or nil at the end.
    func next() -> String? {
        let length = getline(&buffer, &capacity, file)
        guard length >= 0, let buffer else { return nil }
        var count = length
        while count > 0, buffer[count - 1] == 0x0A || buffer[count - 1] == 0x0D { count -= 1 }
        return buffer.withMemoryRebound(to: UInt8.self, capacity: count) {
            String(decoding: UnsafeBufferPointer(start: $0, count: count), as: UTF8.self)
        }
    }
}

/// Standard output, written in large chunks.
private struct OutputBuffer {
    private var bytes: [UInt8] = []

    mutating func append(_ text: String) { bytes.append(contentsOf: text.utf8) }

    /// Appends `text` as a JSON string literal.
    mutating func appendJSONString(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": bytes += [0x5C, 0x22]
            case "\\": bytes += [0x5C, 0x5C]
            case "\n": bytes += [0x5C, UInt8(ascii: "n")]
            case "\r": bytes += [0x5C, UInt8(ascii: "r")]
            case "\t": bytes += [0x5C, UInt8(ascii: "t")]
            default:
                if scalar.value < 0x20 {
                    bytes += Array(String(format: "\\u%04x", scalar.value).utf8)
                } else {
                    UTF8.encode(scalar) { bytes.append($0) }
                }
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func flush() {
        guard !bytes.isEmpty else { return }
        fflush(nil)   // what print() buffered comes first
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(STDOUT_FILENO, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 { if errno == EINTR { continue } else { break } }
                offset += written
            }
        }
        bytes.removeAll(keepingCapacity: true)
    }
}
