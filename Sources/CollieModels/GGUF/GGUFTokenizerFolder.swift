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
        // Regular files only, errors naming the path (InputFile); tokenizer files of large vocabularies pass 64 MB.
        func read(_ name: String) throws -> Data? {
            let url = folder.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: url.path) else { return nil }
            return try InputFile.contents(of: url, limit: 1 << 30)
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

/// gguf's SpecialVocab (the llama.cpp copy convert_hf_to_gguf imports): special-token ids, add_bos/add_eos/add_sep,
/// normalizer flags and the chat template of a model folder.
struct SpecialVocabulary {
    private static let idKeys = ["bos": "tokenizer.ggml.bos_token_id", "eos": "tokenizer.ggml.eos_token_id",
                                 "unk": "tokenizer.ggml.unknown_token_id", "sep": "tokenizer.ggml.seperator_token_id",
                                 "pad": "tokenizer.ggml.padding_token_id", "mask": "tokenizer.ggml.mask_token_id",
                                 "eot": "tokenizer.ggml.eot_token_id", "eom": "tokenizer.ggml.eom_token_id"]
    private static let addKeys = ["bos": "tokenizer.ggml.add_bos_token", "eos": "tokenizer.ggml.add_eos_token",
                                  "sep": "tokenizer.ggml.add_sep_token"]

    let files: FolderFiles
    /// The vocabulary size ids must be under (gguf's n_vocab), where the vocabulary function gives one.
    var vocabularySize: Int?
    private var types = ["bos", "eos", "unk", "sep", "pad", "cls", "mask"]
    private var ids: [(type: String, id: Int)] = []
    private var adds: [(type: String, value: Bool)] = []
    private var lowercase: Bool?, stripAccents: Bool?
    private var chatTemplate: String?
    private var loaded = false

    init(files: FolderFiles) { self.files = files }

    private mutating func setID(_ type: String, _ value: Any?) {
        guard let id = value as? Int, id >= 0, !ids.contains(where: { $0.type == type }) else { return }
        if let vocabularySize, id >= vocabularySize { return }
        ids.append((type, id))
    }

    private func add(_ type: String) -> Bool? { adds.first(where: { $0.type == type })?.value }

    private mutating func setAdd(_ type: String, _ value: Bool, onlyIfUnset: Bool = false) {
        if let index = adds.firstIndex(where: { $0.type == type }) {
            if !onlyIfUnset { adds[index].value = value }
        } else {
            adds.append((type, value))
        }
    }

    private static func content(_ entry: Any?) -> String? {
        if let text = entry as? String { return text }
        return (entry as? [String: Any])?["content"] as? String
    }

    private mutating func parseNormalizer(_ normalizer: [String: Any]) {
        switch normalizer["type"] as? String {
        case "Lowercase": lowercase = true
        case "StripAccents": stripAccents = true
        case "BertNormalizer":
            if let flag = normalizer["lowercase"] as? Bool { lowercase = flag }
            if let flag = normalizer["strip_accents"] as? Bool { stripAccents = flag }
        case "Sequence":
            for step in normalizer["normalizers"] as? [[String: Any]] ?? [] { parseNormalizer(step) }
        default: break
        }
    }

