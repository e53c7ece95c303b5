import Foundation
import XCTest

/// A new, empty folder under the system's temporary directory; the caller removes it.
public func makeTemporaryFolder() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("collie-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// A new, empty folder, removed with everything in it when `test` ends (from its set-up or the test itself).
public func temporaryFolder(for test: XCTestCase) throws -> URL {
    let url = try makeTemporaryFolder()
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}
