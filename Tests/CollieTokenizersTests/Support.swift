import CollieTestSupport
import Foundation
import XCTest
@testable import CollieTokenizers

/// Paths of the bundled tokenizers (top-level `tokenizers/`) and this target's fixtures.
enum Fixtures {
    static let tokenizers = TestPaths.tokenizers
    static let folder = TestPaths.fixtures(of: "CollieTokenizersTests")

    /// The bundled tokenizer `name` (a folder, or the .model file for SentencePiece ones).
    static func tokenizerURL(_ name: String) -> URL {
        switch name {
        case "llama2-spm": return tokenizers.appendingPathComponent("llama2-spm/tokenizer.model")
        case "chinese-sp": return tokenizers.appendingPathComponent("chinese-sp/chinese_sp.model")
        default: return tokenizers.appendingPathComponent(name)
        }
    }

    private static let cacheLock = NSLock()
    nonisolated(unsafe) private static var cache: [String: Tokenizer] = [:]

    /// Loads each bundled tokenizer once per test run.
    static func tokenizer(_ name: String) throws -> Tokenizer {
        cacheLock.lock()
        defer { cacheLock.unlock() }
        if let cached = cache[name] { return cached }
        let tokenizer = try Tokenizer(contentsOf: tokenizerURL(name))
        cache[name] = tokenizer
        return tokenizer
    }

    /// A variant of a bundled tokenizer.json (Fixtures/variants.json: top-level members replaced), written to
    /// a temporary file and loaded. The base file is spliced as bytes, not parsed into a Swift dictionary:
    /// Swift strings compare by canonical equivalence, which would merge distinct vocabulary keys.
    static func variant(_ name: String) throws -> Tokenizer {
        let variants = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("variants.json")))
        let variant = (variants as! [String: Any])[name] as! [String: Any]
        let replacements = variant["replace"] as! [String: Any]
        let base = [UInt8](try Data(contentsOf: tokenizers.appendingPathComponent("\(variant["base"] as! String)/tokenizer.json")))
        var members: [(key: String, value: Range<Int>)] = []
        try JSONReader.read(base, file: "base") { json in
            try json.forEachMember { json, key in
                _ = json.peekKind()  // skips whitespace
                let start = json.position
                try json.skipValue()
                members.append((key, start..<json.position))
            }
        }
        var spliced: [UInt8] = Array("{".utf8)
        for (index, member) in members.enumerated() {
            if index > 0 { spliced += Array(",".utf8) }
            spliced += Array("\"\(member.key)\":".utf8)
            if let replacement = replacements[member.key] {
                spliced += [UInt8](try JSONSerialization.data(withJSONObject: replacement, options: [.fragmentsAllowed]))
            } else {
                spliced += base[member.value]
            }
        }
        spliced += Array("}".utf8)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("collie-\(name)-\(UUID().uuidString).json")
        try Data(spliced).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        return try Tokenizer(tokenizerJSON: url)
    }

    /// The parity corpus: one string per line of corpus.jsonl.
    static let corpus: [String] = {
        struct Line: Decodable { let text: String }
        return jsonLines(folder.appendingPathComponent("corpus.jsonl")).map { (try! JSONDecoder().decode(Line.self, from: $0)).text }
    }()

    /// corpus.jsonl, then chatglm6b_corpus.jsonl (whitespace runs, tabs and special-token text for the ChatGLM
    /// tokenizers).
    static let chatGLMCorpus: [String] = {
        struct Line: Decodable { let text: String }
        return corpus + jsonLines(folder.appendingPathComponent("chatglm6b_corpus.jsonl"))
            .map { (try! JSONDecoder().decode(Line.self, from: $0)).text }
    }()

    static func expected(_ name: String) -> [TokenizerReference] {
        jsonLines(folder.appendingPathComponent("expected/\(name).jsonl")).map { try! JSONDecoder().decode(TokenizerReference.self, from: $0) }
    }

    static func jsonLines(_ url: URL) -> [Data] {
        let data = try! Data(contentsOf: url)
        return data.split(separator: UInt8(ascii: "\n")).map { Data($0) }
    }
}
