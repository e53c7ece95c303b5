import Foundation
import SwiftProtobuf

/// Vocabulary expansion of a SentencePiece model: the base model with every piece of a second model that the base
/// lacks appended at the end, scored 0 and of type NORMAL; the base's trainer and normalizer specs are kept. This is
/// the recipe of Chinese-LLaMA's merge_tokenizers.py, which CoLLiE's expand_vocab example follows: the base's ids do
/// not move, so a model trained on the base keeps its embedding rows and only gains new ones.
///
/// ```swift
/// let merge = try SentencePieceMerge(base: llamaModelURL, add: chineseModelURL)
/// try merge.model.write(to: out)      // 32,000 + 17,953 pieces for LLaMA-2 + CoLLiE's Chinese model
/// ```
///
/// The serialized result is byte-identical to sentencepiece's Python protobuf (`ModelProto.SerializeToString()`)
/// after the same merge when the base file is itself serialized canonically (fields in number order, as
/// sentencepiece writes it): the base's piece records are kept as they are, the new ones follow them, and the rest
/// of the base file (trainer spec, normalizer spec, …) follows unchanged, with its top-level fields in number order.
public struct SentencePieceMerge: Sendable {
    /// The merged model, a serialized `sentencepiece.ModelProto` (a `tokenizer.model` file).
    public let model: Data
    /// The number of pieces of the base model (the ids that keep their meaning).
    public let basePieceCount: Int
    /// The pieces appended, in the added model's order (ids `basePieceCount...`).
    public let addedPieces: [String]
    /// The base's BOS, EOS and unknown pieces (by the trainer spec's ids; nil where an id is unset), for a
    /// tokenizer_config.json beside the merged model.
    public let bosPiece: String?, eosPiece: String?, unknownPiece: String?

    /// The number of pieces of the merged model.
    public var pieceCount: Int { basePieceCount + addedPieces.count }

    /// Merges the model files at `base` and `add`.
    /// - Throws: `TokenizerError` naming the file that is missing, unreadable or not a SentencePiece model.
    public init(base: URL, add: URL) throws {
        try self.init(base: Data(try Tokenizer.readFile(base)), baseFile: base.path,
                      add: Data(try Tokenizer.readFile(add)), addFile: add.path)
    }

    /// Merges two serialized models; `baseFile` and `addFile` name them in errors.
    public init(base: Data, baseFile: String = "base model", add: Data, addFile: String = "added model") throws {
        // Both must be models sentencepiece can run (the full checks of loading, not only the protobuf parse).
        _ = try SentencePieceTokenizer(data: base, file: baseFile)
        _ = try SentencePieceTokenizer(data: add, file: addFile)
        let baseModel = try Sentencepiece_ModelProto(serializedBytes: base)
        let addModel = try Sentencepiece_ModelProto(serializedBytes: add)

        // Pieces compare by their UTF-8 bytes, as Python's set of str does; Swift's String equality would treat
        // canonically equivalent spellings (a precomposed é and e + U+0301) as one piece.
        var known = Set(baseModel.pieces.map { Array($0.piece.utf8) })
        var added: [String] = []
        var records = Data()
        for piece in addModel.pieces where !known.contains(Array(piece.piece.utf8)) {
            known.insert(Array(piece.piece.utf8))
            var newPiece = Sentencepiece_ModelProto.SentencePiece()
            newPiece.piece = piece.piece
            newPiece.score = 0
            let bytes: [UInt8] = try newPiece.serializedBytes()
            records.append(ProtobufWire.fieldKey(1, wireType: ProtobufWire.lengthDelimited))
            records.append(ProtobufWire.varint(UInt64(bytes.count)))
            records.append(contentsOf: bytes)
            added.append(piece.piece)
        }

        // The base file's top-level records: pieces (field 1) first, then the new pieces, then the others in field
        // order (a stable sort keeps repeated fields in their order).
        let fields = try ProtobufWire.topLevelFields(of: base, file: baseFile)
        var merged = Data(capacity: base.count + records.count)
        for field in fields where field.number == 1 { merged.append(base[field.range]) }
        merged.append(records)
        let others = fields.enumerated().filter { $0.element.number != 1 }
            .sorted { ($0.element.number, $0.offset) < ($1.element.number, $1.offset) }
        for (_, field) in others { merged.append(base[field.range]) }

        model = merged
        basePieceCount = baseModel.pieces.count
        addedPieces = added
        let spec = baseModel.trainerSpec, pieces = baseModel.pieces
        func piece(_ id: Int32) -> String? { id >= 0 && Int(id) < pieces.count ? pieces[Int(id)].piece : nil }
        bosPiece = piece(spec.bosID)
        eosPiece = piece(spec.eosID)
        unknownPiece = piece(spec.unkID)
        // The result must load as a model (it always should: a check, not a guess).
        _ = try SentencePieceTokenizer(data: merged, file: "the merged model")
    }
}

