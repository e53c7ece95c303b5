import Foundation

/// A memory-mapped GGUF file (llama.cpp's format) whose header has been validated.
///
/// Everything the header says is checked when the file opens, before any of it is used: the magic and version
/// (2 or 3, little-endian), every metadata key and value (type codes, string lengths and UTF-8, array counts, no
/// duplicate keys), `general.alignment` (a power of two; 32 when absent), and every tensor's name (unique), number of
/// dimensions (1…4), dimensions (positive, their product without overflow), type (known, row length a multiple of
/// its block size) and data (aligned, inside the file, overlapping no other tensor). A damaged, truncated or hostile
/// file fails there with a `CheckpointError` naming the file and the key or tensor. Tensor data is read lazily from
/// the mapping: `bytes(of:)` as stored, `floats(of:)` dequantized.
public final class GGUFFile: Sendable {
    /// The file's location.
    public let url: URL
    /// The format version (2 or 3).
    public let version: UInt32
    /// Metadata in file order.
    public let metadata: [(key: String, value: GGUFValue)]
    /// Tensors in file order.
    public let tensors: [GGUFTensorInfo]
    /// The alignment of tensor data in bytes (`general.alignment`, 32 when the file does not set it).
    public let alignment: Int
    private let metadataIndex: [String: Int]
    private let tensorIndex: [String: Int]
    private let mapping: MappedFile

    /// "GGUF" read as a little-endian `UInt32`.
    static let magic: UInt32 = 0x4655_4747
    /// The alignment when `general.alignment` is absent.
    public static let defaultAlignment = 32
    /// The most dimensions a tensor has in ggml.
    public static let maximumDimensionCount = 4

    /// Opens, maps and validates the GGUF file at `url`.
    /// - Throws: `CheckpointError` naming the file (and the key or tensor) when it cannot be read or is not a valid
    ///   GGUF file of version 2 or 3.
    public init(url: URL) throws {
        self.url = url
        let path = url.path
        mapping = try MappedFile(path: path)
        var cursor = GGUFCursor(base: mapping.base, size: mapping.size, file: path)

        let magic = try cursor.load(UInt32.self, "the magic number")
        guard magic == Self.magic else {
            throw CheckpointError(file: path, "is not a GGUF file (it does not start with the bytes 'GGUF')")
        }
        let version = try cursor.load(UInt32.self, "the version")
        guard version == 2 || version == 3 else {
            let swapped = version.byteSwapped
            if version & 0xFFFF == 0 && (1...3).contains(swapped) {
                throw CheckpointError(file: path, "is a big-endian GGUF file (version \(swapped)); Collie reads "
                                      + "little-endian files only (convert it again with llama.cpp's tools)")
            }
            if version == 1 {
                throw CheckpointError(file: path, "is a GGUF version 1 file, an old format Collie does not read "
                                      + "(versions 2 and 3 are supported; convert it again with llama.cpp's tools)")
            }
            throw CheckpointError(file: path, "has GGUF version \(version); Collie reads versions 2 and 3")
        }
        self.version = version
        // Each tensor takes at least 32 header bytes (empty name, one dimension); each metadata entry at least 13.
        let tensorCount = try cursor.count("the tensor count", each: 32)
        let metadataCount = try cursor.count("the metadata entry count", each: 13)
        guard tensorCount <= (cursor.remaining - metadataCount * 13) / 32 else {
            throw CheckpointError(file: path, "claims \(metadataCount) metadata entries and \(tensorCount) tensors, "
                                  + "more than its \(mapping.size) bytes can hold (damaged or truncated file?)")
        }

        var metadata: [(key: String, value: GGUFValue)] = []
        var metadataIndex: [String: Int] = [:]
        metadata.reserveCapacity(metadataCount)
        for i in 0..<metadataCount {
            let key = try cursor.string("the key of metadata entry \(i)")
            guard metadataIndex[key] == nil else {
                throw CheckpointError(file: path, "metadata key '\(key)' appears twice")
            }
            let type = try cursor.valueType("metadata key '\(key)'")
            let value = try cursor.value(type, "metadata key '\(key)'")
            metadataIndex[key] = metadata.count
            metadata.append((key, value))
        }

        var alignment = Self.defaultAlignment
        if let index = metadataIndex["general.alignment"] {
            let value = metadata[index].value
            guard let stored = value.int, stored > 0, stored & (stored - 1) == 0, stored <= 1 << 30 else {
                throw CheckpointError(file: path, "metadata key 'general.alignment' is \(value), not a power of two "
                                      + "up to 2^30")
            }
            alignment = stored
        }

        var tensors: [GGUFTensorInfo] = []
        var tensorIndex: [String: Int] = [:]
        var relativeOffsets: [Int] = []
        tensors.reserveCapacity(tensorCount)
        for i in 0..<tensorCount {
            let name = try cursor.string("the name of tensor \(i)")
            guard tensorIndex[name] == nil else { throw CheckpointError(file: path, "tensor '\(name)' appears twice") }
            let (info, offset) = try Self.tensorInfo(named: name, cursor: &cursor, alignment: alignment)
            tensorIndex[name] = tensors.count
            tensors.append(info)
            relativeOffsets.append(offset)
        }

        // The data section starts at the next multiple of the alignment after the header.
        let (padded, overflow) = cursor.offset.addingReportingOverflow(alignment - 1)
        guard !overflow else { throw CheckpointError(file: path, "the data section's offset overflows") }
        let dataStart = padded & ~(alignment - 1)
        for i in tensors.indices {
            let info = tensors[i]
            let (start, o1) = dataStart.addingReportingOverflow(relativeOffsets[i])
            let (end, o2) = start.addingReportingOverflow(info.byteCount)
            guard !o1, !o2, end <= mapping.size else {
                throw CheckpointError(file: path, "tensor '\(info.name)' (\(info.byteCount) bytes at data offset "
                                      + "\(relativeOffsets[i])) ends past the end of the file at byte "
                                      + "\(mapping.size) (truncated?)")
            }
            tensors[i] = GGUFTensorInfo(name: info.name, type: info.type, dimensions: info.dimensions,
                                        elementCount: info.elementCount, byteCount: info.byteCount, offset: start)
        }
        var previous: GGUFTensorInfo?
        for info in tensors.sorted(by: { ($0.offset, $0.byteCount) < ($1.offset, $1.byteCount) }) {
            if let previous, info.offset < previous.offset + previous.byteCount {
                throw CheckpointError(file: path, "tensor '\(info.name)' overlaps tensor '\(previous.name)' "
                                      + "(its data starts at byte \(info.offset), before byte "
                                      + "\(previous.offset + previous.byteCount) where that one's ends)")
            }
            previous = info
        }

        self.metadata = metadata
        self.metadataIndex = metadataIndex
        self.alignment = alignment
        self.tensors = tensors
        self.tensorIndex = tensorIndex
    }

