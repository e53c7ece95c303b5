import CollieTestSupport
import CollieTraining
import Foundation
import XCTest

/// A dataset file from a stranger: deep JSON, invalid UTF-8, numbers past Int and very long lines are each a
/// `DatasetError` naming the file and line, never a crash.
final class RecordFileLimitsTests: XCTestCase {
    private func load(_ bytes: [UInt8]) throws -> [TrainingRecord] {
        let url = try temporaryFolder(for: self).appendingPathComponent("strange.jsonl")
        try Data(bytes).write(to: url)
        return try TrainingRecord.load(from: url).records
    }

    private func assertDatasetError(_ bytes: [UInt8], line: Int, mentions words: [String],
                                    file: StaticString = #filePath, testLine: UInt = #line) {
        XCTAssertThrowsError(try load(bytes), file: file, line: testLine) { error in
            guard let error = error as? DatasetError else { return XCTFail("\(error)", file: file, line: testLine) }
            XCTAssertEqual(error.location?.line, line, "\(error)", file: file, line: testLine)
            XCTAssertTrue(error.location?.file.hasSuffix("strange.jsonl") ?? false, "\(error)", file: file, line: testLine)
            let message = "\(error)".prefix(1_000)
            for word in words { XCTAssertTrue(message.contains(word), "\(message) lacks \(word)", file: file, line: testLine) }
        }
    }

    private let good = Array("{\"text\": \"fine\"}\n".utf8)

    func testDeepJSONIsAnErrorNamingTheLine() {
        let deep = Array("{\"text\": \"x\", \"extra\": ".utf8) + Array(repeating: UInt8(ascii: "["), count: 100_000)
        assertDatasetError(good + deep + Array("\n".utf8), line: 2, mentions: ["nest"])
        let deepArray = Array("[".utf8) + Array(repeating: UInt8(ascii: "["), count: 100_000)
        assertDatasetError(deepArray, line: 1, mentions: ["nest"])
    }

    func testInvalidUTF8IsAnErrorNamingTheLineAndKey() {
        let broken = Array("{\"text\": \"a".utf8) + [0xFF, 0xFE] + Array("b\"}\n".utf8)
        assertDatasetError(good + good + broken, line: 3, mentions: ["\"text\"", "UTF-8"])
    }

    func testNumbersPastIntAreErrorsNamingTheLineAndKey() {
        for number in ["99999999999999999999", "1e300", "-1e300", "1.5"] {
            let record = Array("{\"tokens\": [1, \(number)]}\n".utf8)
            assertDatasetError(Array("{\"tokens\": [1, 2]}\n".utf8) + record, line: 2, mentions: ["\"tokens\"[1]", "integer"])
        }
    }

    func testVeryLongLinesAreReadOrReportedQuickly() throws {
        let long = String(repeating: "word ", count: 2_000_000)  // a 10 MB line
        let start = Date()
        let records = try load(good + Array("{\"text\": \"\(long)\"}\n".utf8))
        XCTAssertEqual(records.count, 2)
        assertDatasetError(good + Array("{\"text\": \"\(long)\n".utf8), line: 2, mentions: ["malformed JSON"])
        XCTAssertLessThan(Date().timeIntervalSince(start), 10)
    }

    func testADatasetThatIsAFIFOIsRefusedNotWaitedOn() throws {
        let url = try temporaryFolder(for: self).appendingPathComponent("data.jsonl")
        XCTAssertEqual(mkfifo(url.path, 0o600), 0)
        XCTAssertThrowsError(try TrainingRecord.load(from: url)) { error in
            XCTAssertTrue(error is DatasetError, "\(error)")
            XCTAssertTrue("\(error)".contains("data.jsonl") && "\(error)".contains("FIFO"), "\(error)")
        }
    }
}
