import ArgumentParser
import CBLAS
import Collie
import Foundation

// The measurements of `collie bench ops`: inputs, matrix products, the memory-copy bound, fused kernels and
// attention (speed and peak memory).

/// Seeded inputs for the op benchmarks, allocated and filled before anything is timed.
enum BenchData {
    /// A float32 tensor of `shape` with values uniform in [-scale, scale), written in place.
    static func uniform(_ shape: [Int], seed: UInt64, scale: Float = 1, requiresGrad: Bool = false) -> Tensor {
        let t = Tensor(uninitializedShape: shape, dtype: .float32)
        fill(t.pointer(as: Float.self), count: t.count, seed: seed, scale: scale)
        t.requiresGrad = requiresGrad
        return t
    }

    static func fill(_ p: UnsafeMutablePointer<Float>, count: Int, seed: UInt64, scale: Float = 1) {
        var generator = RandomGenerator(seed: seed)
        for i in 0..<count {
            p[i] = (Float(generator.next() >> 40) * 0x1.0p-24 * 2 - 1) * scale
        }
    }

    /// Integers uniform in 0..<bound.
    static func ids(_ shape: [Int], bound: Int, seed: UInt64) -> Tensor {
        var generator = RandomGenerator(seed: seed)
        let n = shape.reduce(1, *)
        return Tensor(ints: (0..<n).map { _ in Int(generator.next() % UInt64(bound)) }, shape: shape)
    }
}

// MARK: - Matmul

/// GFLOP/s of the engine's matrix products beside `cblas_sgemm` called directly on the same shapes.
struct MatmulBench {
    let repeats: Int

    /// (M, K, N): a [M, K] activation times a [K, N] weight.
    static let shapes: [(m: Int, k: Int, n: Int)] = [
        (2048, 768, 768), (2048, 768, 3072), (2048, 3072, 768), (512, 768, 32000),
    ]

    func run() -> [MatmulRow] {
        var rows: [MatmulRow] = []
        for shape in MatmulBench.shapes {
            let (m, k, n) = shape
            progress("matmul \(m)×\(k)×\(n)")
            // Stored operands for every layout: A as [M, K] and [K, M], B as [K, N] and [N, K].
            let aMK = BenchData.uniform([m, k], seed: 1), aKM = BenchData.uniform([k, m], seed: 2)
            let bKN = BenchData.uniform([k, n], seed: 3), bNK = BenchData.uniform([n, k], seed: 4)
            let c = UnsafeMutablePointer<Float>.allocate(capacity: m * n)
            c.initialize(repeating: 0, count: m * n)
            defer { c.deallocate() }
            let flop = 2.0 * Double(m) * Double(n) * Double(k)

            for (transA, transB) in [(false, false), (false, true), (true, false), (true, true)] {
                let a = transA ? aKM.transposed() : aMK
                let b = transB ? bNK.transposed() : bKN
                let pa = (transA ? aKM : aMK).pointer(as: Float.self), pb = (transB ? bNK : bKN).pointer(as: Float.self)
                let lda = transA ? m : k, ldb = transB ? k : n
                let (engine, direct) = Timing.measurePair(repeats: repeats, {
                    _ = Tensor.matmul(a, b)
                }, {
                    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                                Int32(m), Int32(n), Int32(k), 1, pa, Int32(lda), pb, Int32(ldb), 0, c, Int32(n))
                })
                let variant = (transA ? "T" : "N") + (transB ? "T" : "N")
                rows.append(row("matmul \(variant)", m, k, n, flop, engine, direct))
            }

            // Linear: weight W [N(out), K(in)], y = x·Wᵀ (an NT product).
            let x = aMK, w = bNK
            let px = x.pointer(as: Float.self), pw = w.pointer(as: Float.self)
            let (forward, forwardDirect) = Timing.measurePair(repeats: repeats, {
                _ = Tensor.linear(x, weight: w)
            }, {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k),
                            1, px, Int32(k), pw, Int32(k), 0, c, Int32(n))
            })
            rows.append(row("linear fwd", m, k, n, flop, forward, forwardDirect))

            // Backward: dX = dY·W (NN) into a fresh buffer, dW += dYᵀ·X (TN) into a kept one, as in training
            // (activation gradients are new each step, parameter gradients live in a flat buffer).
            let xg = BenchData.uniform([m, k], seed: 5, requiresGrad: true)
            let wg = BenchData.uniform([n, k], seed: 6, requiresGrad: true)
            wg.grad = Tensor.zeros([n, k])
            let dy = BenchData.uniform([m, n], seed: 7)
            let pdy = dy.pointer(as: Float.self), pxg = xg.pointer(as: Float.self), pwg = wg.pointer(as: Float.self)
            let dx = UnsafeMutablePointer<Float>.allocate(capacity: m * k)
            dx.initialize(repeating: 0, count: m * k)
            let dw = UnsafeMutablePointer<Float>.allocate(capacity: n * k)
            dw.initialize(repeating: 0, count: n * k)
            defer { dx.deallocate(); dw.deallocate() }
            var y: Tensor?
            let (backward, backwardDirect) = Timing.measurePair(repeats: repeats, prepareFirst: {
                xg.grad = nil
                y = Tensor.linear(xg, weight: wg)
            }, {
                y!.backward(gradient: dy)
            }, {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(k), Int32(n),
                            1, pdy, Int32(n), pwg, Int32(k), 0, dx, Int32(k))
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(n), Int32(k), Int32(m),
                            1, pdy, Int32(n), pxg, Int32(k), 1, dw, Int32(k))
            })
            y = nil
            rows.append(row("linear bwd", m, k, n, 2 * flop, backward, backwardDirect))
        }
        return rows
    }

    private func row(_ op: String, _ m: Int, _ k: Int, _ n: Int, _ flop: Double, _ engine: Double,
                     _ direct: Double) -> MatmulRow {
        MatmulRow(op: op, m: m, k: k, n: n, gflop: flop / 1e9, engineMs: engine * 1e3, directMs: direct * 1e3,
                  engineGflops: flop / engine / 1e9, directGflops: flop / direct / 1e9, ratio: direct / engine)
    }
}

