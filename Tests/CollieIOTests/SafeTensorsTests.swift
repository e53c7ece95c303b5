import CollieTestSupport
import Foundation
import XCTest
@testable import CollieEngine
@testable import CollieIO

final class SafeTensorsTests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws {
        folder = try temporaryFolder(for: self)
    }

    private var reference: URL {
        Bundle.module.url(forResource: "reference", withExtension: "safetensors", subdirectory: "Fixtures")!
    }

    // MARK: - Reading what the reference library wrote

    func testReadsEveryDTypeTheReferenceLibraryWrote() throws {
        let file = try SafeTensorsFile(url: reference)
        XCTAssertEqual(file.metadata["format"], "pt")
        XCTAssertEqual(Set(file.entries.keys), ["f32", "bf16", "f16", "i64", "scalar", "empty"])
        let f32 = try file.tensor("f32")
        XCTAssertEqual(f32.shape, [3, 4])
        XCTAssertEqual(f32.floats(), (0..<12).map { Float($0) / 8 })
        XCTAssertEqual(try file.tensor("bf16").floats(), [1.0, -2.5, 3.140625, 0.0009994507])
        XCTAssertEqual(try file.tensor("f16").floats(), [0.5, -65504, 6.097555e-05])
        XCTAssertEqual(try file.tensor("i64").ints(), [1, -2, 3, 1 << 40])
        XCTAssertEqual(try file.tensor("scalar").shape, [])
        XCTAssertEqual(try file.tensor("scalar").item, 7)
        XCTAssertEqual(try file.tensor("empty").shape, [0, 3])
    }

    func testAlignedTensorsAreViewsOfTheMappingNotCopies() throws {
        let file = try SafeTensorsFile(url: reference)
        let a = try file.tensor("f32"), b = try file.tensor("f32")
        XCTAssertEqual(a.storage.data, b.storage.data, "both reads view the same mapped bytes")
    }

    // MARK: - Writing

    func testWrittenFileRoundTripsValuesDTypesAndMetadata() throws {
        let url = folder.appendingPathComponent("x.safetensors")
        let tensors: [(String, Tensor)] = [
            ("a", Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3])),
            ("b", Tensor([0.1, -7], shape: [2], dtype: .bfloat16)),
            ("ids", Tensor(ints: [5, 6, 7], shape: [3])),
            ("t", Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3]).transposed()),   // written contiguously
        ]
        try SafeTensorsWriter.write(tensors, to: url)
        let file = try SafeTensorsFile(url: url)
        XCTAssertEqual(file.metadata, ["format": "pt"])
        XCTAssertEqual(try file.tensor("a").floats(), [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(try file.tensor("b").dtype, .bfloat16)
        XCTAssertEqual(try file.tensor("b").floats(), tensors[1].1.floats())
        XCTAssertEqual(try file.tensor("ids").ints(), [5, 6, 7])
        XCTAssertEqual(try file.tensor("t").shape, [3, 2])
        XCTAssertEqual(try file.tensor("t").floats(), [1, 4, 2, 5, 3, 6])
        // The header is padded so the data section is 8-byte aligned.
        let data = try Data(contentsOf: url)
        let headerLength = data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        XCTAssertEqual((8 + Int(headerLength)) % 8, 0)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["x.safetensors"],
                       "no temporary file is left behind")
    }

    func testLargeCheckpointsAreShardedWithAnIndexAndReadBackAsOneFolder() throws {
        let tensors: [(String, Tensor)] = (0..<5).map { ("layer.\($0).weight", Tensor.full([10, 10], Double($0))) }
        let files = try SafeTensorsWriter.writeSharded(tensors, to: folder, maxShardBytes: 900)
        XCTAssertEqual(files, ["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                               "model-00003-of-00003.safetensors", "model.safetensors.index.json"])
        let index = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent(files[3]))) as! [String: Any]
        XCTAssertEqual((index["metadata"] as! [String: Any])["total_size"] as? Int, 5 * 400)
        XCTAssertEqual((index["weight_map"] as! [String: String])["layer.4.weight"], "model-00003-of-00003.safetensors")
        let checkpoint = try CheckpointFolder(url: folder)
        XCTAssertEqual(checkpoint.names.count, 5)
        XCTAssertEqual(try checkpoint.tensor("layer.3.weight").floats(), [Float](repeating: 3, count: 100))
    }

    func testSmallCheckpointIsOneFileAndReplacesAStaleIndex() throws {
        try SafeTensorsWriter.writeSharded([("w", Tensor.full([2], 1))], to: folder, maxShardBytes: 4)
        try SafeTensorsWriter.writeSharded([("w", Tensor.full([2], 2))], to: folder, maxShardBytes: 1 << 20)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("model.safetensors.index.json").path))
        XCTAssertEqual(try CheckpointFolder(url: folder).tensor("w").floats(), [2, 2])
    }

    // MARK: - Corrupted files give a clear error naming file and tensor

    private func header(_ json: String, data: Int) -> Data {
        var bytes = Data()
        var n = UInt64(json.utf8.count).littleEndian
        bytes.append(Data(bytes: &n, count: 8))
        bytes.append(json.data(using: .utf8)!)
        bytes.append(Data(count: data))
        return bytes
    }

    private func assertRejected(_ contents: Data, mentioning words: [String], file: StaticString = #filePath, line: UInt = #line) {
        let url = folder.appendingPathComponent("bad-\(UUID().uuidString).safetensors")
        FileManager.default.createFile(atPath: url.path, contents: contents)
        XCTAssertThrowsError(try SafeTensorsFile(url: url), file: file, line: line) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains(url.path), "error does not name the file: \(message)", file: file, line: line)
            for word in words {
                XCTAssertTrue(message.contains(word), "error '\(message)' lacks '\(word)'", file: file, line: line)
            }
        }
    }

    func testTruncatedFileIsRejected() throws {
        let good = try Data(contentsOf: reference)
        assertRejected(good.prefix(good.count - 5), mentioning: ["truncated"])
        assertRejected(good.prefix(20), mentioning: ["header length"])
        assertRejected(good.prefix(3), mentioning: ["too short"])
    }

    func testHeaderThatIsNotJSONIsRejected() {
        assertRejected(header("{\"a\": {\"dtype\": \"F32\", ", data: 4), mentioning: ["JSON"])
    }

    func testOffsetsOutOfRangeAreRejected() {
        assertRejected(header(#"{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}"#, data: 8),
                       mentioning: ["'w'", "past the data section"])
    }

    func testOverlappingTensorsAreRejected() {
        let json = #"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}"#
        assertRejected(header(json, data: 12), mentioning: ["'b'", "overlaps"])
    }

    func testShapeThatDisagreesWithTheByteRangeIsRejected() {
        assertRejected(header(#"{"w": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 16]}}"#, data: 16),
                       mentioning: ["'w'", "BF16"])
    }

    func testUnknownDTypeAndBadShapeAreRejected() {
        assertRejected(header(#"{"w": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}}"#, data: 4),
                       mentioning: ["'w'", "F33"])
        assertRejected(header(#"{"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}"#, data: 4),
                       mentioning: ["'w'", "shape"])
    }

    func testMissingFolderAndMissingTensorAreClearErrors() throws {
        XCTAssertThrowsError(try CheckpointFolder(url: folder)) { XCTAssertTrue("\($0)".contains("no model.safetensors")) }
        let file = try SafeTensorsFile(url: reference)
        XCTAssertThrowsError(try file.tensor("nope")) { XCTAssertTrue("\($0)".contains("'nope'")) }
    }
}
