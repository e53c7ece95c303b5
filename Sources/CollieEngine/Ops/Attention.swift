import CCollieKernels

/// Scaled-dot-product attention computed in tiles, FlashAttention-2's algorithm on the CPU.
///
/// The T×S score matrix is never held whole. The forward pass walks each (batch, head)'s query
/// rows in blocks of `Br` and its keys in blocks of `Bc`, keeps a running row max `m` and sum `l`
/// (online softmax), rescales the output block as the max grows, and saves only the per-row
/// logsumexp `L = m + log l`. The backward pass recomputes each probability tile as
/// `P = exp(S·scale − L)` and turns it into dQ, dK and dV with four GEMMs per tile.
///
/// Operands stay in the [B, T, H, D] layout a projection produces: head h's rows are `D` contiguous values `H·D`
/// apart. Each task packs what several tile products share once into the GEMM's micro-panels (`PackedOperand`): its kv
/// head's key and value tiles for all of its query blocks and heads, a query block for all of its key tiles; only the
/// probability (and its gradient) tile is packed per product. Scratch per concurrent task is O(S·D + Br·Bc) — the
/// packed keys and values of one head — and products run on the task's own thread.

/// Tile sizes: query blocks of `rows` (Br) by key blocks of `columns` (Bc).
struct AttentionTiles {
    var rows: Int
    var columns: Int

    init(rows: Int, columns: Int) {
        self.rows = rows
        self.columns = columns
    }

    /// The default for head dimension `dim`: 128×128, halving the query rows (to no fewer than
    /// 16) while a tile GEMM's Br·Bc·D exceeds 2^20, so tiles stay in L2. Each task multiplies on its own thread,
    /// since the tasks themselves already use every core.
    /// D = 64 gets 128×128, D = 128 gets 64×128, D = 256 gets 32×128.
    init(headDim dim: Int) {
        self.init(rows: 128, columns: 128)
        while rows > 16 && rows * columns * dim > 1 << 20 { rows /= 2 }
    }

    /// Elements of scratch one forward task holds: the score/probability tile and the row max and sum.
    var forwardScratchCount: Int { rows * columns + 2 * rows }
    /// Elements of scratch one backward task holds: the P and dP/dS tiles and rowsum(dO ∘ O).
    var backwardScratchCount: Int { 2 * rows * columns + rows }
}

extension Tensor {
    /// Causal (or full) scaled-dot-product attention with grouped-query heads, computed in tiles
    /// (FlashAttention-2's algorithm on CPU) so the T×T score matrix is never held whole.
    ///
    /// - Parameters:
    ///   - query: [B, T, H, D].
    ///   - key: [B, S, KVH, D], with H % KVH == 0 (head h reads kv head h / (H/KVH)).
    ///   - value: [B, S, KVH, D].
    ///   - causal: query i attends keys j <= i + (S - T), so with a KV prefix longer than T the
    ///     queries are the last T positions, as in Hugging Face with a cache.
    ///   - keyPaddingMask: optional [B, S] tensor (any dtype); nonzero = attend, zero = padding key.
    ///   - sequences: with B = 1 and S = T, the row holds these sequences one after another (a padding-free
    ///     batch): each position attends only to its own sequence's (causally with `causal`), as if each
    ///     sequence were a row of its own. Not with `keyPaddingMask`.
    ///   - slidingWindow: with `causal`, query position p (= i + S − T) attends only keys j with
    ///     p − j < window (Mistral's sliding window, as `transformers` masks it).
    ///   - scale: multiplies the scores; defaults to 1/sqrt(D).
    /// - Returns: [B, T, H, D] in q's compute dtype. A query row whose keys are all masked is 0 and
    ///   passes no gradient. Differentiable in q, k, v.
    public static func scaledDotProductAttention(query q: Tensor, key k: Tensor, value v: Tensor,
                                                 causal: Bool = true, keyPaddingMask: Tensor? = nil,
                                                 sequences: PackedSequences? = nil,
                                                 slidingWindow: Int? = nil, scale: Double? = nil) -> Tensor {
        flashAttention(query: q, key: k, value: v, causal: causal, keyPaddingMask: keyPaddingMask, sequences: sequences,
                       slidingWindow: slidingWindow, scale: scale, tiles: AttentionTiles(headDim: q.shape.last ?? 1))
    }

