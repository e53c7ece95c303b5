import CollieEngine
import Foundation

/// Writes safetensors files — one, or several shards with a `model.safetensors.index.json` —
/// each atomically.
public enum SafeTensorsWriter {
    /// A tensor to write whose values are made only when its turn comes (a quantized layer dequantized), so a
    /// model is written one tensor at a time.
    public struct Entry {
        public var name: String
        public var shape: [Int]
        public var dtype: DType
        /// The values, in `dtype` and `shape`.
        public var values: () throws -> Tensor

        public init(name: String, shape: [Int], dtype: DType, values: @escaping () throws -> Tensor) {
            (self.name, self.shape, self.dtype, self.values) = (name, shape, dtype, values)
        }

        /// An entry for a tensor already in memory.
        public init(_ name: String, _ tensor: Tensor) {
            self.init(name: name, shape: tensor.shape, dtype: tensor.dtype) { tensor }
        }

        var byteCount: Int { shape.reduce(1, *) * dtype.size }
    }

    /// Writes `tensors` (name, tensor) in the given order to one file with `{"format": "pt"}` metadata.
    public static func write(_ tensors: [(String, Tensor)], metadata: [String: String] = ["format": "pt"], to url: URL) throws {
        try write(entries: tensors.map { Entry($0.0, $0.1) }, metadata: metadata, to: url)
    }

    /// Writes `entries` in the given order to one file, making each one's values only when it is written.
    public static func write(entries: [Entry], metadata: [String: String] = ["format": "pt"], to url: URL) throws {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for entry in entries {
            let bytes = entry.byteCount
            header[entry.name] = ["dtype": SafeTensorsDType(entry.dtype).rawValue, "shape": entry.shape,
                                  "data_offsets": [offset, offset + bytes]] as [String: Any]
            offset += bytes
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        try AtomicFile.write(to: url) { handle in
            var length = UInt64(json.count).littleEndian
            try handle.write(contentsOf: Data(bytes: &length, count: 8))
            try handle.write(contentsOf: json)
            for entry in entries {
                let c = try entry.values().contiguousCopyIfNeeded()
                precondition(c.shape == entry.shape && c.dtype == entry.dtype,
                             "safetensors entry \(entry.name): values \(c.shape) \(c.dtype), declared \(entry.shape) \(entry.dtype)")
                try handle.write(contentsOf: Data(bytesNoCopy: c.storage.data + c.offset * c.dtype.size,
                                                  count: c.count * c.dtype.size, deallocator: .none))
                withExtendedLifetime(c) {}
            }
        }
    }

    /// Writes `tensors` into `folder` as `model.safetensors`, or, when they exceed `maxShardBytes`,
    /// as `model-0000i-of-0000n.safetensors` shards plus `model.safetensors.index.json`. Returns
    /// the file names written.
    @discardableResult
    public static func writeSharded(_ tensors: [(String, Tensor)], to folder: URL, maxShardBytes: Int,
                                    baseName: String = "model") throws -> [String] {
        try writeSharded(entries: tensors.map { Entry($0.0, $0.1) }, to: folder, maxShardBytes: maxShardBytes,
                         baseName: baseName)
    }

    /// `writeSharded` for entries whose values are made one at a time as they are written.
    @discardableResult
    public static func writeSharded(entries: [Entry], to folder: URL, maxShardBytes: Int,
                                    baseName: String = "model") throws -> [String] {
        var shards: [[Entry]] = [[]]
        var shardBytes = 0
        var total = 0
        for entry in entries {
            let bytes = entry.byteCount
            total += bytes
            if shardBytes > 0 && shardBytes + bytes > maxShardBytes {
                shards.append([])
                shardBytes = 0
            }
            shards[shards.count - 1].append(entry)
            shardBytes += bytes
        }
        if shards.count == 1 {
            let file = "\(baseName).safetensors"
            try write(entries: entries, to: folder.appendingPathComponent(file))
            // A stale index from an earlier sharded save would shadow the single file.
            try? FileManager.default.removeItem(at: folder.appendingPathComponent("\(baseName).safetensors.index.json"))
            return [file]
        }
        var weightMap: [String: String] = [:]
        var files: [String] = []
        for (i, shard) in shards.enumerated() {
            let file = String(format: "%@-%05d-of-%05d.safetensors", baseName, i + 1, shards.count)
            try write(entries: shard, to: folder.appendingPathComponent(file))
            for entry in shard { weightMap[entry.name] = file }
            files.append(file)
        }
        let index: [String: Any] = ["metadata": ["total_size": total], "weight_map": weightMap]
        let data = try JSONSerialization.data(withJSONObject: index, options: [.prettyPrinted, .sortedKeys])
        let indexFile = "\(baseName).safetensors.index.json"
        try AtomicFile.write(data, to: folder.appendingPathComponent(indexFile))
        return files + [indexFile]
    }
}

extension Tensor {
    /// Itself when contiguous, else a contiguous copy (no autodiff).
    func contiguousCopyIfNeeded() -> Tensor { isContiguous ? self : contiguousCopy() }
}
