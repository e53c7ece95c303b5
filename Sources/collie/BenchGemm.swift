import CBLAS
import CCollieKernels
import Collie
import Foundation

// `collie bench ops --only gemm`: Collie's own packed GEMM at each kernel level this CPU has, and its bfloat16 GEMM,
// against OpenBLAS's cblas_sgemm on the linear layers of a `bench train` preset (small: 2048 tokens, hidden 768, MLP
// 2048; tiny: 1024 tokens, hidden 256, MLP 688; vocabulary 32000), forward and both backward products.

/// One product shape: GFLOP/s of OpenBLAS and of each own kernel, measured round-robin in the same run.
struct GemmRow: Codable {
    var op: String            // "fwd NT", "dX NN", "dW TN"
    var m, k, n: Int
    var gflop: Double         // per call
    var openblasGflops: Double
    var ownGflops: [String: Double]   // "L1 f32" (AVX2), "L2 f32" (AVX-512), "L4 bf16" (AVX512_BF16), "L5 bf16" (AMX)
}

/// GFLOP/s of `collie_sgemm` per kernel level and of `collie_gemm_bf16` beside `cblas_sgemm`.
struct GemmBench {
    let repeats: Int
    let preset: Bench.Train.Preset

    /// (M, K, N) of each distinct linear layer's forward: tokens × in × out (attention's projections, the MLP's up and
    /// down, the language-model head).
    var layers: [(m: Int, k: Int, n: Int)] {
        let c = preset.configuration, tokens = preset.batch.size * preset.batch.length
        return [(tokens, c.hiddenSize, c.hiddenSize), (tokens, c.hiddenSize, c.intermediateSize),
                (tokens, c.intermediateSize, c.hiddenSize), (tokens, c.hiddenSize, c.vocabularySize)]
    }

    /// The own kernels to time: float32 at levels 1 and 2 and bfloat16 on AVX512_BF16 (level 4; its pair kernel even
    /// where bf16 products would choose the float32 one), AMX (level 5) and the AVX-512F float32 kernel on rounded
    /// operands (level 2), those the CPU has — or, without bfloat16 hardware, bfloat16 on the float32 microkernel of
    /// the CPU's level.
    static func variants() -> [(name: String, level: Int32, precision: GEMMPrecision)] {
        let top = collie_kernel_level()
        var variants: [(String, Int32, GEMMPrecision)] = []
        for level: Int32 in [1, 2] where level <= top { variants.append(("L\(level) f32", level, .float32)) }
        if top >= 4 {
            for level: Int32 in [4, 5] where level <= top { variants.append(("L\(level) bf16", level, .bfloat16)) }
            variants.append(("L2 bf16", 2, .bfloat16))
        } else {
            variants.append(("L\(collie_gemm_kernel_level(1)) bf16", top, .bfloat16))
        }
        return variants
    }

    func run() -> [GemmRow] {
        _ = collie_gemm_set_bf16_pairs(1)
        defer {
            collie_kernel_limit_level(COLLIE_KERNEL_LEVEL_MAX)
            _ = collie_gemm_set_bf16_pairs(-1)
        }
        let variants = GemmBench.variants()
        var rows: [GemmRow] = []
        for layer in layers {
            let (tokens, input, output) = layer
            let x = BenchData.uniform([tokens, input], seed: 1), w = BenchData.uniform([output, input], seed: 2)
            let dy = BenchData.uniform([tokens, output], seed: 3)
            let c = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(tokens * output, output * input, tokens * input))
            c.initialize(repeating: 0, count: Swift.max(tokens * output, output * input, tokens * input))
            defer { c.deallocate() }
            let px = UnsafePointer(x.pointer(as: Float.self)), pw = UnsafePointer(w.pointer(as: Float.self))
            let pdy = UnsafePointer(dy.pointer(as: Float.self))
            // (name, transA, transB, M, N, K, A, lda, B, ldb): Y = X·Wᵀ, dX = dY·W, dW = dYᵀ·X.
            let products: [(String, Bool, Bool, Int, Int, Int, UnsafePointer<Float>, Int, UnsafePointer<Float>, Int)] = [
                ("fwd NT", false, true, tokens, output, input, px, input, pw, input),
                ("dX NN", false, false, tokens, input, output, pdy, output, pw, input),
                ("dW TN", true, false, output, input, tokens, pdy, output, px, input),
            ]
            for (name, transA, transB, m, n, k, a, lda, b, ldb) in products {
                progress("gemm \(name) \(m)×\(k)×\(n)")
                var bodies: [() -> Void] = [{
                    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                                Int32(m), Int32(n), Int32(k), 1, a, Int32(lda), b, Int32(ldb), 0, c, Int32(n))
                }]
                for variant in variants {
                    bodies.append {
                        collie_kernel_limit_level(variant.level)
                        Float.packedGEMM(precision: variant.precision, transA: transA, transB: transB, m: m, n: n, k: k,
                                         alpha: 1, a: a, lda: lda, b: b, ldb: ldb, beta: 0, c: c, ldc: n)
                    }
                }
                let seconds = Timing.measureRoundRobin(repeats: repeats, warmEach: true, bodies)
                let flop = 2.0 * Double(m) * Double(n) * Double(k)
                var own: [String: Double] = [:]
                for (variant, time) in zip(variants, seconds.dropFirst()) { own[variant.name] = flop / time / 1e9 }
                rows.append(GemmRow(op: name, m: m, k: k, n: n, gflop: flop / 1e9, openblasGflops: flop / seconds[0] / 1e9,
                                    ownGflops: own))
            }
        }
        return rows
    }
}

/// The own-GEMM table: GFLOP/s per kernel and its ratio to OpenBLAS.
func printGemm(_ rows: [GemmRow], preset: Bench.Train.Preset) {
    let names = GemmBench.variants().map(\.name)
    print("\nOwn packed GEMM vs cblas_sgemm, \(preset.rawValue) preset's linear layers (GFLOP/s; ×: own / OpenBLAS), same run")
    printTable(["op", "M×K×N", "GFLOP", "OpenBLAS"] + names.flatMap { [$0, "×"] }, rows.map { r in
        [r.op, "\(r.m)×\(r.k)×\(r.n)", fmt(r.gflop, 2), fmt(r.openblasGflops)]
            + names.flatMap { name in
                let g = r.ownGflops[name] ?? 0
                return [fmt(g), fmt(g / r.openblasGflops, 2)]
            }
    })
}
