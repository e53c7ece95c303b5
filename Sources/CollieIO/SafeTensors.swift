import CollieEngine
import Foundation

/// A problem with a checkpoint file, naming the file and, where there is one, the tensor.
public struct CheckpointError: Error, CustomStringConvertible, Equatable {
    /// The file the problem is in.
    public let file: String
    /// What is wrong, for a person to act on.
    public let message: String

    public init(file: String, _ message: String) {
        self.file = file
        self.message = message
    }

    public var description: String { "\(file): \(message)" }
}

/// The element types the safetensors format names, and their sizes in bytes.
public enum SafeTensorsDType: String, Codable, Sendable, CaseIterable {
    case bool = "BOOL", u8 = "U8", i8 = "I8", f8e5m2 = "F8_E5M2", f8e4m3 = "F8_E4M3"
    case i16 = "I16", u16 = "U16", f16 = "F16", bf16 = "BF16"
    case i32 = "I32", u32 = "U32", f32 = "F32"
    case i64 = "I64", u64 = "U64", f64 = "F64"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .bool, .u8, .i8, .f8e5m2, .f8e4m3: 1
        case .i16, .u16, .f16, .bf16: 2
        case .i32, .u32, .f32: 4
        case .i64, .u64, .f64: 8
        }
    }

    /// The engine dtype that holds this element type, if any.
    public var dtype: DType? {
        switch self {
        case .f32: .float32
        case .f64: .float64
        case .bf16: .bfloat16
        case .f16: .float16
        case .i32: .int32
        case .i64: .int64
        default: nil
        }
    }

    /// The safetensors name for an engine dtype.
    public init(_ dtype: DType) {
        switch dtype {
        case .float32: self = .f32
        case .float64: self = .f64
        case .bfloat16: self = .bf16
        case .float16: self = .f16
        case .int32: self = .i32
        case .int64: self = .i64
        }
    }
}

/// One entry of a safetensors header.
public struct SafeTensorsEntry: Sendable, Equatable {
    public let name: String
    public let dtype: SafeTensorsDType
    public let shape: [Int]
    /// Byte range within the data section (after the header).
    public let range: Range<Int>
}

/// A memory-mapped safetensors file whose header has been validated.
///
/// The header is checked completely when the file opens (JSON, known dtypes, shape × dtype size
/// equal to each byte range, ranges in bounds, contiguous and non-overlapping, covering the data
/// section), so a corrupted or truncated file fails there with a message naming the file and
/// tensor. Tensors are read lazily: `tensor(_:)` maps one entry without touching the others.
public final class SafeTensorsFile: Sendable {
    /// The file's path.
    public let path: String
    /// Entries by name.
    public let entries: [String: SafeTensorsEntry]
    /// The free-form `__metadata__` map.
    public let metadata: [String: String]
    private let mapping: MappedFile
    private let dataStart: Int

    /// The largest header accepted (the reference library's limit): a length beyond it is a damaged file.
    public static let maximumHeaderLength = 100_000_000

    /// Tensor names in file order.
    public var names: [String] { entries.values.sorted { $0.range.lowerBound < $1.range.lowerBound }.map(\.name) }

