import ArgumentParser
import Foundation

extension Bench {
    /// `collie bench ops`: the engine's matrix products, fused kernels and attention, each beside a
    /// bound measured in the same run (direct `cblas_sgemm`, a large memory copy, one T×T matrix).
    ///
    /// Every figure is the median of `--repeats` timed runs after one untimed warm-up, on inputs
    /// allocated and filled beforehand. OpenBLAS's environment is read and printed, never changed.
    struct Ops: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time matmul, the fused kernels and attention against BLAS and memory bounds.",
            discussion: """
                Groups: matmul (engine Tensor.matmul / Tensor.linear vs cblas_sgemm on the same shapes), \
                gemm (Collie's own packed GEMM per kernel level and its bfloat16 GEMM vs cblas_sgemm on the \
                linear layers of `bench train`'s --preset, forward and backward), \
                fused (GB/s of RMSNorm, LayerNorm, RoPE, SwiGLU, cross-entropy, embedding and add vs a \
                memory copy), attention (time and GFLOP/s of causal flash attention) and \
                attention-memory (peak RSS growth of one attention forward+backward, measured in a \
                fresh child process unless it is the only group).
                """)

        @Option(help: "Timed repeats per measurement; the median is reported (after one warm-up run).")
        var repeats = 5

        @Flag(help: "Print the results as JSON instead of tables.")
        var json = false

        @Option(help: "Also write the results as JSON to this file.")
        var jsonFile: String?

        @Option(help: "Comma-separated groups to run: matmul, gemm, fused, attention, attention-memory (default: all).")
        var only: String?

        @Option(help: "Whose linear layers the gemm group times: tiny (1024 tokens, hidden 256, MLP 688) or small (2048 tokens, hidden 768, MLP 2048); both with vocabulary 32000.")
        var preset: Train.Preset = .small

        static let allGroups = ["attention-memory", "matmul", "gemm", "fused", "attention"]

        var groups: [String] {
            guard let only else { return Ops.allGroups }
            let wanted = only.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            return Ops.allGroups.filter { wanted.contains($0) }
        }

        func validate() throws {
            guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
            if let only {
                for group in only.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) })
                where !Ops.allGroups.contains(group) {
                    throw ValidationError("unknown group '\(group)'; choose from \(Ops.allGroups.joined(separator: ", "))")
                }
            }
        }

        func run() throws {
            let groups = self.groups
            let cpuStart = HostInfo.cpuSeconds()
            var report = BenchReport(date: ISO8601DateFormatter().string(from: Date()), repeats: repeats,
                                     host: HostInfo.current())
            if !json { printHeader(report.host) }

            if groups.contains("attention-memory") {
                // VmHWM cannot be lowered, so the peak is measured in a process that has done nothing
                // else; when other groups run too, that is a child started before them.
                if groups.count == 1 {
                    report.attentionMemory = AttentionMemoryBench.measure()
                } else {
                    progress("attention memory (child process)")
                    report.attentionMemory = try AttentionMemoryBench.measureInChild()
                }
                if !json, let memory = report.attentionMemory { printAttentionMemory(memory) }
            }
            if groups.contains("matmul") {
                report.matmul = MatmulBench(repeats: repeats).run()
                if !json { printMatmul(report.matmul) }
            }
            if groups.contains("gemm") {
                report.gemm = GemmBench(repeats: repeats, preset: preset).run()
                if !json { printGemm(report.gemm, preset: preset) }
            }
            if groups.contains("fused") {
                report.copy = CopyBench(repeats: repeats).run()
                report.fused = FusedBench(repeats: repeats, copyBound: report.copy.filter { $0.mebibytes == 256 }.map(\.gbPerSecond).max() ?? 0).run()
                if !json { printFused(report.copy, report.fused) }
            }
            if groups.contains("attention") {
                report.attention = AttentionSpeedBench(repeats: repeats).run()
                if !json { printAttention(report.attention) }
            }
            report.host.loadAverageAfter = HostInfo.loadAverage()
            report.host.otherProcessesCPUPercent = HostInfo.othersPercent(since: cpuStart)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let encoded = try encoder.encode(report)
            if let jsonFile { try encoded.write(to: URL(fileURLWithPath: jsonFile)) }
            if json {
                print(String(decoding: encoded, as: UTF8.self))
            } else {
                print("\nload average before: \(report.host.loadAverageBefore); after: \(report.host.loadAverageAfter ?? "?");"
                      + " CPU used by other processes during the run: \(fmt(report.host.otherProcessesCPUPercent ?? 0))% of one CPU")
            }
        }
    }
}

// MARK: - Report

/// One matrix product: the engine's time beside `cblas_sgemm`'s on the same shape.
struct MatmulRow: Codable {
    var op: String          // "matmul NN", "linear fwd", …
    var m, k, n: Int
    var gflop: Double       // per call
    var engineMs, directMs: Double
    var engineGflops, directGflops: Double
    var ratio: Double       // engine / direct GFLOP/s
}

/// One memory copy: the bound the fused kernels are held against.
struct CopyRow: Codable {
    var name: String
    var mebibytes: Int
    var threads: Int
    var ms: Double
    var gbPerSecond: Double  // (read + write) bytes / time
}

/// One fused kernel, one pass: bytes it must move and how fast it moved them.
struct FusedRow: Codable {
    var op: String
    var pass: String         // "fwd" or "fwd+bwd"
    var shape: String
    var megabytes: Double    // bytes necessarily read + written, 1e6
    var ms: Double
    var gbPerSecond: Double
    var fractionOfCopy: Double
}

