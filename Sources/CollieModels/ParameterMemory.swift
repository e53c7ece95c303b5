import CollieEngine
import Foundation

/// The check before allocating parameters that no weight file bounds — a preset initialized at random, a new
/// adapter whose rank or virtual-token count comes from a config: their bytes (float32, or the dtype they are made in)
/// must fit this machine's memory, so a huge size is an error naming it rather than an allocation that fails.
enum ParameterMemory {
    /// The bytes of `dtype` tensors of `shapes`; nil when the sum does not fit an `Int`.
    static func bytes(of shapes: [[Int]], dtype: DType = .float32) -> Int? {
        var total = 0
        for shape in shapes {
            var bytes = dtype.size
            for dimension in shape {
                let (product, overflow) = bytes.multipliedReportingOverflow(by: dimension)
                guard !overflow else { return nil }
                bytes = product
            }
            let (sum, overflow) = total.addingReportingOverflow(bytes)
            guard !overflow else { return nil }
            total = sum
        }
        return total
    }

    /// Checks that tensors of `shapes` fit in physical memory.
    /// - Throws: `ModelConfigurationError` saying what (`subject`, e.g. "a tiny model of 1000000000 token ids")
    ///   would need how much.
    static func check(_ shapes: [[Int]], dtype: DType = .float32, for subject: String) throws {
        let available = ProcessInfo.processInfo.physicalMemory
        let bytes = bytes(of: shapes, dtype: dtype)
        guard let bytes, UInt64(bytes) <= available else {
            let needed = bytes.map { "\(gigabytes(UInt64($0))) GB" } ?? "more bytes than can be counted"
            throw ModelConfigurationError("\(subject) would need \(needed) of parameters (\(dtype.torchName)), "
                                          + "more than this machine's \(gigabytes(available)) GB of memory")
        }
    }

    private static func gigabytes(_ bytes: UInt64) -> String {
        String(format: "%.1f", Double(bytes) / 1e9)
    }
}