    /// `scaledDotProductAttention` with explicit tile sizes (tests use small tiles to exercise many blocks).
    static func flashAttention(query q: Tensor, key k: Tensor, value v: Tensor, causal: Bool,
                               keyPaddingMask: Tensor?, sequences: PackedSequences? = nil, slidingWindow: Int? = nil,
                               scale: Double?, tiles: AttentionTiles) -> Tensor {
        precondition(slidingWindow.map { causal && $0 > 0 } ?? true, "a sliding window needs causal attention and a positive size")
        precondition(q.rank == 4 && k.rank == 4 && v.rank == 4,
                     "attention needs q [B, T, H, D] and k, v [B, S, KVH, D], got \(q.shape), \(k.shape), \(v.shape)")
        precondition(k.shape == v.shape, "attention keys \(k.shape) and values \(v.shape) differ")
        let (batch, queries, heads, dim) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let (keys, kvHeads) = (k.shape[1], k.shape[2])
        precondition(k.shape[0] == batch && k.shape[3] == dim,
                     "attention keys \(k.shape) do not match queries \(q.shape)")
        precondition(dim > 0 && kvHeads > 0 && heads % kvHeads == 0,
                     "attention needs D > 0 and H (\(heads)) a multiple of KVH (\(kvHeads))")
        precondition(tiles.rows > 0 && tiles.columns > 0, "attention tiles must be non-empty")
        if let sequences {
            precondition(batch == 1 && keys == queries && sequences.totalLength == queries && keyPaddingMask == nil,
                         "packed sequences need one row of queries and keys of their total length "
                         + "(\(sequences.totalLength)) and no padding mask, got q \(q.shape), k \(k.shape)")
        }

        let qc = q.computeContiguous
        func aligned(_ t: Tensor) -> Tensor {
            let c = t.computeContiguous
            return c.dtype == qc.dtype ? c : c.to(qc.dtype)
        }
        // Keys and values that are a prefix of a longer [B, capacity, KVH, D] buffer (a KV cache) are read in
        // place when nothing will be differentiated; the backward pass assumes contiguous operands.
        let recorded = GradMode.isEnabled && (q.requiresGrad || k.requiresGrad || v.requiresGrad)
        let inPlace = !recorded && k.dtype == qc.dtype && v.dtype == qc.dtype && k.strides == v.strides
            && k.strides[1] == kvHeads * dim && k.strides[2] == dim && k.strides[3] == 1 && k.strides[0] >= keys * kvHeads * dim
        let kc = inPlace ? k : aligned(k), vc = inPlace ? v : aligned(v)
        let keyBatchStride = inPlace ? k.strides[0] : keys * kvHeads * dim
        // Padding as an additive score bias: 0 for keys to attend, -inf for padding. [B, S]
        let keyBias = keyPaddingMask.map { mask -> Tensor in
            precondition(mask.shape == [batch, keys], "key padding mask must be [\(batch), \(keys)], got \(mask.shape)")
            let bias = mask.doubles().map { $0 != 0 ? 0 : -Double.infinity }
            return qc.dtype == .float64 ? Tensor(doubles: bias, shape: mask.shape)
                                        : Tensor(bias.map(Float.init), shape: mask.shape)
        }
        // Read here, on the caller's thread: tasks on other threads do not see the scope's task-local precision.
        let precision = qc.dtype == .float32 ? MixedPrecision.current : .float32
        let out = Tensor(uninitializedShape: q.shape, dtype: qc.dtype)
        let logSumExp = Tensor(uninitializedShape: [batch, heads, queries], dtype: qc.dtype)   // L, [B, H, T]

        func problem<F: FloatElement>(_: F.Type) -> AttentionProblem<F> {
            AttentionProblem(
                batch: batch, queries: queries, keys: keys, heads: heads, kvHeads: kvHeads, dim: dim,
                causal: causal, window: slidingWindow, scale: F(scale ?? 1 / Double(dim).squareRoot()), tiles: tiles,
                precision: precision,
                keyBatchStride: keyBatchStride, q: qc.pointer(as: F.self), k: kc.pointer(as: F.self), v: vc.pointer(as: F.self),
                keyBias: keyBias?.pointer(as: F.self), sequences: sequences)
        }
        func run<F: FloatElement>(_: F.Type) {
            problem(F.self).forward(out: out.pointer(as: F.self), logSumExp: logSumExp.pointer(as: F.self))
        }
        qc.dtype == .float64 ? run(Double.self) : run(Float.self)

        let savedOut = out.detach()   // the output without a reference cycle through its own node
        return out.recording("scaled_dot_product_attention", [qc, kc, vc]) { grad, sink in
            let dOut = grad.contiguousStorageView()
            let gradients = [qc, kc, vc].enumerated().map { i, input in
                sink.needsGradient(i) ? Tensor.zeros(input.shape, dtype: qc.dtype) : nil
            }
            func back<F: FloatElement>(_: F.Type) {
                problem(F.self).backward(
                    out: savedOut.pointer(as: F.self), logSumExp: logSumExp.pointer(as: F.self),
                    dOut: dOut.pointer(as: F.self), dq: gradients[0]?.pointer(as: F.self),
                    dk: gradients[1]?.pointer(as: F.self), dv: gradients[2]?.pointer(as: F.self))
            }
            qc.dtype == .float64 ? back(Double.self) : back(Float.self)
            // Fresh buffers handed over whole, so q, k and v may even be the same tensor.
            for (i, gradient) in gradients.enumerated() { if let gradient { sink.give(gradient, toInput: i) } }
        }
    }
}

