/// Shape ops. Reshape of contiguous data, transpose, permute, slice and expand are views of the
/// same storage; concat and split copy. All are differentiable.
extension Tensor {
    /// The same elements with a new shape; one dimension may be -1. A view when contiguous.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var newShape = newShape
        if let unknown = newShape.firstIndex(of: -1) {
            let known = newShape.enumerated().filter { $0.offset != unknown }.map(\.element).reduce(1, *)
            precondition(known > 0 && count % known == 0, "cannot reshape \(shape) to \(newShape)")
            newShape[unknown] = count / known
        }
        precondition(newShape.reduce(1, *) == count, "cannot reshape \(shape) (\(count) elements) to \(newShape)")
        let base = isContiguous ? self : contiguous()
        let out = Tensor(storage: base.storage, shape: newShape, offset: base.offset, dtype: dtype)
        let oldShape = shape
        return out.recording("reshape", [base]) { grad, sink in sink.give(grad.reshaped(oldShape), toInput: 0) }
    }

    /// Swaps two axes (a view).
    public func transposed(_ a: Int = -2, _ b: Int = -1) -> Tensor {
        var order = Array(0..<rank)
        order.swapAt(axis(a), axis(b))
        return permuted(order)
    }

    /// Reorders axes (a view): result axis i is this tensor's axis `order[i]`.
    public func permuted(_ order: [Int]) -> Tensor {
        precondition(order.sorted() == Array(0..<rank), "permutation \(order) is not a permutation of 0..<\(rank)")
        let out = Tensor(storage: storage, shape: order.map { shape[$0] }, strides: order.map { strides[$0] },
                         offset: offset, dtype: dtype)
        var inverse = order
        for (i, o) in order.enumerated() { inverse[o] = i }
        return out.recording("permute", [self]) { grad, sink in sink.give(grad.permuted(inverse).contiguous(), toInput: 0) }
    }

    /// Elements `range` along `axis` (a view).
    public func slice(axis a: Int, _ range: Range<Int>) -> Tensor {
        let a = axis(a)
        precondition(range.lowerBound >= 0 && range.upperBound <= shape[a],
                     "slice \(range) out of bounds for axis \(a) of size \(shape[a])")
        var newShape = shape
        newShape[a] = range.count
        let out = Tensor(storage: storage, shape: newShape, strides: strides,
                         offset: offset + range.lowerBound * strides[a], dtype: dtype)
        let fullShape = shape
        return out.recording("slice", [self]) { grad, sink in
            let full = Tensor.zeros(fullShape, dtype: grad.dtype)
            StridedCopy.copy(from: grad, intoView: full.slice(axis: a, range))
            sink.give(full, toInput: 0)
        }
    }

    /// Broadcasts size-1 (or missing leading) dimensions to `newShape` (a view with stride 0).
    public func expanded(to newShape: [Int]) -> Tensor {
        precondition(newShape.count >= rank, "cannot expand \(shape) to \(newShape)")
        let lead = newShape.count - rank
        var newStrides = [Int](repeating: 0, count: newShape.count)
        for i in 0..<rank {
            let target = newShape[lead + i]
            if shape[i] == target { newStrides[lead + i] = strides[i] }
            else { precondition(shape[i] == 1, "cannot expand \(shape) to \(newShape)") }
        }
        if newShape == shape { return self }
        let out = Tensor(storage: storage, shape: newShape, strides: newStrides, offset: offset, dtype: dtype)
        let original = shape
        return out.recording("expand", [self]) { grad, sink in sink.give(grad.summed(toShape: original), toInput: 0) }
    }

    /// Removes a size-1 axis.
    public func squeezed(axis a: Int) -> Tensor {
        let a = axis(a)
        precondition(shape[a] == 1, "cannot squeeze axis \(a) of size \(shape[a])")
        var s = shape; s.remove(at: a)
        return reshaped(s)
    }

    /// Inserts a size-1 axis at `axis`.
    public func unsqueezed(axis a: Int) -> Tensor {
        let a = a < 0 ? a + rank + 1 : a
        var s = shape; s.insert(1, at: a)
        return reshaped(s)
    }

    /// A contiguous tensor with the same values (itself when already contiguous).
    public func contiguous() -> Tensor {
        if isContiguous { return self }
        let out = contiguousStorageView()
        return out.recording("contiguous", [self]) { grad, sink in sink.give(grad, toInput: 0) }
    }

    /// Joins tensors along `axis`; all other dimensions must agree.
    public static func concat(_ tensors: [Tensor], axis a: Int) -> Tensor {
        precondition(!tensors.isEmpty, "concat needs at least one tensor")
        let first = tensors[0]
        let a = first.axis(a)
        var outShape = first.shape
        outShape[a] = 0
        for t in tensors {
            precondition(t.rank == first.rank && t.dtype == first.dtype, "concat: rank or dtype mismatch")
            for i in 0..<t.rank where i != a {
                precondition(t.shape[i] == first.shape[i], "concat: shapes \(first.shape) and \(t.shape) differ off axis \(a)")
            }
            outShape[a] += t.shape[a]
        }
        let out = Tensor(uninitializedShape: outShape, dtype: first.dtype)
        var start = 0
        var ranges: [Range<Int>] = []
        for t in tensors {
            let range = start..<(start + t.shape[a])
            StridedCopy.copy(from: t, intoView: out.slice(axis: a, range))
            ranges.append(range)
            start = range.upperBound
        }
        return out.recording("concat", tensors) { grad, sink in
            for (i, range) in ranges.enumerated() where sink.needsGradient(i) {
                sink.add(grad.slice(axis: a, range).contiguousStorageView(), toInput: i)
            }
        }
    }

    /// Splits along `axis` into pieces of the given sizes (views).
    public func split(sizes: [Int], axis a: Int) -> [Tensor] {
        let a = axis(a)
        precondition(sizes.reduce(0, +) == shape[a], "split sizes \(sizes) do not add up to \(shape[a])")
        var start = 0
        return sizes.map { size in
            defer { start += size }
            return slice(axis: a, start..<(start + size))
        }
    }

    /// Rows of this tensor picked by `indices` along `axis` (PyTorch's `index_select`).
    public func indexSelect(axis a: Int, _ indices: Tensor) -> Tensor {
        let a = axis(a)
        let idx = indices.ints()
        let n = shape[a]
        for i in idx { precondition(i >= 0 && i < n, "index \(i) out of range for axis \(a) of size \(n)") }
        let x = computeContiguous
        let outer = shape[..<a].reduce(1, *), inner = shape[(a + 1)...].reduce(1, *)
        var outShape = shape
        outShape[a] = idx.count
        let out = Tensor(uninitializedShape: outShape, dtype: x.dtype)
        func run<F: FloatElement>(_: F.Type) {
            let src = x.pointer(as: F.self), dst = out.pointer(as: F.self)
            for o in 0..<outer {
                for (j, i) in idx.enumerated() {
                    (dst + (o * idx.count + j) * inner).update(from: src + (o * n + i) * inner, count: inner)
                }
            }
        }
        x.dtype == .float64 ? run(Double.self) : run(Float.self)
        return out.recording("index_select", [x]) { grad, sink in
            func back<F: FloatElement>(_: F.Type) {
                let g = grad.pointer(as: F.self)
                sink.accumulate(0, as: F.self) { dx, beta in
                    if beta == 0 { dx.initialize(repeating: 0, count: outer * n * inner) }
                    for o in 0..<outer {
                        for (j, i) in idx.enumerated() {
                            let d = dx + (o * n + i) * inner, s = g + (o * idx.count + j) * inner
                            for k in 0..<inner { d[k] += s[k] }
                        }
                    }
                }
            }
            grad.dtype == .float64 ? back(Double.self) : back(Float.self)
        }
    }

    /// Values picked along `axis` at `indices` (PyTorch's `gather`): indices has this tensor's
    /// rank, and out[..., j, ...] = self[..., indices[..., j, ...], ...].
    public func gather(axis a: Int, _ indices: Tensor) -> Tensor {
        let a = axis(a)
        precondition(indices.rank == rank, "gather: indices rank \(indices.rank) ≠ \(rank)")
        let x = computeContiguous
        let idxShape = indices.shape
        for i in 0..<rank where i != a {
            precondition(idxShape[i] == shape[i], "gather: indices shape \(idxShape) does not match \(shape) off axis \(a)")
        }
        let idx = indices.ints()
        let n = shape[a], m = idxShape[a]
        for i in idx { precondition(i >= 0 && i < n, "gather index \(i) out of range for size \(n)") }
        let outer = shape[..<a].reduce(1, *), inner = shape[(a + 1)...].reduce(1, *)
        let out = Tensor(uninitializedShape: idxShape, dtype: x.dtype)
        func run<F: FloatElement>(_: F.Type) {
            let src = x.pointer(as: F.self), dst = out.pointer(as: F.self)
            for o in 0..<outer { for j in 0..<m { for k in 0..<inner {
                let flat = (o * m + j) * inner + k
                dst[flat] = src[(o * n + idx[flat]) * inner + k]
            } } }
        }
        x.dtype == .float64 ? run(Double.self) : run(Float.self)
        return out.recording("gather", [x]) { grad, sink in
            func back<F: FloatElement>(_: F.Type) {
                let g = grad.pointer(as: F.self)
                sink.accumulate(0, as: F.self) { dx, beta in
                    if beta == 0 { dx.initialize(repeating: 0, count: outer * n * inner) }
                    for o in 0..<outer { for j in 0..<m { for k in 0..<inner {
                        let flat = (o * m + j) * inner + k
                        dx[(o * n + idx[flat]) * inner + k] += g[flat]
                    } } }
                }
            }
            grad.dtype == .float64 ? back(Double.self) : back(Float.self)
        }
    }
}