/// The few protobuf wire-format pieces the merge needs: reading a message's top-level records as byte ranges,
/// and writing a key and a varint.
enum ProtobufWire {
    static let lengthDelimited: UInt64 = 2

    static func fieldKey(_ number: UInt64, wireType: UInt64) -> Data { varint(number << 3 | wireType) }

    static func varint(_ value: UInt64) -> Data {
        var value = value
        var bytes = Data()
        repeat {
            let low = UInt8(value & 0x7F)
            value >>= 7
            bytes.append(value == 0 ? low : low | 0x80)
        } while value != 0
        return bytes
    }

    /// Each top-level record of a serialized message: its field number and the byte range of key and value.
    static func topLevelFields(of data: Data, file: String) throws -> [(number: UInt64, range: Range<Int>)] {
        let bytes = [UInt8](data)
        var fields: [(number: UInt64, range: Range<Int>)] = []
        var position = 0
        func readVarint() throws -> UInt64 {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard position < bytes.count, shift < 64 else {
                    throw TokenizerError(file: file, "not a SentencePiece model: a truncated varint at byte \(position)")
                }
                let byte = bytes[position]
                position += 1
                value |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return value }
                shift += 7
            }
        }
        while position < bytes.count {
            let start = position
            let key = try readVarint()
            let length: Int
            switch key & 7 {
            case 0: _ = try readVarint(); length = 0
            case 1: length = 8
            case 2:
                let value = try readVarint()
                guard value <= UInt64(bytes.count - position) else {
                    throw TokenizerError(file: file, "not a SentencePiece model: a record at byte \(start) runs past the end")
                }
                length = Int(value)
            case 5: length = 4
            default: throw TokenizerError(file: file, "not a SentencePiece model: wire type \(key & 7) at byte \(start)")
            }
            guard length <= bytes.count - position else {
                throw TokenizerError(file: file, "not a SentencePiece model: a record at byte \(start) runs past the end")
            }
            position += length
            fields.append((key >> 3, data.startIndex + start ..< data.startIndex + position))
        }
        return fields
    }
}

extension SentencePieceMerge {
    /// A tokenizer_config.json for the merged model, in the keys of transformers' LlamaTokenizer: BOS added, EOS not
    /// (as sentencepiece-based LLaMA tokenizers do), the base's special pieces, `legacy` sentencepiece behavior.
    public func tokenizerConfigurationJSON() throws -> Data {
        struct File: Encodable {
            let addBOSToken = true, addEOSToken = false
            let bosToken: String?, eosToken: String?, unknownToken: String?
            let cleanUpTokenizationSpaces = false
            let legacy = true
            let tokenizerClass = "LlamaTokenizer"
            enum CodingKeys: String, CodingKey {
                case addBOSToken = "add_bos_token", addEOSToken = "add_eos_token", bosToken = "bos_token",
                     eosToken = "eos_token", unknownToken = "unk_token",
                     cleanUpTokenizationSpaces = "clean_up_tokenization_spaces", legacy, tokenizerClass = "tokenizer_class"
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(File(bosToken: bosPiece, eosToken: eosPiece, unknownToken: unknownPiece))
    }
}