/// One attention call's operands and geometry, shared by the forward and backward kernels.
struct AttentionProblem<F: FloatElement> {
    let batch, queries, keys, heads, kvHeads, dim: Int
    let causal: Bool
    /// Sliding-window size (causal only): position p sees keys j with p − j < window.
    let window: Int?
    let scale: F
    let tiles: AttentionTiles
    /// The tiles' products: `.bfloat16` under `mixed_precision: bf16` (as PyTorch autocast runs attention in bf16).
    let precision: GEMMPrecision
    /// Elements between batch rows of k and v: S·KVH·D when contiguous, more when they are the first S positions of
    /// a longer buffer (forward only).
    let keyBatchStride: Int
    /// [B, T, H, D] contiguous; [B, S, KVH, D] and [B, S, KVH, D], contiguous within each batch row.
    let q, k, v: UnsafeMutablePointer<F>
    /// [B, S] additive score bias (0 or -inf), or nil without padding.
    let keyBias: UnsafeMutablePointer<F>?
    /// The sequences packed into the one row (B = 1, S = T), or nil: each row is one sequence.
    var sequences: PackedSequences? = nil

    /// Query heads per kv head.
    var group: Int { heads / kvHeads }
    /// Leading dimension of a head's rows in q, the output and dq.
    var queryStride: Int { heads * dim }
    /// Leading dimension of a kv head's rows in k, v, dk and dv.
    var keyStride: Int { kvHeads * dim }

    /// Offset of row t of head h in batch b of a [B, T, H, D] tensor.
    func queryOffset(_ b: Int, _ t: Int, _ h: Int) -> Int { ((b * queries + t) * heads + h) * dim }
    /// Offset of row s of kv head g in batch b of a [B, S, KVH, D] tensor.
    func keyOffset(_ b: Int, _ s: Int, _ g: Int) -> Int { b * keyBatchStride + (s * kvHeads + g) * dim }

    /// One past the last key any of query rows i0..<i0+rows may attend.
    func keyEnd(_ i0: Int, _ rows: Int) -> Int {
        causal ? Swift.min(keys, Swift.max(0, i0 + rows + keys - queries)) : keys
    }

    /// The first key any of query rows i0... may attend (0 without a sliding window), rounded
    /// down to a key-tile boundary so tiles stay aligned.
    func keyStart(_ i0: Int) -> Int {
        guard let window else { return 0 }
        let first = Swift.max(0, i0 + keys - queries - window + 1)
        return first / tiles.columns * tiles.columns
    }

    /// Key tiles of one kv head packed for the products that read them, each packed on first use and kept while the
    /// task stays on the same (batch, kv head): `asColumns` K_j as B of Q·K_jᵀ (or V_j as B of dO·V_jᵀ), `asRows` K_j or
    /// V_j as B of P·V_j, dS·K_j (depth = the keys used).
    final class KeyTiles {
        let packed: [PackedOperand<F>]
        private var owner = -1

        init(count: Int, _ side: PackedOperand<F>.Side, precision: GEMMPrecision, maxRows: Int, maxDepth: Int) {
            packed = (0..<count).map { _ in PackedOperand(side, precision: precision, maxRows: maxRows, maxDepth: maxDepth) }
        }

        /// Forgets the packings unless they are of `owner`'s keys.
        func claim(_ owner: Int) {
            if owner != self.owner { for p in packed { p.forget() } }
            self.owner = owner
        }
    }