extension StridedCopy {
    /// Copies `source` (any layout) into `destination`, a possibly strided view of equal shape.
    static func copy(from source: Tensor, intoView destination: Tensor) {
        precondition(source.shape == destination.shape && source.dtype == destination.dtype)
        if destination.isContiguous { copy(from: source, to: destination); return }
        let contiguousSource = source.contiguousStorageView()
        switch source.dtype.size {
        case 8: scatter(UInt64.self, contiguousSource, destination)
        case 4: scatter(UInt32.self, contiguousSource, destination)
        default: scatter(UInt16.self, contiguousSource, destination)
        }
    }

    private static func scatter<E>(_: E.Type, _ source: Tensor, _ destination: Tensor) {
        let src = source.pointer(as: E.self), dst = destination.pointer(as: E.self)
        let shape = destination.shape, strides = destination.strides, rank = shape.count
        let inner = shape[rank - 1], innerStride = strides[rank - 1]
        if inner == 0 { return }
        for row in 0..<(source.count / inner) {
            var rest = row, base = 0
            for axis in stride(from: rank - 2, through: 0, by: -1) {
                base += (rest % shape[axis]) * strides[axis]
                rest /= shape[axis]
            }
            for j in 0..<inner { dst[base + j * innerStride] = src[row * inner + j] }
        }
    }
}
