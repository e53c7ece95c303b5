import CCollieKernels
import XCTest
@testable import CollieEngine

/// The float16 conversion kernels (F16C, AVX-512F or portable C) give Swift's `Float16` results, bit for bit, at every
/// kernel level: every half-precision value, and float32 values on, between and just off the half-precision grid.
final class HalfPrecisionConversionTests: XCTestCase {
    func testWideningEveryHalfPrecisionValueMatchesSwift() {
        let bits = (0...UInt16.max).map { $0 }
        let expected = bits.map { HalfPrecision.float(float16: $0) }
        forEachKernelLevel { level in
            var got = [Float](repeating: 0, count: bits.count)
            collie_f16_to_f32(bits, &got, bits.count)
            for i in bits.indices where got[i].bitPattern != expected[i].bitPattern {
                if got[i].isNaN && expected[i].isNaN { continue }
                XCTFail("level \(level): half 0x\(String(bits[i], radix: 16)) widened to \(got[i]), Swift gives \(expected[i])")
                return
            }
        }
    }

    func testRoundingToHalfPrecisionMatchesSwiftOnTiesSubnormalsAndOverflow() {
        // Every finite half value as a float32, the midpoints to its upper neighbour (ties: round to even) and the
        // float32 values one ulp either side of them; then overflow, infinities, NaN and float32 subnormals.
        var inputs: [Float] = []
        for bits in UInt16(0)..<0x7C00 {
            let low = Float(Float16(bitPattern: bits)), high = Float(Float16(bitPattern: bits + 1))
            let middle = low + (high - low) / 2
            for x in [low, middle, middle.nextDown, middle.nextUp] { inputs += [x, -x] }
        }
        inputs += [65504, 65519.99, 65520, 1e6, .infinity, -.infinity, .nan, 1e-30, -1e-40, .leastNonzeroMagnitude]
        let expected = inputs.map { HalfPrecision.float16Bits($0) }
        forEachKernelLevel { level in
            var got = [UInt16](repeating: 0, count: inputs.count)
            collie_f32_to_f16(inputs, &got, inputs.count)
            for i in inputs.indices where got[i] != expected[i] {
                if Float16(bitPattern: got[i]).isNaN && Float16(bitPattern: expected[i]).isNaN { continue }
                XCTFail("level \(level): \(inputs[i]) rounded to 0x\(String(got[i], radix: 16)), Swift gives 0x\(String(expected[i], radix: 16))")
                return
            }
        }
    }

    func testFloat16TensorsRoundTripThroughTheKernels() {
        let values: [Float] = [0, -0.0, 1, -2.5, 65504, 1e-7, 3.14159, 70000]
        let half = Tensor(values, shape: [values.count]).contiguousCopy(dtype: .float16)
        XCTAssertEqual(half.floats(), values.map { Float(Float16($0)) })
    }
}
