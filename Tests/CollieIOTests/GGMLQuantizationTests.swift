import Foundation
import XCTest
@testable import CollieIO

/// Fixtures: scripts/fixtures/make_gguf_writer_fixtures.py (`gguf.quants.quantize`).
final class GGMLQuantizationTests: XCTestCase {
    static func fixture(_ name: String) throws -> Data {
        let folder = try XCTUnwrap(Bundle.module.url(forResource: "gguf-writer", withExtension: nil,
                                                     subdirectory: "Fixtures"))
        return try Data(contentsOf: folder.appendingPathComponent(name))
    }

    static func floats(_ name: String) throws -> [Float] {
        try fixture(name).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    func assertQuantizationMatchesGGUF(_ type: GGMLType, input: String, rowLength: Int) throws {
        let values = try Self.floats(input)
        let bytes = try values.withUnsafeBufferPointer {
            try GGMLQuantization.quantize($0, as: type, rowLength: rowLength)
        }
        let expected = [UInt8](try Self.fixture("\(type.description.lowercased()).bin"))
        XCTAssertEqual(bytes.count, expected.count, "\(type)")
        let blockBytes = type.bytesPerBlock
        for offset in stride(from: 0, to: min(bytes.count, expected.count), by: blockBytes)
        where bytes[offset..<offset + blockBytes] != expected[offset..<offset + blockBytes] {
            XCTFail("\(type) block \(offset / blockBytes): \(bytes[offset..<offset + blockBytes]) "
                + "≠ gguf's \(expected[offset..<offset + blockBytes])")
            return
        }
    }

    func testQ8_0MatchesGGUF() throws { try assertQuantizationMatchesGGUF(.q8_0, input: "block-input.f32", rowLength: 64) }
    func testQ4_0MatchesGGUF() throws { try assertQuantizationMatchesGGUF(.q4_0, input: "block-input.f32", rowLength: 64) }
    func testQ4_1MatchesGGUF() throws { try assertQuantizationMatchesGGUF(.q4_1, input: "block-input.f32", rowLength: 64) }
    func testQ5_0MatchesGGUF() throws { try assertQuantizationMatchesGGUF(.q5_0, input: "block-input.f32", rowLength: 64) }
    func testQ5_1MatchesGGUF() throws { try assertQuantizationMatchesGGUF(.q5_1, input: "block-input.f32", rowLength: 64) }
    func testF32MatchesGGUF() throws { try assertQuantizationMatchesGGUF(.f32, input: "float-input.f32", rowLength: 16) }
    func testF16MatchesGGUF() throws { try assertQuantizationMatchesGGUF(.f16, input: "float-input.f32", rowLength: 16) }
    func testBF16MatchesGGUF() throws { try assertQuantizationMatchesGGUF(.bf16, input: "float-input.f32", rowLength: 16) }

    func quantize(_ values: [Float], as type: GGMLType, rowLength: Int? = nil) throws -> [UInt8] {
        try values.withUnsafeBufferPointer { try GGMLQuantization.quantize($0, as: type, rowLength: rowLength) }
    }

    func testRowsThatAreNotWholeBlocksAreRejected() {
        let values = [Float](repeating: 1, count: 96)
        XCTAssertThrowsError(try quantize(values, as: .q8_0, rowLength: 48))
        XCTAssertThrowsError(try quantize(values, as: .q4_0, rowLength: 50))
        XCTAssertThrowsError(try quantize(values, as: .q4_K))
        XCTAssertNoThrow(try quantize(values, as: .q8_0, rowLength: 32))
        XCTAssertNoThrow(try quantize(values, as: .f16, rowLength: 48))
    }

    func testNonFiniteValuesInBlocksAreAnError() {
        for bad in [Float.nan, .infinity, -.infinity] {
            var values = [Float](repeating: 0.5, count: 64)
            values[40] = bad
            for type in [GGMLType.q8_0, .q4_0, .q4_1, .q5_0, .q5_1] {
                XCTAssertThrowsError(try quantize(values, as: type)) { error in
                    XCTAssertEqual("\(error)", "value 40 is not finite")
                }
            }
        }
    }

    /// Throughput on a 1024×1024 matrix, printed (run the test in release for the real numbers).
    func testQuantizationThroughput() throws {
        let values = (0..<(1024 * 1024)).map { Float(sin(Double($0) * 0.37)) }
        for type in GGMLQuantization.supportedTypes {
            let start = Date()
            let bytes = try values.withUnsafeBufferPointer { try GGMLQuantization.quantize($0, as: type, rowLength: 1024) }
            let seconds = Date().timeIntervalSince(start)
            XCTAssertEqual(bytes.count, values.count / type.blockSize * type.bytesPerBlock)
            print("quantize \(type): \(Int(Double(values.count * 4) / seconds / 1e6)) MB/s of float32 input")
        }
    }
}
