import CCollieKernels
import Foundation

/// A block of memory that one or more tensors view.
///
/// Storage is owned (allocated here, 64-byte aligned) or borrowed (for example a memory-mapped
/// checkpoint), in which case `release` runs when the last tensor viewing it goes away. Large
/// owned blocks come from `StoragePool`, so a training step reuses the previous step's memory
/// instead of faulting in fresh pages.
public final class TensorStorage: @unchecked Sendable {
    /// Start of the memory.
    public let data: UnsafeMutableRawPointer
    /// Size in bytes.
    public let byteCount: Int
    private let release: (() -> Void)?

    /// Allocates `byteCount` bytes (uninitialized unless `zeroed`).
    public init(byteCount: Int, zeroed: Bool = false) {
        data = StoragePool.shared.allocate(byteCount: byteCount)
        if zeroed { data.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 1)) }
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
        if let release { release() } else { StoragePool.shared.free(data, byteCount: byteCount) }
    }
}

/// A cache of freed large blocks, keyed by size class.
///
/// A large block is allocated at its size class (`pooledSize`: the request rounded up to 1, 1.25, 1.5 or 1.75 times a
/// power of two), so a freed block serves any later request of its class: activations and gradients of the same
/// step repeat exactly, and those of batches a few tokens longer or shorter (variable-length data) fall in the same
/// class instead of each length leaving blocks nobody asks for again. The rounded-up tail is never touched by its
/// first user, so it costs address space, not resident memory. Blocks below `minimumPooledBytes` go straight to the
/// system allocator.
///
/// The cache is bounded by the engine's own peak: blocks in use plus blocks cached stay within a slack (64 MB; more
/// with `limitForMemorySaving`) of the most bytes ever in use at once, so peak RSS is the live peak, not the live peak
/// plus blocks of sizes a step no longer asks for (variable-length batches: the LoRA example padding-free peaked at
/// 3.57 GiB with the cache capped at a quarter of memory alone, 2.37 GiB with this bound, and no slower). Below the
/// bound a step's freed blocks stay for the next step, which reuses them instead of faulting in fresh pages; a
/// freed block that would cross it is returned, and so are cached blocks, largest class first, before a request the
/// cache cannot serve would. `limit` (a quarter of physical memory) caps the cache besides.
/// `releaseCachedMemory()` returns everything cached.
public final class StoragePool: @unchecked Sendable {
    /// The process-wide pool.
    public static let shared = StoragePool()
    /// Smaller blocks are not pooled.
    public static let minimumPooledBytes = 1 << 16

    /// Most bytes the cache holds: a quarter of physical memory, or `COLLIE_POOL_LIMIT_MB` megabytes.
    public var limit = ProcessInfo.processInfo.environment["COLLIE_POOL_LIMIT_MB"].flatMap(Int.init).map { $0 << 20 }
        ?? Int(ProcessInfo.processInfo.physicalMemory / 4)

    init() {
        // glibc raises its mmap threshold each time a large block is freed (up to 32 MB), after which
        // activations come from the heap and freed ones are never returned: peak RSS then grows by
        // hundreds of MB over the engine's own peak. A fixed threshold keeps large blocks mmapped,
        // returned to the system when freed (the pool above decides what to keep).
        _ = collie_fix_mmap_threshold(256 << 10)
    }

    private var free: [Int: [UnsafeMutableRawPointer]] = [:]
    /// The size classes asked for since the last `releaseUnusedClasses()`.
    private var requestedClasses: Set<Int> = []
    private var cached = 0
    private var live = 0
    private var peakLive = 0
    /// The slack `limitForMemorySaving` asked for (the smallest, when asked more than once).
    private var requestedSlack: Int?
    /// Live + cached bytes stay within this many bytes of `boundPeak`: 64 MB, or what `limitForMemorySaving` asked.
    private var slack: Int { requestedSlack ?? 64 << 20 }
    /// The most live bytes since the pool began or `limitForMemorySaving` (not reset by `resetPeakLiveBytes`).
    private var boundPeak = 0
    private let lock = NSLock()

    /// Bytes currently held in the cache (not in use by any tensor).
    public var cachedBytes: Int { lock.withLock { cached } }

    /// Bytes of pooled-size blocks (≥ `minimumPooledBytes`) that tensors own right now: weights,
    /// gradients, optimizer state, activations — the engine's own account of its memory.
    public var liveBytes: Int { lock.withLock { live } }

    /// The largest `liveBytes` since the last `resetPeakLiveBytes()`.
    public var peakLiveBytes: Int { lock.withLock { peakLive } }

