import Foundation

/// One piece of a SentencePiece model as the file lists it: its text, score and kind (what a GGUF export writes as
/// `tokenizer.ggml.tokens`, `scores` and `token_type`).
public struct SentencePiecePiece: Equatable, Sendable {
    /// The piece kinds, numbered as SentencePiece and GGUF's token types number them.
    public enum Kind: Int, Sendable {
        case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    public let text: String
    public let score: Float
    public let kind: Kind

    /// The pieces of a serialized SentencePiece model, in id order.
    /// - Throws: `TokenizerError` naming `file` when the bytes are not a model.
    public static func pieces(ofModel data: Data, file: String = "tokenizer.model") throws -> [SentencePiecePiece] {
        let model: Sentencepiece_ModelProto
        do {
            model = try Sentencepiece_ModelProto(serializedBytes: data)
        } catch {
            throw TokenizerError(file: file, "not a SentencePiece model (protobuf ModelProto): \(error)")
        }
        return model.pieces.map {
            SentencePiecePiece(text: $0.piece, score: $0.score, kind: Kind(rawValue: $0.type.rawValue) ?? .normal)
        }
    }

    /// Whether the model's normalizer puts a space before the text (`add_dummy_prefix`, true when absent).
    /// - Throws: `TokenizerError` naming `file` when the bytes are not a model.
    public static func addsDummyPrefix(model data: Data, file: String = "tokenizer.model") throws -> Bool {
        do {
            return try Sentencepiece_ModelProto(serializedBytes: data).normalizerSpec.addDummyPrefix
        } catch {
            throw TokenizerError(file: file, "not a SentencePiece model (protobuf ModelProto): \(error)")
        }
    }
}
