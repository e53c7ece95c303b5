import Foundation
@testable import CollieTraining

/// An independent reader of TensorBoard event files for the tests: TFRecord framing with both
/// CRCs checked, and just enough protobuf decoding for `Event` / `Summary` / `Summary.Value`.
enum EventFileReader {
    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    struct Event: Equatable {
        var wallTime: Double?
        var step: Int64 = 0
        var fileVersion: String?
        var scalars: [String: Float] = [:]
        var tags: [String] = []
    }

    /// The payloads of every record in `bytes`, checking lengths and masked CRC32Cs.
    static func records(_ bytes: [UInt8]) throws -> [[UInt8]] {
        var records: [[UInt8]] = []
        var i = 0
        while i < bytes.count {
            guard i + 12 <= bytes.count else { throw Failure("truncated record header at byte \(i)") }
            let lengthBytes = Array(bytes[i..<i + 8])
            let length = Int(littleEndian(lengthBytes))
            guard UInt32(littleEndian(Array(bytes[i + 8..<i + 12]))) == CRC32C.masked(CRC32C.checksum(lengthBytes)) else {
                throw Failure("length CRC mismatch at byte \(i)")
            }
            let start = i + 12
            guard start + length + 4 <= bytes.count else { throw Failure("truncated record at byte \(i)") }
            let payload = Array(bytes[start..<start + length])
            guard UInt32(littleEndian(Array(bytes[start + length..<start + length + 4])))
                    == CRC32C.masked(CRC32C.checksum(payload)) else {
                throw Failure("payload CRC mismatch in the record at byte \(i)")
            }
            records.append(payload)
            i = start + length + 4
        }
        return records
    }

    /// Decodes a serialized `tensorflow.Event`.
    static func event(_ payload: [UInt8]) throws -> Event {
        var event = Event()
        for field in try fields(payload) {
            switch (field.number, field.value) {
            case (1, .fixed64(let bits)): event.wallTime = Double(bitPattern: bits)
            case (2, .varint(let v)): event.step = Int64(bitPattern: v)
            case (3, .bytes(let b)): event.fileVersion = String(decoding: b, as: UTF8.self)
            case (5, .bytes(let summary)):
                for value in try fields(summary) where value.number == 1 {
                    guard case .bytes(let entry) = value.value else { throw Failure("Summary.value is not a message") }
                    var tag = "", scalar: Float?
                    for f in try fields(entry) {
                        switch (f.number, f.value) {
                        case (1, .bytes(let b)): tag = String(decoding: b, as: UTF8.self)
                        case (2, .fixed32(let bits)): scalar = Float(bitPattern: bits)
                        default: break
                        }
                    }
                    event.tags.append(tag)
                    event.scalars[tag] = scalar
                }
            default: throw Failure("unexpected Event field \(field.number)")
            }
        }
        return event
    }

    /// Every event of the file at `url`.
    static func events(at url: URL) throws -> [Event] {
        try records([UInt8](Data(contentsOf: url))).map(event)
    }

    enum Value { case varint(UInt64), fixed64(UInt64), bytes([UInt8]), fixed32(UInt32) }

    static func fields(_ bytes: [UInt8]) throws -> [(number: Int, value: Value)] {
        var out: [(Int, Value)] = []
        var i = 0
        func varint() throws -> UInt64 {
            var result: UInt64 = 0, shift: UInt64 = 0
            while true {
                guard i < bytes.count, shift < 64 else { throw Failure("bad varint") }
                let b = bytes[i]; i += 1
                result |= UInt64(b & 0x7F) << shift
                if b < 0x80 { return result }
                shift += 7
            }
        }
        func take(_ n: Int) throws -> [UInt8] {
            guard i + n <= bytes.count else { throw Failure("field runs past the message") }
            defer { i += n }
            return Array(bytes[i..<i + n])
        }
        while i < bytes.count {
            let key = try varint()
            let number = Int(key >> 3)
            switch key & 7 {
            case 0: out.append((number, .varint(try varint())))
            case 1: out.append((number, .fixed64(littleEndian(try take(8)))))
            case 2: let n = Int(try varint()); out.append((number, .bytes(try take(n))))
            case 5: out.append((number, .fixed32(UInt32(littleEndian(try take(4))))))
            default: throw Failure("unsupported wire type \(key & 7)")
            }
        }
        return out
    }

    static func littleEndian(_ bytes: [UInt8]) -> UInt64 {
        bytes.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }
}
