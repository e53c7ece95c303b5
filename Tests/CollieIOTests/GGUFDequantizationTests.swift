import CollieTestSupport
import Foundation
import XCTest
@testable import CollieEngine
@testable import CollieIO

/// Dequantization against the `gguf` Python package: Tests/CollieIOTests/Fixtures/gguf/quants.gguf holds random
/// blocks (and, for the types `gguf` can quantize, quantized float data) of every type Collie reads, and
/// quants-expected.safetensors what `gguf.quants.dequantize` made of them (scripts/fixtures/make_gguf_fixtures.py).
final class GGUFDequantizationTests: XCTestCase {
    private let fixtures = TestPaths.fixtures(of: "CollieIOTests").appendingPathComponent("gguf")

    private func quants() throws -> (GGUFFile, SafeTensorsFile) {
        (try GGUFFile(url: fixtures.appendingPathComponent("quants.gguf")),
         try SafeTensorsFile(url: fixtures.appendingPathComponent("quants-expected.safetensors")))
    }

    private func assertBitEqual(_ actual: [Float], _ expected: [Float], _ name: String,
                                file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, name, file: file, line: line)
        let mismatches = zip(actual, expected).enumerated().filter { $0.element.0.bitPattern != $0.element.1.bitPattern }
        XCTAssertTrue(mismatches.isEmpty, "\(name): \(mismatches.count) values differ from gguf's, first at "
                      + "\(mismatches.first.map { "\($0.offset): \($0.element.0) vs \($0.element.1)" } ?? "")",
                      file: file, line: line)
    }

    func testEveryTypeDequantizesBitForBitAsGGUF() throws {
        let (file, expected) = try quants()
        var covered = Set<GGMLType>()
        for info in file.tensors where !info.name.hasSuffix(".unsupported") {
            let reference = try expected.tensor(info.name)
            XCTAssertEqual(info.shape, reference.shape, info.name)
            assertBitEqual(try file.floats(of: info), reference.floats(), "\(info.name) (\(info.type))")
            covered.insert(info.type)
        }
        XCTAssertEqual(covered, Set(GGMLDequantization.supportedTypes), "the fixture covers every supported type")
    }

    func testQuantizedDataComesBackNearTheOriginal() throws {
        // A sanity check on the fixture itself: gguf's own quantize/dequantize of normal data is close to it.
        let (file, _) = try quants()
        let values = try file.floats(of: XCTUnwrap(file.tensorInfo("q8_0.quantized")))
        XCTAssertEqual(values[(3 * 128)..<(3 * 128 + 32)].allSatisfy { $0 == 0 }, true, "the all-zero block")
        XCTAssertEqual(values[(3 * 128 + 32)..<(3 * 128 + 64)].allSatisfy { abs($0 - 0.25) < 1e-3 }, true)
    }

    func testLargeTensorsSplitAcrossThreadsGiveTheSameBits() throws {
        // 64 copies of each K tensor's blocks: over the 65,536 values at which the work is split across threads.
        let (file, expected) = try quants()
        for name in ["q2_k.random", "q3_k.random", "q4_k.random", "q5_k.random", "q6_k.random", "q4_1.random"] {
            let info = try XCTUnwrap(file.tensorInfo(name))
            let bytes = Array(file.bytes(of: info))
            let tiled = Array([[UInt8]](repeating: bytes, count: 64).joined())
            var output = [Float](repeating: .nan, count: info.elementCount * 64)
            try tiled.withUnsafeBytes { source in
                try output.withUnsafeMutableBufferPointer {
                    try GGMLDequantization.dequantize(source, type: info.type, into: $0)
                }
            }
            let reference = try expected.tensor(name).floats()
            assertBitEqual(output, Array([[Float]](repeating: reference, count: 64).joined()), name)
        }
    }

    func testUnalignedFloat16BytesTakeTheSwiftPathWithTheSameBits() throws {
        let (file, expected) = try quants()
        let info = try XCTUnwrap(file.tensorInfo("f16.random"))
        let shifted = [0] + Array(file.bytes(of: info))
        var output = [Float](repeating: .nan, count: info.elementCount)
        try shifted.withUnsafeBytes { raw in
            try output.withUnsafeMutableBufferPointer {
                try GGMLDequantization.dequantize(UnsafeRawBufferPointer(rebasing: raw[1...]), type: .f16, into: $0)
            }
        }
        assertBitEqual(output, try expected.tensor("f16.random").floats(), "unaligned f16")
    }

    func testUnsupportedTypesAreErrorsNamingTheTensorAndType() throws {
        let (file, _) = try quants()
        for (name, type) in [("i32.unsupported", "I32"), ("iq4_nl.unsupported", "IQ4_NL")] {
            XCTAssertThrowsError(try file.floats(of: XCTUnwrap(file.tensorInfo(name)))) { error in
                XCTAssertTrue("\(error)".contains("'\(name)'") && "\(error)".contains(type), "\(error)")
                XCTAssertTrue("\(error)".contains("quants.gguf"), "\(error)")
            }
        }
        XCTAssertFalse(GGMLDequantization.supports(.q8_K))
        XCTAssertThrowsError(try GGMLDequantization.dequantize(UnsafeRawBufferPointer(start: nil, count: 0), type: .tq1_0,
                                                               into: UnsafeMutableBufferPointer(start: nil, count: 0))) {
            XCTAssertEqual($0 as? GGMLDequantization.Failure, .unsupportedType(.tq1_0))
        }
    }

    func testMismatchedSizesAreRefused() throws {
        let bytes = [UInt8](repeating: 0, count: 34)
        var output = [Float](repeating: 0, count: 33)
        for (count, outputCount) in [(33, 32), (34, 33), (34, 31)] {
            XCTAssertThrowsError(try bytes.withUnsafeBytes { raw in
                try output.withUnsafeMutableBufferPointer {
                    try GGMLDequantization.dequantize(UnsafeRawBufferPointer(rebasing: raw[..<count]), type: .q8_0,
                                                      into: UnsafeMutableBufferPointer(rebasing: $0[..<outputCount]))
                }
            }) { XCTAssertEqual($0 as? GGMLDequantization.Failure, .sizeMismatch(type: .q8_0, byteCount: count, valueCount: outputCount)) }
        }
    }
}
