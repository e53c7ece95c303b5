import CollieTestSupport
import Foundation
import XCTest
@testable import CollieIO

/// Reading GGUF files: what `gguf`'s GGUFWriter wrote (Tests/CollieIOTests/Fixtures/gguf, made by
/// scripts/fixtures/make_gguf_fixtures.py) comes back exactly, and damaged or hostile files (truncated anywhere,
/// bad magic or version, counts and lengths beyond the file, bad dimensions, offsets, types and alignments,
/// duplicates) are each a `CheckpointError` naming the file and the key or tensor, never a trap.
final class GGUFReaderTests: XCTestCase {
    private let fixtures = TestPaths.fixtures(of: "CollieIOTests").appendingPathComponent("gguf")
    private var folder: URL!

    override func setUpWithError() throws {
        folder = try temporaryFolder(for: self)
    }

    // MARK: - What gguf's writer wrote

    private func assertMetadataFixture(_ file: GGUFFile, version: UInt32) throws {
        XCTAssertEqual(file.version, version)
        XCTAssertEqual(file.metadata.map(\.key), [
            "general.architecture", "general.alignment", "test.uint8", "test.int8", "test.uint16", "test.int16",
            "test.uint32", "test.int32", "test.uint64", "test.int64", "test.float32", "test.float64", "test.bool",
            "test.string", "test.strings", "test.int32s", "test.float32s", "test.nested", "test.uint8s", "test.bools",
        ])
        XCTAssertEqual(file["general.architecture"], .string("llama"))
        XCTAssertEqual(file["general.alignment"], .uint32(64))
        XCTAssertEqual(file.alignment, 64)
        XCTAssertEqual(file["test.uint8"], .uint8(200))
        XCTAssertEqual(file["test.int8"], .int8(-100))
        XCTAssertEqual(file["test.uint16"], .uint16(60000))
        XCTAssertEqual(file["test.int16"], .int16(-30000))
        XCTAssertEqual(file["test.uint32"], .uint32(4_000_000_000))
        XCTAssertEqual(file["test.int32"], .int32(-2_000_000_000))
        XCTAssertEqual(file["test.uint64"], .uint64(18_000_000_000_000_000_000))
        XCTAssertEqual(file["test.int64"], .int64(-9_000_000_000_000_000_000))
        XCTAssertEqual(file["test.float32"], .float32(0.1))
        XCTAssertEqual(file["test.float64"], .float64(0.1))
        XCTAssertEqual(file["test.bool"], .bool(true))
        XCTAssertEqual(file["test.string"], .string("héllo, 世界 🦙"))
        XCTAssertEqual(file["test.strings"], .array(.string, ["a", "", "ü", "<0x0A>"].map { .string($0) }))
        XCTAssertEqual(file["test.int32s"], .array(.int32, [.int32(1), .int32(-2), .int32(3)]))
        XCTAssertEqual(file["test.float32s"], .array(.float32, [.float32(0.5), .float32(-1.25)]))
        XCTAssertEqual(file["test.nested"], .array(.array, [.array(.int32, [.int32(1), .int32(2)]),
                                                            .array(.int32, [.int32(3)])]))
        XCTAssertEqual(file["test.uint8s"], .array(.uint8, [.uint8(1), .uint8(2), .uint8(255)]))
        XCTAssertEqual(file["test.bools"], .array(.bool, [.bool(true), .bool(false)]))
        XCTAssertNil(file["test.missing"])

        XCTAssertEqual(file.tensors.map(\.name), ["t5", "t2x3", "t2x1x4", "t1x2x1x3"])
        for (name, shape) in [("t5", [5]), ("t2x3", [2, 3]), ("t2x1x4", [2, 1, 4]), ("t1x2x1x3", [1, 2, 1, 3])] {
            let info = try XCTUnwrap(file.tensorInfo(name))
            XCTAssertEqual(info.shape, shape, name)
            XCTAssertEqual(info.dimensions, shape.reversed(), name)
            XCTAssertEqual(info.type, .f32, name)
            XCTAssertEqual(info.elementCount, shape.reduce(1, *), name)
            XCTAssertEqual(info.byteCount, 4 * info.elementCount, name)
            XCTAssertEqual(info.offset % 64, 0, "\(name) is aligned to general.alignment")
            XCTAssertEqual(try file.floats(of: info), (0..<info.elementCount).map(Float.init), name)
            XCTAssertEqual(file.bytes(of: info).count, info.byteCount)
        }
        XCTAssertNil(file.tensorInfo("missing"))
    }

