import CCollieKernels

/// A frozen weight matrix [rows, columns] (out features × in features, as `Linear` stores it) kept in GGML blocks:
/// row-major, each row `rowBytes` bytes of whole blocks. Kernels widen a few rows at a time, never the whole matrix.
///
/// The storage may be Collie's own memory or a memory-mapped GGUF file's tensor data (`TensorStorage(borrowing:)`).
public final class QuantizedMatrix: @unchecked Sendable {
    /// The block format.
    public let format: BlockFormat
    /// Output features.
    public let rows: Int
    /// Input features, a multiple of `format.blockElements`.
    public let columns: Int
    /// The blocks, row after row, from the storage's first byte.
    public let storage: TensorStorage
    /// Bytes of one row.
    public let rowBytes: Int
    /// Bytes of the whole matrix (`rows × rowBytes`; the storage may hold more).
    public let byteCount: Int

    /// Wraps blocks already in `storage`.
    /// - Throws: `QuantizationError` when `columns` is not whole blocks or `storage` holds fewer bytes than the matrix.
    public convenience init(format: BlockFormat, rows: Int, columns: Int, storage: TensorStorage) throws {
        guard rows >= 0, columns >= 0 else { throw QuantizationError.invalidShape(rows: rows, columns: columns) }
        guard columns % format.blockElements == 0 else {
            throw QuantizationError.columnsNotWholeBlocks(format: format, columns: columns)
        }
        let rowBytes = columns / format.blockElements * format.blockBytes
        guard case (let byteCount, false) = rows.multipliedReportingOverflow(by: rowBytes),
              byteCount <= storage.byteCount else {
            throw QuantizationError.storageTooSmall(format: format, rows: rows, columns: columns,
                                                    byteCount: storage.byteCount)
        }
        self.init(format: format, rows: rows, columns: columns, rowBytes: rowBytes, storage: storage)
    }

    /// The matrix over `storage`, whose sizes the caller has checked.
    private init(format: BlockFormat, rows: Int, columns: Int, rowBytes: Int, storage: TensorStorage) {
        (self.format, self.rows, self.columns, self.storage) = (format, rows, columns, storage)
        (self.rowBytes, self.byteCount) = (rowBytes, rows * rowBytes)
    }

    /// Quantizes a float matrix [rows, columns] to `format`, bytes equal to ggml's `quantize_row_<format>_ref`.
    /// - Throws: `QuantizationError` when `format` has no quantizer, `weight` is not a float matrix, or its columns
    ///   are not whole blocks.
    public convenience init(quantizing weight: Tensor, as format: BlockFormat) throws {
        guard format.isQuantizable else { throw QuantizationError.notQuantizable(format) }
        guard weight.rank == 2, weight.dtype.isFloatingPoint else {
            throw QuantizationError.notAFloatMatrix(shape: weight.shape, dtype: weight.dtype)
        }
        let (rows, columns) = (weight.shape[0], weight.shape[1])
        guard columns % format.blockElements == 0 else {
            throw QuantizationError.columnsNotWholeBlocks(format: format, columns: columns)
        }
        let source = weight.contiguousCopy(dtype: .float32)
        let storage = TensorStorage(byteCount: rows * (columns / format.blockElements) * format.blockBytes)
        try self.init(format: format, rows: rows, columns: columns, storage: storage)
        let (rowBytes, src, dst) = (self.rowBytes, source.pointer(as: Float.self), storage.data)
        Parallel.forEach(rows, minimumChunk: Swift.max(1, (1 << 16) / Swift.max(columns, 1))) { range in
            _ = collie_quantize_rows(format.ggmlType, src + range.lowerBound * columns,
                                     dst + range.lowerBound * rowBytes, range.count, columns)
        }
        withExtendedLifetime(source) {}
    }

    /// The first byte of row `row`.
    func rowPointer(_ row: Int) -> UnsafeRawPointer { UnsafeRawPointer(storage.data + row * rowBytes) }

    /// Writes rows `range` as float32 into `destination` (range.count × columns values), gguf's values bit for bit.
    func dequantize(rows range: Range<Int>, into destination: UnsafeMutablePointer<Float>) {
        guard !range.isEmpty, columns > 0 else { return }
        collie_dequantize_rows(format.ggmlType, rowPointer(range.lowerBound), destination, range.count, columns)
    }

    /// The float32 values of rows `rows` (all rows when nil) as a tensor [rows, columns], equal bit for bit to
    /// gguf's `quants.dequantize`.
    public func dequantized(rows range: Range<Int>? = nil) -> Tensor {
        let range = range ?? 0..<rows
        precondition(range.lowerBound >= 0 && range.upperBound <= rows, "rows \(range) of a \(rows)-row matrix")
        let out = Tensor(uninitializedShape: [range.count, columns])
        let (pointer, columns) = (out.pointer(as: Float.self), columns)
        Parallel.forEach(range.count, minimumChunk: Swift.max(1, (1 << 16) / Swift.max(columns, 1))) { part in
            self.dequantize(rows: (range.lowerBound + part.lowerBound)..<(range.lowerBound + part.upperBound),
                            into: pointer + part.lowerBound * columns)
        }
        return out
    }

    /// The matrix whose row i is this one's row `order[i]` (llama's rotary un-permutation of q and k, done on blocks:
    /// a row's blocks move whole).
    public func permutingRows(_ order: [Int]) -> QuantizedMatrix {
        precondition(order.count == rows && order.allSatisfy { $0 >= 0 && $0 < rows },
                     "a row order for \(rows) rows must name \(rows) rows in range")
        let storage = TensorStorage(byteCount: byteCount)
        for (i, source) in order.enumerated() {
            (storage.data + i * rowBytes).copyMemory(from: rowPointer(source), byteCount: rowBytes)
        }
        return QuantizedMatrix(format: format, rows: rows, columns: columns, rowBytes: rowBytes, storage: storage)
    }
}
