import CollieTraining
import Foundation
import XCTest

/// A config (or `--set` value) from a stranger cannot exhaust memory or the stack: aliases, nesting and
/// numbers past the limits are a `ConfigError` naming the line and the limit.
final class ConfigLimitsTests: XCTestCase {
    private func assertConfigError(_ text: String, overrides: [String] = [], mentions words: [String],
                                   line: UInt = #line) {
        XCTAssertThrowsError(try CollieConfig(text: text, source: "strange.yaml", overrides: overrides),
                             line: line) { error in
            XCTAssertTrue(error is ConfigError, "\(error)", line: line)
            let message = "\(error)".prefix(2_000)
            for word in words { XCTAssertTrue(message.contains(word), "\(message) lacks \(word)", line: line) }
        }
    }

    /// Nine levels of nine aliases: 432 bytes standing for 9^9 (387 million) strings. Seven levels took 4.4 s and
    /// 674 MB before any key was checked; nine would take tens of gigabytes.
    func testAliasBombIsRefusedQuickly() {
        var lines = ["a0: &a0 [" + Array(repeating: "\"lol\"", count: 9).joined(separator: ",") + "]"]
        for level in 1..<9 {
            lines.append("a\(level): &a\(level) [" + Array(repeating: "*a\(level - 1)", count: 9).joined(separator: ",") + "]")
        }
        let bomb = lines.joined(separator: "\n") + "\n"
        let start = Date()
        assertConfigError(bomb, mentions: ["strange.yaml", "aliases", "ConfigNode.maximumValues"])
        XCTAssertLessThan(Date().timeIntervalSince(start), 2)
    }

    func testDeepNestingIsAnErrorNotAStackOverflow() {
        let depth = 100_000
        let flow = "model: " + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "\n"
        assertConfigError(flow, mentions: ["strange.yaml:1", "ConfigNode.maximumDepth"])
        let sections = "model: tiny\n" + String(repeating: "{a: ", count: depth) + "1" + String(repeating: "}", count: depth)
        assertConfigError(sections, mentions: ["strange.yaml:2", "ConfigNode.maximumDepth"])
        let dashes = "model:\n" + String(repeating: "- ", count: depth) + "x\n"
        assertConfigError(dashes, mentions: ["strange.yaml:2", "ConfigNode.maximumIndentation"])
        // Old Mac line breaks: YAML reads \r as one, so the count does too.
        let indented = "model:\r" + (0..<2_000).map { String(repeating: " ", count: $0) + "k:" }.joined(separator: "\r")
        assertConfigError(indented, mentions: ["ConfigNode.maximumIndentation"])
        let overrideKey = (0..<depth).map { _ in "a" }.joined(separator: ".")
        assertConfigError("model: tiny\n", overrides: [overrideKey + "=1"], mentions: ["ConfigNode.maximumDepth"])
        assertConfigError("model: tiny\n", overrides: ["a=" + String(repeating: "[", count: depth)],
                          mentions: ["--set", "ConfigNode.maximumDepth"])
    }

    /// Nesting within the limit parses, and the exact depth limit is checked on the parsed tree.
    func testNestingUpToTheLimitIsReadAndOneMoreIsRefused() {
        let nested = { (depth: Int) in
            "model: tiny\nextra: " + String(repeating: "[", count: depth - 1) + String(repeating: "]", count: depth - 1)
        }
        assertConfigError(nested(64), mentions: ["strange.yaml:2", "unknown key"])
        assertConfigError(nested(65), mentions: ["strange.yaml:2", "ConfigNode.maximumDepth"])
    }

    func testAnchorsInARealConfigStillWork() throws {
        let config = try CollieConfig(text: """
            model: tiny
            tokenizer: tok
            optimizer: {name: adamw, lr: &rate 0.001, betas: &betas [0.9, 0.95]}
            lr_scheduler: {type: cosine, warmup_ratio: 0.03}
            """)
        XCTAssertEqual(config.optimizer.learningRate, 0.001)
    }

    func testIntegersPastTheirTypeAreErrorsNamingTheKey() {
        for value in ["99999999999999999999", "1e300", "-1e300", ".inf", ".nan", "9223372036854775808"] {
            assertConfigError("model: tiny\nmax_length: \(value)\n", mentions: ["strange.yaml:2", "max_length", "integer"])
            assertConfigError("model: tiny\n", overrides: ["max_length=\(value)"], mentions: ["max_length", "integer"])
        }
    }
}
