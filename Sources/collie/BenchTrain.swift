import ArgumentParser
import CCollieKernels
import Collie
import Foundation

extension Bench {
    /// `collie bench train`: full training steps (forward, backward, AdamW) of a reference LLaMA
    /// configuration on random tokens, reporting tokens/s, GFLOP/s and peak memory.
    ///
    /// `scripts/bench/bench_train_torch.py` runs the same configurations in PyTorch + transformers; `--torch` alternates
    /// the two (BenchTrainTorch.swift).
    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time training steps of a reference LLaMA configuration (fp32 or bf16 mixed, AdamW): MFU, profile.")

        /// The reference configurations (vocab 32000).
        enum Preset: String, ExpressibleByArgument, CaseIterable {
            /// hidden 256, 4 layers, 4 heads, intermediate 688, batch 4 × 256.
            case tiny
            /// hidden 768, 12 layers, 12 heads, intermediate 2048, batch 4 × 512.
            case small

            var configuration: LlamaConfiguration {
                switch self {
                case .tiny:
                    LlamaConfiguration(hiddenSize: 256, intermediateSize: 688, hiddenLayers: 4, attentionHeads: 4,
                                       keyValueHeads: 4, vocabularySize: 32000, maxPositionEmbeddings: 2048)
                case .small:
                    LlamaConfiguration(hiddenSize: 768, intermediateSize: 2048, hiddenLayers: 12, attentionHeads: 12,
                                       keyValueHeads: 12, vocabularySize: 32000, maxPositionEmbeddings: 2048)
                }
            }

            var batch: (size: Int, length: Int) { self == .tiny ? (4, 256) : (4, 512) }
        }

        @Option(help: "Reference configuration: tiny or small.") var preset: Preset = .tiny
        @Option(help: "Timed steps (after one warm-up step).") var steps = 5
        @Option(help: "Tokens per sequence instead of the preset's (1…2048).") var length: Int?
        @Option(help: "bf16: matrix products with bfloat16 operands and float32 accumulation (mixed_precision: bf16); no: float32.")
        var mixedPrecision: CollieConfig.MixedPrecisionMode = .no
        @Flag(help: "Print one JSON object instead of text.") var json = false
        @Flag(help: "Break the timed steps' time down by op (forward, backward), GEMM, optimizer and hooks.")
        var profile = false
        @Flag(help: "Measure the machine's peak again instead of reading it from the cache.")
        var remeasurePeak = false
        @Flag(help: "Alternate with PyTorch + transformers (python3 scripts/bench/bench_train_torch.py), each side in a fresh process, and print the ratios.")
        var torch = false
        @Option(help: "Rounds of Collie then PyTorch with --torch.") var rounds = 2

        func validate() throws {
            if let length, !(1...preset.configuration.maxPositionEmbeddings).contains(length) {
                throw ValidationError("--length must be 1…\(preset.configuration.maxPositionEmbeddings), got \(length)")
            }
            if steps < 1 { throw ValidationError("--steps must be at least 1, got \(steps)") }
            if !(1...100).contains(rounds) { throw ValidationError("--rounds must be 1…100, got \(rounds)") }
            if torch && profile { throw ValidationError("--profile is for one Collie run: leave out --torch") }
        }

