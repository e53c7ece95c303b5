/// Why a quantized matrix could not be made.
public enum QuantizationError: Error, CustomStringConvertible, Equatable {
    /// A row of `columns` values is not whole blocks of the format.
    case columnsNotWholeBlocks(format: BlockFormat, columns: Int)
    /// The storage holds fewer bytes than `rows` × `columns` values of the format need (or their count overflows).
    case storageTooSmall(format: BlockFormat, rows: Int, columns: Int, byteCount: Int)
    /// A negative row or column count.
    case invalidShape(rows: Int, columns: Int)
    /// Collie has no quantizer for the format (it only reads it from GGUF files).
    case notQuantizable(BlockFormat)
    /// The tensor to quantize is not a float matrix [rows, columns].
    case notAFloatMatrix(shape: [Int], dtype: DType)

    public var description: String {
        switch self {
        case .columnsNotWholeBlocks(let format, let columns):
            "rows of \(columns) values are not whole \(format.rawValue) blocks of \(format.blockElements)"
        case .storageTooSmall(let format, let rows, let columns, let byteCount):
            "\(byteCount) bytes do not hold \(rows)×\(columns) values in \(format.rawValue) blocks"
        case .invalidShape(let rows, let columns):
            "a quantized matrix cannot have \(rows) rows and \(columns) columns"
        case .notQuantizable(let format):
            "Collie cannot quantize to \(format.rawValue) (it reads such weights from GGUF files only); "
                + "use one of \(BlockFormat.allCases.filter(\.isQuantizable).map(\.rawValue).joined(separator: ", "))"
        case .notAFloatMatrix(let shape, let dtype):
            "only a float matrix [rows, columns] can be quantized, got \(dtype) \(shape)"
        }
    }
}
