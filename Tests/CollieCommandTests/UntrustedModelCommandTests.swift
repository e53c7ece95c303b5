import CollieTestSupport
import Foundation
import XCTest

/// `collie generate` and `convert` given numbers and paths from strangers: each ends with a clear error (or does
/// the job) and an exit status, never a trap (SIGILL) or a hang.
final class UntrustedModelCommandTests: XCTestCase {
    func testGenerateWithHugeMaxNewTokensIsAContextError() throws {
        // Before: killed by SIGILL (prompt length + max_new_tokens overflowed).
        let folder = try temporaryFolder(for: self)
        let result = try CollieExecutable.run(["generate", "--model", Fixtures.model.path, "--prompt-ids", "1,2",
                                            "--max-new-tokens", "\(Int.max)"], in: folder, timeout: 60)
        XCTAssertEqual(result.status, 64, result.errors)
        XCTAssertTrue(result.errors.contains("exceeds the model's context"), result.errors)
    }

    func testConvertWithAShardSizeBeyondIntWritesOneFile() throws {
        // Before: killed by SIGILL converting 10^29 bytes to Int.
        let folder = try temporaryFolder(for: self)
        let out = folder.appendingPathComponent("out")
        let result = try CollieExecutable.run(["convert", "--model", Fixtures.model.path, "--out", out.path,
                                            "--max-shard-size", "99999999999999999999GB"], in: folder, timeout: 60)
        XCTAssertEqual(result.status, 0, result.errors)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("model.safetensors").path))
        for size in ["infGB", "nanMB", "0.1B", "-5GB"] {
            let bad = try CollieExecutable.run(["convert", "--model", Fixtures.model.path, "--out", out.path,
                                             "--max-shard-size=\(size)"], in: folder, timeout: 60)
            XCTAssertNotEqual(bad.status, 0, size)
            XCTAssertTrue(bad.errors.contains("'\(size)'"), bad.errors)
        }
    }

    func testConvertOutputThatCannotBeAFolderIsNamedInCollieWords() throws {
        // Before: "A file with the same name already exists." / "The file doesn't exist." (Foundation's words).
        let folder = try temporaryFolder(for: self)
        let file = folder.appendingPathComponent("a-file")
        try Data("x".utf8).write(to: file)
        for (out, words) in [("/dev/null", ["/dev/null", "character device, not a folder"]),
                             (file.path, [file.path, "regular file, not a folder"]),
                             (file.appendingPathComponent("sub").path, ["sub", "cannot be created as a folder (Not a directory)"]),
                             ("/proc/self/out", ["/proc/self/out", "cannot be created as a folder"])] {
            let result = try CollieExecutable.run(["convert", "--model", Fixtures.model.path, "--out", out], in: folder, timeout: 60)
            XCTAssertNotEqual(result.status, 0, out)
            for word in words { XCTAssertTrue(result.errors.contains(word), "\(out): \(result.errors)") }
        }
        XCTAssertEqual(try String(contentsOf: file, encoding: .utf8), "x", "the file is left alone")
    }

    func testModelPathsThatAreNotModelFoldersAreNamedInCollieWords() throws {
        // Before: "The file doesn't exist." / "You don't have permission.", or a hang on a FIFO.
        let folder = try temporaryFolder(for: self)
        let fifo = folder.appendingPathComponent("fifo-model")
        try FileManager.default.createDirectory(at: fifo, withIntermediateDirectories: true)
        for name in ["config.json", "model.safetensors"] {
            XCTAssertEqual(mkfifo(fifo.appendingPathComponent(name).path, 0o600), 0)
        }
        for (model, words) in [("/dev/zero", ["/dev/zero", "character device"]),
                               ("/proc/self/nope", ["/proc/self/nope", "does not exist"]),
                               (fifo.path, [fifo.appendingPathComponent("config.json").path, "FIFO"])] {
            // (--prompt reads the folder's tokenizer first, which the FIFO folder lacks.)
            let withText = model == fifo.path ? [] : [["generate", "--model", model, "--prompt", "hi"]]
            for arguments in [["generate", "--model", model, "--prompt-ids", "1"],
                              ["convert", "--model", model, "--out", folder.appendingPathComponent("o").path]] + withText {
                let result = try CollieExecutable.run(arguments, in: folder, timeout: 60)
                XCTAssertNotEqual(result.status, 0, "\(arguments)")
                for word in words { XCTAssertTrue(result.errors.contains(word), "\(arguments): \(result.errors)") }
            }
        }
    }

    func testChatTemplatePathsThatAreNotFilesAreNamedInCollieWords() throws {
        // Before: "You don't have permission." for /dev/zero, a hang for a FIFO.
        let folder = try temporaryFolder(for: self)
        let model = try ModelFixtures.linkedChatModel(in: folder)
        let fifo = folder.appendingPathComponent("template.jinja")
        XCTAssertEqual(mkfifo(fifo.path, 0o600), 0)
        for (template, words) in [("/dev/zero", ["/dev/zero", "character device"]), (fifo.path, [fifo.path, "FIFO"]),
                                  ("/proc/self/nope", ["/proc/self/nope", "does not exist"])] {
            let result = try CollieExecutable.run(["generate", "--model", model.path, "--prompt", "hi", "--chat",
                                                "--chat-template", template, "--max-new-tokens", "2"], in: folder, timeout: 60)
            XCTAssertNotEqual(result.status, 0, template)
            for word in words { XCTAssertTrue(result.errors.contains(word), "\(template): \(result.errors)") }
        }
    }
}
