import XCTest
@testable import CollieEngine
import CollieTestSupport

/// One attention configuration: q [B, T, H, D], k/v [B, S, KVH, D], `leftPadding[b]` padding keys
/// at the start of batch row b (nil: no mask).
private struct AttentionCase {
    var name: String
    var batch = 2, queries = 20, keys = 20, heads = 2, kvHeads = 2, dim = 8
    var causal = true
    var slidingWindow: Int? = nil
    var leftPadding: [Int]? = nil
    var tiles = AttentionTiles(rows: 8, columns: 5)
    var dtype = DType.float64

    init(_ name: String, _ configure: (inout AttentionCase) -> Void = { _ in }) {
        self.name = name
        configure(&self)
    }

    var queryShape: [Int] { [batch, queries, heads, dim] }
    var keyShape: [Int] { [batch, keys, kvHeads, dim] }
    var mask: [Double]? {
        leftPadding.map { padding in
            (0..<batch).flatMap { b in (0..<keys).map { $0 < padding[b] ? 0 : 1 } }
        }
    }
    var maskTensor: Tensor? { mask.map { Tensor(ints: $0.map { Int($0) }, shape: [batch, keys]) } }

    /// Random q, k, v and an output weighting w (the loss is Σ out ∘ w) in `dtype`.
    func inputs(seed: UInt64) -> (q: Tensor, k: Tensor, v: Tensor, w: Tensor) {
        var g = RandomGenerator(seed: seed)
        let q = Tensor.normal(queryShape, dtype: dtype, generator: &g)
        let k = Tensor.normal(keyShape, dtype: dtype, generator: &g)
        let v = Tensor.normal(keyShape, dtype: dtype, generator: &g)
        return (q, k, v, Tensor.normal(queryShape, dtype: dtype, generator: &g))
    }
}

/// Output and input gradients of attention computed the plain way: the full masked score row,
/// its softmax, and the softmax's backward, all in Double. `dOut` is the output's gradient.
private func naiveAttention(_ c: AttentionCase, q: [Double], k: [Double], v: [Double], dOut: [Double])
    -> (out: [Double], dq: [Double], dk: [Double], dv: [Double]) {
    let (T, S, H, KVH, D) = (c.queries, c.keys, c.heads, c.kvHeads, c.dim)
    let scale = 1 / Double(D).squareRoot()
    let mask = c.mask
    var out = [Double](repeating: 0, count: q.count), dq = out
    var dk = [Double](repeating: 0, count: k.count), dv = dk
    for b in 0..<c.batch {
        for h in 0..<H {
            let g = h / (H / KVH)
            for i in 0..<T {
                let qi = ((b * T + i) * H + h) * D
                func kv(_ j: Int) -> Int { ((b * S + j) * KVH + g) * D }
                let visible = (0..<S).filter { j in
                    (!c.causal || j <= i + S - T) && (mask?[b * S + j] ?? 1) != 0
                        && (c.slidingWindow.map { i + S - T - j < $0 } ?? true)
                }
                if visible.isEmpty { continue }
                let scores = visible.map { j in scale * (0..<D).reduce(0) { $0 + q[qi + $1] * k[kv(j) + $1] } }
                let top = scores.max()!
                let weights = scores.map { Foundation.exp($0 - top) }
                let total = weights.reduce(0, +)
                let p = weights.map { $0 / total }
                for (n, j) in visible.enumerated() {
                    for d in 0..<D { out[qi + d] += p[n] * v[kv(j) + d] }
                }
                // dP_j = dO·v_j, dS_j = P_j (dP_j − Σ P dP)
                let dP = visible.map { j in (0..<D).reduce(0) { $0 + dOut[qi + $1] * v[kv(j) + $1] } }
                let rowDot = zip(p, dP).reduce(0) { $0 + $1.0 * $1.1 }
                for (n, j) in visible.enumerated() {
                    let dS = p[n] * (dP[n] - rowDot)
                    for d in 0..<D {
                        dq[qi + d] += scale * dS * k[kv(j) + d]
                        dk[kv(j) + d] += scale * dS * q[qi + d]
                        dv[kv(j) + d] += p[n] * dOut[qi + d]
                    }
                }
            }
        }
    }
    return (out, dq, dk, dv)
}

/// Largest |a − b| over the arrays, divided by max(1, largest |b|).
private func relativeError(_ a: [Double], _ b: [Double]) -> Double {
    precondition(a.count == b.count)
    let scale = Swift.max(1, b.map(Swift.abs).max() ?? 0)
    return zip(a, b).map { Swift.abs($0 - $1) }.max()! / scale
}