// MARK: - Memory copy bound

/// GB/s of a plain copy (bytes read + bytes written per second) on one thread and on the engine's threads.
struct CopyBench {
    let repeats: Int

    func run() -> [CopyRow] {
        var rows: [CopyRow] = []
        for mebibytes in [256, 6] {
            progress("copy \(mebibytes) MiB")
            let count = mebibytes << 20 / 4
            let source = UnsafeMutablePointer<Float>.allocate(capacity: count)
            let destination = UnsafeMutablePointer<Float>.allocate(capacity: count)
            defer { source.deallocate(); destination.deallocate() }
            BenchData.fill(source, count: count, seed: 9)
            destination.initialize(repeating: 0, count: count)
            let bytes = 2.0 * Double(count * 4)
            let single = Timing.measure(repeats: Swift.max(repeats, 5)) {
                destination.update(from: source, count: count)
            }
            rows.append(CopyRow(name: "memcpy", mebibytes: mebibytes, threads: 1, ms: single * 1e3,
                                gbPerSecond: bytes / single / 1e9))
            let threads = Parallel.threadCount
            if threads > 1 {
                let parallel = Timing.measure(repeats: Swift.max(repeats, 5)) {
                    Parallel.forEach(count, minimumChunk: 1 << 16) { r in
                        (destination + r.lowerBound).update(from: source + r.lowerBound, count: r.count)
                    }
                }
                rows.append(CopyRow(name: "memcpy", mebibytes: mebibytes, threads: threads, ms: parallel * 1e3,
                                    gbPerSecond: bytes / parallel / 1e9))
            }
        }
        return rows
    }
}

// MARK: - Fused kernels

/// GB/s of the fused kernels: bytes an ideal implementation must read and write, over the time.
struct FusedBench {
    let repeats: Int
    /// GB/s of the large multi-threaded copy, for the "of copy" column.
    let copyBound: Double

    static let tokens = 2048          // B4 × T512
    static let hidden = 768
    static let vocabulary = 32000
    static let swigluWidth = 2048

