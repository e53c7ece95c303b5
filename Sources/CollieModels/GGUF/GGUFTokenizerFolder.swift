import Foundation
import CollieIO
import CollieTokenizers

/// The tokenizer files of a model folder that a GGUF export reads, each parsed once.
struct FolderFiles {
    let folder: URL
    let sentencePieceModel: Data?
    let tokenizerJSON: [String: Any]?
    let tokenizerConfig: [String: Any]?
    let config: [String: Any]?
    let chatTemplateFile: String?
    let addedTokensJSON: [(id: Int, token: String)]

    init(folder: URL) throws {
        self.folder = folder
        func read(_ name: String) throws -> Data? {
            let url = folder.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: url.path) else { return nil }
            do { return try Data(contentsOf: url) } catch {
                throw GGUFTokenizerError(file: url.path, key: name, "cannot read the file: \(error.localizedDescription)")
            }
        }
        func object(_ name: String) throws -> [String: Any]? {
            guard let data = try read(name) else { return nil }
            guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                throw GGUFTokenizerError(file: folder.appendingPathComponent(name).path, key: name, "not a JSON object")
            }
            return object
        }
        sentencePieceModel = try read("tokenizer.model")
        tokenizerJSON = try object("tokenizer.json")
        tokenizerConfig = try object("tokenizer_config.json")
        config = try object("config.json")
        chatTemplateFile = try read("chat_template.jinja").map { String(decoding: $0, as: UTF8.self) }
            ?? (try object("chat_template.json"))?["chat_template"] as? String
        addedTokensJSON = ((try object("added_tokens.json")) ?? [:])
            .compactMap { key, value in (value as? Int).map { (id: $0, token: key) } }.sorted { $0.id < $1.id }
        guard sentencePieceModel != nil || tokenizerJSON != nil else {
            throw GGUFTokenizerError(file: folder.path, key: "tokenizer.json",
                                     "the folder has neither tokenizer.json nor tokenizer.model")
        }
    }

    func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

    func tokenizer() throws -> Tokenizer { try Tokenizer(contentsOf: folder) }

    func configInteger(_ key: String) -> Int? { config?[key] as? Int }

    /// tokenizer_config.json's added_tokens_decoder, by id.
    var addedTokensDecoder: [(id: Int, content: String, special: Bool)] {
        let decoder = tokenizerConfig?["added_tokens_decoder"] as? [String: Any] ?? [:]
        return decoder.compactMap { key, value in
            guard let id = Int(key), let entry = value as? [String: Any], let content = entry["content"] as? String else {
                return nil
            }
            return (id, content, entry["special"] as? Bool ?? false)
        }.sorted { $0.id < $1.id }
    }

    /// LlamaHfVocab's test: a byte-fallback BPE model with a Sequence decoder that is not Llama 3's.
    func isLlamaHF(_ json: [String: Any]) -> Bool {
        guard let model = json["model"] as? [String: Any], model["type"] as? String == "BPE" else { return false }
        let llama3 = (model["ignore_merges"] as? Bool ?? false) && !(model["byte_fallback"] as? Bool ?? true)
        return !llama3 && (model["byte_fallback"] as? Bool ?? false)
            && ((json["decoder"] as? [String: Any])?["type"] as? String) == "Sequence"
    }

    /// tokenizer.json's merges as "a b" strings (pairs joined, a space inside a part written as U+0120 as gguf does).
    func merges(_ json: [String: Any]) throws -> [String] {
        guard let merges = (json["model"] as? [String: Any])?["merges"] as? [Any], !merges.isEmpty else { return [] }
        return try merges.enumerated().map { index, merge in
            if let text = merge as? String { return text }
            if let pair = merge as? [String], pair.count == 2 {
                return pair.map { $0.replacingOccurrences(of: " ", with: "\u{0120}") }.joined(separator: " ")
            }
            throw GGUFTokenizerError(file: path("tokenizer.json"), key: "model.merges",
                                     "merge \(index) is neither \"a b\" nor a pair of strings")
        }
    }
}

