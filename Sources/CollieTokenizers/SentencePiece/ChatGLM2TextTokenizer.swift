import Foundation

/// ChatGLM2's and ChatGLM3's tokenizer (`tokenizer.model` behind THUDM's `ChatGLMTokenizer`, `tokenization_chatglm.py`
/// of chatglm2-6b / chatglm3-6b): the SentencePiece model's ids, then `[MASK] [gMASK] [sMASK] sop eop` — and for
/// ChatGLM3 the role tokens `<|system|> <|user|> <|assistant|> <|observation|>` — numbered after its pieces.
/// Text encodes as SentencePiece encodes it (a piece spelled like a special token takes that token's id; role-token
/// text stays text unless `encode_special_tokens` is set, so a user cannot write a role); with special tokens,
/// `[gMASK] sop` come first (`build_inputs_with_special_tokens`).
///
/// Decoding: ChatGLM2's wrapper maps every special id, `<s>`, `</s>` and `<unk>` to an empty token; ChatGLM3's maps
/// its special ids to their text (transformers' `convert_ids_to_tokens`, then SentencePiece's `DecodePieces`, which
/// writes a piece it does not know as it is).
struct ChatGLM2TextTokenizer {
    static let specialTokens = ["[MASK]", "[gMASK]", "[sMASK]", "sop", "eop"]
    static let roleTokens = ["<|system|>", "<|user|>", "<|assistant|>", "<|observation|>"]

    let model: SentencePieceTokenizer
    /// ChatGLM3's: the role tokens follow the five specials.
    let hasRoles: Bool
    /// `encode_special_tokens`: role-token text in the input becomes the role's id.
    let encodesRoleText: Bool
    let specialTokens: [String]
    private let empty: Set<Int>

    init(model: SentencePieceTokenizer, hasRoles: Bool = false, encodesRoleText: Bool = false) {
        self.model = model
        self.hasRoles = hasRoles
        self.encodesRoleText = hasRoles && encodesRoleText
        specialTokens = Self.specialTokens + (hasRoles ? Self.roleTokens : [])
        let dropped = Set([model.bosID, model.eosID, Int(model.unknownID)].compactMap { $0 })
        empty = hasRoles ? dropped : dropped.union(model.pieces.count..<(model.pieces.count + specialTokens.count))
    }

    /// One past the largest id.
    var count: Int { model.pieces.count + specialTokens.count }

    func token(forID id: Int) -> String? {
        guard id >= 0, id < count else { return nil }
        return id < model.pieces.count ? model.pieces[id] : specialTokens[id - model.pieces.count]
    }

    func id(forToken token: String) -> Int? {
        specialTokens.firstIndex(of: token).map { model.pieces.count + $0 } ?? model.id(ofToken: token)
    }

    /// The `[gMASK] sop` that `build_inputs_with_special_tokens` puts first.
    var prefix: [Int] { [model.pieces.count + 1, model.pieces.count + 3] }

    func encode(_ text: String) -> [Int] {
        guard encodesRoleText else { return encodePieces(text) }
        var ids: [Int] = []
        var rest = text[...]
        while let (range, role) = Self.roleTokens.compactMap({ role in rest.range(of: role).map { ($0, role) } })
            .min(by: { $0.0.lowerBound < $1.0.lowerBound }) {
            if range.lowerBound > rest.startIndex { ids += encodePieces(String(rest[..<range.lowerBound])) }
            ids.append(id(forToken: role)!)
            rest = rest[range.upperBound...]
        }
        if !rest.isEmpty { ids += encodePieces(String(rest)) }
        return ids
    }

    private func encodePieces(_ text: String) -> [Int] {
        model.encode(text).map { id in
            specialTokens.firstIndex(of: model.pieces[Int(id)]).map { model.pieces.count + $0 } ?? Int(id)
        }
    }

    func decode(_ ids: [Int]) -> String {
        guard hasRoles else { return model.decode(ids.filter { !empty.contains($0) }, skipSpecialTokens: false) }
        var text = "", run: [Int] = []
        func flush() {
            guard !run.isEmpty else { return }
            text += model.decode(run, skipSpecialTokens: false, afterText: !text.isEmpty)
            run.removeAll()
        }
        for id in ids where !empty.contains(id) {
            if id >= model.pieces.count {
                flush()
                text += specialTokens[id - model.pieces.count]
            } else {
                run.append(id)
            }
        }
        flush()
        return text
    }

    /// ChatGLM3's conversation layout (`build_chat_input`): `[gMASK] sop`, then per message its role token, the
    /// SentencePiece ids of its metadata and a newline, and of its content; then `<|assistant|>`.
    func chatInput(_ messages: [(role: String, metadata: String, content: String)]) throws -> [Int] {
        var ids = prefix
        for message in messages {
            guard hasRoles, let role = Self.roleTokens.firstIndex(of: "<|\(message.role)|>") else {
                throw TokenizerError(file: "", "ChatGLM3 has no role \"\(message.role)\" (system, user, assistant, observation)")
            }
            ids.append(model.pieces.count + Self.specialTokens.count + role)
            ids += model.encode(message.metadata + "\n").map(Int.init) + model.encode(message.content).map(Int.init)
        }
        return ids + [id(forToken: "<|assistant|>")!]
    }

    /// Whether a ChatGLM tokenizer folder is ChatGLM3's: its tokenizer_config.json names a role token or
    /// chatglm3 (`name_or_path`), or its tokenization_chatglm.py defines `<|observation|>`.
    static func hasRoles(folder: URL, configuration: TokenizerConfiguration) -> Bool {
        if configuration.nameOrPath?.lowercased().contains("chatglm3") == true { return true }
        let config = folder.appendingPathComponent("tokenizer_config.json")
        if let bytes = try? Tokenizer.readFile(config), String(decoding: bytes, as: UTF8.self).contains("<|user|>") {
            return true
        }
        // The remote code is read only when it is a file of a source file's size (≤ 1 MiB).
        let code = folder.appendingPathComponent("tokenization_chatglm.py")
        if let size = (try? FileManager.default.attributesOfItem(atPath: code.resolvingSymlinksInPath().path))?[.size] as? Int,
           size <= 1 << 20, let bytes = try? Tokenizer.readFile(code),
           String(decoding: bytes, as: UTF8.self).contains("<|observation|>") {
            return true
        }
        return false
    }
}