    func testReadsEveryMetadataTypeAndTensorGGUFWriterWrote() throws {
        try assertMetadataFixture(GGUFFile(url: fixtures.appendingPathComponent("metadata-v3.gguf")), version: 3)
    }

    func testReadsVersion2() throws {
        try assertMetadataFixture(GGUFFile(url: fixtures.appendingPathComponent("metadata-v2.gguf")), version: 2)
    }

    func testBigEndianFileIsRefusedByName() throws {
        let url = fixtures.appendingPathComponent("big-endian.gguf")
        assertError(try GGUFFile(url: url), mentions: [url.path, "big-endian"])
    }

    // MARK: - Damaged files

    private func write(_ bytes: [UInt8], _ name: String = "test.gguf") throws -> URL {
        let url = folder.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url
    }

    private func assertError(_ body: @autoclosure () throws -> Any, mentions words: [String],
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertTrue(error is CheckpointError, "\(error)", file: file, line: line)
            for word in words {
                XCTAssertTrue("\(error)".contains(word), "'\(error)' lacks '\(word)'", file: file, line: line)
            }
        }
    }

    /// Opens `bytes` as a GGUF file and expects an error that names the file and each of `words`.
    private func assertRefused(_ bytes: [UInt8], mentions words: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let url = try write(bytes)
        assertError(try GGUFFile(url: url), mentions: [url.path] + words, file: file, line: line)
    }

    func testEveryTruncationIsANamedError() throws {
        for fixture in ["metadata-v3.gguf", "quants.gguf"] {
            let bytes = try [UInt8](Data(contentsOf: fixtures.appendingPathComponent(fixture)))
            let whole = try GGUFFile(url: fixtures.appendingPathComponent(fixture))
            // The writer pads the last tensor's data; a file cut inside that padding still holds every tensor.
            let dataEnd = whole.tensors.map { $0.offset + $0.byteCount }.max() ?? 0
            let step = bytes.count > 4096 ? 7 : 1
            for length in stride(from: 0, to: bytes.count, by: step) {
                let url = try write(Array(bytes[..<length]), "prefix.gguf")
                if length < dataEnd {
                    assertError(try GGUFFile(url: url), mentions: [url.path])
                } else {
                    XCTAssertNoThrow(try GGUFFile(url: url), "\(fixture) cut at \(length)")
                }
            }
        }
    }

    func testBadMagicAndVersionsAreRefused() throws {
        let good = try [UInt8](Data(contentsOf: fixtures.appendingPathComponent("metadata-v3.gguf")))
        var bytes = good
        bytes[0] = UInt8(ascii: "X")
        try assertRefused(bytes, mentions: ["not a GGUF file"])
        for (version, words) in [(UInt32(1), ["version 1", "old format"]), (4, ["version 4"]), (0, ["version 0"])] {
            bytes = good
            bytes.replaceSubrange(4..<8, with: withUnsafeBytes(of: version.littleEndian, Array.init))
            try assertRefused(bytes, mentions: words)
        }
        try assertRefused([], mentions: ["truncated", "magic"])
    }

    func testHugeCountsAndLengthsAreRefusedBeforeAllocating() throws {
        for count in [UInt64(1) << 40, UInt64(Int.max), UInt64.max] {
            try assertRefused(GGUFBuilder(tensors: count, entries: 0).bytes, mentions: ["tensor count", "\(count)"])
            try assertRefused(GGUFBuilder(tensors: 0, entries: count).bytes, mentions: ["metadata entry count", "\(count)"])
            var key = GGUFBuilder(tensors: 0, entries: 1)
            key.u64(count)
            key.bytes += [UInt8](repeating: 0, count: 16)
            try assertRefused(key.bytes, mentions: ["length of the key of metadata entry 0", "\(count)"])
            var string = GGUFBuilder(tensors: 0, entries: 1)
            string.key("k", .string)
            string.u64(count)
            try assertRefused(string.bytes, mentions: ["metadata key 'k'", "\(count)"])
            var array = GGUFBuilder(tensors: 0, entries: 1)
            array.key("tokens", .array)
            array.u32(GGUFValueType.uint8.rawValue)
            array.u64(count)
            try assertRefused(array.bytes, mentions: ["element count of metadata key 'tokens'", "\(count)"])
        }
        // More array elements than any real vocabulary needs, in a file that holds them (a file of tiny elements would
        // otherwise take 24 bytes of memory per byte).
        var elements = GGUFBuilder(tensors: 0, entries: 1)
        elements.key("tokens", .array)
        elements.u32(GGUFValueType.uint8.rawValue)
        elements.u64(UInt64(GGUFCursor.maximumArrayElements + 1))
        elements.bytes += [UInt8](repeating: 0, count: GGUFCursor.maximumArrayElements + 1)
        try assertRefused(elements.bytes, mentions: ["metadata key 'tokens'", "limit of \(GGUFCursor.maximumArrayElements)"])
        // Counts each small enough alone, but not together.
        var both = GGUFBuilder(tensors: 3, entries: 10)
        both.bytes += [UInt8](repeating: 0, count: 200)
        try assertRefused(both.bytes, mentions: ["10 metadata entries and 3 tensors"])
    }

    func testBadMetadataValuesAreRefusedByKey() throws {
        var type = GGUFBuilder(tensors: 0, entries: 1)
        type.key("general.name", .uint8)
        type.bytes.replaceSubrange((type.bytes.count - 4)..., with: [13, 0, 0, 0])
        type.bytes += [0]
        try assertRefused(type.bytes, mentions: ["metadata key 'general.name'", "unknown value type 13"])

        var utf8 = GGUFBuilder(tensors: 0, entries: 1)
        utf8.key("general.name", .string)
        utf8.u64(2)
        utf8.bytes += [0xC3, 0x28]
        try assertRefused(utf8.bytes, mentions: ["metadata key 'general.name'", "UTF-8"])

        var bool = GGUFBuilder(tensors: 0, entries: 1)
        bool.key("flag", .bool)
        bool.bytes += [2]
        try assertRefused(bool.bytes, mentions: ["metadata key 'flag'", "bool"])

        var deep = GGUFBuilder(tensors: 0, entries: 1)
        deep.key("deep", .array)
        for _ in 0..<9 {
            deep.u32(GGUFValueType.array.rawValue)
            deep.u64(1)
        }
        deep.u32(GGUFValueType.uint8.rawValue)
        deep.u64(1)
        deep.bytes += [1]
        try assertRefused(deep.bytes, mentions: ["deep", "nests arrays"])

        var twice = GGUFBuilder(tensors: 0, entries: 2)
        for _ in 0..<2 {
            twice.key("general.name", .string)
            twice.string("x")
        }
        try assertRefused(twice.bytes, mentions: ["'general.name' appears twice"])
    }

    func testEmptyStringsAndArraysAreAccepted() throws {
        var builder = GGUFBuilder(tensors: 0, entries: 2)
        builder.key("empty.string", .string)
        builder.string("")
        builder.key("empty.array", .array)
        builder.u32(GGUFValueType.string.rawValue)
        builder.u64(0)
        let file = try GGUFFile(url: write(builder.bytes))
        XCTAssertEqual(file["empty.string"], .string(""))
        XCTAssertEqual(file["empty.array"], .array(.string, []))
        XCTAssertEqual(file.tensors, [])
    }

    func testBadAlignmentsAreRefused() throws {
        for (value, type) in [([UInt8](repeating: 0, count: 4), GGUFValueType.uint32), ([3, 0, 0, 0], .uint32),
                              ([0, 0, 0, 0x80], .uint32), ([1, 0, 0, 0, 0, 0, 0, 0], .string)] {
            var builder = GGUFBuilder(tensors: 0, entries: 1)
            builder.key("general.alignment", type)
            builder.bytes += value
            if type == .string { builder.bytes += [UInt8(ascii: "x")] }
            try assertRefused(builder.bytes, mentions: ["'general.alignment'", "power of two"])
        }
    }

    /// A file with one F32 tensor per (name, dimensions, type code, offset), the data section holding `dataBytes`.
    private func tensorFile(_ tensors: [(String, [UInt64], UInt32, UInt64)], dataBytes: Int = 64) -> [UInt8] {
        var builder = GGUFBuilder(tensors: UInt64(tensors.count), entries: 0)
        for (name, dimensions, type, offset) in tensors {
            builder.tensor(name, dimensions, type: type, offset: offset)
        }
        builder.padToAlignment()
        builder.bytes += [UInt8](repeating: 0, count: dataBytes)
        return builder.bytes
    }

    func testBadTensorInfosAreRefusedByName() throws {
        let f32 = GGMLType.f32.rawValue
        XCTAssertNoThrow(try GGUFFile(url: write(tensorFile([("w", [4, 2], f32, 0), ("b", [4], f32, 32)]))))
        try assertRefused(tensorFile([("w", [], f32, 0)]), mentions: ["tensor 'w'", "0 dimensions"])
        try assertRefused(tensorFile([("w", [1, 1, 1, 1, 1], f32, 0)]), mentions: ["tensor 'w'", "5 dimensions"])
        try assertRefused(tensorFile([("w", [4, 0], f32, 0)]), mentions: ["tensor 'w'", "dimension 1 of size 0"])
        try assertRefused(tensorFile([("w", [UInt64.max], f32, 0)]), mentions: ["tensor 'w'", "\(UInt64.max)"])
        try assertRefused(tensorFile([("w", [1 << 32, 1 << 32], f32, 0)]), mentions: ["tensor 'w'", "overflows"])
        try assertRefused(tensorFile([("w", [1 << 62], f32, 0)]), mentions: ["tensor 'w'", "byte count", "overflows"])
        try assertRefused(tensorFile([("w", [4], 1000, 0)]), mentions: ["tensor 'w'", "unknown ggml type code 1000"])
        try assertRefused(tensorFile([("w", [16], GGMLType.q4_0.rawValue, 0)]),
                          mentions: ["tensor 'w'", "16 values", "Q4_0", "block size 32"])
        try assertRefused(tensorFile([("w", [4], f32, 8)]), mentions: ["tensor 'w'", "offset 8", "alignment 32"])
        try assertRefused(tensorFile([("w", [4], f32, 64)]), mentions: ["tensor 'w'", "past the end", "truncated"])
        try assertRefused(tensorFile([("w", [4], f32, UInt64.max - 31)]), mentions: ["tensor 'w'", "past the end"])
        try assertRefused(tensorFile([("w", [4], f32, 1 << 62)]), mentions: ["tensor 'w'", "past the end"])
        try assertRefused(tensorFile([("w", [16], f32, 0), ("b", [4], f32, 32)]), mentions: ["tensor 'b' overlaps tensor 'w'"])
        try assertRefused(tensorFile([("w", [4], f32, 0), ("w", [4], f32, 32)]), mentions: ["tensor 'w' appears twice"])
    }
}

