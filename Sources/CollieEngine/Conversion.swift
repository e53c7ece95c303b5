import CCollieKernels

/// Converting between dtypes: `to(_:)` is differentiable between compute types; storage types
/// (bf16/f16) round to nearest even as PyTorch does. float16 converts in C (`collie_f32_to_f16`,
/// `collie_f16_to_f32`: F16C where the CPU has it; Swift's `Float16` is a function call per element
/// on baseline x86-64).
enum Conversion {
    /// Writes `floats` into the contiguous tensor `destination`, rounding to its dtype.
    static func store(floats: UnsafeBufferPointer<Float>, into destination: Tensor) {
        let n = floats.count
        switch destination.dtype {
        case .float32: destination.pointer(as: Float.self).update(from: floats.baseAddress!, count: n)
        case .float64: let p = destination.pointer(as: Double.self); for i in 0..<n { p[i] = Double(floats[i]) }
        case .bfloat16:
            let p = destination.pointer(as: UInt16.self), source = floats.baseAddress!
            Parallel.forEach(n, minimumChunk: 1 << 16) { r in collie_f32_to_bf16(source + r.lowerBound, p + r.lowerBound, r.count) }
        case .float16:
            let p = destination.pointer(as: UInt16.self), source = floats.baseAddress!
            Parallel.forEach(n, minimumChunk: 1 << 16) { r in collie_f32_to_f16(source + r.lowerBound, p + r.lowerBound, r.count) }
        case .int32: let p = destination.pointer(as: Int32.self); for i in 0..<n { p[i] = Int32(floats[i]) }
        case .int64: let p = destination.pointer(as: Int64.self); for i in 0..<n { p[i] = Int64(floats[i]) }
        }
    }
}

extension Tensor {
    /// A contiguous copy in `dtype` (no autodiff).
    public func contiguousCopy(dtype target: DType? = nil) -> Tensor {
        let target = target ?? dtype
        let source = contiguousStorageView()
        let out = Tensor(uninitializedShape: shape, dtype: target)
        if target == dtype {
            out.storage.data.copyMemory(from: source.storage.data + source.offset * dtype.size, byteCount: count * dtype.size)
        } else if dtype == .bfloat16 && target == .float32 {
            // bf16 is the top half of a float32: widening is a shift (the hot path of bf16 weights).
            let p = (source.storage.data + source.offset * 2).assumingMemoryBound(to: UInt16.self)
            let q = out.pointer(as: Float.self)
            Parallel.forEach(count, minimumChunk: 1 << 16) { r in collie_bf16_to_f32(p + r.lowerBound, q + r.lowerBound, r.count) }
        } else if target == .float64 {
            let values = source.doubles()
            out.pointer(as: Double.self).update(from: values, count: values.count)
        } else if dtype == .int64 || dtype == .int32 {
            let values = source.ints()
            if target == .int64 { let p = out.pointer(as: Int64.self); for (i, v) in values.enumerated() { p[i] = Int64(v) } }
            else if target == .int32 { let p = out.pointer(as: Int32.self); for (i, v) in values.enumerated() { p[i] = Int32(v) } }
            else { source.floats().withUnsafeBufferPointer { Conversion.store(floats: $0, into: out) } }
        } else {
            source.floats().withUnsafeBufferPointer { Conversion.store(floats: $0, into: out) }
        }
        return out
    }

    /// The same values in `dtype` without recording (used for gradients).
    func converted(to target: DType) -> Tensor { target == dtype ? self : contiguousCopy(dtype: target) }

    /// The same values in `dtype`. Differentiable between floating-point types: the gradient is
    /// converted back to the source's gradient dtype.
    public func to(_ target: DType) -> Tensor {
        if target == dtype { return self }
        let out = contiguousCopy(dtype: target)
        guard target.isFloatingPoint && dtype.isFloatingPoint else { return out }
        let sourceGradType = Tensor.gradientDType(of: self)
        return out.recording("to(\(target))", [self]) { grad, sink in
            sink.add(grad.converted(to: sourceGradType), toInput: 0)
        }
    }
}

extension Tensor {
    /// Overwrites this contiguous tensor's values with `source`'s (same element count), converting
    /// to this tensor's dtype (rounding to nearest even for bf16/f16). No autodiff.
    public func assignValues(from source: Tensor) {
        precondition(isContiguous && source.count == count, "assignValues: \(source.shape) into \(shape)")
        let converted = source.dtype == dtype ? source.contiguousStorageView() : source.contiguousCopy(dtype: dtype)
        (storage.data + offset * dtype.size)
            .copyMemory(from: converted.storage.data + converted.offset * dtype.size, byteCount: count * dtype.size)
    }

