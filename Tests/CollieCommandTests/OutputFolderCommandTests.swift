import CollieEngine
import CollieTestSupport
import Foundation
import XCTest

/// `collie train` never loses what it did not write in `output_dir`: an earlier run's model survives a rerun
/// unless `--overwrite` (which names each path it removes), a foreign folder is refused, the model trained from is
/// never inside what a run replaces, and two runs cannot share a folder.
final class OutputFolderCommandTests: XCTestCase {
    /// A short run: 8 records, one epoch of 4 updates, no checkpoints, the CSV monitor.
    private func makeRun(_ folder: URL, extra: String = "") throws -> URL {
        try writeFixtureRun(in: folder, records: 8, lengths: 4...8, settings: """
            train_epochs: 1
            train_micro_batch_size: 2
            optimizer: {name: adamw, lr: 1.0e-3}
            output_dir: out
            monitor_outputs: [csv]
            \(extra)
            """)
    }

    private func contents(_ url: URL) -> Data? { FileManager.default.contents(atPath: url.path) }

    private func assertFails(_ result: ChildProcess.Result, mentioning fragments: [String],
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertNotEqual(result.status, 0, "exit status; output: \(result.output)", file: file, line: line)
        for fragment in fragments {
            XCTAssertTrue(result.errors.contains(fragment), "'\(fragment)' not in: \(result.errors)", file: file, line: line)
        }
    }

    func testRerunWithoutOverwriteKeepsTheEarlierRunsFinalModel() throws {
        let folder = try temporaryFolder(for: self)
        let config = try makeRun(folder)
        XCTAssertEqual(try CollieExecutable.run(["train", config.path], in: folder).status, 0)
        let weights = folder.appendingPathComponent("out/final/model.safetensors")
        let saved = try XCTUnwrap(contents(weights))

        let again = try CollieExecutable.run(["train", config.path], in: folder, log: "again")
        assertFails(again, mentioning: ["earlier run's outputs (final, monitors.csv)", "--overwrite"])
        XCTAssertEqual(contents(weights), saved, "the earlier run's model is untouched")
    }

    func testOverwriteNamesEachPathItRemoves() throws {
        let folder = try temporaryFolder(for: self)
        let config = try makeRun(folder)
        XCTAssertEqual(try CollieExecutable.run(["train", config.path], in: folder).status, 0)
        let notes = folder.appendingPathComponent("out/notes.txt")
        try "mine".write(to: notes, atomically: true, encoding: .utf8)

        let over = try CollieExecutable.run(["train", config.path, "--overwrite"], in: folder, log: "over")
        XCTAssertEqual(over.status, 0, over.errors)
        for name in ["final", "monitors.csv"] {
            XCTAssertTrue(over.output.contains("removing \(folder.appendingPathComponent("out").path)/\(name) (--overwrite)"),
                          over.output)
        }
        XCTAssertEqual(try String(contentsOf: notes, encoding: .utf8), "mine", "a file Collie did not write stays")
        XCTAssertNotNil(contents(folder.appendingPathComponent("out/final/model.safetensors")))
    }

    func testForeignFolderIsRefusedAndLeftIntact() throws {
        let folder = try temporaryFolder(for: self)
        let config = try makeRun(folder)
        let output = folder.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: output.appendingPathComponent("final"), withIntermediateDirectories: true)
        let theirs = output.appendingPathComponent("final/weights.bin")
        try Data([1, 2, 3]).write(to: theirs)
        try "notes".write(to: output.appendingPathComponent("notes.txt"), atomically: true, encoding: .utf8)

