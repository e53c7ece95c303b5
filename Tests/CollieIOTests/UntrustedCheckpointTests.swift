import CollieTestSupport
import Foundation
import XCTest
@testable import CollieEngine
@testable import CollieIO

/// Weight files and folders from strangers: numbers beyond `Int`, files that are not regular files, and index
/// entries that point outside the folder are errors naming the file, never a trap, a hang or a read elsewhere.
final class UntrustedCheckpointTests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws {
        folder = try temporaryFolder(for: self)
    }

    /// A safetensors file whose first 8 bytes say `length` and whose header is `json`.
    private func file(_ name: String, length: UInt64? = nil, json: String = "{}", data: Int = 0) throws -> URL {
        var bytes = Data()
        var n = (length ?? UInt64(json.utf8.count)).littleEndian
        bytes.append(Data(bytes: &n, count: 8))
        bytes.append(Data(json.utf8))
        bytes.append(Data(count: data))
        let url = folder.appendingPathComponent(name)
        try bytes.write(to: url)
        return url
    }

    private func assertError(_ body: @autoclosure () throws -> Any, mentions words: [String],
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            for word in words {
                XCTAssertTrue("\(error)".contains(word), "'\(error)' lacks '\(word)'", file: file, line: line)
            }
        }
    }

    func testHeaderLengthBeyondIntIsRejectedNotTrapped() throws {
        // Before: Int(UInt64) trapped on a length ≥ 2^63 ahead of the range check.
        for length in [UInt64(1) << 63, UInt64.max, UInt64(Int.max)] {
            let url = try file("huge-\(length).safetensors", length: length)
            assertError(try SafeTensorsFile(url: url), mentions: [url.path, "header length \(length)", "limit"])
        }
    }

    func testShapeAndOffsetsBeyondIntAreRejected() throws {
        let json = #"{"w": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 16]}}"#
        assertError(try SafeTensorsFile(url: file("shape.safetensors", json: json, data: 16)), mentions: ["'w'"])
        let offsets = #"{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 18446744073709551615]}}"#
        assertError(try SafeTensorsFile(url: file("offsets.safetensors", json: offsets, data: 16)), mentions: ["'w'", "data_offsets"])
    }

    func testFIFOIsRefusedWithoutWaitingForAWriter() throws {
        // Before: open(2) waited forever for a writer.
        let url = folder.appendingPathComponent("model.safetensors")
        XCTAssertEqual(mkfifo(url.path, 0o600), 0)
        assertError(try SafeTensorsFile(url: url), mentions: [url.path, "FIFO", "not a regular file"])
        assertError(try CheckpointFolder(url: folder), mentions: [url.path, "FIFO"])
        assertError(try InputFile.contents(of: url), mentions: [url.path, "FIFO"])
    }

    func testDevicesAndMissingPathsAreNamedInCollieWords() throws {
        assertError(try SafeTensorsFile(url: URL(fileURLWithPath: "/dev/zero")), mentions: ["/dev/zero", "character device"])
        assertError(try CheckpointFolder(url: URL(fileURLWithPath: "/dev/zero")), mentions: ["/dev/zero", "not a folder"])
        let missing = folder.appendingPathComponent("nope")
        assertError(try CheckpointFolder(url: missing), mentions: [missing.path, "does not exist"])
        assertError(try SafeTensorsFile(url: missing), mentions: [missing.path, "does not exist"])
        assertError(try SafeTensorsFile(url: folder), mentions: [folder.path, "a folder"])
        // A /proc file reports size 0 but has contents: read to the end, never trusting st_size.
        XCTAssertFalse(try InputFile.contents(of: URL(fileURLWithPath: "/proc/self/status")).isEmpty)
        assertError(try SafeTensorsFile(url: URL(fileURLWithPath: "/proc/self/status")), mentions: ["too short"])
    }

    func testContentsAreLimited() throws {
        let url = try file("big.json", json: String(repeating: " ", count: 100))
        assertError(try InputFile.contents(of: url, limit: 50), mentions: [url.path, "larger than 50 bytes"])
        XCTAssertEqual(try InputFile.contents(of: url, limit: 200).count, 108)
    }

    func testIndexEntriesOutsideTheFolderAreRefused() throws {
        // A valid shard beside the model folder, and one inside it.
        let outside = folder.appendingPathComponent("x.safetensors")
        try SafeTensorsWriter.write([("w", Tensor.full([2], 1))], to: outside)
        let model = folder.appendingPathComponent("model")
        try FileManager.default.createDirectory(at: model, withIntermediateDirectories: true)
        try SafeTensorsWriter.write([("w", Tensor.full([2], 1))], to: model.appendingPathComponent("inside.safetensors"))
        let index = model.appendingPathComponent("model.safetensors.index.json")
        // Before: "../x.safetensors" and the absolute path were opened and loaded.
        for name in ["../x.safetensors", outside.path, "sub/../../x.safetensors", ""] {
            let json = try JSONSerialization.data(withJSONObject: ["weight_map": ["w": name]])
            try json.write(to: index)
            assertError(try CheckpointFolder(url: model), mentions: [index.path, "'\(name)'", "not a file name in the model folder"])
        }
        try JSONSerialization.data(withJSONObject: ["weight_map": ["w": "inside.safetensors"]]).write(to: index)
        XCTAssertEqual(try CheckpointFolder(url: model).tensor("w").floats(), [1, 1])
    }

    func testSymbolicLinksInsideTheFolderAreFollowed() throws {
        // Hugging Face's cache links a snapshot's files to blobs outside the snapshot folder.
        let blob = folder.appendingPathComponent("blob")
        try SafeTensorsWriter.write([("w", Tensor.full([2], 3))], to: blob)
        let snapshot = folder.appendingPathComponent("snapshot")
        try FileManager.default.createDirectory(at: snapshot, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(at: snapshot.appendingPathComponent("model.safetensors"), withDestinationURL: blob)
        XCTAssertEqual(try CheckpointFolder(url: snapshot).tensor("w").floats(), [3, 3])
    }
}
