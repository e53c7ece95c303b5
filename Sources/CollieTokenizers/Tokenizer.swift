import Dispatch
import Foundation

/// Text ↔ token ids for a model, from a Hugging Face tokenizer.json or a SentencePiece `.model`, giving
/// the same ids as the reference library of that format (`tokenizers`, `sentencepiece`).
///
/// ```swift
/// let tokenizer = try Tokenizer(contentsOf: URL(fileURLWithPath: "Llama-3-8B"))  // a model folder
/// let ids = tokenizer.encode("Hello world")              // with BOS, as the tokenizer adds it
/// let text = try tokenizer.decode(ids, skipSpecialTokens: true)
/// ```
///
/// A tokenizer is immutable and safe to use from several threads at once.
public final class Tokenizer: @unchecked Sendable {
    /// Which kind of file the tokenizer was read from.
    public enum Format: String, Sendable {
        case tokenizerJSON = "tokenizer.json"
        /// GPT-2's original files, vocab.json + merges.txt (+ added_tokens.json): MOSS, CodeGen.
        case vocabularyAndMerges = "vocab.json + merges.txt"
        case sentencePiece = "SentencePiece model"
        /// ChatGLM-6B's `ice_text.model` behind its Python wrapper (`tokenizer_class: ChatGLMTokenizer`).
        case chatGLM6B = "ChatGLM-6B ice_text.model"
        /// ChatGLM2's `tokenizer.model` behind its Python wrapper (`tokenizer_class: ChatGLMTokenizer`).
        case chatGLM2 = "ChatGLM2 tokenizer.model"
        /// ChatGLM3's: ChatGLM2's with the role tokens `<|system|> <|user|> <|assistant|> <|observation|>`.
        case chatGLM3 = "ChatGLM3 tokenizer.model"
    }

    private enum Backend {
        case pipeline(TokenizerPipeline)
        case sentencePiece(SentencePieceTokenizer)
        case chatGLM6B(ChatGLM6BTextTokenizer)
        case chatGLM2(ChatGLM2TextTokenizer)
    }

    private let backend: Backend
    /// The settings read beside the tokenizer file (tokenizer_config.json, special_tokens_map.json).
    public let configuration: TokenizerConfiguration
    /// Whether this tokenizer came from a tokenizer.json or a SentencePiece model.
    public let format: Format
    /// The BOS, EOS, unknown and padding token ids, where the tokenizer has them.
    public let bosTokenID: Int?, eosTokenID: Int?, unknownTokenID: Int?, padTokenID: Int?
    /// What a training prompt ends with before its answer, where the model expects special tokens there:
    /// ChatGLM-6B's `[gMASK] <sop>` (its pair layout is prompt, `[gMASK]`, `<sop>`, answer, `<eop>`). Empty for
    /// tokenizers that put special tokens only around a whole text.
    public let promptSuffix: [Int]
    private let addsBOS: Bool, addsEOS: Bool
    /// With `add_bos_token`/`add_eos_token` in the configuration, they decide the special tokens instead
    /// of the tokenizer.json post-processor (as `transformers` does).
    private let overridesPostProcessor: Bool
    private let workspaces = WorkspacePool()

    // MARK: - Loading

