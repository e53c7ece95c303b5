@testable import CollieEngine
import XCTest
import CollieTestSupport

/// The decoding path of `linear` (matrix-vector kernels reading bf16 or float32 weights in place)
/// equals BLAS on the float32 values, and stays out of the way of gradient recording.
final class LinearDecodingTests: XCTestCase {
    func testDecodingLinearEqualsBLASForBothWeightTypes() {
        forEachKernelLevel { level in checkDecodingLinearEqualsBLAS(level: level) }
    }

    private func checkDecodingLinearEqualsBLAS(level: Int32) {
        var generator = RandomGenerator(seed: 3)
        // Output counts that leave rows over after the kernel's tiles of 8, 6 and 3 weight rows per thread.
        for (inFeatures, outFeatures) in [(64, 200), (37, 5), (768, 96), (48, 131), (16, 1)] {
            let weight = Tensor.normal([outFeatures, inFeatures], generator: &generator)
            let bias = Tensor.normal([outFeatures], generator: &generator)
            for dtype in [DType.float32, .bfloat16] {
                let stored = weight.contiguousCopy(dtype: dtype)
                let widened = stored.contiguousCopy(dtype: .float32)   // the values the kernel sees
                for rows in 1...Tensor.decodingRowLimit {
                    let x = Tensor.normal([rows, inFeatures], generator: &generator)
                    let fast = withNoGrad { Tensor.withDecodingKernels { Parallel.withSpinningWorkers {
                        Tensor.decodingLinear(x, weight: stored, bias: bias)
                    } } }
                    XCTAssertNotNil(fast)
                    // Reference: BLAS through linear with more rows than the decoding path takes.
                    let padded = Tensor.concat([x, Tensor.zeros([Tensor.decodingRowLimit, inFeatures])], axis: 0)
                    let reference = withNoGrad { Tensor.linear(padded, weight: widened, bias: bias) }
                        .slice(axis: 0, 0..<rows).contiguous().floats()
                    let got = fast!.floats()
                    XCTAssertEqual(got.count, reference.count)
                    for (a, b) in zip(got, reference) {
                        XCTAssertEqual(a, b, accuracy: 1e-4 * max(1, abs(b)), "level \(level), \(dtype) \(rows)×\(inFeatures)→\(outFeatures)")
                    }
                }
            }
        }
    }

    func testOnlyGradientFreeDecodingUsesTheKernels() {
        let weight = Tensor.ones([4, 8])
        weight.requiresGrad = true
        Tensor.withDecodingKernels {
            XCTAssertNil(Tensor.decodingLinear(Tensor.ones([1, 8]), weight: weight, bias: nil))
            XCTAssertNotNil(withNoGrad { Tensor.decodingLinear(Tensor.ones([1, 8]), weight: weight, bias: nil) })
            XCTAssertNil(withNoGrad { Tensor.decodingLinear(Tensor.ones([17, 8]), weight: weight, bias: nil) })
        }
        XCTAssertNil(withNoGrad { Tensor.decodingLinear(Tensor.ones([1, 8]), weight: weight, bias: nil) },
                     "outside withDecodingKernels, BLAS keeps training and evaluation numerics")
    }
}