    /// Number of key tiles.
    var keyTileCount: Int { (keys + tiles.columns - 1) / tiles.columns }

    /// Key tiles of the longest part (`part`): a task's `KeyTiles` hold no more.
    var partKeyTileCount: Int {
        sequences.map { ($0.lengths.max()! + tiles.columns - 1) / tiles.columns } ?? keyTileCount
    }

    /// K_j (or V_j) of kv head g as the right operand of a product with key columns: rows = keys j0..<j0+bc, depth D.
    func packKeysAsColumns(_ tiles: KeyTiles, _ source: UnsafeMutablePointer<F>, _ b: Int, _ g: Int, _ j0: Int) -> PackedOperand<F> {
        let operand = tiles.packed[j0 / self.tiles.columns], rows = Swift.min(self.tiles.columns, keys - j0)
        operand.pack(source + keyOffset(b, j0, g), ld: keyStride, depthContiguous: true, rows: rows, depth: dim, reusing: true)
        return operand
    }

    /// V_j (or K_j) of kv head g as the right operand of a product summing over keys j0..<j0+bc: rows D, depth bc.
    func packKeysAsDepth(_ tiles: KeyTiles, _ source: UnsafeMutablePointer<F>, _ b: Int, _ g: Int, _ j0: Int,
                         _ bc: Int) -> PackedOperand<F> {
        let operand = tiles.packed[j0 / self.tiles.columns]
        operand.pack(source + keyOffset(b, j0, g), ld: keyStride, depthContiguous: false, rows: dim, depth: bc, reusing: true)
        return operand
    }

    /// The causal diagonal of tile (i0, j0) — row r sees column c only where c ≤ r + diagonal — when the tile has masked
    /// entries, else nil (the whole tile is computed).
    func diagonal(_ i0: Int, _ j0: Int, _ bc: Int) -> Int? {
        let diagonal = i0 + keys - queries - j0
        return causal && diagonal < bc - 1 ? diagonal : nil
    }

    /// The masked score tile S = scale·Q_blk·K_blkᵀ for query rows i0..<i0+br (`query`, packed) and keys
    /// j0..<j0+bc (`key`, packed), written to `s` (br, bc); masked entries are -inf. `diagonal` is the tile's
    /// (`diagonal(i0, j0, bc)`): the products skip what lies beyond it.
    func scores(_ query: PackedOperand<F>, _ key: PackedOperand<F>, _ b: Int, _ i0: Int, _ br: Int, _ j0: Int, _ bc: Int,
                diagonal: Int?, into s: UnsafeMutablePointer<F>) {
        let band = diagonal.map { PackedOperand<F>.Band.columns(diagonal: $0, fill: -.infinity) } ?? .full
        PackedOperand.multiply(query, key, m: br, n: bc, alpha: scale, beta: 0, c: s, ldc: bc, band: band)
        if let keyBias {
            let bias = keyBias + b * keys + j0   // (bc)
            for r in 0..<br {
                let row = s + r * bc
                for c in 0..<bc { row[c] += bias[c] }
            }
        }
        if causal {
            // Query i0 + r sees keys j <= i0 + r + (S - T); only tiles on the diagonal have any beyond.
            for r in 0..<br {
                let position = i0 + r + keys - queries
                let visible = Swift.max(0, position + 1 - j0)
                if visible < bc { (s + r * bc + visible).update(repeating: -.infinity, count: bc - visible) }
                if let window {
                    // Keys j <= position − window fall outside the window.
                    let hidden = Swift.min(bc, Swift.max(0, position - window + 1 - j0))
                    if hidden > 0 { (s + r * bc).update(repeating: -.infinity, count: hidden) }
                }
            }
        }
    }

    /// Part `index` as a problem of its own, the row `b` it is there, and where its positions begin in this problem's
    /// rows: row `index` of this problem itself, or packed sequence `index` as a one-row problem whose operands start
    /// at the sequence's first position.
    func part(_ index: Int) -> (problem: AttentionProblem, b: Int, start: Int) {
        guard let sequences else { return (self, index, 0) }
        let (start, n) = (sequences.starts[index], sequences.lengths[index])
        let problem = AttentionProblem(
            batch: 1, queries: n, keys: n, heads: heads, kvHeads: kvHeads, dim: dim, causal: causal, window: window,
            scale: scale, tiles: tiles, precision: precision, keyBatchStride: n * keyStride, q: q + start * queryStride,
            k: k + start * keyStride, v: v + start * keyStride, keyBias: nil)
        return (problem, 0, start)
    }

