import CCollieKernels
import Foundation

/// An n-dimensional array with optional reverse-mode gradient tracking.
///
/// A tensor is a view: a shape, element strides and an element offset into a `TensorStorage`.
/// Reshape (of contiguous data), transpose, permute and slice make new views of the same storage;
/// kernels read contiguous memory and call `contiguous()` when handed anything else, except matrix
/// products, which pass transposed operands to BLAS as they are.
public final class Tensor: CustomStringConvertible {
    /// The memory this tensor views. (Re-pointed only by `ParameterBuffer`, which moves
    /// parameters into one flat allocation without changing their identity.)
    public internal(set) var storage: TensorStorage
    /// Extent of each dimension.
    public let shape: [Int]
    /// Distance, in elements, between neighbours along each dimension.
    public internal(set) var strides: [Int]
    /// Position, in elements, of the first element within `storage`.
    public internal(set) var offset: Int
    /// Element type (changed only by `ParameterBuffer`, which can store parameters in bf16).
    public internal(set) var dtype: DType

    /// Whether gradients flow to this tensor. Set it on leaves (parameters); ops set it on outputs.
    public var requiresGrad: Bool
    /// The accumulated gradient of a leaf after `backward()`; `nil` until the first one.
    public var grad: Tensor? {
        get {
            if gradientIsZero, let gradient = storedGradient {
                gradientIsZero = false
                gradient.fillWithZeros()
            }
            return storedGradient
        }
        set {
            storedGradient = newValue
            gradientIsZero = false
        }
    }
    /// `grad` as stored, whatever `gradientIsZero` says.
    internal private(set) var storedGradient: Tensor?
    /// Set by `ParameterBuffer.zeroGradients()`: the gradient is zero but its memory was not cleared. Reading `grad`
    /// clears it first; a backward product that writes all of it (`GradientSink.accumulate(overwrites:)`) writes it
    /// with BLAS's beta = 0 instead of adding to zeros, and no pass over the memory zeroes it in between.
    internal var gradientIsZero = false
    /// The recorded operation that produced this tensor, for non-leaf tensors.
    internal var gradNode: GradNode?
    /// Callbacks fired when this leaf's gradient is final within a backward pass.
    internal var gradientReadyHooks: [(Tensor) -> Void] = []
    /// An optional name (a parameter's Hugging Face key), used in messages.
    public var name: String?

    /// Creates a view of `storage`.
    public init(storage: TensorStorage, shape: [Int], strides: [Int]? = nil, offset: Int = 0, dtype: DType,
                requiresGrad: Bool = false) {
        self.storage = storage
        self.shape = shape
        self.strides = strides ?? Tensor.contiguousStrides(for: shape)
        self.offset = offset
        self.dtype = dtype
        self.requiresGrad = requiresGrad
    }

    /// Allocates an uninitialized contiguous tensor.
    public convenience init(uninitializedShape shape: [Int], dtype: DType = .float32) {
        let count = shape.reduce(1, *)
        self.init(storage: TensorStorage(byteCount: count * dtype.size), shape: shape, dtype: dtype)
    }

    /// Row-major strides for `shape`.
    public static func contiguousStrides(for shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var running = 1
        for axis in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[axis] = running
            running *= Swift.max(shape[axis], 1)
        }
        return strides
    }

    /// Number of dimensions.
    public var rank: Int { shape.count }
    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }
    /// True when this tensor's elements are laid out row-major with no gaps.
    public var isContiguous: Bool {
        var expected = 1
        for axis in stride(from: shape.count - 1, through: 0, by: -1) where shape[axis] != 1 {
            if strides[axis] != expected { return false }
            expected *= shape[axis]
        }
        return true
    }
    /// True when this tensor was produced by a recorded operation (not a leaf).
    public var isLeaf: Bool { gradNode == nil }
    /// True when no other tensor views this one's storage and this one starts it contiguously: its memory can be
    /// overwritten (a gradient over its input, a sum over its residual) without any other tensor seeing the change.
    var ownsStorage: Bool { isContiguous && offset == 0 && isKnownUniquelyReferenced(&storage) }

    /// Normalizes a possibly negative axis.
    public func axis(_ axis: Int) -> Int {
        let a = axis < 0 ? axis + rank : axis
        precondition(a >= 0 && a < rank, "axis \(axis) out of range for a tensor of rank \(rank)")
        return a
    }

    /// Typed pointer to the first element. The tensor must hold `F`'s dtype.
    @inlinable
    public func pointer<F>(as type: F.Type = F.self) -> UnsafeMutablePointer<F> {
        assert(MemoryLayout<F>.size == dtype.size, "pointer(as: \(F.self)) into a \(dtype) tensor")
        return storage.data.assumingMemoryBound(to: F.self) + offset
    }

    /// Registers `hook`, called once per backward pass as soon as this leaf's gradient is final.
    ///
    /// LOMO-style optimizers update the parameter and drop its gradient here; data parallelism
    /// starts the gradient's all-reduce here.
    public func onGradientReady(_ hook: @escaping (Tensor) -> Void) {
        gradientReadyHooks.append(hook)
    }

    /// Removes every gradient-ready hook.
    public func removeGradientReadyHooks() { gradientReadyHooks.removeAll() }

    public var description: String {
        "Tensor(\(shape), \(dtype)\(requiresGrad ? ", requiresGrad" : ""))"
    }
}

