import CollieModels
import CollieTestSupport
import Foundation
import XCTest
@testable import CollieGeneration

/// The tokenizer files a saved model carries: a folder's chat template travels whether it is in
/// tokenizer_config.json or, as transformers 5 saves it, in chat_template.jinja alone.
final class TokenizerFilesTests: XCTestCase {
    private let template = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"

    func testFolderFilesCopyChatTemplateJinjaAndTheTemplateLoadsWithoutTokenizerConfig() throws {
        let root = try temporaryFolder(for: self)
        let source = root.appendingPathComponent("source"), saved = root.appendingPathComponent("saved")
        for folder in [source, saved] { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) }
        try template.write(to: source.appendingPathComponent("chat_template.jinja"), atomically: true, encoding: .utf8)
        try "{}".write(to: source.appendingPathComponent("tokenizer.json"), atomically: true, encoding: .utf8)
        try TokenizerFiles.folder(source).write(to: saved)
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: saved.path)),
                       ["chat_template.jinja", "tokenizer.json"])
        let loaded = try XCTUnwrap(try ChatTemplate.load(fromFolder: saved))
        XCTAssertEqual(try loaded.render([ChatMessage(role: "user", content: "hi")], addGenerationPrompt: false), "<user>hi")
    }

    func testContentsGiveTheirChatTemplate() throws {
        let files = TokenizerFiles.contents(["chat_template.jinja": Data(template.utf8)])
        let loaded = try XCTUnwrap(try ChatTemplate(files: files))
        XCTAssertEqual(try loaded.render([ChatMessage(role: "assistant", content: "ok")], addGenerationPrompt: false),
                       "<assistant>ok")
        XCTAssertNil(try ChatTemplate(files: .contents(["tokenizer.json": Data("{}".utf8)])))
    }
}
