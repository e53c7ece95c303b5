import Foundation

/// A block of memory that one or more tensors view.
///
/// Storage is owned (allocated here, 64-byte aligned) or borrowed (for example a memory-mapped
/// checkpoint), in which case `release` runs when the last tensor viewing it goes away.
public final class TensorStorage: @unchecked Sendable {
    /// Start of the memory.
    public let data: UnsafeMutableRawPointer
    /// Size in bytes.
    public let byteCount: Int
    private let release: (() -> Void)?

    /// Allocates `byteCount` bytes (uninitialized unless `zeroed`).
    public init(byteCount: Int, zeroed: Bool = false) {
        let size = max(byteCount, 1)
        data = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        if zeroed { data.initializeMemory(as: UInt8.self, repeating: 0, count: size) }
        self.byteCount = byteCount
        release = nil
    }

    /// Wraps memory owned elsewhere; `release` runs on deinit.
    public init(borrowing data: UnsafeMutableRawPointer, byteCount: Int, release: @escaping () -> Void) {
        self.data = data
        self.byteCount = byteCount
        self.release = release
    }

    deinit {
        if let release { release() } else { data.deallocate() }
    }
}
