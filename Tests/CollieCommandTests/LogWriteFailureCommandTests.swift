import CollieEngine
import CollieTestSupport
import Foundation
import XCTest

/// `collie train` whose standard output cannot be written (a full disk: `> /dev/full`) trains to the end and saves
/// its model; huge config numbers are clear errors, not traps.
final class LogWriteFailureCommandTests: XCTestCase {
    private func makeRun(_ folder: URL) throws -> URL {
        try writeFixtureRun(in: folder, records: 8, lengths: 4...8, settings: """
            train_epochs: 2
            train_micro_batch_size: 2
            optimizer: {name: adamw, lr: 1.0e-3}
            output_dir: out
            monitor_outputs: [csv, tensorboard]
            callbacks: {checkpoint: {every_n_batches: 2, keep_last: 1}}
            """)
    }

    func testTrainingWithStandardOutputOnAFullDiskFinishes() throws {
        let folder = try temporaryFolder(for: self)
        let config = try makeRun(folder)
        guard let full = FileHandle(forWritingAtPath: "/dev/full") else { throw XCTSkip("no /dev/full on this system") }
        let process = Process()
        process.executableURL = try CollieExecutable.url()
        process.arguments = ["train", config.path]
        process.currentDirectoryURL = folder
        process.environment = ProcessInfo.processInfo.environment.merging(ChildProcess.singleThreaded) { $1 }
        process.standardOutput = full
        let errors = folder.appendingPathComponent("errors.txt")
        FileManager.default.createFile(atPath: errors.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: errors)
        try process.run()
        process.waitUntilExit()
        let stderr = try String(contentsOf: errors, encoding: .utf8)
        XCTAssertEqual(process.terminationReason, .exit, stderr)
        XCTAssertEqual(process.terminationStatus, 0, stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent("out/final/model.safetensors").path))
    }

    func testAHugeEpochCountIsAClearError() throws {
        let folder = try temporaryFolder(for: self)
        let config = try makeRun(folder)
        let result = try CollieExecutable.run(["train", config.path, "--set", "train_epochs=\(Int.max)"], in: folder)
        XCTAssertEqual(result.status, 1, result.errors)
        XCTAssertTrue(result.errors.contains("train_epochs: \(Int.max) epochs of 4 updates are more updates than Collie can count"),
                      result.errors)
    }
}
