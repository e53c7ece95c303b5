import CCollieKernels

/// Inverted dropout (PyTorch's `nn.Dropout` in training): each element is zeroed with probability `probability` and
/// the kept ones are scaled by 1/(1 − p), so the expectation is unchanged.
///
/// The mask is a function of (`seed`, element index) alone (`collie_dropout_bits`: integer hashing, the same bits at
/// every kernel level), never stored: backward draws it again, and so does a forward that activation checkpointing
/// recomputes. A different mask per call needs a different seed.
public struct DropoutMask: Sendable, Equatable {
    /// The probability of zeroing an element, in [0, 1).
    public var probability: Double
    /// Selects the mask.
    public var seed: UInt64
    /// For a tensor that holds columns `offset ..< offset + n` of every row of a wider one (`total` columns: a
    /// row-parallel layer's input under tensor parallelism), the wider tensor's mask is drawn: element (row, j) is
    /// the whole tensor's element (row, offset + j). Nil: the tensor is the whole.
    public var columns: ColumnWindow?

    /// Columns `offset ..< offset + n` of rows of `total` columns.
    public struct ColumnWindow: Sendable, Equatable {
        public var offset: Int
        public var total: Int

        public init(offset: Int, total: Int) {
            self.offset = offset
            self.total = total
        }
    }

    public init(probability: Double, seed: UInt64, columns: ColumnWindow? = nil) {
        precondition((0..<1).contains(probability), "dropout probability must be in [0, 1), got \(probability)")
        self.probability = probability
        self.seed = seed
        self.columns = columns
    }

    /// Elements whose 16 bits fall below this are dropped: p · 2¹⁶ rounded (p = 0.05 drops with probability
    /// 0.050003).
    var threshold: UInt32 { UInt32((probability * 65536).rounded()) }

    /// Whether element `index` of the whole tensor is kept.
    public func keeps(_ index: Int) -> Bool { collie_dropout_bits(seed, UInt64(index)) >= threshold }

    /// Writes the dropped-out `count` elements of `x`, rows of `width` values, into `y`, which may be `x`.
    func apply<F: FloatElement>(_ x: UnsafePointer<F>, into y: UnsafeMutablePointer<F>, count: Int, width: Int) {
        guard let columns else { return run(x, y, count: count, first: 0) }
        precondition(width > 0 && columns.offset >= 0 && columns.offset + width <= columns.total,
                     "dropout: columns \(columns.offset) ..< \(columns.offset + width) of \(columns.total)")
        Parallel.forEach(count / width, minimumChunk: Swift.max(1, (1 << 14) / width)) { rows in
            for row in rows {
                let at = row * width
                run(x + at, y + at, count: width, first: row * columns.total + columns.offset, parallel: false)
            }
        }
    }

    /// Elements `first ..< first + count` of the whole tensor's mask over `x` into `y`.
    private func run<F: FloatElement>(_ x: UnsafePointer<F>, _ y: UnsafeMutablePointer<F>, count: Int, first: Int,
                                      parallel: Bool = true) {
        let threshold = threshold, keep = 1 / (1 - probability), seed = seed
        func piece(_ r: Range<Int>) {
            let at = UInt64(first + r.lowerBound)
            if F.self == Float.self {
                collie_dropout_f32(UnsafeRawPointer(x + r.lowerBound).assumingMemoryBound(to: Float.self),
                                   UnsafeMutableRawPointer(y + r.lowerBound).assumingMemoryBound(to: Float.self),
                                   r.count, at, seed, threshold, Float(keep))
            } else {
                collie_dropout_f64(UnsafeRawPointer(x + r.lowerBound).assumingMemoryBound(to: Double.self),
                                   UnsafeMutableRawPointer(y + r.lowerBound).assumingMemoryBound(to: Double.self),
                                   r.count, at, seed, threshold, keep)
            }
        }
        if parallel { Parallel.forEach(count, minimumChunk: 1 << 14, piece) } else { piece(0..<count) }
    }
}

