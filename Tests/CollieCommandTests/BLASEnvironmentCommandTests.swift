import CollieTestSupport
import Foundation
import XCTest

/// OpenBLAS reads its settings when it loads, so `collie` restarts itself once with the ones it lacks: with more than
/// one OpenBLAS thread and no `OPENBLAS_THREAD_TIMEOUT`, the restarted process runs with 4 (OpenBLAS's idle workers
/// sleep almost at once instead of polling beside Collie's threads). A value the caller set, or a single OpenBLAS thread,
/// leaves the environment as it is.
final class BLASEnvironmentCommandTests: XCTestCase {
    /// The host `collie bench ops` reports (the attention-memory group alone: one forward+backward, in process).
    func host(_ environment: [String: String]) throws -> [String: Any] {
        let folder = try temporaryFolder(for: self)
        let result = try CollieExecutable.run(["bench", "ops", "--only", "attention-memory", "--json"], in: folder,
                                              environment: environment)
        XCTAssertEqual(result.status, 0, result.errors)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
        return try XCTUnwrap(report["host"] as? [String: Any])
    }

    func testRestartSetsTheThreadTimeoutWhereOpenBLASRunsSeveralThreads() throws {
        #if os(Linux)
        let host = try host(["OPENBLAS_NUM_THREADS": "2", "OPENBLAS_THREAD_TIMEOUT": ""])
        XCTAssertEqual(host["openblasThreadTimeout"] as? String, "4")
        XCTAssertEqual(host["threadTimeoutSetByCollie"] as? Bool, true)
        XCTAssertEqual(host["openblasThreads"] as? Int, 2, "the restart keeps the caller's thread count")
        #else
        throw XCTSkip("the restart is Linux-only")
        #endif
    }

    func testCallersTimeoutAndASingleThreadNeedNoRestart() throws {
        let set = try host(["OPENBLAS_NUM_THREADS": "2", "OPENBLAS_THREAD_TIMEOUT": "7"])
        XCTAssertEqual(set["openblasThreadTimeout"] as? String, "7")
        XCTAssertEqual(set["threadTimeoutSetByCollie"] as? Bool, false)
        let single = try host(["OPENBLAS_NUM_THREADS": "1", "OPENBLAS_THREAD_TIMEOUT": ""])
        XCTAssertEqual(single["openblasThreadTimeout"] as? String, "")
        XCTAssertEqual(single["threadTimeoutSetByCollie"] as? Bool, false)
    }
}
