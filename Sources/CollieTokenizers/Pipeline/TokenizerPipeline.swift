/// A tokenizer.json (Hugging Face `tokenizers`) run the way the Rust library runs it: added tokens are cut
/// out of the raw text, the rest is normalized (then normalized added tokens cut out), pre-tokenized into
/// words, and each word encoded by the model; the post-processor adds special tokens.
final class TokenizerPipeline {
    let normalizer: Normalizer?
    let preTokenizer: PreTokenizer?
    let postProcessor: PostProcessor?
    let decoder: TokenDecoder?
    let model: TokenizerModel
    let addedTokens: [AddedToken]
    private let rawMatcher: AddedTokenMatcher
    private let normalizedMatcher: AddedTokenMatcher
    private let addedByID: [Int32: AddedToken]
    /// Added tokens by the bytes of their content (not by `String`, whose equality is canonical equivalence).
    private let addedByContent: [[UInt8]: AddedToken]
    /// What decoding shows for each added token: its content, normalized when the token is (as tokenizers does).
    private let addedSpelling: [Int32: String]

    /// Reads tokenizer.json bytes; `file` names the file in errors.
    init(json bytes: [UInt8], file: String) throws {
        var added: [AddedToken] = []
        var normalizer: Normalizer?, preTokenizer: PreTokenizer?, postProcessor: PostProcessor?
        var decoder: TokenDecoder?, modelConfiguration: TokenizerModelConfiguration?
        try JSONReader.readTokenizerFile(bytes, file: file) { json in
            guard json.peekKind() == .object else { throw json.error("a tokenizer.json must be a JSON object") }
            try json.forEachMember { json, key in
                switch key {
                case "added_tokens":
                    if !json.readNull() { try json.forEachElement { json, _ in added.append(try AddedToken(json: &json)) } }
                case "normalizer": normalizer = json.readNull() ? nil : try Normalizer(json: &json)
                case "pre_tokenizer": preTokenizer = json.readNull() ? nil : try PreTokenizer(json: &json)
                case "post_processor": postProcessor = json.readNull() ? nil : try PostProcessor(json: &json)
                case "decoder": decoder = json.readNull() ? nil : try TokenDecoder(json: &json)
                case "model": modelConfiguration = try TokenizerModelConfiguration(json: &json)
                default: try json.skipValue()  // version, truncation, padding
                }
            }
        }
        guard let modelConfiguration else { throw TokenizerError(file: file, "the file has no \"model\"") }
        let byteLevel = preTokenizer?.containsByteLevel ?? false
        if let after = preTokenizer?.stepsAfterByteLevel, !after.isEmpty {
            throw TokenizerError(file: file, "pre_tokenizer: steps after ByteLevel are not supported")
        }
        model = try TokenizerModel(modelConfiguration, spelling: byteLevel ? .byteLevel : .utf8, file: file)
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.postProcessor = postProcessor
        self.decoder = decoder

        // Ids as `tokenizers` assigns them on loading (the file's ids only trigger its warnings): the model's
        // id for a token it has, else the next id after the model's vocabulary, in the file's order.
        var tokens: [AddedToken] = []
        var seen: Set<[UInt8]> = []
        var nextID = model.vocabulary.tokenCount
        for var token in added where !token.content.isEmpty && seen.insert(Array(token.content.utf8)).inserted {
            if let id = model.vocabulary.id(ofToken: token.content) {
                token.id = id
            } else {
                token.id = nextID
                nextID += 1
            }
            tokens.append(token)
        }
        addedTokens = tokens
        rawMatcher = AddedTokenMatcher(tokens.filter { !$0.normalized }) { Array($0.content.utf8) }
        normalizedMatcher = AddedTokenMatcher(tokens.filter(\.normalized)) { token in
            normalizer?.apply(Array(token.content.utf8)) ?? Array(token.content.utf8)
        }
        addedByID = Dictionary(tokens.map { (Int32($0.id), $0) }, uniquingKeysWith: { _, last in last })
        addedByContent = Dictionary(tokens.map { (Array($0.content.utf8), $0) }, uniquingKeysWith: { _, last in last })
        addedSpelling = Dictionary(tokens.map { token in
            let spelled = token.normalized && normalizer != nil
                ? String(decoding: normalizer!.apply(Array(token.content.utf8)), as: UTF8.self) : token.content
            return (Int32(token.id), spelled)
        }, uniquingKeysWith: { _, last in last })
    }

