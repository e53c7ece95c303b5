import ArgumentParser
import Collie
import Foundation

extension Bench {
    /// `collie bench generate`: decode speed with the KV cache on a preset-shaped model, beside
    /// `scripts/bench/bench_generate_torch.py` (transformers' generate) on the same shape.
    struct BenchGenerate: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "generate",
            abstract: "Measure greedy decode tokens/s (KV cache) at several batch sizes.",
            discussion: """
                A randomly initialized LLaMA of the preset's shape (vocabulary 32000) continues random prompts of \
                --prompt-length tokens by --new-tokens tokens (no early stop). Decode tokens/s counts the tokens \
                after the first of each row (the first comes from the prefill) over the time since the first: \
                batch × (new − 1) / (t_end − t_first). The median of --repeats runs after one warm-up is reported.
                """)

        @Option(help: "Model shape: tiny or small (as `collie bench train`).") var preset: Train.Preset = .small
        @Option(help: "Comma-separated batch sizes.") var batchSizes = "1,8"
        @Option(help: "Prompt tokens per row.") var promptLength = 16
        @Option(help: "New tokens per row.") var newTokens = 64
        @Option(help: "Weight dtype: float32 or bfloat16.") var dtype: WeightDType = .bfloat16
        @Option(help: "Timed runs per batch size (median reported).") var repeats = 3
        @Flag(help: "Print JSON instead of a table.") var json = false

        struct Result: Codable {
            let batch: Int
            let prefillSeconds: Double
            let decodeTokensPerSecond: Double
            let runs: [Double]
        }

        func run() throws {
            let sizes = try TokenIDList.parse(batchSizes, option: "--batch-sizes")
            guard !sizes.isEmpty, sizes.allSatisfy({ $0 >= 1 }), newTokens >= 2, promptLength >= 1, repeats >= 1 else {
                throw ValidationError("batch sizes, --prompt-length and --repeats must be >= 1 and --new-tokens >= 2")
            }
            let configuration = preset.configuration
            let model = LlamaForCausalLM(configuration, seed: 0)
            let buffer = ParameterBuffer(model.parameters, dtype: dtype.dtype)
            let generator = Generator(model: model)
            var random = RandomGenerator(seed: 1)
            var results: [Result] = []
            let host = HostInfo.current()
            let cpuStart = HostInfo.cpuSeconds()
            if !json {
                print("collie bench generate: \(preset.rawValue) (\(model.parameterCount / 1_000_000)M parameters, "
                      + "\(dtype.rawValue) weights, \(buffer.values.storage.byteCount / 1_000_000) MB), prompt \(promptLength), "
                      + "\(newTokens) new tokens, \(Parallel.threadCount) threads; load \(host.loadAverageBefore)")
            }
            for batch in sizes {
                let prompts = (0..<batch).map { _ in (0..<promptLength).map { _ in Int(random.next() % 31_000) + 3 } }
                var decodeRates: [Double] = [], prefills: [Double] = []
                for run in 0...repeats {
                    let start = Date()
                    var first: Date?
                    _ = try generator.generate(prompts: prompts, parameters: .init(maxNewTokens: newTokens)) { row, _ in
                        if first == nil && row == 0 { first = Date() }
                        return true
                    }
                    let end = Date()
                    guard run > 0, let first else { continue }   // run 0 warms up
                    prefills.append(first.timeIntervalSince(start))
                    decodeRates.append(Double(batch * (newTokens - 1)) / end.timeIntervalSince(first))
                }
                let result = Result(batch: batch, prefillSeconds: Timing.median(prefills),
                                    decodeTokensPerSecond: Timing.median(decodeRates), runs: decodeRates)
                results.append(result)
                if !json {
                    print(String(format: "batch %2d: decode %7.1f tokens/s (runs: %@), prefill %.3f s", batch,
                                 result.decodeTokensPerSecond,
                                 result.runs.map { String(format: "%.1f", $0) }.joined(separator: ", "), result.prefillSeconds))
                }
            }
            let others = HostInfo.othersPercent(since: cpuStart)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                struct Report: Codable { let preset: String; let dtype: String; let results: [Result]; let otherProcessesCPUPercent: Double? }
                print(String(decoding: try encoder.encode(Report(preset: preset.rawValue, dtype: dtype.rawValue, results: results,
                                                                 otherProcessesCPUPercent: others)), as: UTF8.self))
            } else {
                print(String(format: "other processes used %.0f%% of one CPU during the run; load %@", others,
                             HostInfo.loadAverage()))
            }
        }
    }
}