        assertFails(try CollieExecutable.run(["train", config.path], in: folder),
                    mentioning: ["output_dir", "not written by collie train", "--overwrite"])
        assertFails(try CollieExecutable.run(["train", config.path, "--overwrite"], in: folder, log: "over"),
                    mentioning: ["holds final", "move them away"])
        XCTAssertEqual(contents(theirs), Data([1, 2, 3]))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: output.path).sorted(), ["final", "notes.txt"],
                       "nothing written into the foreign folder")

        // With --overwrite and nothing under Collie's names, the run writes beside the folder's own files.
        try FileManager.default.removeItem(at: output.appendingPathComponent("final"))
        let beside = try CollieExecutable.run(["train", config.path, "--overwrite"], in: folder, log: "beside")
        XCTAssertEqual(beside.status, 0, beside.errors)
        XCTAssertEqual(try String(contentsOf: output.appendingPathComponent("notes.txt"), encoding: .utf8), "notes")
    }

    func testTrainingFromTheOutputFoldersOwnModelIsRefused() throws {
        let folder = try temporaryFolder(for: self)
        let config = try makeRun(folder)
        XCTAssertEqual(try CollieExecutable.run(["train", config.path], in: folder).status, 0)
        let weights = folder.appendingPathComponent("out/final/model.safetensors")
        let saved = try XCTUnwrap(contents(weights))
        // Through a symbolic link too: what counts is where the files are.
        let link = folder.appendingPathComponent("continued")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: folder.appendingPathComponent("out/final"))

        for model in ["out/final", link.path] {
            let result = try CollieExecutable.run(["train", config.path, "--overwrite", "--set", "model=\(model)"],
                                                  in: folder, log: "continue")
            assertFails(result, mentioning: ["model (\(model)) is inside final/", "choose another output_dir"])
        }
        XCTAssertEqual(contents(weights), saved)
    }

    func testASecondRunOnTheSameFolderFailsAtOnce() throws {
        let folder = try temporaryFolder(for: self)
        let config = try makeRun(folder, extra: "callbacks: {checkpoint: {every_n_batches: 1}}")
        let output = folder.appendingPathComponent("out")
        // The first run sleeps while writing checkpoint-1.
        let first = try CollieExecutable.start(["train", config.path], in: folder, log: "first",
                                               environment: ["COLLIE_TEST_PAUSE_WRITING": "checkpoint-1"])
        defer { first.kill() }
        let paused = first.wait {
            ((try? FileManager.default.contentsOfDirectory(atPath: output.path)) ?? []).contains { $0.hasPrefix(".checkpoint-1.partial-") }
        }
        XCTAssertTrue(paused, first.output + first.errors)

        let second = try CollieExecutable.run(["train", config.path, "--overwrite"], in: folder, log: "second", timeout: 60)
        assertFails(second, mentioning: ["in use by process", "two runs cannot share an output folder"])
        XCTAssertTrue(first.isRunning)
    }

    func testEvaluatingWithTheTrainingConfigKeepsTheTrainingLog() throws {
        let folder = try temporaryFolder(for: self)
        let config = try makeRun(folder)
        XCTAssertEqual(try CollieExecutable.run(["train", config.path], in: folder).status, 0)
        let log = folder.appendingPathComponent("out/monitors.csv")
        let steps = try XCTUnwrap(contents(log))

        let eval = try CollieExecutable.run(["eval", config.path, "--set", "eval_data=train.jsonl"], in: folder, log: "eval")
        assertFails(eval, mentioning: ["is a collie train output folder, whose monitors.csv eval would replace",
                                       "--set output_dir="])
        XCTAssertEqual(contents(log), steps, "the training run's step log is untouched")
    }

    func testRootHomeAndEmptyOutputFoldersAreRefused() throws {
        let folder = try temporaryFolder(for: self)
        let config = try makeRun(folder)
        let home = folder.appendingPathComponent("home")
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        assertFails(try CollieExecutable.run(["train", config.path, "--overwrite", "--set", "output_dir=/"], in: folder),
                    mentioning: ["output_dir: /: the root folder"])
        assertFails(try CollieExecutable.run(["train", config.path, "--overwrite", "--set", "output_dir=\(home.path)"],
                                             in: folder, environment: ["HOME": home.path]),
                    mentioning: ["the home folder cannot be an output folder"])
        assertFails(try CollieExecutable.run(["train", config.path, "--set", "output_dir="], in: folder),
                    mentioning: ["output_dir: must name a folder"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: home.path), [])
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("output").path))
    }
}