final class AttentionTests: XCTestCase {
    private func attention(_ c: AttentionCase, _ q: Tensor, _ k: Tensor, _ v: Tensor) -> Tensor {
        Tensor.flashAttention(query: q, key: k, value: v, causal: c.causal, keyPaddingMask: c.maskTensor,
                              slidingWindow: c.slidingWindow, scale: nil, tiles: c.tiles)
    }

    /// Masks, head groupings and tile shapes every float path must agree on.
    private static let cases = [
        AttentionCase("causal MHA"),
        AttentionCase("causal GQA") { $0.heads = 4; $0.kvHeads = 2 },
        AttentionCase("multi-query") { $0.heads = 3; $0.kvHeads = 1 },
        AttentionCase("non-causal") { $0.causal = false; $0.keys = 17 },
        AttentionCase("causal, left padding") { $0.leftPadding = [0, 7]; $0.heads = 4; $0.kvHeads = 2 },
        AttentionCase("non-causal, left padding") { $0.causal = false; $0.leftPadding = [3, 11] },
        AttentionCase("KV prefix, S > T") { $0.queries = 9; $0.keys = 23 },
        AttentionCase("KV prefix with padding") { $0.queries = 9; $0.keys = 23; $0.leftPadding = [12, 0] },
        AttentionCase("D not a tile multiple") { $0.dim = 13; $0.tiles = AttentionTiles(rows: 6, columns: 6) },
        AttentionCase("tiles wider than the sequence") { $0.tiles = AttentionTiles(rows: 32, columns: 64) },
        AttentionCase("default tiles, T = 67") {
            $0.batch = 1; $0.queries = 67; $0.keys = 67; $0.heads = 4; $0.kvHeads = 2; $0.dim = 16
            $0.tiles = AttentionTiles(headDim: $0.dim)
        },
        AttentionCase("default tiles, T = 67, S = 150, padding") {
            $0.queries = 67; $0.keys = 150; $0.heads = 2; $0.kvHeads = 1; $0.dim = 12
            $0.leftPadding = [0, 70]; $0.tiles = AttentionTiles(headDim: $0.dim)
        },
        AttentionCase("default tiles for D = 128 (32×64), T = 67") {
            $0.batch = 1; $0.queries = 67; $0.keys = 67; $0.heads = 2; $0.kvHeads = 1; $0.dim = 128
            $0.tiles = AttentionTiles(headDim: 128)
        },
        AttentionCase("sliding window shorter than the sequence") { $0.slidingWindow = 6 },
        AttentionCase("sliding window, GQA, padding, KV prefix, tiles skipped") {
            $0.queries = 30; $0.keys = 41; $0.heads = 4; $0.kvHeads = 2; $0.slidingWindow = 7
            $0.leftPadding = [0, 9]; $0.tiles = AttentionTiles(rows: 4, columns: 5)
        },
        AttentionCase("float32, default tiles") {
            $0.queries = 67; $0.keys = 67; $0.heads = 4; $0.kvHeads = 1; $0.dim = 16
            $0.leftPadding = [5, 0]; $0.tiles = AttentionTiles(headDim: $0.dim); $0.dtype = .float32
        },
    ]

    func testAttentionMatchesNaiveComposition() {
        for c in Self.cases {
            let (q, k, v, w) = c.inputs(seed: 1)
            for t in [q, k, v] { t.requiresGrad = true }
            let out = attention(c, q, k, v)
            XCTAssertEqual(out.shape, c.queryShape, c.name)
            XCTAssertEqual(out.dtype, c.dtype, c.name)
            (out * w).sum().backward()

            let reference = naiveAttention(c, q: q.doubles(), k: k.doubles(), v: v.doubles(), dOut: w.doubles())
            let tolerance = c.dtype == .float64 ? 1e-12 : 1e-5
            XCTAssertLessThan(relativeError(out.doubles(), reference.out), tolerance, "\(c.name): output")
            XCTAssertLessThan(relativeError(q.grad!.doubles(), reference.dq), tolerance, "\(c.name): dq")
            XCTAssertLessThan(relativeError(k.grad!.doubles(), reference.dk), tolerance, "\(c.name): dk")
            XCTAssertLessThan(relativeError(v.grad!.doubles(), reference.dv), tolerance, "\(c.name): dv")
        }
    }