    /// `_try_load_from_tokenizer_json` then `_try_load_from_config_json`.
    mutating func loadConfig() {
        guard !loaded else { return }
        loaded = true
        let json = files.tokenizerJSON
        var config = files.tokenizerConfig
        if let json {
            if let normalizer = json["normalizer"] as? [String: Any] { parseNormalizer(normalizer) }
            var bos = Self.content(config?["bos_token"]), cls = Self.content(config?["cls_token"])
            var eos = Self.content(config?["eos_token"]), sep = Self.content(config?["sep_token"])
            let hasConfig = !(config?.isEmpty ?? true)
            if (bos ?? "").isEmpty, let cls, !cls.isEmpty, hasConfig { config?["bos_token"] = cls; bos = cls }
            if (eos ?? "").isEmpty, let sep, !sep.isEmpty, hasConfig { config?["eos_token"] = sep; eos = sep }
            let post = json["post_processor"] as? [String: Any]
            let processors = post.map { $0["processors"] as? [[String: Any]] ?? [$0] } ?? []
            func special(_ item: [String: Any]?) -> String? {
                guard let id = (item?["SpecialToken"] as? [String: Any])?["id"] as? String, !id.isEmpty else { return nil }
                return id
            }
            for processor in processors {
                switch processor["type"] as? String {
                case "ByteLevel":
                    setAdd("bos", false, onlyIfUnset: true)
                    setAdd("eos", false, onlyIfUnset: true)
                case "RobertaProcessing":
                    setAdd("bos", true); setAdd("eos", true); setAdd("sep", true)
                    if (cls ?? "").isEmpty, hasConfig {
                        cls = (processor["cls"] as? [Any])?.first as? String ?? bos
                        config?["cls_token"] = cls
                    }
                    if (sep ?? "").isEmpty, hasConfig {
                        sep = (processor["sep"] as? [Any])?.first as? String ?? eos
                        config?["sep_token"] = sep
                    }
                case "TemplateProcessing":
                    // The crude reading of TemplateProcessing SpecialVocab does ("will get it wrong on unusual sequences").
                    let single = processor["single"] as? [[String: Any]] ?? []
                    var pair = processor["pair"] as? [[String: Any]] ?? []
                    var first: String?, last: String?
                    if single.count > 1 {
                        first = special(single.first)
                        if let first {
                            if !hasConfig {
                                bos = first
                            } else if first != bos && first != cls {
                                if (bos ?? "").isEmpty { config?["bos_token"] = first; bos = first }
                                if (cls ?? "").isEmpty { config?["cls_token"] = first; cls = first }
                            }
                            setAdd("bos", first == bos || first == cls)
                        }
                        last = special(single.last)
                        if let last {
                            if !hasConfig {
                                eos = last
                            } else if last != eos {
                                if !types.contains("eot") {
                                    types.append("eot"); config?["eot_token"] = eos
                                } else if !types.contains("eom") {
                                    types.append("eom"); config?["eom_token"] = eos
                                }
                                config?["eos_token"] = last
                                eos = last
                            }
                            setAdd("eos", last == eos)
                        }
                    }
                    if !pair.isEmpty {
                        let start = first != nil && special(pair.first) == first ? 1 : 0
                        let stop = last != nil && special(pair.last) == last ? pair.count - 1 : pair.count
                        pair = start < stop ? Array(pair[start..<stop]) : []
                        func sequence(_ item: [String: Any]?) -> String? { (item?["Sequence"] as? [String: Any])?["id"] as? String }
                        if !pair.isEmpty, sequence(pair.first) == "A", sequence(pair.last) == "B", pair.count > 2 {
                            let middle = Array(pair[1..<(pair.count - 1)])
                            var addSeparator = false
                            if let entry = special(middle.first), entry == sep || entry == eos, last == nil { addSeparator = true }
                            if middle.count == 2, let entry = special(middle[1]), entry == sep || entry == eos { addSeparator = true }
                            setAdd("sep", addSeparator)
                            if addSeparator, (sep ?? "").isEmpty, hasConfig { config?["sep_token"] = eos }
                        }
                    }
                default: break
                }
            }
        }
        if let config, !config.isEmpty {
            chatTemplate = config["chat_template"] as? String ?? files.chatTemplateFile
            let added = json?["added_tokens"] as? [[String: Any]] ?? []
            for type in types {
                if let flag = config["add_\(type)_token"] as? Bool { setAdd(type, flag, onlyIfUnset: true) }
                guard let content = Self.content(config["\(type)_token"]) else { continue }
                let match = added.first { ($0["content"] as? String).map { Array($0.utf8) == Array(content.utf8) } ?? false }
                setID(type, match?["id"])
            }
        }
        if let config = files.config {
            for type in types {
                setID(type, config["\(type)_token_id"] ?? (config["text_config"] as? [String: Any])?["\(type)_token_id"])
            }
        }
    }

    /// The keys in add_to_gguf's order: ids, add flags, chat template, normalizer flags.
    /// Makes `id` the token of `type` (InternLM2's chat models write `<|im_end|>` as EOS).
    mutating func replaceID(_ type: String, with id: Int) {
        if let index = ids.firstIndex(where: { $0.type == type }) { ids[index].id = id } else { ids.append((type, id)) }
    }

    var entries: [(key: String, value: GGUFValue)] {
        var entries: [(key: String, value: GGUFValue)] = []
        for (type, id) in ids {
            if let key = Self.idKeys[type], let value = UInt32(exactly: id) { entries.append((key, .uint32(value))) }
        }
        for (type, value) in adds { if let key = Self.addKeys[type] { entries.append((key, .bool(value))) } }
        if let chatTemplate { entries.append(("tokenizer.chat_template", .string(chatTemplate))) }
        if let lowercase { entries.append(("tokenizer.ggml.normalizer.lowercase", .bool(lowercase))) }
        if let stripAccents { entries.append(("tokenizer.ggml.normalizer.strip_accents", .bool(stripAccents))) }
        return entries
    }
}
