import Foundation

/// Writes a GGUF v3 file: metadata in the order it was set, tensor infos, then the tensors, each padded to the
/// alignment — byte for byte what the `gguf` Python package's `GGUFWriter` writes for the same keys and tensors.
///
/// The alignment is 32 unless the metadata sets `general.alignment` (as `GGUFWriter.add_custom_alignment` does;
/// a power of two). Tensor bytes come from closures called one at a time while the file is written, so a model
/// is never held twice in memory. The file appears atomically: a temporary file renamed into place.
public struct GGUFWriter {
    /// One tensor to write.
    public struct Tensor {
        /// The tensor's GGUF name (`blk.0.attn_q.weight`).
        public var name: String
        /// The row-major shape (PyTorch order; GGUF stores it reversed).
        public var shape: [Int]
        /// How its values are stored.
        public var type: GGMLType
        /// Produces the stored bytes (see `GGMLQuantization.quantize`), called once, when the file is written.
        public var bytes: () throws -> [UInt8]
    }

    /// The metadata in file order.
    public private(set) var metadata: [(key: String, value: GGUFValue)] = []
    /// The tensors in file order.
    public private(set) var tensors: [Tensor] = []

    /// An empty file; add `general.architecture` first, as `gguf` does.
    public init() {}

    /// Sets a metadata value; setting a key again replaces its value and keeps its place (a Python dict).
    public mutating func set(_ key: String, _ value: GGUFValue) {
        if let index = metadata.firstIndex(where: { $0.key == key }) {
            metadata[index].value = value
        } else {
            metadata.append((key, value))
        }
    }

    /// Adds a tensor after the ones already added.
    public mutating func addTensor(name: String, shape: [Int], type: GGMLType, bytes: @escaping () throws -> [UInt8]) {
        tensors.append(Tensor(name: name, shape: shape, type: type, bytes: bytes))
    }

    /// The alignment of the tensor data: `general.alignment` when set (nil when that is unusable), else 32.
    public var alignment: Int? {
        guard let value = metadata.first(where: { $0.key == "general.alignment" })?.value else { return 32 }
        guard let alignment = value.int, alignment > 0, alignment.nonzeroBitCount == 1, alignment <= 1 << 20 else {
            return nil
        }
        return alignment
    }

    /// Writes the file to `url` atomically.
    public func write(to url: URL) throws {
        let fail = { (message: String) in CheckpointError(file: url.path, message) }
        guard let alignment else { throw fail("general.alignment must be a power of two up to 1 MiB") }
        var header = [UInt8]()
        header.append(contentsOf: [0x47, 0x47, 0x55, 0x46])  // "GGUF"
        append(UInt32(3), to: &header)
        append(UInt64(tensors.count), to: &header)
        append(UInt64(metadata.count), to: &header)
        for (key, value) in metadata {
            append(key, to: &header)
            append(value.type.rawValue, to: &header)
            guard append(value, to: &header) else {
                throw fail("metadata key \(key): an array holds an element of another type than it declares")
            }
        }
        var sizes = [Int]()
        var offset = 0
        for tensor in tensors {
            let size = try byteCount(of: tensor, fail: fail)
            append(tensor.name, to: &header)
            append(UInt32(tensor.shape.count), to: &header)
            for dimension in tensor.shape.reversed() { append(UInt64(dimension), to: &header) }
            append(tensor.type.rawValue, to: &header)
            append(UInt64(offset), to: &header)
            let (next, overflow) = offset.addingReportingOverflow(padded(size, to: alignment))
            guard !overflow else { throw fail("the tensors are too large for one file") }
            offset = next
            sizes.append(size)
        }
        header.append(contentsOf: [UInt8](repeating: 0, count: padded(header.count, to: alignment) - header.count))
        try AtomicFile.write(to: url) { handle in
            try handle.write(contentsOf: header)
            for (tensor, size) in zip(tensors, sizes) {
                var bytes = try tensor.bytes()
                guard bytes.count == size else {
                    throw fail("tensor \(tensor.name) produced \(bytes.count) bytes, its shape and type need \(size)")
                }
                bytes.append(contentsOf: [UInt8](repeating: 0, count: padded(size, to: alignment) - size))
                try handle.write(contentsOf: bytes)
            }
        }
    }

    /// The bytes a tensor's shape and type need, checked.
    private func byteCount(of tensor: Tensor, fail: (String) -> CheckpointError) throws -> Int {
        guard !tensor.name.isEmpty, !tensor.shape.isEmpty, tensor.shape.allSatisfy({ $0 > 0 }) else {
            throw fail("tensor '\(tensor.name)' needs a name and a shape of positive sizes, not \(tensor.shape)")
        }
        guard tensors.filter({ $0.name == tensor.name }).count == 1 else {
            throw fail("tensor \(tensor.name) is added twice")
        }
        guard let rowLength = tensor.shape.last, rowLength % tensor.type.blockSize == 0 else {
            throw fail("tensor \(tensor.name): a row of \(tensor.shape.last ?? 0) values is not a multiple of "
                + "\(tensor.type)'s block size \(tensor.type.blockSize)")
        }
        var count = 1
        for dimension in tensor.shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow else { throw fail("tensor \(tensor.name): shape \(tensor.shape) is too large") }
            count = product
        }
        let (size, overflow) = (count / tensor.type.blockSize).multipliedReportingOverflow(by: tensor.type.bytesPerBlock)
        guard !overflow, size <= Int.max - 1 << 20 else {
            throw fail("tensor \(tensor.name): shape \(tensor.shape) is too large")
        }
        return size
    }

    private func padded(_ size: Int, to alignment: Int) -> Int { (size + alignment - 1) / alignment * alignment }

    private func append<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    private func append(_ string: String, to bytes: inout [UInt8]) {
        let utf8 = Array(string.utf8)
        append(UInt64(utf8.count), to: &bytes)
        bytes.append(contentsOf: utf8)
    }

    /// A value without its type code (arrays carry their element type and count); false when an array's element
    /// is not of the array's type.
    private func append(_ value: GGUFValue, to bytes: inout [UInt8]) -> Bool {
        switch value {
        case .uint8(let v): append(v, to: &bytes)
        case .int8(let v): append(v, to: &bytes)
        case .uint16(let v): append(v, to: &bytes)
        case .int16(let v): append(v, to: &bytes)
        case .uint32(let v): append(v, to: &bytes)
        case .int32(let v): append(v, to: &bytes)
        case .uint64(let v): append(v, to: &bytes)
        case .int64(let v): append(v, to: &bytes)
        case .float32(let v): append(v.bitPattern, to: &bytes)
        case .float64(let v): append(v.bitPattern, to: &bytes)
        case .bool(let v): bytes.append(v ? 1 : 0)
        case .string(let v): append(v, to: &bytes)
        case .array(let elementType, let items):
            append(elementType.rawValue, to: &bytes)
            append(UInt64(items.count), to: &bytes)
            for item in items {
                guard item.type == elementType, append(item, to: &bytes) else { return false }
            }
        }
        return true
    }
}