    /// Float32 tiles multiply on operands packed once per task (`PackedOperand`), in the packing of each kernel level;
    /// under `MixedPrecision.with(.bfloat16)` the tiles' products take bfloat16-rounded operands (as PyTorch's autocast
    /// runs attention in bf16): within bf16's precision of the plain computation, not equal to float32's, and the same
    /// on every run (tasks on other threads use the precision read on the caller's thread).
    func testFloat32AndBFloat16TilesAtEveryKernelLevel() {
        forEachGEMMKernel { level in
            for var c in Self.cases {
                c.dtype = .float32
                let (q, k, v, w) = c.inputs(seed: 4)
                let reference = naiveAttention(c, q: q.doubles(), k: k.doubles(), v: v.doubles(), dOut: w.doubles())
                func run(_ precision: GEMMPrecision) -> [[Double]] {
                    for t in [q, k, v] { t.grad = nil; t.requiresGrad = true }
                    MixedPrecision.with(precision) { (attention(c, q, k, v) * w).sum().backward() }
                    let out = withNoGrad { MixedPrecision.with(precision) { attention(c, q, k, v) } }
                    return [out, q.grad!, k.grad!, v.grad!].map { $0.doubles() }
                }
                let expected = [reference.out, reference.dq, reference.dk, reference.dv]
                let float32 = run(.float32), bfloat16 = run(.bfloat16)
                XCTAssertEqual(run(.bfloat16), bfloat16, "\(c.name), level \(level): bf16 runs differ")
                for (i, name) in ["output", "dq", "dk", "dv"].enumerated() {
                    let what = "\(c.name), level \(level): \(name)"
                    XCTAssertLessThan(relativeError(float32[i], expected[i]), 1e-5, what)
                    XCTAssertLessThan(relativeError(bfloat16[i], expected[i]), 3e-2, what + " (bf16)")
                }
                XCTAssertNotEqual(bfloat16[0], float32[0], "\(c.name), level \(level): bf16 tiles are not rounded")
            }
        }
    }

    func testAttentionGradientFiniteDifferenceInDouble() {
        let c = AttentionCase("finite differences") {
            $0.batch = 2; $0.queries = 5; $0.keys = 7; $0.heads = 2; $0.kvHeads = 1; $0.dim = 3
            $0.leftPadding = [0, 2]; $0.tiles = AttentionTiles(rows: 2, columns: 3)
        }
        var g = RandomGenerator(seed: 1)
        let inputs = [c.queryShape, c.keyShape, c.keyShape].map { Tensor.normal($0, dtype: .float64, generator: &g) }
        let w = Tensor.normal(c.queryShape, dtype: .float64, generator: &g)
        for t in inputs { t.requiresGrad = true }
        (attention(c, inputs[0], inputs[1], inputs[2]) * w).sum().backward()

        let values = inputs.map { $0.doubles() }
        let weights = w.doubles()
        func loss(_ values: [[Double]]) -> Double {
            let t = zip(values, inputs).map { Tensor(doubles: $0, shape: $1.shape) }
            let out = withNoGrad { attention(c, t[0], t[1], t[2]) }.doubles()
            return zip(out, weights).reduce(0) { $0 + $1.0 * $1.1 }
        }
        let eps = 1e-6
        for (index, name) in ["q", "k", "v"].enumerated() {
            let analytic = inputs[index].grad!.doubles()
            var numeric = analytic
            for i in 0..<analytic.count {
                var plus = values, minus = values
                plus[index][i] += eps
                minus[index][i] -= eps
                numeric[i] = (loss(plus) - loss(minus)) / (2 * eps)
            }
            XCTAssertLessThan(relativeError(analytic, numeric), 1e-7, "d\(name)")
        }
    }

    func testAttentionFullyMaskedRowIsZero() {
        // Batch row 0: causal with 4 left-padding keys, so queries 0...3 see no key.
        // Batch row 1: every key is padding. T > S adds rows before the first key (j <= i − 2).
        let c = AttentionCase("fully masked") {
            $0.queries = 9; $0.keys = 7; $0.heads = 2; $0.kvHeads = 1; $0.dim = 4
            $0.leftPadding = [4, 7]; $0.tiles = AttentionTiles(rows: 4, columns: 3)
        }
        var g = RandomGenerator(seed: 1)
        let q = Tensor.normal(c.queryShape, dtype: .float64, generator: &g)
        let k = Tensor.normal(c.keyShape, dtype: .float64, generator: &g)
        let v = Tensor.normal(c.keyShape, dtype: .float64, generator: &g)
        let w = Tensor.normal(c.queryShape, dtype: .float64, generator: &g)
        for t in [q, k, v] { t.requiresGrad = true }
        let out = attention(c, q, k, v)
        (out * w).sum().backward()

        let (T, H, D) = (c.queries, c.heads, c.dim)
        let o = out.doubles(), dq = q.grad!.doubles()
        for t in [out, q.grad!, k.grad!, v.grad!] { XCTAssertFalse(t.doubles().contains { !$0.isFinite }) }
        // Query i of batch row 0 sees keys 4...(i − 2): none for i < 6.
        let blind = (0..<6).map { (0, $0) } + (0..<T).map { (1, $0) }
        for (b, i) in blind {
            let rows = ((b * T + i) * H * D)..<((b * T + i + 1) * H * D)
            XCTAssertEqual(Array(o[rows]), [Double](repeating: 0, count: H * D), "output of b\(b) q\(i)")
            XCTAssertEqual(Array(dq[rows]), [Double](repeating: 0, count: H * D), "dq of b\(b) q\(i)")
        }
        let keyRow1 = (c.keys * c.kvHeads * D)..<(2 * c.keys * c.kvHeads * D)
        XCTAssertEqual(Set(k.grad!.doubles()[keyRow1]), [0])
        XCTAssertEqual(Set(v.grad!.doubles()[keyRow1]), [0])
        // The rows that do see keys still match the plain computation.
        let reference = naiveAttention(c, q: q.doubles(), k: k.doubles(), v: v.doubles(), dOut: w.doubles())
        XCTAssertLessThan(relativeError(o, reference.out), 1e-12)
        XCTAssertLessThan(relativeError(dq, reference.dq), 1e-12)
    }

