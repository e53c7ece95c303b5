import Foundation
import SwiftProtobuf

/// Writes TensorBoard event files (`events.out.tfevents.<time>.<host>`) with scalar summaries.
///
/// The file is a sequence of records, each
///
///     uint64 length | uint32 masked CRC32C(length bytes) | payload | uint32 masked CRC32C(payload)
///
/// (little-endian), where the payload is a serialized `tensorflow.Event` protobuf. The first
/// event carries `file_version: "brain.Event:2"`; each later one a `wall_time`, a `step` and a
/// `summary { value { tag, simple_value } }`. The protobuf code is generated (`TensorBoardEvent.pb.swift`
/// from `TensorBoardEvent.proto`); the record framing is written here.
/// Every event is written to the file when added, so TensorBoard sees it while training runs.
public final class TensorBoardEventWriter {
    /// The event file.
    public let url: URL
    private var handle: FileHandle?

    /// Creates a new event file in `directory` (created if missing), named after `now` (Unix
    /// seconds) and the host, and writes the file-version event.
    public init(directory: URL, now: Date = Date()) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let host = ProcessInfo.processInfo.hostName.isEmpty ? "localhost" : ProcessInfo.processInfo.hostName
        let base = "events.out.tfevents.\(Int(now.timeIntervalSince1970)).\(host)"
        var name = base, attempt = 0
        while FileManager.default.fileExists(atPath: directory.appendingPathComponent(name).path) {
            attempt += 1
            name = "\(base).\(attempt)"
        }
        url = directory.appendingPathComponent(name)
        guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: url.path])
        }
        handle = try FileHandle(forWritingTo: url)
        try write(TensorBoardEvent(wallTime: now.timeIntervalSince1970, step: 0, fileVersion: "brain.Event:2"))
    }

    /// Appends one event holding the scalars `values` (tag, value) at `step`.
    public func addScalars(_ values: [(tag: String, value: Double)], step: Int, wallTime: Date = Date()) throws {
        try write(TensorBoardEvent(wallTime: wallTime.timeIntervalSince1970, step: Int64(step),
                                   scalars: values.map { ($0.tag, Float($0.value)) }))
    }

    /// Appends one event holding the scalar `value` under `tag` at `step`.
    public func addScalar(_ tag: String, _ value: Double, step: Int, wallTime: Date = Date()) throws {
        try addScalars([(tag, value)], step: step, wallTime: wallTime)
    }

    /// Forces the written events to disk.
    public func flush() throws { try handle?.synchronize() }

    /// Closes the file; later additions are ignored.
    public func close() throws {
        try handle?.close()
        handle = nil
    }

    deinit { try? close() }

    private func write(_ event: TensorBoardEvent) throws {
        try handle?.write(contentsOf: Data(TensorBoardEvent.record(try event.serialized())))
    }
}

extension TensorBoardEvent {
    /// An event at `step` carrying the file version (the first event of a file) or scalar summaries.
    init(wallTime: Double, step: Int64, fileVersion: String? = nil, scalars: [(String, Float)] = []) {
        self.init()
        self.wallTime = wallTime
        self.step = step
        if let fileVersion { self.fileVersion = fileVersion }
        if !scalars.isEmpty {
            summary.value = scalars.map { tag, value in
                var entry = TensorBoardSummary.Value()
                entry.tag = tag
                entry.simpleValue = value
                return entry
            }
        }
    }

    /// The protobuf bytes: Event { 1: double wall_time, 2: int64 step, 3: string file_version,
    /// 5: Summary summary { 1: repeated Value value { 1: string tag, 2: float simple_value } } }.
    func serialized() throws -> [UInt8] { try serializedBytes() }

    /// Frames `payload` as one TFRecord: length, masked CRC of the length, payload, masked CRC.
    static func record(_ payload: [UInt8]) -> [UInt8] {
        var length = [UInt8]()
        appendLittleEndian(UInt64(payload.count), byteCount: 8, to: &length)
        var out = length
        appendLittleEndian(UInt64(CRC32C.masked(CRC32C.checksum(length))), byteCount: 4, to: &out)
        out += payload
        appendLittleEndian(UInt64(CRC32C.masked(CRC32C.checksum(payload))), byteCount: 4, to: &out)
        return out
    }

    private static func appendLittleEndian(_ value: UInt64, byteCount: Int, to out: inout [UInt8]) {
        for i in 0..<byteCount { out.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))) }
    }
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord files use it.
public enum CRC32C {
    private static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    /// The CRC-32C of `bytes` ("123456789" → 0xE3069283).
    public static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }

    /// TFRecord's masking of a CRC stored next to the data it covers: rotate right by 15, add a
    /// constant.
    public static func masked(_ crc: UInt32) -> UInt32 { ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8 }
}
