import CollieTestSupport
import Foundation
import XCTest
@testable import CollieTokenizers

/// `SentencePieceMerge` (`collie vocab merge`) against sentencepiece's own protobuf doing Chinese-LLaMA's merge of
/// the same two bundled models — LLaMA-2's tokenizer.model and CoLLiE's Chinese model —
/// (scripts/fixtures/make_vocab_merge_fixtures.py): the same pieces, the same bytes, and the merged model's ids equal
/// to sentencepiece's on a varied corpus (the tokenizer corpus plus 120 Chinese records of alpaca_zh_demo).
final class VocabularyMergeTests: XCTestCase {
    private static let folder = Fixtures.folder.appendingPathComponent("vocab-merge")

    private struct Summary: Decodable {
        let basePieces: Int, addPieces: Int, mergedPieces: Int, mergedBytes: Int
        let firstAdded: [String], lastAdded: [String]
        let mergedSHA256: String
        enum CodingKeys: String, CodingKey {
            case basePieces = "base_pieces", addPieces = "add_pieces", mergedPieces = "merged_pieces",
                 mergedBytes = "merged_bytes", firstAdded = "first_added", lastAdded = "last_added",
                 mergedSHA256 = "merged_sha256"
        }
    }

    private func summary() throws -> Summary {
        try JSONDecoder().decode(Summary.self, from: Data(contentsOf: Self.folder.appendingPathComponent("summary.json")))
    }

    private func merge() throws -> SentencePieceMerge {
        try SentencePieceMerge(base: Fixtures.tokenizerURL("llama2-spm"), add: Fixtures.tokenizerURL("chinese-sp"))
    }

    func testTheMergeHasSentencePiecesPiecesAndIsByteIdenticalToPythonProtobuf() throws {
        let expected = try summary()
        let merge = try merge()
        XCTAssertEqual(merge.basePieceCount, expected.basePieces)
        XCTAssertEqual(merge.pieceCount, expected.mergedPieces)
        XCTAssertEqual(Array(merge.addedPieces.prefix(5)), expected.firstAdded)
        XCTAssertEqual(Array(merge.addedPieces.suffix(5)), expected.lastAdded)
        XCTAssertEqual(merge.model.count, expected.mergedBytes)
        XCTAssertEqual(SHA256.hex(merge.model), expected.mergedSHA256)
        XCTAssertEqual([merge.bosPiece, merge.eosPiece, merge.unknownPiece], ["<s>", "</s>", "<unk>"])

        // The merged model, parsed back: the base's pieces unchanged, the new ones NORMAL with score 0.
        let proto = try Sentencepiece_ModelProto(serializedBytes: merge.model)
        let base = try Sentencepiece_ModelProto(serializedBytes: Data(contentsOf: Fixtures.tokenizerURL("llama2-spm")))
        XCTAssertEqual(Array(proto.pieces.prefix(base.pieces.count)), base.pieces)
        XCTAssertEqual(proto.trainerSpec, base.trainerSpec)
        XCTAssertEqual(proto.normalizerSpec, base.normalizerSpec)
        for piece in proto.pieces.dropFirst(base.pieces.count) {
            XCTAssertEqual(piece.type, .normal)
            XCTAssertEqual(piece.score, 0)
            XCTAssertTrue(piece.hasScore)
        }
    }

    func testTheMergedModelEncodesAsSentencePieceDoes() throws {
        struct Line: Decodable { let text: String }
        struct IDs: Decodable { let ids: [Int] }
        let merge = try merge()
        let tokenizer = try Tokenizer(sentencePieceModel: merge.model, file: "merged")
        let texts = Fixtures.jsonLines(Self.folder.appendingPathComponent("corpus.jsonl"))
            .map { try! JSONDecoder().decode(Line.self, from: $0).text }
        let expected = Fixtures.jsonLines(Self.folder.appendingPathComponent("expected.jsonl"))
            .map { try! JSONDecoder().decode(IDs.self, from: $0).ids }
        XCTAssertEqual(texts.count, expected.count)
        XCTAssertGreaterThan(texts.count, 2_400)
        var mismatches = 0
        var usesNewPieces = 0
        for (text, ids) in zip(texts, expected) {
            let got = tokenizer.encode(text, addSpecialTokens: false)
            if got.contains(where: { $0 >= merge.basePieceCount }) { usesNewPieces += 1 }
            if got != ids {
                mismatches += 1
                if mismatches <= 5 { XCTFail("\(text.debugDescription): \(got) != sentencepiece's \(ids)") }
            }
        }
        XCTAssertEqual(mismatches, 0)
        XCTAssertGreaterThan(usesNewPieces, 120, "the Chinese records use the added pieces")
    }