    /// The tasks — (part, head) pairs: query heads with `queryHeads`, else kv heads — one list per thread. Rows of
    /// one length split into contiguous ranges of equal count; packed sequences, whose work grows as their length
    /// squared, go (with all heads of a kv head together) longest first to the thread with the least work so far,
    /// each thread's list kept in order so that a kv head's packed keys serve its query heads in a row.
    func taskLists(queryHeads: Bool) -> [[(part: Int, head: Int)]] {
        let threads = Swift.max(1, Parallel.threadCount), perUnit = queryHeads ? group : 1
        func tasks(_ part: Int, _ g: Int) -> [(part: Int, head: Int)] { (0..<perUnit).map { (part, g * perUnit + $0) } }
        guard let sequences else {
            let all = (0..<batch).flatMap { b in (0..<kvHeads).flatMap { tasks(b, $0) } }
            let lists = Swift.min(threads, all.count)
            return (0..<lists).map { c in Array(all[all.count * c / lists..<all.count * (c + 1) / lists]) }
        }
        var work = [Int](repeating: 0, count: threads), units = [[(part: Int, g: Int)]](repeating: [], count: threads)
        for s in sequences.lengths.indices.sorted(by: { sequences.lengths[$0] > sequences.lengths[$1] }) {
            for g in 0..<kvHeads {
                let thread = work.indices.min { work[$0] < work[$1] }!
                work[thread] += sequences.lengths[s] * sequences.lengths[s]
                units[thread].append((s, g))
            }
        }
        return units.filter { !$0.isEmpty }.map { list in
            list.sorted { ($0.part, $0.g) < ($1.part, $1.g) }.flatMap { tasks($0.part, $0.g) }
        }
    }

    /// Writes the attention output `out` [B, T, H, D] and the row logsumexp `logSumExp` [B, H, T] (with packed
    /// sequences, sequence s's [H, n_s] block from H·start_s on; +inf for rows with no visible key, so that
    /// recomputed probabilities are 0), one (part, query head) per task.
    func forward(out: UnsafeMutablePointer<F>, logSumExp: UnsafeMutablePointer<F>) {
        if queries == 1 && F.self == Float.self && sequences == nil {
            return forwardSingleQuery(out: UnsafeMutableRawPointer(out).assumingMemoryBound(to: Float.self),
                                      logSumExp: UnsafeMutableRawPointer(logSumExp).assumingMemoryBound(to: Float.self))
        }
        let (rows, columns) = (tiles.rows, tiles.columns)
        let lists = taskLists(queryHeads: true)
        Parallel.forEach(lists.count) { chunks in
            let scratch = UnsafeMutablePointer<F>.allocate(capacity: tiles.forwardScratchCount)
            defer { scratch.deallocate() }
            let keyColumns = KeyTiles(count: partKeyTileCount, .right, precision: precision, maxRows: columns, maxDepth: dim)
            let valueRows = KeyTiles(count: partKeyTileCount, .right, precision: precision, maxRows: dim, maxDepth: columns)
            let query = PackedOperand<F>(.left, precision: precision, maxRows: rows, maxDepth: dim)
            let probabilities = PackedOperand<F>(.left, precision: precision, maxRows: rows, maxDepth: columns)
            for (index, h) in chunks.flatMap({ lists[$0] }) {
                let (problem, b, start) = part(index)
                keyColumns.claim(index * kvHeads + h / group)
                valueRows.claim(index * kvHeads + h / group)
                problem.forwardHead(b, h, out: out + start * queryStride, logSumExp: logSumExp + start * heads,
                                    scratch: scratch, keyColumns: keyColumns, valueRows: valueRows, query: query,
                                    probabilities: probabilities)
            }
        }
    }

