import Foundation
import XCTest

/// One line of a tokenizer fixture's expected `<name>.jsonl`: the reference library's ids for a corpus string, its
/// decode of them (when it is not the string itself) and, for the first lines, the ids with special tokens and their
/// decode with special tokens skipped.
public struct TokenizerReference: Decodable {
    public let ids: [Int]
    public let decoded: String?
    public let special_ids: [Int]?
    public let decoded_skip: String?
}

/// Checks a tokenizer against its reference on a whole corpus: ids without special tokens, decodes, and encodings with
/// special tokens; fails with the first five mismatches of each kind and asserts that there are none.
/// - Parameters:
///   - encode: the tokenizer's encoding of a text, with special tokens or not.
///   - decode: the tokenizer's decoding of ids, skipping special tokens or not.
public func assertCorpusParity(_ name: String, corpus: [String], expected: [TokenizerReference],
                               encode: (String, _ addSpecialTokens: Bool) -> [Int],
                               decode: ([Int], _ skipSpecialTokens: Bool) throws -> String,
                               file: StaticString = #filePath, line: UInt = #line) throws {
    XCTAssertEqual(corpus.count, expected.count, file: file, line: line)
    XCTAssertGreaterThanOrEqual(corpus.count, 2000, file: file, line: line)
    var idMismatches = 0, decodeMismatches = 0, specialMismatches = 0
    for (text, reference) in zip(corpus, expected) {
        let ids = encode(text, false)
        if ids != reference.ids {
            idMismatches += 1
            if idMismatches <= 5 {
                let prefix = zip(reference.ids, ids).prefix { $0 == $1 }.count
                XCTFail("\(name): \(text.debugDescription.prefix(120)): first difference at \(prefix): expected "
                        + "\(reference.ids[prefix...].prefix(8)) got \(ids[min(prefix, ids.count)...].prefix(8))",
                        file: file, line: line)
            }
        }
        let decoded = try decode(reference.ids, false)
        if decoded != (reference.decoded ?? text) {
            decodeMismatches += 1
            if decodeMismatches <= 5 {
                XCTFail("\(name): decode of \(text.debugDescription.prefix(80)): expected "
                        + "\((reference.decoded ?? text).debugDescription.prefix(80)) got \(decoded.debugDescription.prefix(80))",
                        file: file, line: line)
            }
        }
        if let special = reference.special_ids {
            let withSpecial = encode(text, true)
            let skipped = try decode(special, true)
            if withSpecial != special || skipped != reference.decoded_skip {
                specialMismatches += 1
                if specialMismatches <= 5 {
                    XCTFail("\(name): with special tokens \(text.debugDescription.prefix(60)): expected \(special.prefix(6)) "
                            + "\(reference.decoded_skip.debugDescription.prefix(60)), got \(withSpecial.prefix(6)) "
                            + "\(skipped.debugDescription.prefix(60))", file: file, line: line)
                }
            }
        }
    }
    XCTAssertEqual(idMismatches, 0, "\(name): strings whose ids differ", file: file, line: line)
    XCTAssertEqual(decodeMismatches, 0, "\(name): decodes that differ", file: file, line: line)
    XCTAssertEqual(specialMismatches, 0, "\(name): encodings with special tokens that differ", file: file, line: line)
}