    func testAModelMergedWithItselfIsUnchanged() throws {
        let data = try Data(contentsOf: Fixtures.tokenizerURL("llama2-spm"))
        let merge = try SentencePieceMerge(base: data, add: data)
        XCTAssertEqual(merge.model, data)
        XCTAssertTrue(merge.addedPieces.isEmpty)
    }

    func testBadInputsAreErrorsNamingTheFile() throws {
        let missing = URL(fileURLWithPath: "/nonexistent/tokenizer.model")
        XCTAssertThrowsError(try SentencePieceMerge(base: missing, add: Fixtures.tokenizerURL("chinese-sp"))) { error in
            XCTAssertTrue("\(error)".contains("/nonexistent/tokenizer.model"), "\(error)")
        }
        let json = Fixtures.tokenizerURL("llama2").appendingPathComponent("tokenizer.json")
        XCTAssertThrowsError(try SentencePieceMerge(base: Fixtures.tokenizerURL("llama2-spm"), add: json)) { error in
            XCTAssertTrue("\(error)".contains(json.path) && "\(error)".contains("not a SentencePiece model"), "\(error)")
        }
        let truncated = try Data(contentsOf: Fixtures.tokenizerURL("llama2-spm")).prefix(1000)
        XCTAssertThrowsError(try SentencePieceMerge(base: Data(truncated), baseFile: "cut.model",
                                                    add: Data(contentsOf: Fixtures.tokenizerURL("chinese-sp")))) { error in
            XCTAssertTrue("\(error)".hasPrefix("cut.model: "), "\(error)")
        }
    }

    func testTheTokenizerConfigurationLoadsWithTheMergedModel() throws {
        let merge = try merge()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("collie-merge-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try merge.model.write(to: folder.appendingPathComponent("tokenizer.model"))
        try merge.tokenizerConfigurationJSON().write(to: folder.appendingPathComponent("tokenizer_config.json"))
        let tokenizer = try Tokenizer(contentsOf: folder)
        XCTAssertEqual(tokenizer.format, .sentencePiece)
        XCTAssertEqual(tokenizer.configuration.addBOSToken, true)
        XCTAssertEqual(tokenizer.bosTokenID, 1)
        XCTAssertEqual(tokenizer.eosTokenID, 2)
        let ids = tokenizer.encode("中国的首都是北京")
        XCTAssertEqual(ids.first, 1)
        XCTAssertEqual(try tokenizer.decode(ids, skipSpecialTokens: true), "中国的首都是北京")
    }
}

/// SHA-256 (FIPS 180-4), for comparing a file with the hash a fixture script recorded.
enum SHA256 {
    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2]

    static func hex(_ data: Data) -> String {
        var h: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
        var message = [UInt8](data)
        let bitLength = UInt64(message.count) * 8
        message.append(0x80)
        while message.count % 64 != 56 { message.append(0) }
        for shift in stride(from: 56, through: 0, by: -8) { message.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift))) }
        func rotate(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
        var w = [UInt32](repeating: 0, count: 64)
        for block in stride(from: 0, to: message.count, by: 64) {
            for i in 0..<16 {
                let j = block + 4 * i
                w[i] = UInt32(message[j]) << 24 | UInt32(message[j + 1]) << 16 | UInt32(message[j + 2]) << 8 | UInt32(message[j + 3])
            }
            for i in 16..<64 {
                let s0 = rotate(w[i - 15], 7) ^ rotate(w[i - 15], 18) ^ (w[i - 15] >> 3)
                let s1 = rotate(w[i - 2], 17) ^ rotate(w[i - 2], 19) ^ (w[i - 2] >> 10)
                w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
            }
            var (a, b, c, d, e, f, g, hh) = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
            for i in 0..<64 {
                let s1 = rotate(e, 6) ^ rotate(e, 11) ^ rotate(e, 25)
                let choice = (e & f) ^ (~e & g)
                let t1 = hh &+ s1 &+ choice &+ k[i] &+ w[i]
                let s0 = rotate(a, 2) ^ rotate(a, 13) ^ rotate(a, 22)
                let majority = (a & b) ^ (a & c) ^ (b & c)
                let t2 = s0 &+ majority
                (hh, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
            }
            for (i, value) in [a, b, c, d, e, f, g, hh].enumerated() { h[i] = h[i] &+ value }
        }
        return h.map { String(format: "%08x", $0) }.joined()
    }
}
