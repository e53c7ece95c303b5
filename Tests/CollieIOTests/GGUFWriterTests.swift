import CollieTestSupport
import Foundation
import XCTest
@testable import CollieIO

/// Fixtures: scripts/fixtures/make_gguf_writer_fixtures.py (`gguf.GGUFWriter`).
final class GGUFWriterTests: XCTestCase {
    /// `arange(n) * 0.25 - 3`, the fixture tensors' values.
    func values(_ n: Int) -> [Float] { (0..<n).map { Float($0) * 0.25 - 3 } }

    func bytes(_ values: [Float], as type: GGMLType, rowLength: Int) -> () throws -> [UInt8] {
        { try values.withUnsafeBufferPointer { try GGMLQuantization.quantize($0, as: type, rowLength: rowLength) } }
    }

    /// The keys the fixture script's `add_metadata` sets, in its order.
    func addMetadata(to writer: inout GGUFWriter) {
        writer.set("test.uint8", .uint8(200))
        writer.set("test.int8", .int8(-100))
        writer.set("test.uint16", .uint16(60000))
        writer.set("test.int16", .int16(-30000))
        writer.set("test.uint32", .uint32(4_000_000_000))
        writer.set("test.int32", .int32(-2_000_000_000))
        writer.set("test.uint64", .uint64(1 << 63 + 5))
        writer.set("test.int64", .int64(-(1 << 62)))
        writer.set("test.float32", .float32(0.1))
        writer.set("test.float64", .float64(-1e300))
        writer.set("test.true", .bool(true))
        writer.set("test.false", .bool(false))
        writer.set("test.string", .string("héllo ✓ \u{4e16}"))
        writer.set("test.strings", .array(.string, ["", "a", "<|im_start|>", "Ġthe"].map(GGUFValue.string)))
        writer.set("test.int32s", .array(.int32, [1, -2, 3].map(GGUFValue.int32)))
        writer.set("test.float32s", .array(.float32, [0.5, -1.25].map(GGUFValue.float32)))
        writer.set("test.uint8s", .array(.uint8, [0, 255].map(GGUFValue.uint8)))
        writer.set("test.bools", .array(.bool, [true, false, true].map(GGUFValue.bool)))
        writer.set("test.arrays", .array(.array, [.array(.int32, [.int32(1), .int32(2)]), .array(.int32, [.int32(3)])]))
        writer.set("test.uint32", .uint32(7))
    }

    func assertWritten(_ writer: GGUFWriter, equals fixture: String) throws {
        let folder = try temporaryFolder(for: self)
        let url = folder.appendingPathComponent("out.gguf")
        try writer.write(to: url)
        let written = [UInt8](try Data(contentsOf: url))
        let expected = [UInt8](try GGMLQuantizationTests.fixture(fixture))
        XCTAssertEqual(written.count, expected.count, fixture)
        if let first = zip(written, expected).enumerated().first(where: { $0.element.0 != $0.element.1 }) {
            XCTFail("\(fixture): first difference at byte \(first.offset)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["out.gguf"],
                       "no temporary file is left behind")
    }

    func testSmallFileMatchesGGUFWriter() throws {
        var writer = GGUFWriter()
        writer.set("general.architecture", .string("llama"))
        addMetadata(to: &writer)
        writer.addTensor(name: "token_embd.weight", shape: [7, 3], type: .f32, bytes: bytes(values(21), as: .f32, rowLength: 3))
        writer.addTensor(name: "f16", shape: [5], type: .f16, bytes: bytes(values(5), as: .f16, rowLength: 5))
        writer.addTensor(name: "blk.0.q8", shape: [2, 64], type: .q8_0, bytes: bytes(values(128), as: .q8_0, rowLength: 64))
        writer.addTensor(name: "bf16", shape: [3, 2, 3], type: .bf16, bytes: bytes(values(18), as: .bf16, rowLength: 3))
        try assertWritten(writer, equals: "small.gguf")
    }

    func testCustomAlignmentMatchesGGUFWriter() throws {
        var writer = GGUFWriter()
        writer.set("general.architecture", .string("qwen2"))
        writer.set("general.alignment", .uint32(64))
        addMetadata(to: &writer)
        XCTAssertEqual(writer.alignment, 64)
        writer.addTensor(name: "a", shape: [3], type: .f32, bytes: bytes(values(3), as: .f32, rowLength: 3))
        writer.addTensor(name: "b", shape: [2, 32], type: .f32, bytes: bytes(values(64), as: .f32, rowLength: 32))
        try assertWritten(writer, equals: "aligned64.gguf")
    }

    func testBadTensorsAreErrorsNamingThemAndLeaveNoFile() throws {
        let folder = try temporaryFolder(for: self)
        let url = folder.appendingPathComponent("bad.gguf")
        let cases: [(GGUFWriter.Tensor, String)] = [
            (.init(name: "short", shape: [4], type: .f32, bytes: { [0, 0, 0, 0] }), "short produced 4 bytes"),
            (.init(name: "rows", shape: [2, 48], type: .q8_0, bytes: { [] }), "not a multiple of Q8_0's block size 32"),
            (.init(name: "huge", shape: [Int.max / 2, 4], type: .f32, bytes: { [] }), "is too large"),
            (.init(name: "empty", shape: [0], type: .f32, bytes: { [] }), "shape of positive sizes"),
        ]
        for (tensor, message) in cases {
            var writer = GGUFWriter()
            writer.set("general.architecture", .string("llama"))
            writer.addTensor(name: tensor.name, shape: tensor.shape, type: tensor.type, bytes: tensor.bytes)
            XCTAssertThrowsError(try writer.write(to: url)) { error in
                XCTAssertTrue("\(error)".contains(message), "\(error)")
                XCTAssertTrue("\(error)".contains(tensor.name), "\(error)")
            }
        }
        var writer = GGUFWriter()
        writer.set("general.alignment", .uint32(48))
        XCTAssertThrowsError(try writer.write(to: url))
        writer.set("general.alignment", .uint32(32))
        writer.set("mixed", .array(.int32, [.int32(1), .string("x")]))
        XCTAssertThrowsError(try writer.write(to: url)) { XCTAssertTrue("\($0)".contains("mixed"), "\($0)") }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), [])
    }
}