/// Writes GGUF header bytes field by field (little-endian), for files a writer would never make.
private struct GGUFBuilder {
    var bytes: [UInt8] = []

    /// The magic, version and counts.
    init(version: UInt32 = 3, tensors: UInt64, entries: UInt64) {
        bytes = Array("GGUF".utf8)
        u32(version)
        u64(tensors)
        u64(entries)
    }

    mutating func u32(_ value: UInt32) { bytes += withUnsafeBytes(of: value.littleEndian, Array.init) }
    mutating func u64(_ value: UInt64) { bytes += withUnsafeBytes(of: value.littleEndian, Array.init) }

    mutating func string(_ value: String) {
        u64(UInt64(value.utf8.count))
        bytes += value.utf8
    }

    /// A metadata key and its value type; the value follows.
    mutating func key(_ key: String, _ type: GGUFValueType) {
        string(key)
        u32(type.rawValue)
    }

    mutating func tensor(_ name: String, _ dimensions: [UInt64], type: UInt32, offset: UInt64) {
        string(name)
        u32(UInt32(dimensions.count))
        dimensions.forEach { u64($0) }
        u32(type)
        u64(offset)
    }

    mutating func padToAlignment(_ alignment: Int = 32) {
        bytes += [UInt8](repeating: 0, count: (alignment - bytes.count % alignment) % alignment)
    }
}