    func run() -> [FusedRow] {
        var rows: [FusedRow] = []
        let (n, c, vocab) = (FusedBench.tokens, FusedBench.hidden, FusedBench.vocabulary)
        let f = 4.0   // bytes per float32
        func add(_ op: String, _ shape: String, forwardBytes: Double, backwardBytes: Double,
                 forward: () -> Void, prepare: @escaping () -> Void, forwardBackward: () -> Void) {
            progress("\(op) \(shape)")
            let fwd = Timing.measure(repeats: repeats) { withNoGrad { forward() } }
            let both = Timing.measure(repeats: repeats, prepare: prepare) { forwardBackward() }
            for (pass, bytes, seconds) in [("fwd", forwardBytes, fwd), ("fwd+bwd", forwardBytes + backwardBytes, both)] {
                let gbs = bytes / seconds / 1e9
                rows.append(FusedRow(op: op, pass: pass, shape: shape, megabytes: bytes / 1e6, ms: seconds * 1e3,
                                     gbPerSecond: gbs, fractionOfCopy: copyBound > 0 ? gbs / copyBound : 0))
            }
        }

        // RMSNorm [N, C]: fwd reads x, w and writes y; bwd reads x, dy, w, writes dx and updates dw.
        do {
            let x = BenchData.uniform([n, c], seed: 11, requiresGrad: true)
            let w = BenchData.uniform([c], seed: 12, requiresGrad: true)
            w.grad = Tensor.zeros([c])
            let dy = BenchData.uniform([n, c], seed: 13)
            let nc = Double(n * c), cc = Double(c)
            add("rmsnorm", "[\(n), \(c)]", forwardBytes: f * (2 * nc + cc), backwardBytes: f * (3 * nc + 3 * cc),
                forward: { _ = Tensor.rmsNorm(x, weight: w, epsilon: 1e-5) },
                prepare: { x.grad = nil },
                forwardBackward: { Tensor.rmsNorm(x, weight: w, epsilon: 1e-5).backward(gradient: dy) })
        }
        // LayerNorm [N, C] with bias.
        do {
            let x = BenchData.uniform([n, c], seed: 21, requiresGrad: true)
            let w = BenchData.uniform([c], seed: 22, requiresGrad: true)
            let b = BenchData.uniform([c], seed: 23, requiresGrad: true)
            w.grad = Tensor.zeros([c]); b.grad = Tensor.zeros([c])
            let dy = BenchData.uniform([n, c], seed: 24)
            let nc = Double(n * c), cc = Double(c)
            add("layernorm", "[\(n), \(c)]", forwardBytes: f * (2 * nc + 2 * cc), backwardBytes: f * (3 * nc + 5 * cc),
                forward: { _ = Tensor.layerNorm(x, weight: w, bias: b, epsilon: 1e-5) },
                prepare: { x.grad = nil },
                forwardBackward: { Tensor.layerNorm(x, weight: w, bias: b, epsilon: 1e-5).backward(gradient: dy) })
        }
        // RoPE (rotate-half) on [B4, T512, H12, D64]: reads x and the cos/sin tables, writes y; bwd likewise.
        do {
            let (batch, t, h, d) = (4, 512, 12, 64)
            let x = BenchData.uniform([batch, t, h, d], seed: 31, requiresGrad: true)
            let inverse = (0..<(d / 2)).map { Float(1 / Foundation.pow(10000.0, Double(2 * $0) / Double(d))) }
            let (cosT, sinT) = Tensor.rotaryTables(positions: Tensor.arange(0, t), inverseFrequencies: inverse)
            let dy = BenchData.uniform([batch, t, h, d], seed: 32)
            let bytes = f * (2 * Double(x.count) + 2 * Double(cosT.count))
            add("rope", "[\(batch), \(t), \(h), \(d)]", forwardBytes: bytes, backwardBytes: bytes,
                forward: { _ = Tensor.applyRotary(x, cos: cosT, sin: sinT) },
                prepare: { x.grad = nil },
                forwardBackward: { Tensor.applyRotary(x, cos: cosT, sin: sinT).backward(gradient: dy) })
        }
        // SwiGLU [N, 2048]: fwd reads gate and up, writes out; bwd reads dy, gate, up, writes dgate and dup.
        do {
            let width = FusedBench.swigluWidth
            let gate = BenchData.uniform([n, width], seed: 41, scale: 4, requiresGrad: true)
            let up = BenchData.uniform([n, width], seed: 42, requiresGrad: true)
            let dy = BenchData.uniform([n, width], seed: 43)
            let e = Double(n * width)
            add("swiglu", "[\(n), \(width)]", forwardBytes: f * 3 * e, backwardBytes: f * 5 * e,
                forward: { _ = Tensor.swiglu(gate: gate, up: up) },
                prepare: { gate.grad = nil; up.grad = nil },
                forwardBackward: { Tensor.swiglu(gate: gate, up: up).backward(gradient: dy) })
        }
        // Cross-entropy [N, V]: fwd reads the logits and targets; bwd reads them again and writes dlogits.
        do {
            let logits = BenchData.uniform([n, vocab], seed: 51, scale: 4, requiresGrad: true)
            let targets = BenchData.ids([n], bound: vocab, seed: 52)
            let e = Double(n * vocab), ids = Double(n) * 8
            add("cross_entropy", "[\(n), \(vocab)]", forwardBytes: f * e + ids, backwardBytes: 2 * f * e + ids,
                forward: { _ = Tensor.crossEntropy(logits: logits, targets: targets) },
                prepare: { logits.grad = nil },
                forwardBackward: { Tensor.crossEntropy(logits: logits, targets: targets).backward() })
        }
        // Embedding: ids [4, 512] into a [V, C] table. fwd reads the ids and the picked rows, writes out;
        // bwd reads dy and updates the picked rows of the (kept) table gradient once per distinct id.
        do {
            let ids = BenchData.ids([4, 512], bound: vocab, seed: 61)
            let distinct = Double(Set(ids.ints()).count)
            let w = BenchData.uniform([vocab, c], seed: 62, requiresGrad: true)
            w.grad = Tensor.zeros([vocab, c])
            let dy = BenchData.uniform([4, 512, c], seed: 63)
            let nc = Double(n * c)
            add("embedding", "[4, 512] of [\(vocab), \(c)]", forwardBytes: 2 * f * nc + 8 * Double(n),
                backwardBytes: f * (nc + 2 * distinct * Double(c)) + 8 * Double(n),
                forward: { _ = Tensor.embedding(ids, weight: w) },
                prepare: {},
                forwardBackward: { Tensor.embedding(ids, weight: w).backward(gradient: dy) })
        }
        // Elementwise add [N, C]: reads a and b, writes the sum; the backward passes dy through (no bytes needed).
        do {
            let a = BenchData.uniform([n, c], seed: 71, requiresGrad: true)
            let b = BenchData.uniform([n, c], seed: 72, requiresGrad: true)
            let dy = BenchData.uniform([n, c], seed: 73)
            add("add", "[\(n), \(c)]", forwardBytes: f * 3 * Double(n * c), backwardBytes: 0,
                forward: { _ = a + b },
                prepare: { a.grad = nil; b.grad = nil },
                forwardBackward: { (a + b).backward(gradient: dy) })
        }
        return rows
    }
}

