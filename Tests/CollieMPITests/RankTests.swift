import CollieMPI
import CollieTestSupport
import Foundation
import XCTest

extension MPIRun {
    /// Whether this process is one rank of an `mpirun` launch made by `runRankTests`.
    static var isRank: Bool { MPICommunicator.isLaunchedByMPIRun && ProcessInfo.processInfo.environment["COLLIE_RANK_TESTS"] == "1" }
}

extension XCTestCase {
    /// Runs the test `name` (`Class/testMethod`) of this binary on `ranks` processes under mpirun and fails unless
    /// every rank passed it.
    func runRankTests(_ name: String, ranks: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let result = try MPIRun.run(ranks: ranks, MPIRun.testBinary, ["CollieMPITests.\(name)"],
                                    in: temporaryFolder(for: self), environment: ["COLLIE_RANK_TESTS": "1"])
        XCTAssertEqual(result.status, 0, "\(name) on \(ranks) ranks:\n\(result.output)", file: file, line: line)
        let passed = result.output.split(separator: "\n").filter { $0.contains("Test Case '") && $0.contains("' passed (") }.count
        XCTAssertEqual(passed, ranks, "every rank runs and passes \(name):\n\(result.output)", file: file, line: line)
    }
}
