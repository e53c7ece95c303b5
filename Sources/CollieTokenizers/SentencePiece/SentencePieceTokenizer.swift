import Foundation
import SwiftProtobuf

/// A SentencePiece model file (`*.model`) as `sentencepiece`'s processor runs it: normalize, segment with
/// BPE or Unigram, then byte-fallback or merge unknown pieces; decoding maps `▁` back to spaces.
final class SentencePieceTokenizer {
    enum Algorithm { case bpe(SentencePieceBPE), unigram(UnigramModel<Float>) }

    let pieces: [String]
    let types: [Sentencepiece_ModelProto.SentencePiece.TypeEnum]
    private let normalPieces: ByteStringTable  // normal, user-defined and unused pieces
    private let reservedPieces: ByteStringTable  // control, unknown and byte pieces
    private let algorithm: Algorithm
    private let normalizer: SentencePieceNormalizer
    let unknownID: Int32
    private let byteFallback: Bool
    private let byteIDs: [Int32]
    private let unknownSurface: String
    private let stripsLeadingSpaceOnDecode: Bool
    private let removeExtraWhitespaces: Bool
    let bosID: Int?, eosID: Int?, padID: Int?

    /// Parses a serialized `ModelProto`; `file` names it in errors.
    init(data: Data, file: String) throws {
        let model: Sentencepiece_ModelProto
        do {
            model = try Sentencepiece_ModelProto(serializedBytes: data)
        } catch {
            throw TokenizerError(file: file, "not a SentencePiece model (protobuf ModelProto): \(error)")
        }
        guard !model.pieces.isEmpty else { throw TokenizerError(file: file, "the model has no pieces") }
        let trainer = model.trainerSpec
        pieces = model.pieces.map(\.piece)
        types = model.pieces.map(\.type)
        byteFallback = trainer.byteFallback
        normalPieces = ByteStringTable(capacity: pieces.count)
        reservedPieces = ByteStringTable(capacity: 300)
        var unknown: Int32 = -1
        var userDefined: [String] = []
        var byteIDs = [Int32](repeating: -1, count: 256)
        for (index, piece) in model.pieces.enumerated() {
            let where_ = "pieces[\(index)] '\(piece.piece)'"
            guard !piece.piece.isEmpty else { throw TokenizerError(file: file, "pieces[\(index)]: a piece must not be empty") }
            let isNormal = [.normal, .userDefined, .unused].contains(piece.type)
            let table = isNormal ? normalPieces : reservedPieces
            guard table.insert(piece.piece, value: Int32(index)) < 0 else {
                throw TokenizerError(file: file, "\(where_) is defined twice")
            }
            switch piece.type {
            case .userDefined: userDefined.append(piece.piece)
            case .unknown:
                guard unknown < 0 else { throw TokenizerError(file: file, "\(where_): a second unknown piece") }
                unknown = Int32(index)
            case .byte:
                guard trainer.byteFallback else {
                    throw TokenizerError(file: file, "\(where_): a byte piece although byte_fallback is false")
                }
                guard let byte = TokenDecoder.byteFallbackValue(piece.piece) else {
                    throw TokenizerError(file: file, "\(where_): a byte piece must be spelled <0xXX>")
                }
                byteIDs[Int(byte)] = Int32(index)
            default: break
            }
        }
        guard unknown >= 0 else { throw TokenizerError(file: file, "the model has no unknown piece (type UNKNOWN)") }
        if trainer.byteFallback, byteIDs.contains(-1) {
            throw TokenizerError(file: file, "byte_fallback is true but the model lacks some of the 256 byte pieces")
        }
        unknownID = unknown
        self.byteIDs = byteIDs
        unknownSurface = trainer.unkSurface
        let spec = model.normalizerSpec
        normalizer = try SentencePieceNormalizer(spec: spec, treatWhitespaceAsSuffix: trainer.treatWhitespaceAsSuffix,
                                                 userDefinedSymbols: userDefined, file: file)
        stripsLeadingSpaceOnDecode = spec.addDummyPrefix || spec.removeExtraWhitespaces
        removeExtraWhitespaces = spec.removeExtraWhitespaces

        let scores = model.pieces.map(\.score)
        switch trainer.modelType {
        case .bpe:
            algorithm = .bpe(SentencePieceBPE(
                pieces: normalPieces, scores: scores, isUnused: types.map { $0 == .unused },
                userDefinedSymbols: userDefined.map { Array($0.utf8) }.sorted { $0.count > $1.count }))
        case .unigram:
            let normalScores = model.pieces.filter { $0.type == .normal }.map(\.score)
            let entries = model.pieces.map { piece -> (bytes: [UInt8], score: Float, kind: UnigramModel<Float>.PieceKind) in
                let kind: UnigramModel<Float>.PieceKind = switch piece.type {
                case .normal: .normal
                case .userDefined: .userDefined
                default: .excluded
                }
                return (Array(piece.piece.utf8), piece.score, kind)
            }
            algorithm = .unigram(UnigramModel<Float>(
                pieces: entries, unknownID: unknown, unknownScore: (normalScores.min() ?? Float.greatestFiniteMagnitude) - 10,
                maxScore: max(Float.leastNormalMagnitude, normalScores.max() ?? 0)))
        default:
            throw TokenizerError(file: file, "trainer_spec.model_type \(trainer.modelType) is not supported (BPE and UNIGRAM are)")
        }
        let reserved = reservedPieces, types = self.types
        func controlID(_ piece: String) -> Int? {
            let id = reserved.value(piece)
            return id >= 0 && types[Int(id)] == .control ? Int(id) : nil
        }
        bosID = controlID(trainer.bosPiece)
        eosID = controlID(trainer.eosPiece)
        padID = controlID(trainer.padPiece)
    }

