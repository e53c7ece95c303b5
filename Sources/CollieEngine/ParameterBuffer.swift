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
        flatGradients = g
    }

    /// The flat gradients once `attachGradients()` ran, every parameter's part of them holding its gradient: those
    /// `zeroGradients()` marked zero and no backward wrote since are cleared first.
    public var gradients: Tensor? { gradients(clearing: parameters.indices) }

    /// The flat gradients with the parts of `parameters[indices]` holding their gradients (those marked zero that no
    /// backward wrote cleared first), for reading those parts only: another parameter's part may still hold stale
    /// values (a data-parallel bucket's all-reduce, launched while the backward goes on).
    public func gradients(clearing indices: Range<Int>) -> Tensor? {
        guard let flat = flatGradients else { return nil }
        for p in parameters[indices] where p.gradientIsZero { _ = p.grad }
        return flat
    }
    private var flatGradients: Tensor?

    /// Sets every gradient to zero (dropping them when no flat gradients are attached). Attached ones are marked zero
    /// rather than cleared (`Tensor.gradientIsZero`): the backward's products then write the next gradients with beta
    /// = 0, with no pass over the buffer before them and none reading zeros inside them (the tiny preset's GEMM time
    /// 2–4% less on a Zen 4); a gradient read before any backward wrote it is cleared then (`grad`, `gradients`).
    public func zeroGradients() {
        guard let flat = flatGradients else {
            for p in parameters { p.grad = nil }
            return
        }
        for p in parameters {
            if p.storedGradient?.storage === flat.storage {
                p.gradientIsZero = true
            } else if let g = p.grad {
                if g.isContiguous { g.fillWithZeros() } else { p.grad = nil }
            }
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
