import CollieIO
import CollieModels
import CollieTestSupport
import CollieTokenizers
import Foundation
import XCTest

/// Tokenizers from GGUF metadata give transformers' GGUF tokenizer's ids (AutoTokenizer.from_pretrained(dir,
/// gguf_file=…)) on the 2,384-string corpus, and a folder's tokenizer exported as GGUF metadata equals what llama.cpp's
/// convert_hf_to_gguf.py writes. Fixtures: scripts/fixtures/make_gguf_tokenizer_fixtures.py.
final class GGUFTokenizerTests: XCTestCase {
    private static let fixtures = TestPaths.fixtures(of: "CollieModelsTests").appendingPathComponent("gguf-tokenizers")

    // MARK: - GGUF → tokenizer

    func testSmolLM2MatchesTransformersGGUFTokenizer() throws {
        try checkParity("smollm2", files: try files("smollm2"))
    }

    func testGPT2MatchesTransformersGGUFTokenizer() throws {
        try checkParity("gpt2", files: try files("gpt2"))
    }

    func testLlamaBPEPreTokenizerMatchesTransformers() throws {
        try checkParity("gpt2-llama-bpe", files: try files("gpt2", pre: "llama-bpe"))
    }

    func testQwen2PreTokenizerMatchesTransformers() throws {
        try checkParity("gpt2-qwen2", files: try files("gpt2", pre: "qwen2"))
    }

    func testDefaultPreTokenizerMatchesTransformers() throws {
        try checkParity("gpt2-default", files: try files("gpt2", pre: "default"))
    }

    func testLlamaSentencePieceMatchesTransformers() throws {
        // No merges in the file: they are recovered from the scores, as transformers does.
        try checkParity("llama2-spm", files: try files("llama2-spm"))
    }

