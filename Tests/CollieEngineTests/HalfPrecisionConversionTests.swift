import CCollieKernels
import XCTest
@testable import CollieEngine
import CollieTestSupport

/// The float16 conversion kernels (F16C, AVX-512F or portable C) give Swift's `Float16` results, bit for bit, at every
/// kernel level: every half-precision value, and float32 values on, between and just off the half-precision grid. The
/// bfloat16 kernels give `HalfPrecision`'s bfloat16 results the same way.
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

    /// Every bfloat16 value widens exactly; float32 values on the bfloat16 grid, on the midpoints to the next value
    /// (ties to even), one ulp either side of them, and infinities, NaNs (kept quiet NaNs) and subnormals round as
    /// HalfPrecision.bfloat16Bits does — bit for bit, NaN payloads included.
    func testBFloat16ConversionsMatchHalfPrecisionBitForBit() {
        let bits = (0...UInt16.max).map { $0 }
        var inputs: [Float] = []
        for h in bits where (h & 0x7FFF) < 0x7F80 {   // finite values and their midpoints upwards
            let low = HalfPrecision.float(bfloat16: h), high = HalfPrecision.float(bfloat16: h &+ 1)
            let middle = Float(bitPattern: low.bitPattern + (high.bitPattern - low.bitPattern) / 2)
            inputs += [low, middle, middle.nextDown, middle.nextUp]
        }
        inputs += [.infinity, -.infinity, .nan, -.nan, Float(bitPattern: 0x7F80_0001), Float(bitPattern: 0xFFC1_2345),
                   .greatestFiniteMagnitude, -1e-40, .leastNonzeroMagnitude]
        let widened = bits.map { HalfPrecision.float(bfloat16: $0).bitPattern }
        let rounded = inputs.map { HalfPrecision.bfloat16Bits($0) }
        forEachKernelLevel { level in
            var wide = [Float](repeating: 0, count: bits.count), narrow = [UInt16](repeating: 0, count: inputs.count)
            collie_bf16_to_f32(bits, &wide, bits.count)
            collie_f32_to_bf16(inputs, &narrow, inputs.count)
            XCTAssertEqual(wide.map(\.bitPattern), widened, "widening at level \(level)")
            if let i = inputs.indices.first(where: { narrow[$0] != rounded[$0] }) {
                XCTFail("level \(level): \(inputs[i]) (0x\(String(inputs[i].bitPattern, radix: 16))) rounded to "
                        + "0x\(String(narrow[i], radix: 16)), HalfPrecision gives 0x\(String(rounded[i], radix: 16))")
            }
        }
    }

    func testFloat16TensorsRoundTripThroughTheKernels() {
        let values: [Float] = [0, -0.0, 1, -2.5, 65504, 1e-7, 3.14159, 70000]
        let half = Tensor(values, shape: [values.count]).contiguousCopy(dtype: .float16)
        XCTAssertEqual(half.floats(), values.map { Float(Float16($0)) })
    }
}