    /// Loads a model folder (tokenizer.json, else vocab.json + merges.txt, else tokenizer.model — ChatGLM2's with `tokenizer_class:
    /// ChatGLMTokenizer` — else ChatGLM-6B's ice_text.model, plus tokenizer_config.json and
    /// special_tokens_map.json when present), a tokenizer.json file or ChatGLM-6B's ice_text.model (with the
    /// configs beside it), or a SentencePiece `.model` file.
    public convenience init(contentsOf url: URL) throws {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder) else {
            throw TokenizerError(file: url.path, "no such file or folder")
        }
        if isFolder.boolValue {
            let configuration = try TokenizerConfiguration(folder: url)
            let json = url.appendingPathComponent("tokenizer.json")
            let model = url.appendingPathComponent("tokenizer.model")
            let iceText = url.appendingPathComponent("ice_text.model")
            if FileManager.default.fileExists(atPath: json.path) {
                try self.init(tokenizerJSON: json, configuration: configuration)
            } else if VocabularyAndMerges.isPresent(in: url) {
                let document = try VocabularyAndMerges.tokenizerJSON(folder: url, configuration: configuration,
                                                                     addPrefixSpace: configuration.addPrefixSpace ?? false)
                try self.init(tokenizerJSON: document, file: url.appendingPathComponent("vocab.json").path,
                              configuration: configuration, format: .vocabularyAndMerges)
            } else if FileManager.default.fileExists(atPath: model.path), configuration.tokenizerClass == "ChatGLMTokenizer" {
                try self.init(chatGLM2Model: Data(try Tokenizer.readFile(model)), file: model.path, configuration: configuration,
                              roleTokens: ChatGLM2TextTokenizer.hasRoles(folder: url, configuration: configuration))
            } else if FileManager.default.fileExists(atPath: model.path) {
                try self.init(sentencePieceModel: model, configuration: configuration)
            } else if FileManager.default.fileExists(atPath: iceText.path) {
                try self.init(chatGLM6BModel: iceText, configuration: configuration)
            } else {
                throw TokenizerError(file: url.path, "the folder has neither tokenizer.json nor vocab.json + merges.txt "
                                     + "nor tokenizer.model nor ice_text.model")
            }
        } else if url.pathExtension == "json" {
            try self.init(tokenizerJSON: url, configuration: try TokenizerConfiguration(folder: url.deletingLastPathComponent()))
        } else if url.lastPathComponent == "ice_text.model" {
            try self.init(chatGLM6BModel: url, configuration: try TokenizerConfiguration(folder: url.deletingLastPathComponent()))
        } else if url.pathExtension == "model" {
            try self.init(sentencePieceModel: url)
        } else {
            throw TokenizerError(file: url.path, "unknown tokenizer file type (expected a folder, a .json or a .model)")
        }
    }

    /// Loads a Hugging Face tokenizer.json.
    public convenience init(tokenizerJSON url: URL, configuration: TokenizerConfiguration = TokenizerConfiguration())
        throws {
        try self.init(tokenizerJSON: try Tokenizer.readFile(url), file: url.path, configuration: configuration)
    }

    /// Reads a Hugging Face tokenizer.json from its bytes (any bytes: a malformed file is a `TokenizerError` or
    /// `JSONReadError` naming `file`, never a crash).
    public convenience init(tokenizerJSON bytes: [UInt8], file: String = "tokenizer.json",
                            configuration: TokenizerConfiguration = TokenizerConfiguration()) throws {
        try self.init(tokenizerJSON: bytes, file: file, configuration: configuration, format: .tokenizerJSON)
    }

    private init(tokenizerJSON bytes: [UInt8], file: String, configuration: TokenizerConfiguration, format: Format) throws {
        let pipeline = try TokenizerPipeline(json: bytes, file: file)
        backend = .pipeline(pipeline)
        self.format = format
        self.configuration = configuration
        func id(_ token: String?) -> Int? { token.flatMap { pipeline.id(ofToken: $0) } }
        bosTokenID = id(configuration.bosToken)
        eosTokenID = id(configuration.eosToken)
        unknownTokenID = id(configuration.unknownToken)
        padTokenID = id(configuration.padToken)
        overridesPostProcessor = configuration.addBOSToken != nil || configuration.addEOSToken != nil
        promptSuffix = []
        addsBOS = (configuration.addBOSToken ?? false) && bosTokenID != nil
        addsEOS = (configuration.addEOSToken ?? false) && eosTokenID != nil
    }

    /// Loads a SentencePiece model file. With special tokens, encoding adds BOS (unless the configuration's
    /// `add_bos_token` is false) and EOS only if `add_eos_token` is true — as Llama's tokenizer does.
    public convenience init(sentencePieceModel url: URL, configuration: TokenizerConfiguration = TokenizerConfiguration())
        throws {
        try self.init(sentencePieceModel: Data(try Tokenizer.readFile(url)), file: url.path, configuration: configuration)
    }

    /// Reads a SentencePiece model from its bytes (any bytes: a malformed model is a `TokenizerError` naming
    /// `file`, never a crash).
    public init(sentencePieceModel data: Data, file: String = "tokenizer.model",
                configuration: TokenizerConfiguration = TokenizerConfiguration()) throws {
        let model = try SentencePieceTokenizer(data: data, file: file)
        backend = .sentencePiece(model)
        format = .sentencePiece
        self.configuration = configuration
        bosTokenID = configuration.bosToken.flatMap { model.id(ofToken: $0) } ?? model.bosID
        eosTokenID = configuration.eosToken.flatMap { model.id(ofToken: $0) } ?? model.eosID
        unknownTokenID = Int(model.unknownID)
        padTokenID = configuration.padToken.flatMap { model.id(ofToken: $0) } ?? model.padID
        overridesPostProcessor = true
        promptSuffix = []
        addsBOS = (configuration.addBOSToken ?? true) && bosTokenID != nil
        addsEOS = (configuration.addEOSToken ?? false) && eosTokenID != nil
    }

    /// Loads ChatGLM-6B's tokenizer: its SentencePiece `ice_text.model` behind THUDM's `ChatGLMTokenizer`
    /// (ids shifted by `num_image_tokens`, whitespace markers, `[gMASK] <sop>` after the text).
    public convenience init(chatGLM6BModel url: URL, configuration: TokenizerConfiguration = TokenizerConfiguration())
        throws {
        try self.init(chatGLM6BModel: Data(try Tokenizer.readFile(url)), file: url.path, configuration: configuration)
    }

    /// Reads ChatGLM-6B's tokenizer from the bytes of its `ice_text.model`; `configuration` gives
    /// `num_image_tokens` (20000 when absent, as the wrapper's default) and the special tokens' names.
    /// - Throws: `TokenizerError` if the model lacks `[gMASK]` or `<sop>`.
    public init(chatGLM6BModel data: Data, file: String = "ice_text.model",
                configuration: TokenizerConfiguration = TokenizerConfiguration()) throws {
        let glm = ChatGLM6BTextTokenizer(model: try SentencePieceTokenizer(data: data, file: file),
                                         configuration: configuration)
        backend = .chatGLM6B(glm)
        format = .chatGLM6B
        self.configuration = configuration
        guard let gMASK = glm.id(forToken: "[gMASK]"), let sop = glm.id(forToken: configuration.bosToken ?? "<sop>") else {
            throw TokenizerError(file: file, "a ChatGLM-6B model needs the pieces [gMASK] and <sop>")
        }
        bosTokenID = sop
        eosTokenID = glm.id(forToken: configuration.eosToken ?? "<eop>")
        unknownTokenID = glm.id(forToken: configuration.unknownToken ?? "<unk>")
        padTokenID = glm.padID
        promptSuffix = [gMASK, sop]
        overridesPostProcessor = true
        addsBOS = false
        addsEOS = false
    }

    /// Loads ChatGLM2's tokenizer: its SentencePiece `tokenizer.model` behind THUDM's `ChatGLMTokenizer`
    /// (`[MASK] [gMASK] [sMASK] sop eop` after the pieces, `[gMASK] sop` before the text).
    public convenience init(chatGLM2Model url: URL, configuration: TokenizerConfiguration = TokenizerConfiguration())
        throws {
        try self.init(chatGLM2Model: Data(try Tokenizer.readFile(url)), file: url.path, configuration: configuration)
    }

    /// Reads ChatGLM2's tokenizer from the bytes of its `tokenizer.model`; with `roleTokens`, ChatGLM3's (its role
    /// tokens after ChatGLM2's five, `encode_special_tokens` from the configuration).
    public init(chatGLM2Model data: Data, file: String = "tokenizer.model",
                configuration: TokenizerConfiguration = TokenizerConfiguration(), roleTokens: Bool = false) throws {
        let glm = ChatGLM2TextTokenizer(model: try SentencePieceTokenizer(data: data, file: file), hasRoles: roleTokens,
                                        encodesRoleText: configuration.encodeSpecialTokens ?? false)
        backend = .chatGLM2(glm)
        format = roleTokens ? .chatGLM3 : .chatGLM2
        self.configuration = configuration
        bosTokenID = glm.model.bosID
        eosTokenID = glm.model.eosID
        unknownTokenID = Int(glm.model.unknownID)
        padTokenID = Int(glm.model.unknownID)
        promptSuffix = []
        overridesPostProcessor = true
        addsBOS = false
        addsEOS = false
    }

    static func readFile(_ url: URL) throws -> [UInt8] {
        // Regular files only: a FIFO would hang the reader and a device feed it endless bytes.
        let resolved = url.resolvingSymlinksInPath().path
        guard FileManager.default.fileExists(atPath: resolved) else {
            throw TokenizerError(file: url.path, "the file does not exist")
        }
        let type = (try? FileManager.default.attributesOfItem(atPath: resolved))?[.type] as? FileAttributeType
        guard type == .typeRegular else { throw TokenizerError(file: url.path, "is not a regular file") }
        do {
            return [UInt8](try Data(contentsOf: url))
        } catch {
            throw TokenizerError(file: url.path, "cannot read the file: \(error.localizedDescription)")
        }
    }

    // MARK: - Encoding

    /// The ids of `text`. With `addSpecialTokens`, the tokenizer's special tokens (BOS, …) are added as
    /// its post-processor or configuration says; special-token text inside `text` is matched either way.
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        let ids: [Int32]
        switch backend {
        case .pipeline(let pipeline):
            let workspace = workspaces.take()
            ids = pipeline.encode(text, addSpecialTokens: addSpecialTokens && !overridesPostProcessor, workspace: workspace)
            workspaces.give(workspace)
        case .sentencePiece(let model):
            ids = model.encode(text)
        case .chatGLM6B(let glm):
            return glm.encode(text) + (addSpecialTokens ? promptSuffix : [])
        case .chatGLM2(let glm):
            // build_inputs_with_special_tokens: [gMASK] sop first.
            return (addSpecialTokens ? glm.prefix : []) + glm.encode(text)
        }
        guard addSpecialTokens && overridesPostProcessor && (addsBOS || addsEOS) else { return ids.map(Int.init) }
        var result: [Int] = []
        result.reserveCapacity(ids.count + 2)
        if addsBOS, let bosTokenID { result.append(bosTokenID) }
        result.append(contentsOf: ids.lazy.map(Int.init))
        if addsEOS, let eosTokenID { result.append(eosTokenID) }
        return result
    }

    /// The ids of each text, encoded on all cores.
    public func encode(batch texts: [String], addSpecialTokens: Bool = true) -> [[Int]] {
        var results = [[Int]](repeating: [], count: texts.count)
        let chunks = max(1, min(texts.count, ProcessInfo.processInfo.activeProcessorCount))
        results.withUnsafeMutableBufferPointer { output in
            // Each index is written by exactly one chunk.
            nonisolated(unsafe) let output = output
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                var index = chunk
                while index < texts.count {
                    output[index] = encode(texts[index], addSpecialTokens: addSpecialTokens)
                    index += chunks
                }
            }
        }
        return results
    }

    // MARK: - Decoding

    /// The text of `ids`. With `skipSpecialTokens`, special tokens (BOS, EOS, …) are left out.
    /// - Throws: `TokenizerError` if an id has no token.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) throws -> String {
        for id in ids where token(forID: id) == nil {
            throw TokenizerError(file: "", "token id \(id) is not in the vocabulary (\(vocabularySize) ids)")
        }
        let text: String
        switch backend {
        case .pipeline(let pipeline): text = pipeline.decode(ids, skipSpecialTokens: skipSpecialTokens)
        case .sentencePiece(let model): text = model.decode(ids, skipSpecialTokens: skipSpecialTokens)
        case .chatGLM6B(let glm): text = glm.decode(ids, skipSpecialTokens: skipSpecialTokens)
        case .chatGLM2(let glm): text = glm.decode(ids)
        }
        return configuration.cleanUpTokenizationSpaces == true ? text.cleanedUpTokenizationSpaces() : text
    }

    // MARK: - Vocabulary

    /// One past the largest token id (model vocabulary and added tokens).
    public var vocabularySize: Int {
        switch backend {
        case .pipeline(let pipeline): return pipeline.idCount
        case .sentencePiece(let model): return model.pieces.count
        case .chatGLM6B(let glm): return glm.count
        case .chatGLM2(let glm): return glm.count
        }
    }

    /// The token string of an id, as the tokenizer file spells it (`Ġhello`, `▁hello`, `<s>`).
    public func token(forID id: Int) -> String? {
        guard id >= 0 else { return nil }
        switch backend {
        case .pipeline(let pipeline): return pipeline.token(of: id)
        case .sentencePiece(let model): return id < model.pieces.count ? model.pieces[id] : nil
        case .chatGLM6B(let glm): return glm.token(forID: id)
        case .chatGLM2(let glm): return glm.token(forID: id)
        }
    }

    /// The id of a token string as the tokenizer file spells it.
    public func id(forToken token: String) -> Int? {
        switch backend {
        case .pipeline(let pipeline): return pipeline.id(ofToken: token)
        case .sentencePiece(let model): return model.id(ofToken: token)
        case .chatGLM6B(let glm): return glm.id(forToken: token)
        case .chatGLM2(let glm): return glm.id(forToken: token)
        }
    }

    // MARK: - Chat

    /// ChatGLM3's conversation ids, as its tokenizer's `build_chat_input` lays them out: `[gMASK] sop`, per message
    /// its role token (`system`, `user`, `assistant`, `observation`), its metadata and a newline, its content; then
    /// `<|assistant|>` for the reply. The last message is the query (its metadata is not written, as there).
    /// - Throws: `TokenizerError` for another tokenizer or an unknown role.
    public func chatGLM3Input(_ messages: [(role: String, metadata: String, content: String)]) throws -> [Int] {
        guard case .chatGLM2(let glm) = backend, glm.hasRoles else {
            throw TokenizerError(file: "", "only ChatGLM3's tokenizer lays out a conversation by role tokens")
        }
        var messages = messages
        if !messages.isEmpty { messages[messages.count - 1].metadata = "" }
        return try glm.chatInput(messages)
    }

    /// ChatGLM3's trained reply after `<|assistant|>`, as its finetune demo trains it: the SentencePiece ids of
    /// "\n" (the empty metadata's line) and of `content`, then EOS (`</s>`).
    /// - Throws: `TokenizerError` for another tokenizer.
    public func chatGLM3Reply(_ content: String) throws -> [Int] {
        guard case .chatGLM2(let glm) = backend, glm.hasRoles, let eos = glm.model.eosID else {
            throw TokenizerError(file: "", "only ChatGLM3's tokenizer lays out a conversation by role tokens")
        }
        return glm.model.encode("\n").map(Int.init) + glm.model.encode(content).map(Int.init) + [eos]
    }

    /// The ids that end a reply in a conversation besides EOS: ChatGLM3's `<|user|>` and `<|observation|>` (its
    /// remote code's `chat` stops on them); none for other tokenizers.
    public var chatStopTokenIDs: [Int] {
        guard case .chatGLM2(let glm) = backend, glm.hasRoles else { return [] }
        return ["<|user|>", "<|observation|>"].compactMap { glm.id(forToken: $0) }
    }

    /// The tokens added on top of the model's vocabulary (tokenizer.json `added_tokens`).
    public var addedTokens: [AddedToken] {
        switch backend {
        case .pipeline(let pipeline): return pipeline.addedTokens
        case .sentencePiece, .chatGLM6B, .chatGLM2: return []
        }
    }
}

/// Encoder workspaces for concurrent callers: each call borrows one.
private final class WorkspacePool: @unchecked Sendable {
    private var free: [EncoderWorkspace] = []
    private let lock = NSLock()

    func take() -> EncoderWorkspace {
        lock.lock()
        defer { lock.unlock() }
        return free.popLast() ?? EncoderWorkspace()
    }

    func give(_ workspace: EncoderWorkspace) {
        lock.lock()
        free.append(workspace)
        lock.unlock()
    }
}