extension Tensor {
    /// `x` with the elements `mask` drops zeroed and the others scaled by 1/(1 − p). Backward keeps nothing: it draws
    /// the mask again.
    public static func dropout(_ x: Tensor, _ mask: DropoutMask) -> Tensor {
        let xin = x.computeContiguous
        let out = Tensor(uninitializedShape: x.shape, dtype: xin.dtype)
        let width = x.shape.last ?? 1
        func run<F: FloatElement>(_: F.Type) {
            mask.apply(xin.pointer(as: F.self), into: out.pointer(as: F.self), count: xin.count, width: width)
        }
        xin.dtype == .float64 ? run(Double.self) : run(Float.self)
        return out.recording("dropout", [xin]) { grad, sink in
            func back<F: FloatElement>(_: F.Type) {
                let dx = sink.canOverwrite(grad, input: 0) ? grad : Tensor(uninitializedShape: grad.shape, dtype: F.dtype)
                mask.apply(grad.pointer(as: F.self), into: dx.pointer(as: F.self), count: grad.count, width: width)
                sink.give(dx, toInput: 0)
            }
            grad.dtype == .float64 ? back(Double.self) : back(Float.self)
        }
    }

    /// `linear(dropout(x, mask), weight: weight)` without keeping the dropped-out input for backward: the weight's
    /// gradient draws it again from `x`, which is often kept anyway (LoRA's A: the query, key and value adapters read
    /// the same normalized input, each with a mask of its own). `weight` [out, in].
    public static func linear(_ x: Tensor, droppingOut mask: DropoutMask, weight: Tensor) -> Tensor {
        let xin = x.computeContiguous
        var w = weight.computeView
        if w.dtype != xin.dtype { w = w.to(xin.dtype) }   // as linear does
        precondition(w.rank == 2, "linear weight must be [out, in], got \(weight.shape)")
        let inFeatures = w.shape[1], outFeatures = w.shape[0]
        precondition(x.shape.last == inFeatures, "linear: input \(x.shape) does not end in \(inFeatures)")
        let rows = xin.count / Swift.max(inFeatures, 1)
        let lw = MatrixLayout(w)
        let out = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [outFeatures], dtype: xin.dtype)
        /// dropout(x) in a buffer of its own.
        func droppedOut<F: FloatElement>(_ x: Tensor, _: F.Type) -> Tensor {
            let d = Tensor(uninitializedShape: x.shape, dtype: x.dtype)
            mask.apply(x.pointer(as: F.self), into: d.pointer(as: F.self), count: x.count, width: inFeatures)
            return d
        }
        func run<F: FloatElement>(_: F.Type) {   // Y = dropout(X) · Wᵀ
            let d = droppedOut(xin, F.self)
            F.gemm(transA: false, transB: !lw.transposed, m: rows, n: outFeatures, k: inFeatures, alpha: 1,
                   a: d.pointer(as: F.self), lda: inFeatures, b: lw.base.pointer(as: F.self), ldb: lw.leadingDimension,
                   beta: 0, c: out.pointer(as: F.self), ldc: outFeatures)
        }
        xin.dtype == .float64 ? run(Double.self) : run(Float.self)
        // dW reads X (to draw dropout(X) again), dX only W.
        let keptInput = w.requiresGrad ? xin : nil
        let inputShape = xin.shape, transposed = lw.transposed, leadingDimension = lw.leadingDimension
        return out.recording("dropout_linear", [xin, w]) { grad, sink in
            func back<F: FloatElement>(_: F.Type) {
                let g = grad.pointer(as: F.self)
                if sink.needsGradient(0) {   // dX = dropout(dY · W): forward's zeros and scale
                    let dx = Tensor(uninitializedShape: inputShape, dtype: F.dtype)
                    F.gemm(transA: false, transB: transposed, m: rows, n: inFeatures, k: outFeatures, alpha: 1,
                           a: g, lda: outFeatures, b: MatrixLayout(w).base.pointer(as: F.self), ldb: leadingDimension,
                           beta: 0, c: dx.pointer(as: F.self), ldc: inFeatures)
                    mask.apply(dx.pointer(as: F.self), into: dx.pointer(as: F.self), count: dx.count, width: inFeatures)
                    sink.give(dx, toInput: 0)
                }
                sink.accumulate(1, as: F.self, overwrites: true) { dw, beta in   // dW = dYᵀ · dropout(X)
                    let d = droppedOut(keptInput!, F.self)
                    F.gemm(transA: true, transB: false, m: outFeatures, n: inFeatures, k: rows, alpha: 1,
                           a: g, lda: outFeatures, b: d.pointer(as: F.self), ldb: inFeatures, beta: beta,
                           c: dw, ldc: inFeatures)
                }
            }
            grad.dtype == .float64 ? back(Double.self) : back(Float.self)
        }
    }
}
