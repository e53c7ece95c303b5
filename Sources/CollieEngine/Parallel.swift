import Dispatch
import Foundation

/// Thread control for the non-GEMM kernels.
///
/// Kernels split rows (or heads) into at most `threadCount` chunks and run them with
/// `DispatchQueue.concurrentPerform`. Matrix products run on OpenBLAS's own threads, which it
/// sizes from `OPENBLAS_NUM_THREADS`; the two never nest, so the machine is not oversubscribed.
/// `COLLIE_NUM_THREADS` sets Collie's count (default: the number of active processors).
public enum Parallel {
    /// Number of threads the kernels split work across.
    nonisolated(unsafe) public static var threadCount: Int = {
        if let value = ProcessInfo.processInfo.environment["COLLIE_NUM_THREADS"], let n = Int(value), n > 0 {
            return n
        }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Runs `body` over `0..<count`, split into contiguous ranges of at least `minimumChunk` items.
    @inlinable
    public static func forEach(_ count: Int, minimumChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let chunks = min(threadCount, max(1, count / max(minimumChunk, 1)))
        if chunks <= 1 {
            body(0..<count)
            return
        }
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            let start = count * chunk / chunks
            let end = count * (chunk + 1) / chunks
            if start < end { body(start..<end) }
        }
    }
}
