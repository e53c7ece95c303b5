import CCollieKernels
import XCTest
import CollieTestSupport

/// collie_quantize_rows writes the bytes ggml's quantize_row_<format>_ref writes (Fixtures/quantized-q8, made with
/// llama.cpp's libggml-base): random, zero, constant, tiny, huge and skewed rows, every format with a quantizer.
final class QuantizerTests: XCTestCase {
    func testQuantizeRowsMatchesGGMLReferenceByteForByte() {
        let manifest = QuantizedQ8Fixtures.manifest
        let input = QuantizedQ8Fixtures.floats("quantize-input.f32")
        XCTAssertEqual(input.count, manifest.quantizeRows * manifest.quantizeColumns)
        forEachKernelLevel { level in
            for name in manifest.quantizable {
                let format = QuantizedQ8Fixtures.typeCodes[name]!
                let expected = QuantizedQ8Fixtures.bytes("quantize-\(name).bin")
                var got = [UInt8](repeating: 0xAA, count: expected.count)
                let written = collie_quantize_rows(format, input, &got, manifest.quantizeRows, manifest.quantizeColumns)
                XCTAssertEqual(written, 1, name)
                if let first = zip(got, expected).enumerated().first(where: { $0.element.0 != $0.element.1 }) {
                    XCTFail("level \(level), \(name): byte \(first.offset) is \(first.element.0), ggml wrote \(first.element.1)")
                }
            }
        }
    }

    func testQuantizeRowsRefusesFormatsWithoutQuantizerAndPartialBlocks() {
        let values = [Float](repeating: 1, count: 256)
        var blocks = [UInt8](repeating: 0xAA, count: 1024)
        XCTAssertEqual(collie_quantize_rows(14, values, &blocks, 1, 256), 0, "Q6_K has no quantizer here")
        XCTAssertEqual(collie_quantize_rows(1, values, &blocks, 1, 256), 0, "F16 is not a block format")
        XCTAssertEqual(collie_quantize_rows(12, values, &blocks, 1, 128), 0, "Q4_K needs rows of 256")
        XCTAssertEqual(collie_quantize_rows(8, values, &blocks, 1, 48), 0, "Q8_0 needs rows of 32")
        XCTAssertEqual(blocks, [UInt8](repeating: 0xAA, count: 1024), "nothing written when refused")
    }
}