    func testSmolLM2CarriesChatTemplateAndSpecialTokens() throws {
        let gguf = try GGUFFile(url: Self.fixtures.appendingPathComponent("smollm2.gguf"))
        let files = try files("smollm2")
        XCTAssertEqual(files.model, .gpt2)
        XCTAssertEqual(files.preTokenizer, "smollm")
        XCTAssertEqual(files.chatTemplate, gguf["tokenizer.chat_template"]?.string)
        XCTAssertTrue(files.chatTemplate?.contains("<|im_start|>") == true)
        let config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(files.tokenizerConfigJSON)) as? [String: Any])
        XCTAssertEqual(config["bos_token"] as? String, "<|im_start|>")
        XCTAssertEqual(config["eos_token"] as? String, "<|im_end|>")
        XCTAssertEqual(config["unk_token"] as? String, "<|endoftext|>")
        XCTAssertEqual(config["pad_token"] as? String, "<|im_end|>")
        XCTAssertEqual(config["add_bos_token"] as? Bool, false)
        XCTAssertEqual(config["chat_template"] as? String, files.chatTemplate)
        let tokenizer = try files.tokenizer()
        XCTAssertEqual(tokenizer.eosTokenID, 2)
        XCTAssertEqual(tokenizer.encode("<|im_start|>user\nHi<|im_end|>", addSpecialTokens: true).first, 1)
    }

    func testWrittenFolderLoadsAsTheSameTokenizer() throws {
        let folder = try temporaryFolder(for: self)
        let files = try files("llama2-spm")
        try files.files.write(to: folder)
        let written = try Tokenizer(contentsOf: folder)
        let direct = try files.tokenizer()
        for text in ["Hello world", " leading", "生活的真谛是", "emoji🙂inside", "<s>x</s>"] {
            XCTAssertEqual(written.encode(text), direct.encode(text), text)
        }
        XCTAssertEqual(written.encode("Hi").first, 1, "llama files add BOS")
    }

    func testBadMetadataNamesTheKey() throws {
        let good = try metadata("gpt2")
        func expectError(_ key: String, _ change: (inout [String: GGUFValue]) -> Void, file: StaticString = #filePath,
                         line: UInt = #line) {
            var metadata = good
            change(&metadata)
            XCTAssertThrowsError(try GGUFTokenizerFiles(metadata: metadata, file: "bad.gguf"), file: file, line: line) {
                let error = $0 as? GGUFTokenizerError
                XCTAssertEqual(error?.key, key, "\($0)", file: file, line: line)
                XCTAssertTrue("\($0)".hasPrefix("bad.gguf: \(key): "), "\($0)", file: file, line: line)
            }
        }
        expectError("tokenizer.ggml.model") { $0["tokenizer.ggml.model"] = nil }
        expectError("tokenizer.ggml.model") { $0["tokenizer.ggml.model"] = .string("rwkv") }
        expectError("tokenizer.ggml.model") { $0["tokenizer.ggml.model"] = .uint32(2) }
        expectError("tokenizer.ggml.tokens") { $0["tokenizer.ggml.tokens"] = nil }
        expectError("tokenizer.ggml.tokens") { $0["tokenizer.ggml.tokens"] = .array(.int32, [.int32(1)]) }
        expectError("tokenizer.ggml.token_type") { $0["tokenizer.ggml.token_type"] = .array(.int32, [.int32(1)]) }
        expectError("tokenizer.ggml.bos_token_id") { $0["tokenizer.ggml.bos_token_id"] = .uint32(50257) }
        expectError("tokenizer.ggml.eos_token_id") { $0["tokenizer.ggml.eos_token_id"] = .int64(-1) }
        expectError("tokenizer.ggml.eos_token_id") { $0["tokenizer.ggml.eos_token_id"] = .uint64(.max) }
        expectError("tokenizer.ggml.merges") { $0["tokenizer.ggml.merges"] = nil }
        expectError("tokenizer.ggml.merges") { $0["tokenizer.ggml.merges"] = .array(.string, [.string("a b c")]) }
        expectError("tokenizer.ggml.add_bos_token") { $0["tokenizer.ggml.add_bos_token"] = .string("yes") }
        expectError("tokenizer.ggml.scores") {
            $0["tokenizer.ggml.model"] = .string("llama")
            $0["tokenizer.ggml.merges"] = nil
        }
        expectError("tokenizer.ggml.scores") {
            $0["tokenizer.ggml.model"] = .string("llama")
            $0["tokenizer.ggml.merges"] = nil
            $0["tokenizer.ggml.scores"] = .array(.float32, [.float32(0)])
        }
        expectError("tokenizer.ggml.tokens") {
            // Recovering merges from 20,000-character tokens would take hours: refused before it starts.
            let long = GGUFValue.string(String(repeating: "a", count: 20_000))
            $0["tokenizer.ggml.model"] = .string("llama")
            $0["tokenizer.ggml.merges"] = nil
            $0["tokenizer.ggml.tokens"] = .array(.string, [long, .string("a")])
            $0["tokenizer.ggml.token_type"] = nil
            $0["tokenizer.ggml.scores"] = .array(.float32, [.float32(0), .float32(0)])
            $0["tokenizer.ggml.bos_token_id"] = nil
            $0["tokenizer.ggml.eos_token_id"] = nil
            $0["tokenizer.ggml.unknown_token_id"] = nil
        }
        expectError("general.architecture") {
            $0["tokenizer.ggml.model"] = .string("llama")
            $0["general.architecture"] = .string("gemma2")
        }
    }

    // MARK: - Folder → GGUF metadata

    func testGPT2ExportEqualsConvertHFToGGUF() throws {
        // gpt2.gguf is convert_hf_to_gguf's _set_vocab_gpt2 output for tokenizers/gpt2, key for key.
        try checkExportEqualsFile("gpt2", folder: TestPaths.tokenizers.appendingPathComponent("gpt2"))
    }

    func testSentencePieceExportEqualsConvertHFToGGUF() throws {
        let folder = try temporaryFolder(for: self)
        try FileManager.default.copyItem(at: TestPaths.tokenizers.appendingPathComponent("llama2-spm/tokenizer.model"),
                                         to: folder.appendingPathComponent("tokenizer.model"))
        try Data(#"{"bos_token_id": 1, "eos_token_id": 2, "vocab_size": 32000}"#.utf8)
            .write(to: folder.appendingPathComponent("config.json"))
        try checkExportEqualsFile("llama2-spm", folder: folder)
    }

    func testExportSummariesEqualConvertHFToGGUF() throws {
        let export = try XCTUnwrap(JSONSerialization.jsonObject(
            with: Data(contentsOf: Self.fixtures.appendingPathComponent("export.json"))) as? [String: Any])
        for name in ["gpt2", "llama3", "qwen2", "llama2", "llama2-spm"] {
            let entry = try XCTUnwrap(export[name] as? [String: Any])
            let expected = try XCTUnwrap(entry["metadata"] as? [String: Any])
            let folder = try temporaryFolder(for: self)
            for file in try FileManager.default.contentsOfDirectory(atPath: TestPaths.tokenizers.appendingPathComponent(name).path) {
                try FileManager.default.copyItem(at: TestPaths.tokenizers.appendingPathComponent("\(name)/\(file)"),
                                                 to: folder.appendingPathComponent(file))
            }
            if let config = entry["config"] as? [String: Any] {
                try JSONSerialization.data(withJSONObject: config).write(to: folder.appendingPathComponent("config.json"))
            }
            let actual = try GGUFTokenizerMetadata.metadata(for: folder)
            var summary: [String: String] = [:]
            for (key, value) in actual { summary[key] = Self.summary(value) }
            var wanted: [String: String] = [:]
            for (key, value) in expected { wanted[key] = value as? String }
            if name == "llama3" {
                // convert_hf_to_gguf's hash of a test text's ids names this vocabulary smaug-bpe (Smaug-Llama-3's);
                // matched by its pre-tokenizer it is Llama 3's split, llama-bpe (the same regex in transformers).
                XCTAssertEqual(wanted["tokenizer.ggml.pre"], "smaug-bpe")
                XCTAssertEqual(summary["tokenizer.ggml.pre"], "llama-bpe")
                wanted["tokenizer.ggml.pre"] = nil
                summary["tokenizer.ggml.pre"] = nil
            }
            XCTAssertEqual(Array(summary.keys).sorted(), Array(wanted.keys).sorted(), name)
            for (key, value) in wanted { XCTAssertEqual(summary[key], value, "\(name): \(key)") }
            XCTAssertEqual(actual.map(\.key).first, "tokenizer.ggml.model", name)
        }
    }

    func testSmolLM2RoundTripKeepsTheTokenizerKeys() throws {
        // GGUF → tokenizer files → GGUF metadata: the vocabulary, types, merges, special ids, add_bos and chat
        // template come back unchanged. The pre-tokenizer comes back as gpt-2: transformers (and so Collie) ignores
        // `smollm` and splits as GPT-2 does, and the export names what the folder's tokenizer does.
        let original = try metadata("smollm2")
        let folder = try temporaryFolder(for: self)
        try files("smollm2").files.write(to: folder)
        let exported = Dictionary(try GGUFTokenizerMetadata.metadata(for: folder).map { ($0.key, $0.value) },
                                  uniquingKeysWith: { first, _ in first })
        for key in ["tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
                    "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id",
                    "tokenizer.ggml.padding_token_id", "tokenizer.ggml.add_bos_token", "tokenizer.chat_template"] {
            XCTAssertNotNil(original[key], key)
            XCTAssertTrue(exported[key] == original[key], "\(key): \(exported[key].map(Self.summary) ?? "absent")")
        }
        XCTAssertEqual(original["tokenizer.ggml.pre"], .string("smollm"))
        XCTAssertEqual(exported["tokenizer.ggml.pre"], .string("gpt-2"))
    }

    func testUnknownPreTokenizerExportNamesIt() throws {
        let folder = try temporaryFolder(for: self)
        var json = try XCTUnwrap(JSONSerialization.jsonObject(
            with: Data(contentsOf: TestPaths.tokenizers.appendingPathComponent("gpt2/tokenizer.json"))) as? [String: Any])
        json["pre_tokenizer"] = ["type": "Sequence", "pretokenizers": [["type": "Whitespace"],
                                 ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false]]]
        try JSONSerialization.data(withJSONObject: json).write(to: folder.appendingPathComponent("tokenizer.json"))
        XCTAssertThrowsError(try GGUFTokenizerMetadata.metadata(for: folder)) {
            XCTAssertEqual(($0 as? GGUFTokenizerError)?.key, "pre_tokenizer", "\($0)")
        }
        try FileManager.default.removeItem(at: folder.appendingPathComponent("tokenizer.json"))
        XCTAssertThrowsError(try GGUFTokenizerMetadata.metadata(for: folder)) {
            XCTAssertEqual(($0 as? GGUFTokenizerError)?.key, "tokenizer.json", "\($0)")
        }
    }

    // MARK: - Helpers

    private func metadata(_ name: String) throws -> [String: GGUFValue] {
        let gguf = try GGUFFile(url: Self.fixtures.appendingPathComponent("\(name).gguf"))
        return Dictionary(gguf.metadata.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
    }

    private func files(_ name: String, pre: String? = nil) throws -> GGUFTokenizerFiles {
        var metadata = try metadata(name)
        if let pre { metadata["tokenizer.ggml.pre"] = .string(pre) }
        return try GGUFTokenizerFiles(metadata: metadata, file: "\(name).gguf")
    }

    private func checkExportEqualsFile(_ name: String, folder: URL) throws {
        let expected = try metadata(name).filter { $0.key.hasPrefix("tokenizer.") }
        let actual = try GGUFTokenizerMetadata.metadata(for: folder)
        XCTAssertEqual(Set(actual.map(\.key)), Set(expected.keys), name)
        for (key, value) in actual {
            XCTAssertTrue(value == expected[key], "\(name): \(key) differs: \(Self.summary(value)) vs "
                          + "\(expected[key].map(Self.summary) ?? "absent")")
        }
        let gguf = try GGUFFile(url: Self.fixtures.appendingPathComponent("\(name).gguf"))
        XCTAssertEqual(actual.map(\.key), gguf.metadata.map(\.key).filter { $0.hasPrefix("tokenizer.") }, "\(name): key order")
    }

    /// Scalars as text; arrays as count and FNV-1a 64 of their elements' text (the fixture script's summary).
    private static func summary(_ value: GGUFValue) -> String {
        if case .array(_, let items) = value {
            return "\(items.count) \(fnv1a64(items.map(elementText)))"
        }
        return elementText(value)
    }

    private static func elementText(_ value: GGUFValue) -> String {
        switch value {
        case .string(let text): text
        case .bool(let flag): flag ? "true" : "false"
        case .float32(let number): Double(number).description
        case .float64(let number): number.description
        default: value.int.map(String.init) ?? "\(value)"
        }
    }

    private static func fnv1a64(_ items: [String]) -> String {
        var hash: UInt64 = 0xcbf29ce484222325
        for item in items {
            for byte in Array(item.utf8) + [0] { hash = (hash ^ UInt64(byte)) &* 0x100000001b3 }
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    private struct CorpusLine: Decodable { let text: String }

    private static func jsonLines<T: Decodable>(_ url: URL, as type: T.Type) throws -> [T] {
        try Data(contentsOf: url).split(separator: UInt8(ascii: "\n")).map { try JSONDecoder().decode(T.self, from: Data($0)) }
    }

    private func checkParity(_ name: String, files: GGUFTokenizerFiles) throws {
        let tokenizer = try files.tokenizer()
        let corpus = try Self.jsonLines(TestPaths.fixtures(of: "CollieTokenizersTests").appendingPathComponent("corpus.jsonl"),
                                        as: CorpusLine.self).map(\.text)
        let expected = try Self.jsonLines(Self.fixtures.appendingPathComponent("\(name).jsonl"), as: TokenizerReference.self)
        try assertCorpusParity(name, corpus: corpus, expected: expected,
                               encode: { tokenizer.encode($0, addSpecialTokens: $1) },
                               decode: { try tokenizer.decode($0, skipSpecialTokens: $1) })
    }
}