    /// Runs `body` on this contiguous tensor's values as float32, `chunk` values at a time (each call gets the chunk's
    /// values and their range in the tensor), and keeps what it wrote: in place for float32, else through one chunk's
    /// float32 buffer rounded back (to nearest even) into the storage dtype — so updating a bf16 parameter never makes
    /// a float32 copy of it (a 7B model's 180 MB projections, 27 GB of fresh pages per step).
    ///
    /// Chunks go in order, or `concurrently`: split into contiguous runs across `Parallel`'s threads, each with its own
    /// buffer — then `body` must touch nothing shared but its own chunk and what it only reads.
    public func updateAsFloat32(chunk: Int, concurrently: Bool = false,
                                _ body: (UnsafeMutablePointer<Float>, Range<Int>) -> Void) {
        float32Chunks(chunk, writingBack: true, concurrently: concurrently, body)
    }

    /// Calls `body` with this contiguous tensor's values as float32, `chunk` values at a time (and their range): in
    /// place for float32, else widened one chunk at a time. In order, or `concurrently` as `updateAsFloat32`.
    public func readAsFloat32(chunk: Int, concurrently: Bool = false,
                              _ body: (UnsafePointer<Float>, Range<Int>) -> Void) {
        float32Chunks(chunk, writingBack: false, concurrently: concurrently) { body(UnsafePointer($0), $1) }
    }

    private func float32Chunks(_ chunk: Int, writingBack: Bool, concurrently: Bool,
                               _ body: (UnsafeMutablePointer<Float>, Range<Int>) -> Void) {
        precondition(isContiguous, "float32 chunks need a contiguous tensor")
        precondition(chunk > 0, "float32 chunks: chunk must be positive")
        precondition(dtype == .float32 || dtype == .bfloat16 || dtype == .float16, "float32 chunks of a \(dtype) tensor")
        let chunks = (count + chunk - 1) / chunk
        // Chunks `run` in order, through one buffer for the run when the values need widening.
        func runChunks(_ run: Range<Int>) {
            if self.dtype == .float32 {
                let p = self.pointer(as: Float.self)
                for c in run { body(p + c * chunk, c * chunk..<Swift.min((c + 1) * chunk, self.count)) }
                return
            }
            withUnsafeTemporaryAllocation(of: Float.self, capacity: Swift.min(chunk, self.count)) { b in
                for c in run {
                    let range = c * chunk..<Swift.min((c + 1) * chunk, self.count)
                    let piece = Tensor(storage: self.storage, shape: [range.count], offset: self.offset + range.lowerBound,
                                       dtype: self.dtype)
                    piece.widen(into: b.baseAddress!)
                    body(b.baseAddress!, range)
                    if writingBack { Conversion.store(floats: UnsafeBufferPointer(rebasing: b[0..<range.count]), into: piece) }
                }
            }
        }
        if concurrently { Parallel.forEach(chunks, runChunks) } else { runChunks(0..<chunks) }
    }

    /// Writes this contiguous bf16/f16 tensor's values, widened exactly, to `destination`.
    private func widen(into destination: UnsafeMutablePointer<Float>) {
        let n = count
        if dtype == .bfloat16 {
            collie_bf16_to_f32(pointer(as: UInt16.self), destination, n)
        } else {
            collie_f16_to_f32(pointer(as: UInt16.self), destination, n)
        }
    }

    /// Runs `body` on this contiguous tensor's values as float32 and keeps what it wrote: in place
    /// for float32, else through a float32 copy rounded back (to nearest even) into the storage
    /// dtype — how optimizers update bf16/f16 parameters in float32.
    public func updateAsFloat32(_ body: (UnsafeMutablePointer<Float>, Int) -> Void) {
        precondition(isContiguous, "updateAsFloat32 needs a contiguous tensor")
        switch dtype {
        case .float32:
            body(pointer(as: Float.self), count)
        case .bfloat16, .float16:
            var values = floats()
            values.withUnsafeMutableBufferPointer { body($0.baseAddress!, $0.count) }
            values.withUnsafeBufferPointer { Conversion.store(floats: $0, into: self) }
        default:
            preconditionFailure("updateAsFloat32 on a \(dtype) tensor")
        }
    }
}