        func run() throws {
            if torch { return try runAlternated() }
            let c = preset.configuration
            let b = preset.batch.size, t = length ?? preset.batch.length
            let model = LlamaForCausalLM(c, seed: 0)
            let buffer = ParameterBuffer(model.parameters)
            buffer.attachGradients()
            let optimizer = AdamW(parameters: model.parameters, learningRate: 1e-4)
            var generator = RandomGenerator(seed: 1)
            let ids = Tensor(ints: (0..<(b * t)).map { _ in Int(generator.next() % UInt64(c.vocabularySize)) }, shape: [b, t])

            // The peak first, while nothing of this run's own is in flight.
            let precision = mixedPrecision.gemmPrecision
            let peak = peakKind.flatMap { MachinePeak.gflops($0, threads: Parallel.threadCount, remeasure: remeasurePeak) }

            var times: [Double] = []
            var peakSamples: [Double] = []   // the peak measured again after each timed step (PeakBeside)
            var optimizerSeconds = 0.0
            var losses: [Float] = []
            let opProfile = OpProfile()
            for step in 0...steps {
                if step == 1 { opProfile.reset() }
                let start = Timing.now()
                let forwardBackward = { () -> Tensor in
                    let loss = model.loss(ids: ids, labels: ids)
                    loss.backward()
                    return loss
                }
                let loss = Parallel.withTrainingWorkers {   // one scope per step, as `collie train` runs its steps
                    buffer.zeroGradients()
                    let loss = MixedPrecision.with(precision) {
                        profile ? opProfile.withProfiling(forwardBackward) : forwardBackward()
                    }
                    let optimizerStart = Timing.now()
                    optimizer.step()
                    if step > 0 { optimizerSeconds += Timing.seconds(since: optimizerStart) }
                    return loss
                }
                losses.append(loss.item)
                if step > 0 {
                    times.append(Timing.seconds(since: start))
                    if let sample = peakKind?.measure(threads: Parallel.threadCount, seconds: PeakBeside.sampleSeconds) {
                        peakSamples.append(sample)
                    }
                }
            }
            let median = times.sorted()[times.count / 2]
            let tokens = Double(b * t)
            // Matrix-product FLOPs: 6 per parameter of every linear layer (lm_head included) per
            // token, plus causal attention's 6·L·T·d (half of 12·L·T·d).
            let linearParameters = Double(model.parameterCount - c.vocabularySize * c.hiddenSize * (c.tieWordEmbeddings ? 0 : 1))
                - Double(c.hiddenLayers * 2 * c.hiddenSize + c.hiddenSize)   // norms
            let flopsPerToken = 6 * linearParameters + 6 * Double(c.hiddenLayers * t * c.hiddenSize)
            let gflops = flopsPerToken * tokens / median / 1e9
            let peakRSS = MemoryUsage.peakResidentBytes() ?? 0
            let blas = environment("OPENBLAS_CORETYPE")
            let beside = PeakBeside(samples: peakSamples)
            let breakdown = profile
                ? StepBreakdown(opProfile, steps: times.count, stepSeconds: times.reduce(0, +) / Double(times.count),
                                optimizerSeconds: optimizerSeconds / Double(times.count))
                : nil
            if json {
                var object: [String: Any] = [
                    "preset": preset.rawValue, "parameters": model.parameterCount, "batch": b, "sequence": t,
                    "step_seconds_median": median, "tokens_per_second": tokens / median, "gflops": gflops,
                    "peak_rss_bytes": peakRSS, "losses": losses.map(Double.init), "openblas_coretype": blas,
                    "threads": Parallel.threadCount, "cpu": HostInfo.cpuinfo("model name") ?? "?",
                    "mixed_precision": mixedPrecision.rawValue, "float32_gemm": Float32GEMM.current.rawValue,
                    "kernel_level": Int(collie_kernel_level()),
                ]
                if let peak, let peakKind {
                    object["peak_instruction"] = peakKind.rawValue
                    object["peak_gflops"] = peak.gflops
                    object["mfu"] = gflops / peak.gflops
                }
                if let beside {
                    object["peak_gflops_beside_steps"] = beside.samples
                    object["mfu_beside_steps"] = gflops / beside.median
                }
                if let breakdown { object["profile"] = breakdown.jsonObject }
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print("collie bench train --preset \(preset.rawValue): \(model.parameterCount.formatted()) parameters, "
                      + "batch \(b) × \(t), AdamW fp32, GEMM operands \(precision == .bfloat16 ? "bf16" : "fp32 on \(Float32GEMM.current.rawValue)"), \(Parallel.threadCount) threads, kernel level \(collie_kernel_level()), OPENBLAS_CORETYPE=\(blas)")
                print(String(format: "median step %.3f s | %.0f tokens/s | %.1f GFLOP/s | peak RSS %.2f GB | loss %.4f → %.4f",
                             median, tokens / median, gflops, Double(peakRSS) / 1e9, losses.first!, losses.last!))
                if let peak, let peakKind {
                    print(String(format: "MFU %.1f%% of the measured %@ peak %.1f GFLOP/s (%@, %d threads, %@)",
                                 100 * gflops / peak.gflops, peakKind.rawValue, peak.gflops,
                                 HostInfo.cpuinfo("model name") ?? "?", Parallel.threadCount,
                                 peak.cached ? "cached in \(MachinePeak.cacheFile.path)" : "measured now"))
                } else {
                    print("MFU: no peak measured on this CPU (no AVX2/AVX-512)")
                }
                if let beside, let peak { print(beside.line(gflops: gflops, cachedPeak: peak.gflops)) }
                if let breakdown { print(breakdown.table) }
            }
        }

        /// The instruction MFU is measured against: bf16's (AMX, else AVX512_BF16) for bf16 products where the CPU has
        /// one, else the float32 FMA; nil without a vector FMA.
        var peakKind: ArithmeticPeak? {
            mixedPrecision.gemmPrecision == .bfloat16 ? ArithmeticPeak.bfloat16 ?? ArithmeticPeak.float32 : ArithmeticPeak.float32
        }

        private func environment(_ name: String) -> String {
            ProcessInfo.processInfo.environment[name] ?? "unset"
        }
    }
}
extension CollieConfig.MixedPrecisionMode: ExpressibleByArgument {}