    /// `forward` of query head `h` in row `b`, with one task's scratch and packed operands.
    private func forwardHead(_ b: Int, _ h: Int, out: UnsafeMutablePointer<F>, logSumExp: UnsafeMutablePointer<F>,
                             scratch: UnsafeMutablePointer<F>, keyColumns: KeyTiles, valueRows: KeyTiles,
                             query: PackedOperand<F>, probabilities: PackedOperand<F>) {
        let (rows, columns) = (tiles.rows, tiles.columns)
        let s = scratch                                      // (Br, Bc) scores, then probabilities
        let m = scratch + rows * columns                     // (Br) running row max
        let l = m + rows                                     // (Br) running row sum
        let g = h / group
        for i0 in stride(from: 0, to: queries, by: rows) {
            let br = Swift.min(rows, queries - i0)
            let o = out + queryOffset(b, i0, h)          // (br, D), row stride H·D
            for r in 0..<br { (o + r * queryStride).update(repeating: 0, count: dim) }
            m.update(repeating: -.infinity, count: br)
            l.update(repeating: 0, count: br)
            query.pack(q + queryOffset(b, i0, h), ld: queryStride, depthContiguous: true, rows: br, depth: dim)
            let end = keyEnd(i0, br)
            for j0 in stride(from: keyStart(i0), to: end, by: columns) {
                let bc = Swift.min(columns, end - j0)
                let diagonal = diagonal(i0, j0, bc)
                scores(query, packKeysAsColumns(keyColumns, k, b, g, j0), b, i0, br, j0, bc, diagonal: diagonal,
                       into: s)
                // Online softmax: P = exp(S − m_new); rescale l and O by alpha = exp(m_old − m_new).
                for r in 0..<br {
                    let row = s + r * bc
                    let tileMax = VectorMath.maximum(row, bc)
                    let newMax = Swift.max(m[r], tileMax)
                    if newMax == -.infinity {   // every key so far is masked
                        row.update(repeating: 0, count: bc)
                        continue
                    }
                    let alpha = F.exp(m[r] - newMax)
                    let sum = VectorMath.exponentiate(row, bc, shift: newMax)
                    l[r] = l[r] * alpha + sum
                    m[r] = newMax
                    if alpha != 1 {
                        let oRow = o + r * queryStride
                        for d in 0..<dim { oRow[d] *= alpha }
                    }
                }
                // O_blk += P·V_blk: (br, D) += (br, bc)·(bc, D)
                probabilities.pack(s, ld: bc, depthContiguous: true, rows: br, depth: bc)
                PackedOperand.multiply(probabilities, packKeysAsDepth(valueRows, v, b, g, j0, bc),
                                       m: br, n: dim, alpha: 1, beta: 1, c: o, ldc: queryStride,
                                       band: diagonal.map { .depthEnd(diagonal: $0) } ?? .full)
            }
            let lse = logSumExp + (b * heads + h) * queries + i0   // (br)
            for r in 0..<br {
                guard l[r] > 0 else { lse[r] = .infinity; continue }   // no visible key: O stays 0
                let oRow = o + r * queryStride, inverse = 1 / l[r]
                for d in 0..<dim { oRow[d] *= inverse }
                lse[r] = m[r] + F.log(l[r])
            }
        }
    }