    /// Reads one tensor's header after its name; returns its info (offset relative to the data section) and offset.
    private static func tensorInfo(named name: String, cursor: inout GGUFCursor, alignment: Int) throws
        -> (GGUFTensorInfo, Int) {
        let path = cursor.file
        let dimensionCount = try cursor.load(UInt32.self, "the dimension count of tensor '\(name)'")
        guard (1...UInt32(maximumDimensionCount)).contains(dimensionCount) else {
            throw CheckpointError(file: path, "tensor '\(name)' has \(dimensionCount) dimensions; ggml tensors "
                                  + "have 1 to \(maximumDimensionCount)")
        }
        var dimensions: [Int] = []
        var elementCount = 1
        for d in 0..<Int(dimensionCount) {
            let stored = try cursor.load(UInt64.self, "dimension \(d) of tensor '\(name)'")
            guard stored > 0, let dimension = Int(exactly: stored) else {
                throw CheckpointError(file: path, "tensor '\(name)' has dimension \(d) of size \(stored)")
            }
            let (product, overflow) = elementCount.multipliedReportingOverflow(by: dimension)
            guard !overflow else {
                throw CheckpointError(file: path, "tensor '\(name)': the element count of its dimensions "
                                      + "\(dimensions + [dimension]) overflows")
            }
            dimensions.append(dimension)
            elementCount = product
        }
        let code = try cursor.load(UInt32.self, "the type of tensor '\(name)'")
        guard let type = GGMLType(rawValue: code) else {
            throw CheckpointError(file: path, "tensor '\(name)' has unknown ggml type code \(code)")
        }
        guard dimensions[0] % type.blockSize == 0 else {
            throw CheckpointError(file: path, "tensor '\(name)' has rows of \(dimensions[0]) values, not a multiple "
                                  + "of \(type)'s block size \(type.blockSize)")
        }
        let (byteCount, overflow) = (elementCount / type.blockSize).multipliedReportingOverflow(by: type.bytesPerBlock)
        guard !overflow else {
            throw CheckpointError(file: path, "tensor '\(name)': the byte count of \(elementCount) \(type) values overflows")
        }
        let storedOffset = try cursor.load(UInt64.self, "the data offset of tensor '\(name)'")
        guard let offset = Int(exactly: storedOffset) else {
            throw CheckpointError(file: path, "tensor '\(name)' has data offset \(storedOffset), past the end of any file")
        }
        guard offset % alignment == 0 else {
            throw CheckpointError(file: path, "tensor '\(name)' has data offset \(storedOffset), not a multiple of "
                                  + "the alignment \(alignment)")
        }
        let info = GGUFTensorInfo(name: name, type: type, dimensions: dimensions, elementCount: elementCount,
                                  byteCount: byteCount, offset: offset)
        return (info, offset)
    }

    /// The value of metadata `key`, if the file has it.
    public subscript(key: String) -> GGUFValue? {
        metadataIndex[key].map { metadata[$0].value }
    }

    /// The tensor named `name`, if the file has it.
    public func tensorInfo(_ name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// The stored bytes of `tensor` (one of this file's), inside the mapping: valid while this file lives.
    public func bytes(of tensor: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        precondition(tensor.offset >= 0 && tensor.byteCount >= 0 && tensor.offset <= mapping.size - tensor.byteCount,
                     "GGUFFile.bytes(of:): tensor '\(tensor.name)' is not one of \(url.path)'s")
        return UnsafeRawBufferPointer(start: mapping.base + tensor.offset, count: tensor.byteCount)
    }

    /// The values of `tensor` (one of this file's) as `Float`, row-major in `shape`, dequantized exactly as the `gguf`
    /// Python package's `gguf.quants.dequantize` does.
    /// - Throws: `CheckpointError` naming the tensor when its type is one Collie cannot dequantize.
    public func floats(of tensor: GGUFTensorInfo) throws -> [Float] {
        guard GGMLDequantization.supports(tensor.type) else {
            throw CheckpointError(file: url.path, "tensor '\(tensor.name)' has type \(tensor.type), which Collie cannot "
                                  + "dequantize (supported: \(GGMLDequantization.supportedTypes.map(\.description).joined(separator: ", ")))")
        }
        let source = bytes(of: tensor)
        return try [Float](unsafeUninitializedCapacity: tensor.elementCount) { buffer, initialized in
            try GGMLDequantization.dequantize(source, type: tensor.type, into: buffer)
            initialized = tensor.elementCount
        }
    }
}
