import CCollieKernels
import Dispatch
import Foundation
import Synchronization

/// Thread control for the non-GEMM kernels.
///
/// Kernels split rows (or heads) into at most `threadCount` chunks and run them with
/// `DispatchQueue.concurrentPerform`. Matrix products run on Collie's GEMM, whose threads are the pool's below, or on
/// OpenBLAS's own threads, which it sizes from `OPENBLAS_NUM_THREADS`; the two never nest, so the machine is not
/// oversubscribed.
/// `COLLIE_NUM_THREADS` sets Collie's count (default: the number of active processors).
///
/// Inside `withSpinningWorkers` the chunks run instead on a pool of workers that spin between loops
/// (`CCollieKernels/pool.c`): a decoding step runs 60–85 short loops (small preset, batch 1–8), and waking a
/// sleeping thread for each costs about 20 µs here. Training and evaluation steps run inside `withTrainingWorkers`,
/// on that pool whenever the matrix products run on Collie's own GEMM (whose threads are the pool's) and every
/// thread has a core.
public enum Parallel {
    /// Number of threads the kernels split work across.
    public static let threadCount: Int = {
        if let value = ProcessInfo.processInfo.environment["COLLIE_NUM_THREADS"], let n = Int(value), n > 0 {
            return n
        }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Whether this task (or thread) runs its loops on the spinning pool.
    @usableFromInline @TaskLocal static var usesSpinningWorkers = false

    /// How many `withSpinningWorkers` scopes are open in the process; the pool's workers spin while any is.
    private static let openSpinningScopes = Atomic<Int>(0)

    /// How long an idle pool worker spins for the next loop before it sleeps.
    static let spinMicroseconds: UInt32 = 200

    /// Runs `body` with `forEach` on the spinning worker pool. Outside it (and when the pool is busy
    /// with another thread's loop) loops use Dispatch, whose threads sleep between loops, so training
    /// keeps both cores free for BLAS. The choice is this task's (or thread's); the pool spins while any
    /// thread is inside such a scope.
    public static func withSpinningWorkers<R>(_ body: () throws -> R) rethrows -> R {
        if openSpinningScopes.wrappingAdd(1, ordering: .acquiringAndReleasing).newValue == 1 {
            collie_pool_set_spin(spinMicroseconds)
        }
        defer {
            if openSpinningScopes.wrappingSubtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
                collie_pool_set_spin(0)
            }
        }
        return try $usesSpinningWorkers.withValue(true, operation: body)
    }

    /// Runs a training or evaluation step with `withSpinningWorkers` when float32 products run on Collie's GEMM, whose
    /// threads are the pool's, and every thread has a core (`spinsInTrainingSteps`); as it is otherwise.
    ///
    /// A step runs hundreds of short loops (elementwise kernels, norms, the optimizer) between its products, and a
    /// thread that went to sleep after one can be slow to wake: on an Ice Lake Xeon VM 45–116 µs, at times
    /// milliseconds (`collie_pool_run` timed with a sleeping worker). The tiny preset's steps alternated within one
    /// process there: 8–22% shorter with spinning workers (medians of 7 runs 0.540–0.963 s against 0.588–1.070 s), the same
    /// losses bit for bit.
    public static func withTrainingWorkers<R>(_ body: () throws -> R) rethrows -> R {
        spinsInTrainingSteps(gemm: Float32GEMM.current, threads: threadCount, ranksOnThisMachine: ranksOnThisMachine,
                             cores: ProcessInfo.processInfo.activeProcessorCount)
            ? try withSpinningWorkers(body) : try body()
    }

    /// Whether training steps spin: only on Collie's GEMM (on OpenBLAS its own threads keep the cores), and only when
    /// the threads of every rank on this machine fit its cores — a worker spinning on a core another rank waits for
    /// (`mpirun -np 2` without `COLLIE_NUM_THREADS=1`) would slow both.
    static func spinsInTrainingSteps(gemm: Float32GEMM, threads: Int, ranksOnThisMachine: Int, cores: Int) -> Bool {
        let (wanted, overflow) = threads.multipliedReportingOverflow(by: max(1, ranksOnThisMachine))
        return gemm == .collie && threads > 1 && !overflow && wanted <= cores
    }

    /// The processes of this job on this machine: OpenMPI's `OMPI_COMM_WORLD_LOCAL_SIZE` under `mpirun`, else 1.
    static let ranksOnThisMachine: Int = {
        ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap { Int($0) }.map { max(1, $0) } ?? 1
    }()

    /// Runs `body` over `0..<count`, split into contiguous ranges of at least `minimumChunk` items.
    @inlinable
    public static func forEach(_ count: Int, minimumChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        if MixedPrecision.current != .float32 {
            // Chunks multiply in float32 on any thread count and thread (MixedPrecision).
            return MixedPrecision.withFloat32Chunks { forEach(count, minimumChunk: minimumChunk, body) }
        }
        let chunks = min(threadCount, max(1, count / max(minimumChunk, 1)))
        if chunks <= 1 {
            body(0..<count)
            return
        }
        if usesSpinningWorkers && runOnPool(count, chunks: chunks, body) { return }
        // The data-parallel contract: chunks are disjoint ranges and `body` writes only its own range's outputs,
        // so running it on several threads at once shares nothing mutable.
        nonisolated(unsafe) let body = body
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            let start = count * chunk / chunks
            let end = count * (chunk + 1) / chunks
            if start < end { body(start..<end) }
        }
    }

    /// The loop on the spinning pool; false (nothing run) when the pool is busy.
    @usableFromInline
    static func runOnPool(_ count: Int, chunks: Int, _ body: (Range<Int>) -> Void) -> Bool {
        withoutActuallyEscaping(body) { body in
            var loop = PoolLoop(count: count, chunks: chunks, body: body)
            return withUnsafeMutablePointer(to: &loop) { pointer in
                collie_pool_run(chunks, chunks, { context, chunk in
                    let loop = context!.assumingMemoryBound(to: PoolLoop.self).pointee
                    let start = loop.count * chunk / loop.chunks, end = loop.count * (chunk + 1) / loop.chunks
                    if start < end { loop.body(start..<end) }
                }, pointer) != 0
            }
        }
    }

    private struct PoolLoop {
        let count: Int, chunks: Int
        let body: (Range<Int>) -> Void
    }
}