    /// Opens and validates `url`.
    public init(url: URL) throws {
        path = url.path
        mapping = try MappedFile(path: url.path)
        let size = mapping.size
        guard size >= 8 else { throw CheckpointError(file: path, "too short for a safetensors file (\(size) bytes)") }
        // Compared as a UInt64: a length from the file may be beyond Int's range.
        let storedLength = UInt64(littleEndian: mapping.base.loadUnaligned(as: UInt64.self))
        guard storedLength > 0, storedLength <= UInt64(Self.maximumHeaderLength), storedLength <= UInt64(size - 8),
              let headerLength = Int(exactly: storedLength) else {
            throw CheckpointError(file: path, storedLength > UInt64(Self.maximumHeaderLength)
                ? "header length \(storedLength) is over the limit of \(Self.maximumHeaderLength) bytes (not a safetensors file?)"
                : "header length \(storedLength) does not fit a file of \(size) bytes (truncated?)")
        }
        dataStart = 8 + headerLength
        let headerData = Data(bytes: mapping.base + 8, count: headerLength)
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: headerData)
        } catch {
            throw CheckpointError(file: path, "header is not valid JSON (\(error.localizedDescription))")
        }
        guard let object = json as? [String: Any] else {
            throw CheckpointError(file: path, "header is not a JSON object")
        }
        var entries: [String: SafeTensorsEntry] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in object {
            if name == "__metadata__" {
                guard let map = value as? [String: Any] else {
                    throw CheckpointError(file: path, "__metadata__ is not an object of strings")
                }
                for (k, v) in map {
                    guard let s = v as? String else { throw CheckpointError(file: path, "__metadata__[\(k)] is not a string") }
                    metadata[k] = s
                }
                continue
            }
            entries[name] = try Self.entry(name, value, file: path)
        }
        // Ranges must tile the data section exactly: sorted, contiguous, in bounds.
        let dataSize = size - dataStart
        var expected = 0
        for entry in entries.values.sorted(by: { ($0.range.lowerBound, $0.range.upperBound) < ($1.range.lowerBound, $1.range.upperBound) }) {
            if entry.range.lowerBound < expected {
                throw CheckpointError(file: path, "tensor '\(entry.name)' overlaps the previous tensor (offset \(entry.range.lowerBound) < \(expected))")
            }
            if entry.range.lowerBound > expected {
                throw CheckpointError(file: path, "gap before tensor '\(entry.name)' (offset \(entry.range.lowerBound), expected \(expected))")
            }
            if entry.range.upperBound > dataSize {
                throw CheckpointError(file: path, "tensor '\(entry.name)' ends at byte \(entry.range.upperBound) past the data section of \(dataSize) bytes (truncated?)")
            }
            expected = entry.range.upperBound
        }
        if expected != dataSize {
            throw CheckpointError(file: path, "data section has \(dataSize) bytes but the tensors cover \(expected)")
        }
        self.entries = entries
        self.metadata = metadata
    }

    private static func entry(_ name: String, _ value: Any, file: String) throws -> SafeTensorsEntry {
        guard let info = value as? [String: Any] else {
            throw CheckpointError(file: file, "entry '\(name)' is not an object")
        }
        guard let dtypeName = info["dtype"] as? String else {
            throw CheckpointError(file: file, "tensor '\(name)' has no dtype")
        }
        guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
            throw CheckpointError(file: file, "tensor '\(name)' has unknown dtype '\(dtypeName)'")
        }
        guard let shapeValues = info["shape"] as? [Any],
              let shape = Optional(shapeValues.compactMap { ($0 as? NSNumber).flatMap { Int(exactly: $0.doubleValue) } }),
              shape.count == shapeValues.count, shape.allSatisfy({ $0 >= 0 }) else {
            throw CheckpointError(file: file, "tensor '\(name)' has an invalid shape")
        }
        guard let offsets = info["data_offsets"] as? [Any], offsets.count == 2,
              let begin = (offsets[0] as? NSNumber).flatMap({ Int(exactly: $0.doubleValue) }),
              let end = (offsets[1] as? NSNumber).flatMap({ Int(exactly: $0.doubleValue) }),
              begin >= 0, end >= begin else {
            throw CheckpointError(file: file, "tensor '\(name)' has invalid data_offsets")
        }
        let (count, overflow) = shape.reduce((1, false)) { acc, d in
            let (p, o) = acc.0.multipliedReportingOverflow(by: d)
            return (p, acc.1 || o)
        }
        let (bytes, overflow2) = count.multipliedReportingOverflow(by: dtype.size)
        guard !overflow, !overflow2, bytes == end - begin else {
            throw CheckpointError(file: file, "tensor '\(name)': shape \(shape) × \(dtype.size) bytes (\(dtypeName)) ≠ its \(end - begin)-byte range")
        }
        return SafeTensorsEntry(name: name, dtype: dtype, shape: shape, range: begin..<end)
    }

    /// The tensor named `name`, in its stored dtype. A view of the mapping when its bytes are
    /// aligned for the dtype; otherwise a copy.
    public func tensor(_ name: String) throws -> Tensor {
        guard let entry = entries[name] else { throw CheckpointError(file: path, "no tensor named '\(name)'") }
        guard let dtype = entry.dtype.dtype else {
            throw CheckpointError(file: path, "tensor '\(name)' has dtype \(entry.dtype.rawValue), which Collie cannot load")
        }
        let start = mapping.base + dataStart + entry.range.lowerBound
        if Int(bitPattern: start) % dtype.size == 0 {
            let mapping = self.mapping
            let storage = TensorStorage(borrowing: UnsafeMutableRawPointer(mutating: start), byteCount: entry.range.count) {
                withExtendedLifetime(mapping) {}
            }
            return Tensor(storage: storage, shape: entry.shape, dtype: dtype)
        }
        let t = Tensor(uninitializedShape: entry.shape, dtype: dtype)
        t.storage.data.copyMemory(from: start, byteCount: entry.range.count)
        return t
    }
}

/// A read-only memory mapping of a whole file, unmapped when the last user lets go.
final class MappedFile: @unchecked Sendable {
    let base: UnsafeRawPointer
    let size: Int

    /// Maps the regular file at `path` (a FIFO or device is refused before anything is read).
    init(path: String) throws {
        let (fd, size) = try InputFile.open(path)
        defer { close(fd) }
        self.size = size
        if size == 0 {
            base = UnsafeRawPointer(UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 8))
            return
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw CheckpointError(file: path, "cannot map (\(String(cString: strerror(errno))))")
        }
        base = UnsafeRawPointer(p)
    }

    deinit {
        if size == 0 { UnsafeMutableRawPointer(mutating: base).deallocate() } else { munmap(UnsafeMutableRawPointer(mutating: base), size) }
    }
}
