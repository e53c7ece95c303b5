/// Creating tensors: from Swift arrays, constants, ranges and seeded random draws.
extension Tensor {
    /// A float32 (or `dtype`) tensor holding `values` in row-major order.
    public convenience init(_ values: [Float], shape: [Int], dtype: DType = .float32) {
        precondition(values.count == shape.reduce(1, *), "\(values.count) values do not fill shape \(shape)")
        self.init(uninitializedShape: shape, dtype: dtype)
        values.withUnsafeBufferPointer { Conversion.store(floats: $0, into: self) }
    }

    /// A float64 tensor holding `values` in row-major order.
    public convenience init(doubles values: [Double], shape: [Int]) {
        precondition(values.count == shape.reduce(1, *), "\(values.count) values do not fill shape \(shape)")
        self.init(uninitializedShape: shape, dtype: .float64)
        pointer(as: Double.self).update(from: values, count: values.count)
    }

    /// An integer tensor (int64 by default) holding `values`, for token ids and indices.
    public convenience init(ints values: [Int], shape: [Int], dtype: DType = .int64) {
        precondition(values.count == shape.reduce(1, *), "\(values.count) values do not fill shape \(shape)")
        precondition(dtype == .int64 || dtype == .int32, "integer tensors are int32 or int64")
        self.init(uninitializedShape: shape, dtype: dtype)
        if dtype == .int64 {
            let p = pointer(as: Int64.self)
            for (i, v) in values.enumerated() { p[i] = Int64(v) }
        } else {
            let p = pointer(as: Int32.self)
            for (i, v) in values.enumerated() { p[i] = Int32(truncatingIfNeeded: v) }
        }
    }

    /// A tensor of `shape` filled with `value`.
    public static func full(_ shape: [Int], _ value: Double, dtype: DType = .float32) -> Tensor {
        let t = Tensor(uninitializedShape: shape, dtype: dtype)
        let n = t.count
        switch dtype {
        case .float32: t.pointer(as: Float.self).initialize(repeating: Float(value), count: n)
        case .float64: t.pointer(as: Double.self).initialize(repeating: value, count: n)
        case .bfloat16: t.pointer(as: UInt16.self).initialize(repeating: HalfPrecision.bfloat16Bits(Float(value)), count: n)
        case .float16: t.pointer(as: UInt16.self).initialize(repeating: HalfPrecision.float16Bits(Float(value)), count: n)
        case .int32: t.pointer(as: Int32.self).initialize(repeating: Int32(value), count: n)
        case .int64: t.pointer(as: Int64.self).initialize(repeating: Int64(value), count: n)
        }
        return t
    }

    /// Zeros of `shape`.
    public static func zeros(_ shape: [Int], dtype: DType = .float32) -> Tensor {
        let t = Tensor(storage: TensorStorage(byteCount: shape.reduce(1, *) * dtype.size, zeroed: true),
                       shape: shape, dtype: dtype)
        return t
    }

    /// Sets every element of this contiguous tensor to zero in place, on every thread when it is large: one thread's
    /// stores are bound by its own write bandwidth (memset in C on an Ice Lake Xeon: the small preset's 536 MB of
    /// gradients in 52–54 ms on one thread, 28–38 ms on two).
    public func fillWithZeros() {
        precondition(isContiguous, "fillWithZeros: a strided tensor \(shape)")
        let bytes = storage.data + offset * dtype.size
        Parallel.forEach(count * dtype.size, minimumChunk: 1 << 20) { range in
            (bytes + range.lowerBound).initializeMemory(as: UInt8.self, repeating: 0, count: range.count)
        }
    }

    /// Ones of `shape`.
    public static func ones(_ shape: [Int], dtype: DType = .float32) -> Tensor { full(shape, 1, dtype: dtype) }

    /// `start, start + step, …` below `end`, as a 1-D tensor (int64 unless `dtype` says otherwise).
    public static func arange(_ start: Int = 0, _ end: Int, step: Int = 1, dtype: DType = .int64) -> Tensor {
        precondition(step != 0, "arange step must not be zero")
        let values = Array(stride(from: start, to: end, by: step))
        if dtype == .int64 || dtype == .int32 { return Tensor(ints: values, shape: [values.count], dtype: dtype) }
        if dtype == .float64 { return Tensor(doubles: values.map(Double.init), shape: [values.count]) }
        return Tensor(values.map(Float.init), shape: [values.count], dtype: dtype)
    }

    /// Samples from N(mean, std²), drawn in row-major order from `generator` (Box–Muller, as
    /// `RandomGenerator.nextNormal()`).
    public static func normal(_ shape: [Int], mean: Double = 0, std: Double = 1, dtype: DType = .float32,
                              generator: inout RandomGenerator) -> Tensor {
        sampled(shape, dtype: dtype, wordsPerValue: 2, generator: &generator) { words in
            mean + std * RandomGenerator.normal(words[0], words[1])
        }
    }

    /// Samples from U[low, high), drawn in row-major order from `generator`.
    public static func uniform(_ shape: [Int], low: Double = 0, high: Double = 1, dtype: DType = .float32,
                               generator: inout RandomGenerator) -> Tensor {
        sampled(shape, dtype: dtype, wordsPerValue: 1, generator: &generator) { words in
            low + (high - low) * RandomGenerator.unit(words[0])
        }
    }

    /// A tensor of `dtype` whose values are `value` of the generator's next `wordsPerValue` words, in row-major
    /// order — the values a loop of `nextNormal()`/`nextUnit()` would give — made a chunk at a time: the words are
    /// drawn in order on this thread, turned into values on every thread and rounded into the tensor, so a random
    /// initialization never holds more than the tensor plus one chunk (a 7B model's weights go straight into bfloat16).
    private static func sampled(_ shape: [Int], dtype: DType, wordsPerValue: Int, generator: inout RandomGenerator,
                                _ value: (UnsafePointer<UInt64>) -> Double) -> Tensor {
        let t = Tensor(uninitializedShape: shape, dtype: dtype)
        let count = t.count, chunk = Swift.min(count, 1 << 16)
        var words = [UInt64](repeating: 0, count: chunk * wordsPerValue)
        var floats = [Float](repeating: 0, count: dtype == .float64 ? 0 : chunk)
        var start = 0
        while start < count {
            let n = Swift.min(chunk, count - start)
            for i in 0..<(n * wordsPerValue) { words[i] = generator.next() }
            words.withUnsafeBufferPointer { w in
                let base = w.baseAddress!
                if dtype == .float64 {
                    let p = t.pointer(as: Double.self) + start
                    Parallel.forEach(n, minimumChunk: 4096) { r in for i in r { p[i] = value(base + i * wordsPerValue) } }
                    return
                }
                floats.withUnsafeMutableBufferPointer { f in
                    let p = f.baseAddress!
                    Parallel.forEach(n, minimumChunk: 4096) { r in for i in r { p[i] = Float(value(base + i * wordsPerValue)) } }
                    Conversion.store(floats: UnsafeBufferPointer(rebasing: f[0..<n]),
                                     into: Tensor(storage: t.storage, shape: [n], offset: t.offset + start, dtype: dtype))
                }
            }
            start += n
        }
        return t
    }
}