    func testAttentionGradientWhenQueryKeyAndValueAreOneTensor() {
        let c = AttentionCase("self") { $0.batch = 1; $0.queries = 11; $0.keys = 11 }
        var g = RandomGenerator(seed: 1)
        let x = Tensor.normal(c.queryShape, dtype: .float64, generator: &g)
        let w = Tensor.normal(c.queryShape, dtype: .float64, generator: &g)
        x.requiresGrad = true
        (attention(c, x, x, x) * w).sum().backward()
        let reference = naiveAttention(c, q: x.doubles(), k: x.doubles(), v: x.doubles(), dOut: w.doubles())
        let expected = (0..<x.count).map { reference.dq[$0] + reference.dk[$0] + reference.dv[$0] }
        XCTAssertLessThan(relativeError(x.grad!.doubles(), expected), 1e-12)
    }

    /// One query position per sequence (a decoding step) takes the single-query kernel in float32; it equals the
    /// plain computation, and its logsumexp serves the tiled backward.
    func testSingleQueryDecodingMatchesNaiveComposition() {
        let cases = [
            AttentionCase("one query, MHA") { $0.queries = 1; $0.keys = 37 },
            AttentionCase("one query, GQA, batch 5") { $0.batch = 5; $0.queries = 1; $0.keys = 9; $0.heads = 6; $0.kvHeads = 2 },
            AttentionCase("one query, padding, a row fully masked") {
                $0.batch = 3; $0.queries = 1; $0.keys = 11; $0.heads = 4; $0.kvHeads = 2; $0.leftPadding = [0, 4, 11]
            },
            AttentionCase("one query, sliding window") { $0.queries = 1; $0.keys = 30; $0.slidingWindow = 8; $0.leftPadding = [0, 25] },
            AttentionCase("one query, non-causal, D = 13") { $0.queries = 1; $0.keys = 6; $0.causal = false; $0.dim = 13 },
            AttentionCase("one query, one key") { $0.queries = 1; $0.keys = 1; $0.heads = 3; $0.kvHeads = 1 },
        ]
        forEachKernelLevel { level in
            for var c in cases {
                c.name += " (kernel level \(level))"
                c.dtype = .float32
                let (q, k, v, w) = c.inputs(seed: 2)
                for t in [q, k, v] { t.requiresGrad = true }
                let out = attention(c, q, k, v)
                (out * w).sum().backward()
                let reference = naiveAttention(c, q: q.doubles(), k: k.doubles(), v: v.doubles(), dOut: w.doubles())
                XCTAssertLessThan(relativeError(out.doubles(), reference.out), 1e-5, "\(c.name): output")
                XCTAssertLessThan(relativeError(q.grad!.doubles(), reference.dq), 1e-5, "\(c.name): dq")
                XCTAssertLessThan(relativeError(k.grad!.doubles(), reference.dk), 1e-5, "\(c.name): dk")
                XCTAssertLessThan(relativeError(v.grad!.doubles(), reference.dv), 1e-5, "\(c.name): dv")
            }
        }
    }