/// gguf's SpecialVocab: special-token ids, add_bos/add_eos/add_sep and the chat template of a model folder.
struct SpecialVocabulary {
    private static let types = ["bos", "eos", "unk", "sep", "pad", "cls", "mask"]
    private static let idKeys = ["bos": "tokenizer.ggml.bos_token_id", "eos": "tokenizer.ggml.eos_token_id",
                                 "unk": "tokenizer.ggml.unknown_token_id", "sep": "tokenizer.ggml.seperator_token_id",
                                 "pad": "tokenizer.ggml.padding_token_id", "mask": "tokenizer.ggml.mask_token_id"]
    private static let addKeys = ["bos": "tokenizer.ggml.add_bos_token", "eos": "tokenizer.ggml.add_eos_token",
                                  "sep": "tokenizer.ggml.add_sep_token"]

    let files: FolderFiles
    /// The vocabulary size ids must be under (gguf's n_vocab), where the vocabulary function gives one.
    var vocabularySize: Int?
    private var ids: [(type: String, id: Int)] = []
    private var adds: [(type: String, value: Bool)] = []
    private var chatTemplate: String?
    private var loaded = false

    init(files: FolderFiles) { self.files = files }

    private mutating func setID(_ type: String, _ value: Any?) {
        guard let id = value as? Int, id >= 0, !ids.contains(where: { $0.type == type }) else { return }
        if let vocabularySize, id >= vocabularySize { return }
        ids.append((type, id))
    }

    private mutating func setAdd(_ type: String, _ value: Bool) {
        if let index = adds.firstIndex(where: { $0.type == type }) { adds[index].value = value } else { adds.append((type, value)) }
    }

    private static func content(_ entry: Any?) -> String? {
        if let text = entry as? String { return text }
        return (entry as? [String: Any])?["content"] as? String
    }

    /// `_try_load_from_tokenizer_json` then `_try_load_from_config_json`.
    mutating func loadConfig() {
        guard !loaded else { return }
        loaded = true
        let json = files.tokenizerJSON, config = files.tokenizerConfig
        if let json {
            let bos = Self.content(config?["bos_token"]), eos = Self.content(config?["eos_token"])
            // The crude TemplateProcessing reading of SpecialVocab: a leading BOS and a trailing EOS.
            let post = json["post_processor"] as? [String: Any]
            let processors = post?["processors"] as? [[String: Any]] ?? post.map { [$0] } ?? []
            for processor in processors {
                if processor["type"] as? String == "RobertaProcessing" {
                    setAdd("bos", true); setAdd("eos", true); setAdd("sep", true)
                } else if processor["type"] as? String == "TemplateProcessing",
                          let single = processor["single"] as? [[String: Any]], single.count > 1 {
                    func specialID(_ item: [String: Any]) -> String? { (item["SpecialToken"] as? [String: Any])?["id"] as? String }
                    if let first = specialID(single[0]) { setAdd("bos", first == bos) }
                    if let last = specialID(single[single.count - 1]) { setAdd("eos", last == eos) }
                }
            }
        }
        if let config {
            chatTemplate = config["chat_template"] as? String ?? files.chatTemplateFile
            let added = json?["added_tokens"] as? [[String: Any]] ?? []
            for type in Self.types {
                if let flag = config["add_\(type)_token"] as? Bool { setAdd(type, flag) }
                guard let content = Self.content(config["\(type)_token"]) else { continue }
                setID(type, added.first(where: { $0["content"] as? String == content })?["id"])
            }
        }
        if let config = files.config {
            for type in Self.types { setID(type, config["\(type)_token_id"]) }
        }
    }

    /// The keys in add_to_gguf's order: ids, add flags, chat template.
    var entries: [(key: String, value: GGUFValue)] {
        var entries: [(key: String, value: GGUFValue)] = []
        for (type, id) in ids {
            if let key = Self.idKeys[type], let value = UInt32(exactly: id) { entries.append((key, .uint32(value))) }
        }
        for (type, value) in adds { if let key = Self.addKeys[type] { entries.append((key, .bool(value))) } }
        if let chatTemplate { entries.append(("tokenizer.chat_template", .string(chatTemplate))) }
        return entries
    }
}