// MARK: - Attention

/// Time and GFLOP/s of causal attention: 4·B·H·T²·D/2 FLOPs forward, 2.5× that backward.
struct AttentionSpeedBench {
    let repeats: Int

    static let shapes: [(b: Int, t: Int, h: Int, d: Int)] = [(1, 2048, 8, 64), (4, 512, 12, 64)]

    func run() -> [AttentionRow] {
        // bfloat16 tiles (mixed_precision: bf16) where the CPU multiplies bfloat16 in hardware.
        let precisions: [(GEMMPrecision, String)] =
            [(.float32, "fp32")] + (MixedPrecision.hasBFloat16Hardware ? [(.bfloat16, "bf16")] : [])
        var rows: [AttentionRow] = []
        for (b, t, h, d) in AttentionSpeedBench.shapes {
            for (precision, name) in precisions {
                progress("attention B\(b) T\(t) H\(h) D\(d) \(name)")
                let q = BenchData.uniform([b, t, h, d], seed: 81, requiresGrad: true)
                let k = BenchData.uniform([b, t, h, d], seed: 82, requiresGrad: true)
                let v = BenchData.uniform([b, t, h, d], seed: 83, requiresGrad: true)
                let dOut = BenchData.uniform([b, t, h, d], seed: 84)
                let forwardFlop = 4.0 * Double(b * h) * Double(t) * Double(t) * Double(d) / 2
                let (forward, both) = MixedPrecision.with(precision) {
                    (Timing.measure(repeats: repeats) {
                        withNoGrad { _ = Tensor.scaledDotProductAttention(query: q, key: k, value: v, causal: true) }
                    }, Timing.measure(repeats: repeats, prepare: { q.grad = nil; k.grad = nil; v.grad = nil }) {
                        Tensor.scaledDotProductAttention(query: q, key: k, value: v, causal: true)
                            .backward(gradient: dOut)
                    })
                }
                let shape = "[\(b), \(t), \(h), \(d)]"
                rows.append(AttentionRow(shape: shape, precision: name, pass: "fwd", gflop: forwardFlop / 1e9,
                                         ms: forward * 1e3, gflops: forwardFlop / forward / 1e9))
                rows.append(AttentionRow(shape: shape, precision: name, pass: "fwd+bwd", gflop: 3.5 * forwardFlop / 1e9,
                                         ms: both * 1e3, gflops: 3.5 * forwardFlop / both / 1e9))
            }
        }
        return rows
    }
}