    /// The id of a piece (reserved pieces first), or the unknown id.
    func id(ofPiece bytes: UnsafeBufferPointer<UInt8>) -> Int32 {
        let reserved = reservedPieces.value(bytes)
        if reserved >= 0 { return reserved }
        let normal = normalPieces.value(bytes)
        return normal >= 0 ? normal : unknownID
    }

    /// The id of a piece given as a string, if it is one.
    func id(ofToken token: String) -> Int? {
        var token = token
        let id = token.withUTF8 { self.id(ofPiece: $0) }
        return id == unknownID && !token.utf8.elementsEqual(pieces[Int(unknownID)].utf8) ? nil : Int(id)
    }

    /// The ids of `text`, without BOS/EOS.
    func encode(_ text: String) -> [Int32] {
        var text = text
        let normalized = text.withUTF8 { normalizer.normalize($0) }
        var ids: [Int32] = []
        ids.reserveCapacity(normalized.count / 3 + 1)
        var previousUnknown = false
        func emit(_ piece: UnsafeBufferPointer<UInt8>, _ id: Int32) {
            let isUnknown = id == unknownID
            if isUnknown && byteFallback {
                for byte in piece { ids.append(byteIDs[Int(byte)]) }
            } else if !(isUnknown && previousUnknown) {
                ids.append(id)  // a run of unknown pieces is one unknown token
            }
            previousUnknown = isUnknown
        }
        switch algorithm {
        case .bpe(let bpe):
            for piece in bpe.encode(normalized) {
                piece.withUnsafeBufferPointer { emit($0, id(ofPiece: $0)) }
            }
        case .unigram(let unigram):
            normalized.withUnsafeBufferPointer { buffer in
                guard let base = buffer.baseAddress else { return }
                for piece in unigram.segment(base, 0..<buffer.count) {
                    emit(UnsafeBufferPointer(rebasing: buffer[piece.range]), piece.id)
                }
            }
        }
        return ids
    }

    /// The text of `ids` as `sentencepiece` decodes it (control pieces are invisible). With
    /// `skipSpecialTokens`, unknown pieces are left out too. Every id must be in range.
    /// - Parameter afterText: the ids continue text already written (as SentencePiece's DecodePieces decodes a piece
    ///   after one it writes as it is), so the first piece keeps its leading space.
    func decode(_ ids: [Int], skipSpecialTokens: Bool, afterText: Bool = false) -> String {
        var text: [UInt8] = []
        var pendingBytes: [UInt8] = []
        var expectLeadingSpace = !afterText
        var leadingSpaceSeen = false
        func flushBytes() {
            var offset = 0
            pendingBytes.withUnsafeBufferPointer { bytes in
                while offset < bytes.count {
                    let length = SentencePieceUTF8.validLength(bytes.baseAddress! + offset, bytes.count - offset)
                    if length == 0 {
                        text += [0xEF, 0xBF, 0xBD]
                        offset += 1
                    } else {
                        text += bytes[offset..<(offset + length)]
                        offset += length
                    }
                }
            }
            pendingBytes.removeAll()
        }
        for id in ids {
            let type = types[id]
            if type == .byte {
                pendingBytes.append(TokenDecoder.byteFallbackValue(pieces[id]) ?? 0)
                continue
            }
            flushBytes()
            if type == .unknown && skipSpecialTokens { continue }
            if leadingSpaceSeen || !text.isEmpty { expectLeadingSpace = false }
            switch type {
            case .control:
                leadingSpaceSeen = false
            case .unknown:
                text += unknownSurface.utf8
                leadingSpaceSeen = false
            default:
                var piece = Array(pieces[id].utf8)[...]
                var consumed = false
                if expectLeadingSpace && stripsLeadingSpaceOnDecode, piece.starts(with: SentencePieceNormalizer.spaceSymbol) {
                    piece = piece.dropFirst(SentencePieceNormalizer.spaceSymbol.count)
                    consumed = !removeExtraWhitespaces
                }
                text += String(decoding: piece, as: UTF8.self).replacingLiteral("▁", with: " ").utf8
                leadingSpaceSeen = consumed
            }
        }
        flushBytes()
        return String(decoding: text, as: UTF8.self)
    }
}
