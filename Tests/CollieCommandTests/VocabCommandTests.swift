import CollieTestSupport
import Foundation
import XCTest

/// `collie vocab merge`'s refusals: each names the file or flag, and nothing is written (the model is checked before
/// the first file). The merge itself: VocabularyMergeTests and VocabularyExpansionTests; the whole recipe:
/// ExamplesCommandTests' expand_vocab test.
final class VocabCommandTests: XCTestCase {
    private let base = TestPaths.tokenizers.appendingPathComponent("llama2-spm/tokenizer.model").path
    private let add = TestPaths.tokenizers.appendingPathComponent("chinese-sp/chinese_sp.model").path

    private func merge(_ arguments: [String], in folder: URL) throws -> ChildProcess.Result {
        try CollieExecutable.run(["vocab", "merge"] + arguments, in: folder, timeout: 300)
    }

    func testTheTokenizerAloneIsWrittenWithoutAModel() throws {
        let folder = try temporaryFolder(for: self)
        let out = folder.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try Data("mine".utf8).write(to: out.appendingPathComponent("notes.txt"))
        let run = try merge(["--base", base, "--add", add, "--out", out.path], in: folder)
        XCTAssertEqual(run.status, 0, run.errors)
        let names = try FileManager.default.contentsOfDirectory(atPath: out.path).sorted()
        XCTAssertEqual(names, ["notes.txt", "tokenizer.model", "tokenizer_config.json"], "nothing else is touched")
        XCTAssertEqual(try String(contentsOf: out.appendingPathComponent("notes.txt"), encoding: .utf8), "mine")
    }

    func testBadInputsAreRefusedNamingTheFileAndNothingIsWritten() throws {
        let folder = try temporaryFolder(for: self)
        let out = folder.appendingPathComponent("out")
        // A model trained with another vocabulary (the fixture model has 64 ids).
        var run = try merge(["--base", base, "--add", add, "--model", Fixtures.model.path, "--out", out.path], in: folder)
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.errors.contains("has 64 rows, but the base tokenizer has 32000 pieces"), run.errors)
        XCTAssertTrue(run.errors.contains(Fixtures.model.path), run.errors)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
        // A tokenizer.json where a .model belongs.
        let json = TestPaths.llama2Tokenizer.appendingPathComponent("tokenizer.json").path
        run = try merge(["--base", base, "--add", json, "--out", out.path], in: folder)
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.errors.contains(json) && run.errors.contains("not a SentencePiece model"), run.errors)
        // A missing file.
        run = try merge(["--base", folder.appendingPathComponent("none.model").path, "--add", add, "--out", out.path], in: folder)
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.errors.contains("none.model"), run.errors)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
        // The model folder as --out, and an --out whose tokenizer.json would shadow the merged model.
        run = try merge(["--base", base, "--add", add, "--model", Fixtures.model.path, "--out", Fixtures.model.path], in: folder)
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.errors.contains("must not be the --model folder"), run.errors)
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: out.appendingPathComponent("tokenizer.json"))
        run = try merge(["--base", base, "--add", add, "--out", out.path], in: folder)
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.errors.contains("would be loaded instead of the merged tokenizer.model"), run.errors)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.path), ["tokenizer.json"])
    }
}