/// Peak resident memory of one attention forward+backward at B=1, H=8, T=2048, D=64.
enum AttentionMemoryBench {
    static let (b, t, h, d) = (1, 2048, 8, 64)

    /// The peak resident set (VmHWM) in KiB; 0 where it cannot be read.
    static func peakKiB() -> Int { (MemoryUsage.peakResidentBytes() ?? 0) / 1024 }

    /// Measures in this process, which should have done nothing else yet.
    static func measure() -> AttentionMemory {
        // Warm up at a small size with the same tiles, so thread pools and OpenBLAS's buffers are in place.
        do {
            let x = BenchData.uniform([1, 128, h, d], seed: 90, requiresGrad: true)
            Tensor.scaledDotProductAttention(query: x, key: x, value: x, causal: true)
                .backward(gradient: BenchData.uniform([1, 128, h, d], seed: 91))
        }
        let cleared = MemoryUsage.resetPeakResident()   // VmHWM back to the current RSS (Linux ≥ 4.0)
        let baseline = peakKiB()
        do {
            let q = BenchData.uniform([b, t, h, d], seed: 92, requiresGrad: true)
            let k = BenchData.uniform([b, t, h, d], seed: 93, requiresGrad: true)
            let v = BenchData.uniform([b, t, h, d], seed: 94, requiresGrad: true)
            let dOut = BenchData.uniform([b, t, h, d], seed: 95)
            Tensor.scaledDotProductAttention(query: q, key: k, value: v, causal: true).backward(gradient: dOut)
            precondition(q.grad != nil && k.grad != nil && v.grad != nil)
        }
        let peak = peakKiB()
        let mib = 1024.0 * 1024
        let growth = Double(peak - baseline) * 1024 / mib
        let tensor = Double(b * h * t * d * 4) / mib
        let unavoidable = 8 * tensor   // q, k, v, out, dq, dk, dv, dOut
        return AttentionMemory(
            shape: "[\(b), \(t), \(h), \(d)]", baselineHWMKiB: baseline, peakHWMKiB: peak, growthMiB: growth,
            clearRefsWorked: cleared, scoreMatrixMiB: Double(b * h * t * t * 4) / mib,
            unavoidableMiB: unavoidable, extraMiB: growth - unavoidable)
    }

    /// Runs `collie bench ops --only attention-memory --json` as a child process and reads its result.
    static func measureInChild() throws -> AttentionMemory {
        let data = try ChildProcess.output(ChildProcess.collie, ["bench", "ops", "--only", "attention-memory", "--json"])
        guard let memory = try JSONDecoder().decode(BenchReport.self, from: data).attentionMemory else {
            throw ValidationError("the attention-memory child process printed no result")
        }
        return memory
    }
}
