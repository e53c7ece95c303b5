/// ChatGLM2's tokenizer (THUDM's `tokenization_chatglm.py` of chatglm2-6b over its SentencePiece
/// `tokenizer.model`), as `transformers` runs it:
///
/// - `[MASK] [gMASK] [sMASK] sop eop` take the ids after the SentencePiece pieces;
/// - text encodes as SentencePiece encodes it (a piece spelled like one of those five takes its id);
/// - decoding drops those five, `<s>`, `</s>` and `<unk>` (their tokens are empty strings), with or without
///   skipping special tokens (`transformers` registers none for it).
struct ChatGLM2TextTokenizer {
    static let specialTokens = ["[MASK]", "[gMASK]", "[sMASK]", "sop", "eop"]

    let model: SentencePieceTokenizer
    private let dropped: Set<Int>

    init(model: SentencePieceTokenizer) {
        self.model = model
        dropped = Set(model.pieces.count..<(model.pieces.count + Self.specialTokens.count))
            .union([model.bosID, model.eosID, Int(model.unknownID)].compactMap { $0 })
    }

    /// One past the largest id.
    var count: Int { model.pieces.count + Self.specialTokens.count }

    func token(forID id: Int) -> String? {
        guard id >= 0, id < count else { return nil }
        return id < model.pieces.count ? model.pieces[id] : Self.specialTokens[id - model.pieces.count]
    }

    func id(forToken token: String) -> Int? {
        Self.specialTokens.firstIndex(of: token).map { model.pieces.count + $0 } ?? model.id(ofToken: token)
    }

    func encode(_ text: String) -> [Int] {
        model.encode(text).map { id in
            Self.specialTokens.firstIndex(of: model.pieces[Int(id)]).map { model.pieces.count + $0 } ?? Int(id)
        }
    }

    func decode(_ ids: [Int]) -> String {
        model.decode(ids.filter { !dropped.contains($0) }, skipSpecialTokens: false)
    }
}
