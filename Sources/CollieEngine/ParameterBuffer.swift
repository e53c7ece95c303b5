/// Parameters in one flat allocation (llm.c's layout).
///
/// Each parameter tensor keeps its identity (modules, hooks and optimizers hold the same object)
/// but is re-pointed to a range of one contiguous buffer, and its gradient is a view of a second
/// buffer of the same layout. One loop (or one all-reduce, or one checkpoint write) then covers
/// every parameter, and a ZeRO shard is simply a range of the buffer.
public final class ParameterBuffer {
    /// The parameters, in buffer order.
    public let parameters: [Tensor]
    /// Element offset of each parameter within the buffers.
    public let offsets: [Int]
    /// Total number of elements.
    public let count: Int
    /// Element type of the values: float32 or float64, or bf16/f16 for half-precision weights (whose
    /// gradients are float32).
    public let dtype: DType
    /// The flat parameter values.
    public let values: Tensor
    /// The flat gradients (each parameter's `grad` is a view of it once `attachGradients()` ran).
    public private(set) var gradients: Tensor?

    /// Moves `parameters` (all of one dtype) into one buffer, preserving their values — or, with
    /// `dtype`, converting them (rounding to nearest even for bf16/f16; the parameters may then have different
    /// dtypes): every parameter then has that dtype, and kernels compute in float32 from it.
    ///
    /// Each parameter's old memory is returned as soon as it has moved, and the buffer's pages are touched only as
    /// they are written, so moving a model needs its size plus one parameter (a 7B model in bf16 fits twice over
    /// nowhere on a 24 GiB machine).
    public init(_ parameters: [Tensor], dtype requested: DType? = nil) {
        let original = parameters.first?.dtype ?? .float32
        precondition(requested != nil || parameters.allSatisfy { $0.dtype == original },
                     "a ParameterBuffer holds one dtype: give `dtype` to convert parameters of several")
        let dtype = requested ?? original
        precondition(dtype.isFloatingPoint, "parameters are float32, float64, bfloat16 or float16")
        var offsets: [Int] = []
        var total = 0
        for p in parameters {
            offsets.append(total)
            total += p.count
        }
        self.parameters = parameters
        self.offsets = offsets
        self.count = total
        self.dtype = dtype
        values = Tensor(uninitializedShape: [total], dtype: dtype)
        let pool = StoragePool.shared
        for (p, offset) in zip(parameters, offsets) {
            do {
                let source = p.dtype == dtype ? p.contiguousStorageView() : p.contiguousCopy(dtype: dtype)
                (values.storage.data + offset * dtype.size)
                    .copyMemory(from: source.storage.data + source.offset * dtype.size, byteCount: p.count * dtype.size)
            }
            p.storage = values.storage
            p.dtype = dtype
            p.offset = offset
            p.strides = Tensor.contiguousStrides(for: p.shape)
            // The old storage (and a converted copy) went to the pool's cache; no later tensor has its size.
            if pool.cachedBytes >= 64 << 20 { pool.releaseCachedMemory() }
        }
    }

    /// Gives every parameter a zeroed gradient that is a view of one flat gradient buffer.
    public func attachGradients() {
        let gradientType = dtype == .float64 ? DType.float64 : .float32
        let g = Tensor.zeros([count], dtype: gradientType)
        for (p, offset) in zip(parameters, offsets) {
            p.grad = Tensor(storage: g.storage, shape: p.shape, offset: offset, dtype: gradientType)
        }
        gradients = g
    }

    /// Sets every gradient to zero (in place when flat gradients are attached, else drops them). The flat buffer is
    /// cleared on every thread: one thread's stores are bound by its own write bandwidth (memset in C on an Ice Lake
    /// Xeon: the small preset's 536 MB in 52–54 ms on one thread, 28–38 ms on two).
    public func zeroGradients() {
        if let g = gradients {
            let bytes = g.storage.data
            Parallel.forEach(count * g.dtype.size, minimumChunk: 1 << 20) { range in
                (bytes + range.lowerBound).initializeMemory(as: UInt8.self, repeating: 0, count: range.count)
            }
        } else {
            for p in parameters { p.grad = nil }
        }
    }
}

extension Tensor {
    /// False after `releaseValues()` until `allocateValues()`.
    public var holdsValues: Bool { storage.byteCount >= (offset + count) * dtype.size }

    /// Frees the memory of a parameter this process does not use (another pipeline stage's). Its shape, dtype and
    /// identity stay; its values must not be read until `allocateValues()` gives it memory again.
    public func releaseValues() {
        guard holdsValues else { return }
        storage = TensorStorage(byteCount: 0)
        strides = Tensor.contiguousStrides(for: shape)
        offset = 0
    }

    /// Gives a released tensor new contiguous memory (uninitialized), for values to be copied in.
    public func allocateValues() {
        guard !holdsValues else { return }
        storage = TensorStorage(byteCount: count * dtype.size)
    }
}
