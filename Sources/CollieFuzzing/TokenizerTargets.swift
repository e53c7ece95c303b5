import CollieTokenizers
import Foundation

extension FuzzEntryPoints {
    /// The text every loaded tokenizer encodes and decodes: ASCII, a leading space, digits, CJK, an emoji (byte
    /// fallback) and special-token text.
    static let sampleText = " Hello, world! 123 你好 🦙\n<s></s><|im_start|>"

    /// A tokenizer.json, loaded and used to encode and decode `sampleText`.
    static func tokenizerJSON(_ input: [UInt8]) throws {
        try exercise(Tokenizer(tokenizerJSON: try ScratchFile.write(input, as: "tokenizer.json")))
    }

    /// A SentencePiece `.model` (protobuf), loaded and used to encode and decode `sampleText`.
    static func sentencePieceModel(_ input: [UInt8]) throws {
        try exercise(Tokenizer(sentencePieceModel: try ScratchFile.write(input, as: "tokenizer.model")))
    }

    private static func exercise(_ tokenizer: Tokenizer) throws {
        let ids = tokenizer.encode(sampleText)
        _ = try tokenizer.decode(ids)
        _ = try tokenizer.decode(ids, skipSpecialTokens: true)
    }
}