    /// Without gradients, keys and values that are the first S positions of a longer buffer (the KV cache) are read
    /// in place, with the same result as contiguous copies, on both the single-query and the tiled path.
    func testKeysAndValuesReadInPlaceFromALongerBuffer() {
        for queries in [1, 3] {
            let c = AttentionCase("prefix of a cache, T = \(queries)") {
                $0.batch = 3; $0.queries = queries; $0.keys = 10; $0.heads = 4; $0.kvHeads = 2; $0.leftPadding = [0, 3, 1]
                $0.dtype = .float32
            }
            var g = RandomGenerator(seed: 3)
            let q = Tensor.normal(c.queryShape, generator: &g)
            let cachedKeys = Tensor.normal([c.batch, c.keys + 6, c.kvHeads, c.dim], generator: &g)
            let cachedValues = Tensor.normal([c.batch, c.keys + 6, c.kvHeads, c.dim], generator: &g)
            let k = cachedKeys.slice(axis: 1, 0..<c.keys), v = cachedValues.slice(axis: 1, 0..<c.keys)
            XCTAssertFalse(k.isContiguous)
            let out = withNoGrad { attention(c, q, k, v) }
            let reference = naiveAttention(c, q: q.doubles(), k: k.contiguous().doubles(), v: v.contiguous().doubles(),
                                           dOut: [Double](repeating: 0, count: q.count))
            XCTAssertLessThan(relativeError(out.doubles(), reference.out), 1e-5, c.name)
        }
    }

    /// Sequences packed into one row (a padding-free batch) attend only within themselves: output and gradients are
    /// those of each sequence run as a row of its own — the same arithmetic, so bit for bit — whatever the lengths
    /// (one token, shorter and longer than a tile), causal or not, with grouped heads, float64 and float32 at every
    /// GEMM kernel level.
    func testPackedSequencesEqualEachSequenceOnItsOwn() {
        let lengths = [5, 1, 13, 9, 2]
        let cases = [
            AttentionCase("causal MHA") { $0.heads = 2; $0.kvHeads = 2 },
            AttentionCase("causal GQA, small tiles") { $0.heads = 4; $0.kvHeads = 2; $0.tiles = AttentionTiles(rows: 3, columns: 4) },
            AttentionCase("non-causal, multi-query") { $0.causal = false; $0.heads = 3; $0.kvHeads = 1 },
            AttentionCase("default tiles") { $0.heads = 2; $0.kvHeads = 1; $0.dim = 16; $0.tiles = AttentionTiles(headDim: 16) },
        ]
        func check(_ c: AttentionCase, _ what: String) {
            var c = c
            (c.batch, c.queries, c.keys) = (1, lengths.reduce(0, +), lengths.reduce(0, +))
            let (q, k, v, w) = c.inputs(seed: 5)
            for t in [q, k, v] { t.requiresGrad = true }
            let packed = Tensor.flashAttention(query: q, key: k, value: v, causal: c.causal, keyPaddingMask: nil,
                                               sequences: PackedSequences(lengths: lengths), scale: nil, tiles: c.tiles)
            (packed * w).sum().backward()
            var expected: [[Double]] = [[], [], [], []]
            for (start, n) in zip(PackedSequences(lengths: lengths).starts, lengths) {
                let parts = [q, k, v, w].map { $0.detach().slice(axis: 1, start..<start + n).contiguous() }
                for t in parts[0..<3] { t.requiresGrad = true }
                let out = Tensor.flashAttention(query: parts[0], key: parts[1], value: parts[2], causal: c.causal,
                                                keyPaddingMask: nil, scale: nil, tiles: c.tiles)
                (out * parts[3]).sum().backward()
                for (i, t) in [out, parts[0].grad!, parts[1].grad!, parts[2].grad!].enumerated() { expected[i] += t.doubles() }
            }
            let actual = [packed, q.grad!, k.grad!, v.grad!].map { $0.doubles() }
            // A one-token sequence run on its own takes decoding's single-query kernel in float32, whose logsumexp
            // may differ in the last bit: that one is compared within float rounding.
            for (i, name) in ["output", "dq", "dk", "dv"].enumerated() {
                let width = (i < 2 ? c.heads : c.kvHeads) * c.dim   // values per position
                for (start, n) in zip(PackedSequences(lengths: lengths).starts, lengths) {
                    let range = start * width..<(start + n) * width
                    let (a, e) = (Array(actual[i][range]), Array(expected[i][range]))
                    if n == 1 && c.dtype == .float32 {
                        XCTAssertLessThan(relativeError(a, e), 1e-6, "\(c.name), \(what): \(name), one token")
                    } else {
                        XCTAssertEqual(a, e, "\(c.name), \(what): \(name), positions \(start)..<\(start + n)")
                    }
                }
            }
        }
        for c in cases { check(c, "float64") }
        forEachGEMMKernel { level in
            for var c in cases {
                c.dtype = .float32
                check(c, "float32, level \(level)")
            }
        }
    }
}