    /// For runs that trade speed for memory (LOMO, AdaLomo, ZeRO-3): returns what is cached and starts the bound
    /// afresh at the bytes in use now (a load's transient peak no longer counts), with `bytes` of slack — the smallest
    /// asked for so far, so ZeRO-3's 64 MB and a 7B model's recurring gradients (`memorySavingLimit`) combine safely.
    public func limitForMemorySaving(_ bytes: Int = 64 << 20) {
        lock.withLock {
            requestedSlack = min(requestedSlack ?? bytes, bytes)
            boundPeak = live
        }
        releaseCachedMemory()
    }

    /// The cache bound `limitForMemorySaving` takes for training parameters of `counts` elements with gradients
    /// freed as soon as they are used (LOMO, AdaLomo): 64 MB, or one float32 gradient of every size that recurs (three
    /// or more parameters) when that is more — a 7B model's 67 MB and 180 MB projection gradients then reuse their
    /// blocks layer after layer instead of faulting in (and zeroing) 27 GB of fresh pages per step.
    public static func memorySavingLimit(parameterCounts counts: [Int]) -> Int {
        var occurrences: [Int: Int] = [:]
        for count in counts { occurrences[count, default: 0] += 1 }
        let recurring = occurrences.filter { $0.value >= 3 }.keys.reduce(0) { $0 + pooledSize($1 * MemoryLayout<Float>.size) }
        return max(64 << 20, recurring)
    }

    /// The size class a request of `byteCount` bytes is allocated and cached at: ≥ `minimumPooledBytes` rounded up to a
    /// multiple of a quarter of its power of two (at most 25% more); smaller requests as they are.
    public static func pooledSize(_ byteCount: Int) -> Int {
        let size = max(byteCount, 1)
        guard size >= minimumPooledBytes else { return size }
        let quarter = 1 << (Int.bitWidth - 1 - size.leadingZeroBitCount - 2)
        return (size + quarter - 1) / quarter * quarter
    }

    /// Starts a new peak measurement at the current live bytes.
    public func resetPeakLiveBytes() { lock.withLock { peakLive = live } }

    /// A block of at least `byteCount` bytes: a cached one of its size class, or a new one of that class's size. Live
    /// bytes count what was asked for.
    func allocate(byteCount: Int) -> UnsafeMutableRawPointer {
        let requested = max(byteCount, 1), size = Self.pooledSize(requested)
        if requested >= Self.minimumPooledBytes {
            let (reused, evicted): (UnsafeMutableRawPointer?, [UnsafeMutableRawPointer]) = lock.withLock {
                requestedClasses.insert(size)
                live += requested
                peakLive = max(peakLive, live)
                boundPeak = max(boundPeak, live)
                if let block = free[size]?.popLast() {
                    cached -= size
                    return (block, [])
                }
                return (nil, evictOverBound())
            }
            for block in evicted { block.deallocate() }
            if let reused { return reused }
        }
        return UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
    }

    /// Removes cached blocks, largest class first, until live + cached bytes are within the bound again; returns them
    /// for deallocation outside the lock. Call with the lock held.
    private func evictOverBound() -> [UnsafeMutableRawPointer] {
        var evicted: [UnsafeMutableRawPointer] = []
        while live + cached > boundPeak + slack, let size = free.keys.max() {
            if let block = free[size]?.popLast() {
                evicted.append(block)
                cached -= size
            }
            if free[size]?.isEmpty ?? true { free[size] = nil }
        }
        return evicted
    }

    /// Takes back a block `allocate(byteCount:)` gave for `byteCount` bytes.
    func free(_ block: UnsafeMutableRawPointer, byteCount: Int) {
        let requested = max(byteCount, 1), size = Self.pooledSize(requested)
        guard requested >= Self.minimumPooledBytes else { block.deallocate(); return }
        let kept: Bool = lock.withLock {
            live -= requested
            guard cached + size <= limit, live + cached + size <= boundPeak + slack else { return false }
            free[size, default: []].append(block)
            cached += size
            return true
        }
        if !kept { block.deallocate() }
    }

    /// Returns the cached blocks of every size class nobody asked for since the last call (the trainer calls it after
    /// each update): a step of the same shapes asks for all of its classes again and keeps them, while blocks left by
    /// a batch of another length stop counting against the cache's room one update later.
    public func releaseUnusedClasses() {
        let blocks: [UnsafeMutableRawPointer] = lock.withLock {
            defer { requestedClasses.removeAll(keepingCapacity: true) }
            var released: [UnsafeMutableRawPointer] = []
            for (size, list) in free where !requestedClasses.contains(size) {
                released += list
                cached -= size * list.count
                free[size] = nil
            }
            return released
        }
        for block in blocks { block.deallocate() }
    }

    /// Returns every cached block to the system allocator.
    public func releaseCachedMemory() {
        let blocks: [UnsafeMutableRawPointer] = lock.withLock {
            defer { free.removeAll(); cached = 0 }
            return free.values.flatMap { $0 }
        }
        for block in blocks { block.deallocate() }
    }
}
