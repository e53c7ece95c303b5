import XCTest
import CCollieKernels
@testable import CollieEngine
import CollieTestSupport

/// The peak measurement behind MFU: each instruction is measured only where the kernel level has it, and gives a
/// positive rate there, and nothing for thread counts it cannot run.
final class ArithmeticPeakTests: XCTestCase {
    func testEachInstructionIsMeasuredExactlyWhereTheLevelHasIt() {
        forEachKernelLevel { level in
            XCTAssertEqual(ArithmeticPeak.float32AVX2.isAvailable, level >= 1)
            XCTAssertEqual(ArithmeticPeak.float32AVX512.isAvailable, level >= 2)
            XCTAssertEqual(ArithmeticPeak.bfloat16AVX512.isAvailable, level >= 4)
            XCTAssertEqual(ArithmeticPeak.bfloat16AMX.isAvailable, level >= 5)
            XCTAssertEqual(ArithmeticPeak.bfloat16, level >= 5 ? .bfloat16AMX : level >= 4 ? .bfloat16AVX512 : nil)
            XCTAssertEqual(ArithmeticPeak.float32, level >= 2 ? .float32AVX512 : level >= 1 ? .float32AVX2 : nil)
            for peak in ArithmeticPeak.allCases {
                let gflops = peak.measure(threads: 1, seconds: 0.02)
                if peak.isAvailable {
                    XCTAssertNotNil(gflops, "\(peak) at level \(level)")
                    XCTAssertGreaterThan(gflops ?? 0, 0.5, "\(peak) at level \(level)")
                    XCTAssertTrue(gflops?.isFinite ?? false)
                } else {
                    XCTAssertNil(gflops, "\(peak) is not available at level \(level)")
                }
            }
        }
    }

    func testThreadCountsOutsideOneTo256MeasureNothing() {
        for peak in ArithmeticPeak.allCases {
            XCTAssertNil(peak.measure(threads: 0, seconds: 0.01))
            XCTAssertNil(peak.measure(threads: 257, seconds: 0.01))
            XCTAssertNil(peak.measure(threads: 1, seconds: 0))
        }
        XCTAssertEqual(collie_peak_gflops(COLLIE_PEAK_FP32_AVX2, 0, 0.01), 0)
    }
}
