/// Reads a GGUF header's little-endian fields in order, each bounds-checked against the mapped file.
///
/// Every read names what it reads, so a truncated or damaged file fails with a message that says which field ran
/// past the end. Counts from the file are compared with the bytes left before anything is allocated for them.
struct GGUFCursor {
    let base: UnsafeRawPointer
    let size: Int
    let file: String
    private(set) var offset = 0

    /// Array elements read so far, all arrays together.
    private var arrayElements = 0

    /// Arrays nested deeper than this are refused (GGUF writers nest at most once; a hostile file could recurse).
    static let maximumArrayDepth = 8
    /// The most array elements a file's metadata may hold in all: 64 times the largest vocabularies (262,144 tokens),
    /// while a hostile file of small elements (24 bytes of memory each) stays under half a gigabyte.
    static let maximumArrayElements = 1 << 24

    init(base: UnsafeRawPointer, size: Int, file: String) {
        self.base = base
        self.size = size
        self.file = file
    }

    var remaining: Int { size - offset }

    /// The next `count` bytes.
    mutating func take(_ count: Int, _ what: @autoclosure () -> String) throws -> UnsafeRawBufferPointer {
        guard count >= 0, count <= remaining else {
            throw CheckpointError(file: file, "truncated: \(what()) at byte \(offset) needs \(count) bytes, "
                                  + "but the file ends at byte \(size)")
        }
        defer { offset += count }
        return UnsafeRawBufferPointer(start: base + offset, count: count)
    }

    mutating func load<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        T(littleEndian: try take(MemoryLayout<T>.size, what()).loadUnaligned(as: T.self))
    }

    /// A count or length stored as a `UInt64`, as an `Int` no larger than `limit`.
    mutating func count(_ what: @autoclosure () -> String, each elementSize: Int) throws -> Int {
        let stored = try load(UInt64.self, what())
        let room = UInt64(remaining / max(elementSize, 1))
        guard stored <= room, let count = Int(exactly: stored) else {
            throw CheckpointError(file: file, "\(what()) is \(stored), more than the \(remaining) bytes left in the "
                                  + "file can hold (damaged or truncated file?)")
        }
        return count
    }

    /// A GGUF string: a `UInt64` byte length, then that many bytes of UTF-8.
    mutating func string(_ what: @autoclosure () -> String) throws -> String {
        let length = try count("the length of \(what())", each: 1)
        let bytes = try take(length, what())
        guard let string = String(validating: bytes.bindMemory(to: UInt8.self), as: UTF8.self) else {
            throw CheckpointError(file: file, "\(what()) is not valid UTF-8")
        }
        return string
    }

    /// A metadata value type code.
    mutating func valueType(_ what: @autoclosure () -> String) throws -> GGUFValueType {
        let code = try load(UInt32.self, "the value type of \(what())")
        guard let type = GGUFValueType(rawValue: code) else {
            throw CheckpointError(file: file, "\(what()) has unknown value type \(code)")
        }
        return type
    }

    /// One metadata value of `type` (arrays recursively, at most `maximumArrayDepth` deep).
    mutating func value(_ type: GGUFValueType, _ what: @autoclosure () -> String, depth: Int = 0) throws -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try load(UInt8.self, what()))
        case .int8: return .int8(try load(Int8.self, what()))
        case .uint16: return .uint16(try load(UInt16.self, what()))
        case .int16: return .int16(try load(Int16.self, what()))
        case .uint32: return .uint32(try load(UInt32.self, what()))
        case .int32: return .int32(try load(Int32.self, what()))
        case .uint64: return .uint64(try load(UInt64.self, what()))
        case .int64: return .int64(try load(Int64.self, what()))
        case .float32: return .float32(Float(bitPattern: try load(UInt32.self, what())))
        case .float64: return .float64(Double(bitPattern: try load(UInt64.self, what())))
        case .bool:
            let byte = try load(UInt8.self, what())
            guard byte <= 1 else { throw CheckpointError(file: file, "\(what()) is a bool stored as \(byte), not 0 or 1") }
            return .bool(byte == 1)
        case .string: return .string(try string(what()))
        case .array:
            guard depth < Self.maximumArrayDepth else {
                throw CheckpointError(file: file, "\(what()) nests arrays more than \(Self.maximumArrayDepth) deep")
            }
            let elementType = try valueType("the elements of \(what())")
            let count = try count("the element count of \(what())", each: Self.minimumSize(of: elementType))
            arrayElements += count
            guard arrayElements <= Self.maximumArrayElements else {
                throw CheckpointError(file: file, "\(what()) brings the metadata's array elements past the limit of "
                                      + "\(Self.maximumArrayElements)")
            }
            var items: [GGUFValue] = []
            items.reserveCapacity(count)
            for i in 0..<count {
                items.append(try value(elementType, "element \(i) of \(what())", depth: depth + 1))
            }
            return .array(elementType, items)
        }
    }

    /// The fewest bytes a value of `type` takes (an empty string or array still has its header).
    static func minimumSize(of type: GGUFValueType) -> Int {
        switch type {
        case .uint8, .int8, .bool: 1
        case .uint16, .int16: 2
        case .uint32, .int32, .float32: 4
        case .uint64, .int64, .float64, .string: 8
        case .array: 12
        }
    }
}