// MARK: - Reading values

extension Tensor {
    /// All elements in row-major order, converted to `Float`.
    public func floats() -> [Float] {
        let source = contiguousStorageView()
        let n = count
        var result = [Float](repeating: 0, count: n)
        result.withUnsafeMutableBufferPointer { out in
            let raw = source.storage.data
            let o = source.offset
            switch dtype {
            case .float32: let p = raw.assumingMemoryBound(to: Float.self) + o; for i in 0..<n { out[i] = p[i] }
            case .float64: let p = raw.assumingMemoryBound(to: Double.self) + o; for i in 0..<n { out[i] = Float(p[i]) }
            case .bfloat16: collie_bf16_to_f32(raw.assumingMemoryBound(to: UInt16.self) + o, out.baseAddress!, n)
            case .float16: collie_f16_to_f32(raw.assumingMemoryBound(to: UInt16.self) + o, out.baseAddress!, n)
            case .int32: let p = raw.assumingMemoryBound(to: Int32.self) + o; for i in 0..<n { out[i] = Float(p[i]) }
            case .int64: let p = raw.assumingMemoryBound(to: Int64.self) + o; for i in 0..<n { out[i] = Float(p[i]) }
            }
        }
        return result
    }

    /// All elements in row-major order, converted to `Double`.
    public func doubles() -> [Double] {
        if dtype == .float64 {
            let source = contiguousStorageView()
            return Array(UnsafeBufferPointer(start: source.pointer(as: Double.self), count: count))
        }
        if dtype == .int64 || dtype == .int32 { return ints().map(Double.init) }
        return floats().map(Double.init)
    }

    /// All elements in row-major order as `Int` (integer tensors; floats are truncated).
    public func ints() -> [Int] {
        let source = contiguousStorageView()
        let n = count
        switch dtype {
        case .int64: let p = source.pointer(as: Int64.self); return (0..<n).map { Int(p[$0]) }
        case .int32: let p = source.pointer(as: Int32.self); return (0..<n).map { Int(p[$0]) }
        default: return floats().map { Int($0) }
        }
    }

    /// The single element of a one-element tensor, as `Float`.
    public var item: Float {
        precondition(count == 1, "item needs a one-element tensor, got shape \(shape)")
        return floats()[0]
    }

    /// A contiguous view or copy of the raw storage (no autodiff; same dtype).
    internal func contiguousStorageView() -> Tensor {
        if isContiguous { return self }
        let out = Tensor(uninitializedShape: shape, dtype: dtype)
        StridedCopy.copy(from: self, to: out)
        return out
    }
}

/// Copies between strided views of the same dtype.
enum StridedCopy {
    /// Copies `source` (any strides) into the contiguous tensor `destination` of equal shape and dtype.
    static func copy(from source: Tensor, to destination: Tensor) {
        precondition(source.shape == destination.shape && source.dtype == destination.dtype)
        precondition(destination.isContiguous)
        switch source.dtype.size {
        case 8: run(UInt64.self, source, destination)
        case 4: run(UInt32.self, source, destination)
        default: run(UInt16.self, source, destination)
        }
    }

    private static func run<E>(_: E.Type, _ source: Tensor, _ destination: Tensor) {
        let src = source.pointer(as: E.self)
        let dst = destination.pointer(as: E.self)
        let shape = source.shape, strides = source.strides
        let rank = shape.count
        if rank == 0 { dst[0] = src[0]; return }
        let inner = shape[rank - 1], innerStride = strides[rank - 1]
        let outer = source.count / Swift.max(inner, 1)
        if inner == 0 { return }
        Parallel.forEach(outer, minimumChunk: Swift.max(1, 16384 / inner)) { rows in
            var index = [Int](repeating: 0, count: rank)
            for row in rows {
                var rest = row, base = 0
                for axis in stride(from: rank - 2, through: 0, by: -1) {
                    index[axis] = rest % shape[axis]
                    rest /= shape[axis]
                    base += index[axis] * strides[axis]
                }
                let out = dst + row * inner
                if innerStride == 1 {
                    out.update(from: src + base, count: inner)
                } else {
                    for j in 0..<inner { out[j] = src[base + j * innerStride] }
                }
            }
        }
    }
}