    /// `forward` for one query row per (b, h), as in decoding: dot products, softmax and the weighted sum of
    /// values in one C kernel (`collie_attend_heads_f32`) that reads each sequence's keys and values in memory
    /// order, where the tiled path's BLAS calls per (b, h) would cost more than their work. Tasks are sequences,
    /// or ranges of kv heads when there are fewer sequences than threads. Same results up to summation order.
    private func forwardSingleQuery(out: UnsafeMutablePointer<Float>, logSumExp: UnsafeMutablePointer<Float>) {
        let raw = { (p: UnsafeMutablePointer<F>) in UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self) }
        let (q, k, v, bias) = (raw(self.q), raw(self.k), raw(self.v), keyBias.map(raw))
        // The query is position S − 1: it sees every key when causal, the last `window` with a sliding window.
        let start = causal ? Swift.max(0, keys - (window ?? keys)) : 0
        let visible = keys - start
        let splits = Swift.min(kvHeads, Swift.max(1, Parallel.threadCount / batch))
        Parallel.forEach(batch * splits) { tasks in
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(heads * visible, 1))
            defer { scores.deallocate() }
            for task in tasks {
                let b = task / splits, split = task % splits
                let g0 = kvHeads * split / splits, g1 = kvHeads * (split + 1) / splits
                collie_attend_heads_f32(
                    q + queryOffset(b, 0, 0), k + keyOffset(b, start, 0), v + keyOffset(b, start, 0), visible, kvHeads,
                    group, dim, g0, g1, Float(scale), bias.map { $0 + b * keys + start }, scores,
                    out + queryOffset(b, 0, 0), logSumExp + b * heads)
            }
        }
    }

    /// Adds the gradients of q, k and v (each optional; same layouts as the inputs, zeroed by the
    /// caller) given the output, its logsumexp and the output's gradient `dOut` [B, T, H, D].
    ///
    /// One task per (part, kv head) owns that kv head's dK and dV and the dQ of its query heads, so
    /// no two tasks write the same gradient rows.
    func backward(out: UnsafePointer<F>, logSumExp: UnsafePointer<F>, dOut: UnsafePointer<F>,
                  dq: UnsafeMutablePointer<F>?, dk: UnsafeMutablePointer<F>?, dv: UnsafeMutablePointer<F>?) {
        precondition(keyBatchStride == keys * keyStride, "attention's backward needs contiguous keys and values")
        let (rows, columns) = (tiles.rows, tiles.columns)
        let lists = taskLists(queryHeads: false)
        Parallel.forEach(lists.count) { chunks in
            let scratch = UnsafeMutablePointer<F>.allocate(capacity: tiles.backwardScratchCount)
            defer { scratch.deallocate() }
            func left(_ maxRows: Int, _ maxDepth: Int) -> PackedOperand<F> {
                PackedOperand(.left, precision: precision, maxRows: maxRows, maxDepth: maxDepth)
            }
            func right(_ maxRows: Int, _ maxDepth: Int) -> PackedOperand<F> {
                PackedOperand(.right, precision: precision, maxRows: maxRows, maxDepth: maxDepth)
            }
            func keyTiles(_ maxRows: Int, _ maxDepth: Int) -> KeyTiles {
                KeyTiles(count: partKeyTileCount, .right, precision: precision, maxRows: maxRows, maxDepth: maxDepth)
            }
            let workspace = BackwardWorkspace(
                scratch: scratch,
                // Per task: K_j as B of Q·K_jᵀ, V_j as B of dO·V_jᵀ, K_j as B of dS·K_j.
                keyColumns: keyTiles(columns, dim), valueColumns: keyTiles(columns, dim), keyRows: keyTiles(dim, columns),
                // Per query block: Q_i and dO_i as A (rows × D), dO_i and Q_i as B of Pᵀ·dO_i and dSᵀ·Q_i (D × rows).
                query: left(rows, dim), gradient: left(rows, dim), gradientRows: right(dim, rows), queryRows: right(dim, rows),
                // Per tile: Pᵀ, dS and dSᵀ as A.
                probabilitiesT: left(columns, rows), scoreGradient: left(rows, columns), scoreGradientT: left(columns, rows))
            for (index, g) in chunks.flatMap({ lists[$0] }) {
                let (problem, b, start) = part(index)
                for tiles in [workspace.keyColumns, workspace.valueColumns, workspace.keyRows] {
                    tiles.claim(index * kvHeads + g)
                }
                let (rowsAt, keysAt) = (start * queryStride, start * keyStride)
                problem.backwardKeyValueHead(b, g, out: out + rowsAt, logSumExp: logSumExp + start * heads,
                                             dOut: dOut + rowsAt, dq: dq.map { $0 + rowsAt }, dk: dk.map { $0 + keysAt },
                                             dv: dv.map { $0 + keysAt }, workspace)
            }
        }
    }

    /// One backward task's scratch and packed operands.
    struct BackwardWorkspace {
        let scratch: UnsafeMutablePointer<F>
        let keyColumns, valueColumns, keyRows: KeyTiles
        let query, gradient, gradientRows, queryRows: PackedOperand<F>
        let probabilitiesT, scoreGradient, scoreGradientT: PackedOperand<F>
    }

    /// `backward` of kv head `g` in row `b`: its dK and dV rows and the dQ rows of its query heads.
    private func backwardKeyValueHead(_ b: Int, _ g: Int, out: UnsafePointer<F>, logSumExp: UnsafePointer<F>,
                                      dOut: UnsafePointer<F>, dq: UnsafeMutablePointer<F>?, dk: UnsafeMutablePointer<F>?,
                                      dv: UnsafeMutablePointer<F>?, _ w: BackwardWorkspace) {
        let needsScoreGradient = dq != nil || dk != nil
        let (rows, columns) = (tiles.rows, tiles.columns)
        let p = w.scratch                                    // (Br, Bc) scores, then P
        let ds = p + rows * columns                          // (Br, Bc) dP, then dS
        let rowDot = ds + rows * columns                     // (Br) D_i = rowsum(dO_i ∘ O_i)
        for h in g * group..<(g + 1) * group {
            for i0 in stride(from: 0, to: queries, by: rows) {
                let br = Swift.min(rows, queries - i0)
                let rowsAt = queryOffset(b, i0, h)       // Q_i, O_i, dO_i, dQ_i: (br, D), row stride H·D
                let lse = logSumExp + (b * heads + h) * queries + i0   // (br)
                for r in 0..<br {
                    let o = out + rowsAt + r * queryStride, dO = dOut + rowsAt + r * queryStride
                    var dot: F = 0
                    for d in 0..<dim { dot += o[d] * dO[d] }
                    rowDot[r] = dot
                }
                w.query.pack(q + rowsAt, ld: queryStride, depthContiguous: true, rows: br, depth: dim)
                if dv != nil {
                    w.gradientRows.pack(dOut + rowsAt, ld: queryStride, depthContiguous: false, rows: dim, depth: br)
                }
                if needsScoreGradient {
                    w.gradient.pack(dOut + rowsAt, ld: queryStride, depthContiguous: true, rows: br, depth: dim)
                }
                if dk != nil {
                    w.queryRows.pack(q + rowsAt, ld: queryStride, depthContiguous: false, rows: dim, depth: br)
                }
                let end = keyEnd(i0, br)
                for j0 in stride(from: keyStart(i0), to: end, by: columns) {
                    let bc = Swift.min(columns, end - j0)
                    let keysAt = keyOffset(b, j0, g)     // K_j, V_j, dK_j, dV_j: (bc, D), row stride KVH·D
                    let diagonal = diagonal(i0, j0, bc)
                    let rowsEnd = diagonal.map { PackedOperand<F>.Band.depthEnd(diagonal: $0) } ?? .full
                    let keysStart = diagonal.map { PackedOperand<F>.Band.depthStart(diagonal: $0) } ?? .full
                    // P = exp(S − L): (br, bc); masked scores and rows with L = +inf give 0.
                    scores(w.query, packKeysAsColumns(w.keyColumns, k, b, g, j0), b, i0, br, j0, bc, diagonal: diagonal,
                           into: p)
                    for r in 0..<br {
                        VectorMath.exponentiate(p + r * bc, bc, shift: lse[r])
                    }
                    // dV_j += Pᵀ·dO_i: (bc, D) += (bc, br)·(br, D)
                    if let dv {
                        w.probabilitiesT.pack(p, ld: bc, depthContiguous: false, rows: bc, depth: br)
                        PackedOperand.multiply(w.probabilitiesT, w.gradientRows, m: bc, n: dim, alpha: 1, beta: 1,
                                               c: dv + keysAt, ldc: keyStride, band: keysStart)
                    }
                    guard needsScoreGradient else { continue }
                    // dP = dO_i·V_jᵀ: (br, bc) = (br, D)·(D, bc)
                    PackedOperand.multiply(w.gradient, packKeysAsColumns(w.valueColumns, v, b, g, j0),
                                           m: br, n: bc, alpha: 1, beta: 0, c: ds, ldc: bc,
                                           band: diagonal.map { .columns(diagonal: $0, fill: 0) } ?? .full)
                    // dS = P ∘ (dP − D_i): (br, bc)
                    for r in 0..<br {
                        let pRow = p + r * bc, dsRow = ds + r * bc, dot = rowDot[r]
                        for c in 0..<bc { dsRow[c] = pRow[c] * (dsRow[c] - dot) }
                    }
                    // dQ_i += scale·dS·K_j: (br, D) += (br, bc)·(bc, D)
                    if let dq {
                        w.scoreGradient.pack(ds, ld: bc, depthContiguous: true, rows: br, depth: bc)
                        PackedOperand.multiply(w.scoreGradient, packKeysAsDepth(w.keyRows, k, b, g, j0, bc),
                                               m: br, n: dim, alpha: scale, beta: 1, c: dq + rowsAt, ldc: queryStride,
                                               band: rowsEnd)
                    }
                    // dK_j += scale·dSᵀ·Q_i: (bc, D) += (bc, br)·(br, D)
                    if let dk {
                        w.scoreGradientT.pack(ds, ld: bc, depthContiguous: false, rows: bc, depth: br)
                        PackedOperand.multiply(w.scoreGradientT, w.queryRows, m: bc, n: dim, alpha: scale, beta: 1,
                                               c: dk + keysAt, ldc: keyStride, band: keysStart)
                    }
                }
            }
        }
    }
}