    /// One past the largest id of the model or an added token.
    var idCount: Int { max(model.vocabulary.idCount, (addedTokens.map(\.id).max() ?? -1) + 1) }

    func token(of id: Int) -> String? {
        if let spelled = addedSpelling[Int32(truncatingIfNeeded: id)] { return spelled }
        return model.vocabulary.token(of: id)
    }

    func id(ofToken token: String) -> Int? {
        if let added = addedByContent[Array(token.utf8)] { return added.id }
        return model.vocabulary.id(ofToken: token)
    }

    func isSpecial(_ id: Int) -> Bool { addedByID[Int32(truncatingIfNeeded: id)]?.special ?? false }

    // MARK: - Encoding

    /// The ids of `text` (with the post-processor's special tokens when `addSpecialTokens`).
    func encode(_ text: String, addSpecialTokens: Bool, workspace: EncoderWorkspace) -> [Int32] {
        var text = text
        var ids: [Int32] = []
        ids.reserveCapacity(text.utf8.count / 3 + 4)
        text.withUTF8 { raw in
            guard let base = raw.baseAddress, !raw.isEmpty else { return }
            var pieces: [AddedTokenMatcher.Piece] = []
            if rawMatcher.isEmpty { pieces = [.text(0..<raw.count)] } else { rawMatcher.split(base, 0..<raw.count, into: &pieces) }
            for piece in pieces {
                switch piece {
                case .token(let id):
                    ids.append(id)
                case .text(let range):
                    if let normalizer {
                        let normalized = normalizer.apply(Array(raw[range]))
                        normalized.withUnsafeBufferPointer { encodeNormalized($0, atTextStart: range.lowerBound == 0, into: &ids, workspace) }
                    } else {
                        encodeNormalized(UnsafeBufferPointer(rebasing: raw[range]), atTextStart: range.lowerBound == 0,
                                         into: &ids, workspace)
                    }
                }
            }
        }
        if addSpecialTokens, let postProcessor { return postProcessor.process(ids) }
        return ids
    }

    private func encodeNormalized(_ text: UnsafeBufferPointer<UInt8>, atTextStart: Bool, into ids: inout [Int32],
                                  _ workspace: EncoderWorkspace) {
        guard let base = text.baseAddress, !text.isEmpty else { return }
        if normalizedMatcher.isEmpty {
            encodeWords(text, atTextStart: atTextStart, into: &ids, workspace)
            return
        }
        var pieces: [AddedTokenMatcher.Piece] = []
        normalizedMatcher.split(base, 0..<text.count, into: &pieces)
        for piece in pieces {
            switch piece {
            case .token(let id): ids.append(id)
            case .text(let range):
                encodeWords(UnsafeBufferPointer(rebasing: text[range]), atTextStart: atTextStart && range.lowerBound == 0,
                            into: &ids, workspace)
            }
        }
    }

    /// Pre-tokenizes a stretch of normalized text and encodes each word.
    private func encodeWords(_ text: UnsafeBufferPointer<UInt8>, atTextStart: Bool, into ids: inout [Int32],
                             _ workspace: EncoderWorkspace) {
        workspace.buffer.removeAll(keepingCapacity: true)
        workspace.buffer.append(contentsOf: text)
        workspace.pieces.removeAll(keepingCapacity: true)
        workspace.pieces.append(0..<text.count)
        preTokenizer?.apply(workspace, atTextStart: atTextStart)
        let model = self.model
        workspace.buffer.withUnsafeBufferPointer { buffer in
            for piece in workspace.pieces {
                model.encode(UnsafeBufferPointer(rebasing: buffer[piece]), into: &ids, workspace: workspace)
            }
        }
    }

    // MARK: - Decoding

    /// The text of `ids`; every id must have a token.
    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        var tokens: [String] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            if let added = addedByID[Int32(truncatingIfNeeded: id)] {
                if skipSpecialTokens && added.special { continue }
                tokens.append(addedSpelling[Int32(truncatingIfNeeded: id)] ?? added.content)
            } else if let token = model.vocabulary.token(of: id) {
                if skipSpecialTokens, addedByContent[Array(token.utf8)]?.special == true { continue }
                tokens.append(token)
            }
        }
        guard let decoder else { return tokens.joined(separator: " ") }
        return decoder.decode(tokens)
    }
}