/// One attention shape, one pass: time and GFLOP/s.
struct AttentionRow: Codable {
    var shape: String        // B, T, H, D
    var precision: String    // fp32, or bf16 (GEMM operands in bfloat16)
    var pass: String
    var gflop: Double
    var ms: Double
    var gflops: Double
}

/// Peak resident memory of one attention forward+backward, against what it cannot avoid holding.
struct AttentionMemory: Codable {
    var shape: String
    var baselineHWMKiB: Int
    var peakHWMKiB: Int
    var growthMiB: Double
    var clearRefsWorked: Bool
    var scoreMatrixMiB: Double        // one T×T fp32 matrix per head
    var unavoidableMiB: Double        // q, k, v, out and their gradients
    var extraMiB: Double              // growth − unavoidable
}

/// Everything `collie bench ops` measured, as `--json` prints it.
struct BenchReport: Codable {
    var date: String
    var repeats: Int
    var host: HostInfo
    var attentionMemory: AttentionMemory?
    var matmul: [MatmulRow] = []
    var gemm: [GemmRow] = []
    var copy: [CopyRow] = []
    var fused: [FusedRow] = []
    var attention: [AttentionRow] = []
}

// MARK: - Tables

/// The host lines above the tables.
func printHeader(_ host: HostInfo) {
    print("collie bench ops — \(host.cpu), \(host.onlineProcessors) online processors")
    print("OPENBLAS_CORETYPE=\(host.openblasCoretype ?? "(unset)")\(host.coretypeSetByCollie ? " (set by collie's re-exec; unset by the caller)" : "")  OPENBLAS_NUM_THREADS=\(host.openblasNumThreads ?? "(unset)")"
          + "  OPENBLAS_L2_SIZE=\(host.openblasL2Size ?? "(unset)")"
          + "  OPENBLAS_THREAD_TIMEOUT=\(host.openblasThreadTimeout ?? "(unset)")"
          + (host.threadTimeoutSetByCollie ? " (set by collie's re-exec)" : "") + "  COLLIE_NUM_THREADS=\(host.collieNumThreads ?? "(unset)")")
    print("Parallel.threadCount=\(host.parallelThreadCount)  OpenBLAS: \(host.openblasThreads) threads, core \(host.openblasCore)"
          + " (\(host.openblasConfig))")
    print("load average: \(host.loadAverageBefore)")
}

/// The attention peak-memory table.
func printAttentionMemory(_ m: AttentionMemory) {
    print("\nAttention peak memory, forward+backward, q/k/v \(m.shape) [B, T, H, D], fresh process")
    printTable(["quantity", "MiB"], [
        ["peak RSS growth", fmt(m.growthMiB)],
        ["q, k, v, out and their gradients (8 tensors)", fmt(m.unavoidableMiB)],
        ["growth beyond those", fmt(m.extraMiB)],
        ["one T×T fp32 score matrix per head (H·T²·4)", fmt(m.scoreMatrixMiB)],
    ])
    print("(VmHWM \(m.baselineHWMKiB) → \(m.peakHWMKiB) KiB; peak reset via clear_refs: \(m.clearRefsWorked ? "yes" : "no"))")
}

/// The matrix-product table and its summary line.
func printMatmul(_ rows: [MatmulRow]) {
    print("\nMatmul, float32: engine (Tensor.matmul / Tensor.linear) vs cblas_sgemm directly, same shapes, same run")
    printTable(["op", "M×K×N", "GFLOP", "engine ms", "direct ms", "engine GFLOP/s", "direct GFLOP/s", "engine/direct"],
               rows.map { r in
                   [r.op, "\(r.m)×\(r.k)×\(r.n)", fmt(r.gflop, 2), fmt(r.engineMs, 2), fmt(r.directMs, 2),
                    fmt(r.engineGflops), fmt(r.directGflops), fmt(r.ratio * 100) + "%"]
               })
    let engineTotal = rows.reduce(0) { $0 + $1.engineMs }, directTotal = rows.reduce(0) { $0 + $1.directMs }
    let ratios = rows.map(\.ratio)
    print("engine/direct: total time \(fmt(directTotal / engineTotal * 100))%, min \(fmt((ratios.min() ?? 0) * 100))%,"
          + " median \(fmt(Timing.median(ratios) * 100))%")
}

/// The copy-bound and fused-kernel tables.
func printFused(_ copies: [CopyRow], _ rows: [FusedRow]) {
    print("\nMemory copy bound (GB/s = bytes read + written per second)")
    printTable(["copy", "MiB", "threads", "ms", "GB/s"], copies.map { c in
        [c.name, "\(c.mebibytes)", "\(c.threads)", fmt(c.ms, 2), fmt(c.gbPerSecond)]
    })
    print("\nFused kernels, float32 (GB/s = bytes necessarily read + written / time; % of the best 256 MiB copy)")
    printTable(["op", "pass", "shape", "MB", "ms", "GB/s", "of copy"], rows.map { r in
        [r.op, r.pass, r.shape, fmt(r.megabytes), fmt(r.ms, 3), fmt(r.gbPerSecond), fmt(r.fractionOfCopy * 100) + "%"]
    })
}

/// The attention speed table.
func printAttention(_ rows: [AttentionRow]) {
    print("\nCausal attention, [B, T, H, D] (FLOPs: 4·B·H·T²·D/2 forward, 3.5× that forward+backward; bf16: the tiles'"
          + " products on bfloat16 operands, as mixed_precision: bf16)")
    printTable(["shape", "precision", "pass", "GFLOP", "ms", "GFLOP/s"], rows.map { r in
        [r.shape, r.precision, r.pass, fmt(r.gflop, 2), fmt(r.ms, 2), fmt(r.gflops)]
    })
}
