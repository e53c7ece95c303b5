import CCollieKernels
import Foundation
import XCTest
@testable import CollieEngine

/// gguf's blocks and values in `Fixtures/quantized.safetensors`, made by scripts/fixtures/make_quantized_fixtures.py.
enum QuantizedFixture {
    nonisolated(unsafe) private static let all: [String: Tensor] = {
        guard let url = Bundle.module.url(forResource: "quantized", withExtension: "safetensors",
                                          subdirectory: "Fixtures") else {
            fatalError("Fixtures/quantized.safetensors is missing; run scripts/fixtures/make_quantized_fixtures.py")
        }
        do { return try SafeTensorsFixture.parse(Data(contentsOf: url)) } catch { fatalError("\(url.path): \(error)") }
    }()

    /// The fixture's matrix of `format` blocks (stored as int32 words) and gguf's float32 values of it.
    static func matrix(_ format: BlockFormat) throws -> (matrix: QuantizedMatrix, values: [Float]) {
        let blocks = try XCTUnwrap(all["\(format.rawValue).blocks"]), values = try XCTUnwrap(all["\(format.rawValue).values"])
        let storage = TensorStorage(byteCount: blocks.count * 4)
        storage.data.copyMemory(from: blocks.storage.data, byteCount: blocks.count * 4)
        let matrix = try QuantizedMatrix(format: format, rows: values.shape[0], columns: values.shape[1], storage: storage)
        return (matrix, values.floats())
    }
}

/// A matrix of random valid blocks: random bytes with finite float16 scales of about `scale` (every quant bit pattern).
func randomQuantizedMatrix(_ format: BlockFormat, rows: Int, columns: Int, seed: UInt64,
                           scale: Float = 0.02) -> QuantizedMatrix {
    var generator = RandomGenerator(seed: seed)
    let rowBytes = columns / format.blockElements * format.blockBytes
    let storage = TensorStorage(byteCount: rows * rowBytes)
    let bytes = storage.data.assumingMemoryBound(to: UInt8.self)
    for i in 0..<rows * rowBytes { bytes[i] = UInt8(truncatingIfNeeded: generator.next()) }
    let scaleOffsets: [Int] = switch format {
    case .q4_0, .q5_0, .q8_0: [0]
    case .q4_1, .q5_1, .q4_K, .q5_K: [0, 2]
    case .q6_K: [208]
    }
    for block in 0..<rows * columns / format.blockElements {
        for offset in scaleOffsets {
            let value = Float16(Float(generator.nextUnit() * 2 - 1) * scale)
            (storage.data + block * format.blockBytes + offset).storeBytes(of: value.bitPattern, as: UInt16.self)
        }
    }
    return try! QuantizedMatrix(format: format, rows: rows, columns: columns, storage: storage)
}
