import ArgumentParser
import Collie
import Foundation

extension Bench {
    /// `collie bench generate`: decode speed with the KV cache on a preset-shaped model (beside
    /// `scripts/bench/bench_generate_torch.py`, transformers' generate on the same shape) or on a model file (beside
    /// llama.cpp's llama-batched-bench on the same GGUF file; `scripts/bench/bench_generate.sh` alternates them).
    struct BenchGenerate: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "generate",
            abstract: "Measure greedy decode tokens/s (KV cache) at several batch sizes.",
            discussion: """
                A randomly initialized LLaMA of the preset's shape (vocabulary 32000), or the model at --model, \
                continues random prompts of --prompt-length tokens by --new-tokens tokens (no early stop). Decode \
                tokens/s counts the tokens after the first of each row (the first comes from the prefill) over the \
                time since the first: batch × (new − 1) / (t_end − t_first). The median of --repeats runs after one \
                warm-up is reported. With --quantized (a GGUF file) or --quantize the linear layers decode straight \
                from their blocks, with float or int8 --activations. --phases also times one decode step's linear \
                layers and head alone, on the same inputs' shapes; the rest of a step is attention, norms, rotary, \
                SwiGLU, the embedding and sampling.
                """)

        @Option(help: "Model shape when no --model is given: tiny or small (as `collie bench train`).")
        var preset: Train.Preset = .small
        @Option(help: "A GGUF file or Hugging Face folder to decode with instead of a random preset model.")
        var model: String?
        @OptionGroup var quantization: QuantizationOptions
        @Option(help: "Activations against quantized weights: automatic, float (exact), int8 (llama.cpp's arithmetic) or bfloat16 (AVX512_BF16).")
        var activations: QuantizedActivations = .automatic
        @Option(help: "Comma-separated batch sizes.") var batchSizes = "1,8"
        @Option(help: "Prompt tokens per row.") var promptLength = 16
        @Option(help: "New tokens per row.") var newTokens = 64
        @Option(help: "Dense weights' dtype (a model's embedding, norms, lm_head, unquantized layers): float32 or bfloat16.")
        var dtype: WeightDType = .bfloat16
        @Option(help: "Timed runs per batch size (median reported).") var repeats = 3
        @Flag(help: "Also time one decode step's linear layers and head alone (LLaMA-shaped models).") var phases = false
        @Flag(help: "Print JSON instead of a table.") var json = false

        struct Result: Codable {
            let batch: Int
            let prefillSeconds: Double
            let decodeTokensPerSecond: Double
            let runs: [Double]
            /// With --phases: one step's parts, in seconds.
            var phases: DecodeStepPhases?
        }

        func validate() throws {
            if model == nil && !quantization.configOverrides.isEmpty {
                throw ValidationError("--quantized and --quantize need --model")
            }
        }

        func run() throws {
            let sizes = try TokenIDList.parse(batchSizes, option: "--batch-sizes")
            guard !sizes.isEmpty, sizes.allSatisfy({ $0 >= 1 }), newTokens >= 2, promptLength >= 1, repeats >= 1 else {
                throw ValidationError("batch sizes, --prompt-length and --repeats must be >= 1 and --new-tokens >= 2")
            }
            let lm = try loadModel()
            let buffer = ParameterBuffer(lm.parameters, dtype: dtype.dtype)
            let weightBytes = DecodeStepPhases.weightBytesPerToken(of: lm)
            let generator = Generator(model: lm)
            var random = RandomGenerator(seed: 1)
            let vocabulary = UInt64(min(lm.configuration.vocabularySize - 3, 31_000))
            var results: [Result] = []
            let host = HostInfo.current()
            let cpuStart = HostInfo.cpuSeconds()
            let name = model ?? preset.rawValue
            if !json {
                print("collie bench generate: \(name) (\(lm.parameterCount / 1_000_000)M dense parameters, "
                      + "\(dtype.rawValue) dense weights, \(buffer.values.storage.byteCount / 1_000_000) MB; "
                      + "\(weightBytes / 1_000_000) MB of weights read per decode step; \(weightFormat)), prompt "
                      + "\(promptLength), \(newTokens) new tokens, \(Parallel.threadCount) threads; load \(host.loadAverageBefore)")
            }
            try Tensor.withQuantizedActivations(activations) {
                for batch in sizes {
                    let prompts = (0..<batch).map { _ in (0..<promptLength).map { _ in Int(random.next() % vocabulary) + 3 } }
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
                    var result = Result(batch: batch, prefillSeconds: Timing.median(prefills),
                                        decodeTokensPerSecond: Timing.median(decodeRates), runs: decodeRates)
                    if phases, let llama = lm as? LlamaForCausalLM {
                        result.phases = DecodeStepPhases(model: llama, batch: batch,
                                                         stepSeconds: Double(batch) / result.decodeTokensPerSecond)
                    }
                    results.append(result)
                    if !json {
                        print(String(format: "batch %2d: decode %7.1f tokens/s (runs: %@), prefill %.3f s", batch,
                                     result.decodeTokensPerSecond,
                                     result.runs.map { String(format: "%.1f", $0) }.joined(separator: ", "), result.prefillSeconds))
                        if let p = result.phases { print("          " + p.summary) }
                    }
                }
            }
            let others = HostInfo.othersPercent(since: cpuStart)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                struct Report: Codable {
                    let preset: String?; let model: String?; let weights: String; let activations: String
                    let dtype: String; let weightBytesPerToken: Int; let threads: Int
                    let results: [Result]; let otherProcessesCPUPercent: Double?
                }
                let report = Report(preset: model == nil ? preset.rawValue : nil, model: model, weights: weightFormat,
                                    activations: activations.rawValue, dtype: dtype.rawValue, weightBytesPerToken: weightBytes,
                                    threads: Parallel.threadCount, results: results, otherProcessesCPUPercent: others)
                print(String(decoding: try encoder.encode(report), as: UTF8.self))
            } else {
                print(String(format: "other processes used %.0f%% of one CPU during the run; load %@", others,
                             HostInfo.loadAverage()))
            }
        }

        /// How the linear layers are kept: "dense", "gguf blocks (float activations)", "q4_k (int8 activations)", ….
        private var weightFormat: String {
            if quantization.quantized { return "GGUF blocks, \(activations.rawValue) activations" }
            if let format = quantization.quantize { return "\(format.rawValue) blocks, \(activations.rawValue) activations" }
            return "dense"
        }

        /// The preset initialized at random, or the model at --model loaded as the flags say.
        private func loadModel() throws -> any CausalLanguageModel {
            guard let model else { return LlamaForCausalLM(preset.configuration, seed: 0) }
            return try PretrainedModel.model(.at(URL(fileURLWithPath: model)),
                                             quantization: quantization.weightQuantization(model: model))
        }
    }
}

extension QuantizedActivations: ExpressibleByArgument {}
