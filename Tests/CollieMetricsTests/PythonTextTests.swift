@testable import CollieMetrics
import XCTest

/// The Python string behaviour the metrics rely on: `str.lower()` (sacrebleu's --lowercase, rouge-score's
/// tokenizer) for every code point Python changes, with the final-sigma rule.
final class PythonTextTests: XCTestCase {
    struct Fixture: Decodable {
        var unicode_version: String
        var changed: [Changed]
        var strings: [[String]]

        struct Changed: Decodable {
            var codePoint: UInt32
            var lower: String
            init(from decoder: Decoder) throws {
                var c = try decoder.unkeyedContainer()
                codePoint = try c.decode(UInt32.self)
                lower = try c.decode(String.self)
            }
        }
    }

    private func lowered(_ text: String) -> String {
        String(String.UnicodeScalarView(PythonText.lowercased(Array(text.unicodeScalars))))
    }

    func testLowercaseEqualsPythonForEveryCodePointPythonChanges() throws {
        let fixture = try fixture("lowercase.json", as: Fixture.self)
        XCTAssertGreaterThan(fixture.changed.count, 1400)
        var wrong: [String] = []
        for item in fixture.changed {
            let scalar = try XCTUnwrap(Unicode.Scalar(item.codePoint))
            let actual = lowered(String(scalar))
            if actual.unicodeScalars.map(\.value) != item.lower.unicodeScalars.map(\.value) {
                wrong.append(String(format: "U+%04X", item.codePoint))
            }
        }
        XCTAssertEqual(wrong, [], "Python \(fixture.unicode_version) lowercases these differently")
        for pair in fixture.strings {
            XCTAssertEqual(Array(lowered(pair[0]).unicodeScalars), Array(pair[1].unicodeScalars), pair[0])
        }
    }

    func testSplitUsesPythonsWhitespace() {
        let text = "a\u{1C}b\u{85}c\u{A0}d\u{3000}e\u{200B}f"
        XCTAssertEqual(PythonText.split(Array(text.unicodeScalars)), ["a", "b", "c", "d", "e\u{200B}f"])
    }
}
