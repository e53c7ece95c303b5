import ArgumentParser
import Collie
import Foundation

extension Bench {
    /// `collie bench memory`: peak memory and speed of fine-tuning a reference LLaMA with AdamW,
    /// LOMO, AdaLomo (and LoRA), each with and without activation checkpointing, one process per
    /// configuration so that each peak RSS is its own; QLoRA is LoRA with `--quantize TYPE` (the preset's linear
    /// layers quantized) or on `--model X.gguf --quantized` (a GGUF file's blocks); `--torch` runs PyTorch + transformers (AdamW)
    /// and PyTorch + peft (LoRA) on the same configuration in the same run
    /// (scripts/bench/bench_memory_torch.py). Beside each measurement: the theoretical bytes of weights,
    /// gradients, optimizer state and activations (the engine's live tensors after the forward pass).
    struct Memory: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Peak memory and tokens/s of full-parameter and LoRA fine-tuning, beside PyTorch.")

        enum Method: String, ExpressibleByArgument, CaseIterable, Codable {
            /// Full-parameter AdamW, LOMO, AdaLomo; LoRA r 8, α 16 on every projection with AdamW on the adapter.
            case adamw, lomo, adalomo, lora
        }

        enum Preset: String, ExpressibleByArgument, CaseIterable {
            /// Bench train's tiny and small (vocab 32000; batch 4 × 256 and 4 × 512).
            case tiny, small
            /// TinyLlama-1.1B's shape: hidden 2048, 22 layers, 32 heads (4 KV), intermediate 5632; batch 1 × 256.
            case oneB = "1b"
            /// LLaMA-2-7B's shape (`ModelPreset.sevenB`): hidden 4096, 32 layers, 32 heads, intermediate 11008; batch 1 × 512.
            case sevenB = "7b"

            var configuration: LlamaConfiguration {
                switch self {
                case .tiny: Train.Preset.tiny.configuration
                case .small: Train.Preset.small.configuration
                case .oneB:
                    LlamaConfiguration(hiddenSize: 2048, intermediateSize: 5632, hiddenLayers: 22, attentionHeads: 32,
                                       keyValueHeads: 4, vocabularySize: 32000, maxPositionEmbeddings: 2048)
                case .sevenB: ModelPreset.sevenB.configuration(vocabularySize: 32000)
                }
            }

            var batch: (size: Int, length: Int) {
                switch self {
                case .tiny: (4, 256)
                case .small: (4, 512)
                case .oneB: (1, 256)
                case .sevenB: (1, 512)
                }
            }
        }

        @Option(help: "Reference configuration: tiny, small, 1b or 7b.") var preset: Preset = .small
        @Option(parsing: .upToNextOption, help: "Methods to run (default: all).") var methods: [Method] = Method.allCases
        @Option(help: "Parameter dtype: float32 or bfloat16.") var dtype: String = "float32"
        @Option(help: "Timed steps (after one warm-up step).") var steps = 3
        @Option(help: "Checkpointing: both, on or off.") var checkpointing: String = "both"
        @Flag(help: "Also run PyTorch + transformers / peft (python3 scripts/bench/bench_memory_torch.py).") var torch = false
        @Option(help: ArgumentHelp("With --torch: seconds each PyTorch run's training steps may take; one that has not "
                                   + "finished by then is reported with the steps it finished and a lower bound on its "
                                   + "unfinished step.", valueName: "seconds"))
        var torchTimeout: Int?
        @Option(help: "QLoRA: quantize the linear layers to q8_0, q4_0, q4_1 or q4_k before LoRA trains (lora only).")
        var quantize: BlockFormat?
        @Option(name: .customLong("model"), help: "A .gguf file or Hugging Face folder instead of a preset (its shape, the preset's batch).")
        var modelPath: String?
        @Flag(help: "QLoRA on --model's GGUF blocks as stored (lora only).") var quantized = false
        @Option(help: "Tokens per sequence instead of the preset's.") var length: Int?
        @Option(help: "Matrix products: no (float32) or bf16 (bfloat16 operands, float32 accumulation).")
        var mixedPrecision: CollieConfig.MixedPrecisionMode = .no
        @Option(help: .hidden) var single: Method?
        @Flag(help: .hidden) var checkpointed = false

        func validate() throws {
            if let torchTimeout, torchTimeout <= 0 { throw ValidationError("--torch-timeout must be a positive number of seconds") }
            if quantize != nil || quantized, (single.map { [$0] } ?? methods).contains(where: { $0 != .lora }) {
                throw ValidationError("--quantize / --quantized freeze the base: only --methods lora (QLoRA) trains on it")
            }
            if quantize != nil, quantized { throw ValidationError("give --quantize or --quantized, not both") }
            if quantized, modelPath == nil { throw ValidationError("--quantized keeps a --model .gguf file's blocks") }
            if let quantize, !quantize.isQuantizable { throw ValidationError("--quantize: no quantizer for \(quantize.rawValue)") }
        }

        func run() throws {
            if let single { return try measure(single, checkpointing: checkpointed) }
            let modes: [Bool] = switch checkpointing { case "on": [true]; case "off": [false]; default: [false, true] }
            var rows: [Result] = []
            for method in methods {
                for mode in modes { rows.append(try child(method, checkpointing: mode)) }
            }
            var torchRows: [[String: Any]] = []
            if torch {
                // The same methods as Collie's (LOMO and AdaLomo through lomo-optim, LoRA through peft), and PyTorch +
                // transformers AdamW as the baseline of the ratios — except at 7b, where AdamW's 16 bytes per
                // parameter (108 GB) fit no machine of this kind.
                let baseline = preset == .sevenB ? [] : ["adamw"]
                for method in baseline + methods.map(\.rawValue).filter({ !baseline.contains($0) }) {
                    for mode in modes {
                        // A PyTorch run that fails (out of memory, a crash) is reported beside Collie's, not instead.
                        do {
                            torchRows.append(try torchChild(method, checkpointing: mode))
                        } catch {
                            let reason = "\(error)".split(separator: "\n").first.map(String.init) ?? "failed"
                            torchRows.append(["name": "PyTorch \(method)", "method": method, "checkpointing": mode,
                                              "error": reason])
                        }
                    }
                }
            }
            report(rows, torchRows)
        }

        // MARK: - One configuration (a child process)

        struct Result: Codable {
            var method: Method
            /// The base's blocks: "q4_0" (quantized at load), "gguf" (a file's blocks), nil (float).
            var quantization: String?
            var checkpointing: Bool
            var dtype: String
            var parameters: Int
            var tokensPerSecond: Double
            var peakRSS: Int
            var weightBytes: Int
            var gradientBytes: Int
            var stateBytes: Int
            var activationBytes: Int
            var peakLiveBytes: Int
            var losses: [Double]
        }

        private func measure(_ method: Method, checkpointing: Bool) throws {
            let b = preset.batch.size, t = length ?? preset.batch.length
            let weightType: DType = dtype == "bfloat16" ? .bfloat16 : .float32
            let model: any CausalLanguageModel
            if let modelPath {
                model = try PretrainedModel.model(.at(URL(fileURLWithPath: modelPath)),
                                                  quantization: quantized ? .keepBlocks : quantize.map(WeightQuantization.quantize))
            } else {
                // Drawn straight into the weights' dtype (a 7B model never exists in float32).
                model = LlamaForCausalLM(preset.configuration, seed: 0, dtype: weightType)
                if let quantize { try model.quantizeLinearLayers(as: quantize) }
            }
            let c = model.configuration
            model.activationCheckpointing = checkpointing
            if method == .lora {
                try model.addAdapter(.lora(LoRAConfiguration(rank: 8, alpha: 16)))
                model.setAdapterTraining(true)
            }
            let trainable = method == .lora ? model.trainableParameters.map(\.tensor) : model.parameters
            let frozen = method == .lora ? ParameterBuffer(model.parameters, dtype: weightType) : nil
            let buffer = ParameterBuffer(trainable, dtype: method == .lora ? .float32 : weightType)
            StoragePool.shared.releaseCachedMemory()          // the float32 copies made at initialization
            let optimizer: Optimizer
            switch method {
            case .adamw, .lora:
                buffer.attachGradients()
                optimizer = AdamW(parameters: trainable, learningRate: 1e-4)
            case .lomo:
                optimizer = LOMO(parameters: model.parameters, learningRate: 1e-3)
            case .adalomo:
                optimizer = AdaLomo(parameters: model.parameters, learningRate: 1e-3)
            }
            optimizer.attachToBackward()
            if optimizer.updatesDuringBackward {   // as the Trainer does
                StoragePool.shared.limitForMemorySaving(StoragePool.memorySavingLimit(parameterCounts: trainable.map(\.count)))
            }
            var generator = RandomGenerator(seed: 1)
            let ids = Tensor(ints: (0..<(b * t)).map { _ in Int(generator.next() % UInt64(c.vocabularySize)) }, shape: [b, t])
            MemoryUsage.resetPeakResident()

            var times: [Double] = [], losses: [Double] = []
            var activationBytes = 0
            StoragePool.shared.resetPeakLiveBytes()
            for step in 0...steps {
                let start = Timing.now()
                let before = StoragePool.shared.liveBytes
                let loss = Parallel.withTrainingWorkers {   // one scope per step, as `collie train` runs its steps
                    let loss = MixedPrecision.with(mixedPrecision.gemmPrecision) {
                        let loss = model.loss(ids: ids, labels: ids)
                        if step == 0 { activationBytes = StoragePool.shared.liveBytes - before }
                        loss.backward()
                        return loss
                    }
                    optimizer.step()
                    buffer.zeroGradients()
                    return loss
                }
                losses.append(Double(loss.item))
                if step > 0 { times.append(Timing.seconds(since: start)) }
            }
            let median = times.sorted()[times.count / 2]
            let stateBytes = optimizer.state().tensors.values.reduce(0) { $0 + $1.count * $1.dtype.size }
            // Activation memory at its peak: what the engine held beyond weights, gradients and state (saved
            // activations plus backward's transients: the logits' gradient, a recomputed layer).
            let peakLive = StoragePool.shared.peakLiveBytes
            let largest = model.parameters.map(\.count).max() ?? 0
            let blocks = model.namedLinearLayers.compactMap(\.layer.quantizedWeight)
                + (model.embedTokens.quantizedWeight.map { [$0] } ?? [])
            let blockBytes = blocks.reduce(0) { $0 + $1.byteCount }
            let weightBytes = (frozen.map { $0.count * $0.dtype.size } ?? 0) + buffer.count * buffer.dtype.size + blockBytes
            let result = Result(method: method, quantization: quantized ? "gguf" : quantize?.rawValue, checkpointing: checkpointing, dtype: dtype,
                                parameters: model.parameterCount + blocks.reduce(0) { $0 + $1.rows * $1.columns },
                                tokensPerSecond: Double(b * t) / median, peakRSS: MemoryUsage.peakResidentBytes() ?? 0,
                                weightBytes: weightBytes,
                                gradientBytes: optimizer.updatesDuringBackward ? largest * 4 : buffer.count * 4,
                                stateBytes: stateBytes, activationBytes: activationBytes,
                                peakLiveBytes: peakLive, losses: losses)
            let data = try JSONEncoder().encode(result)
            print(String(decoding: data, as: UTF8.self))
        }

        // MARK: - Running children

        private func child(_ method: Method, checkpointing: Bool) throws -> Result {
            var arguments = ["bench", "memory", "--single", method.rawValue, "--preset", preset.rawValue,
                             "--dtype", dtype, "--steps", String(steps)]
            if checkpointing { arguments.append("--checkpointed") }
            if let quantize { arguments += ["--quantize", quantize.rawValue] }
            if let modelPath { arguments += ["--model", modelPath] }
            if quantized { arguments.append("--quantized") }
            if let length { arguments += ["--length", String(length)] }
            arguments += ["--mixed-precision", mixedPrecision.rawValue]
            let output = String(decoding: try ChildProcess.output(ChildProcess.collie, arguments), as: UTF8.self)
            guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("{") }) else {
                throw ValidationError("bench memory \(method.rawValue): the child printed no result:\n\(output)")
            }
            return try JSONDecoder().decode(Result.self, from: Data(line.utf8))
        }

        private func torchChild(_ method: String, checkpointing: Bool) throws -> [String: Any] {
            let script = "scripts/bench/bench_memory_torch.py"
            guard FileManager.default.fileExists(atPath: script) else {
                throw ValidationError("--torch needs \(script) (run from the repository root)")
            }
            return try ChildProcess.lastJSONObject(ChildProcess.output("/usr/bin/env", [
                "python3", script, "--preset", preset.rawValue, "--method", method, "--steps", String(steps), "--dtype", dtype,
            ] + (checkpointing ? ["--checkpointing"] : []) + (length.map { ["--length", String($0)] } ?? [])
              + (torchTimeout.map { ["--timeout", String($0)] } ?? [])), from: script)
        }

        // MARK: - Report

        private func report(_ rows: [Result], _ torchRows: [[String: Any]]) {
            let b = preset.batch.size, t = length ?? preset.batch.length
            let shape = rows.first.map { "\($0.parameters.formatted()) parameters" } ?? "?"
            func gb(_ bytes: Int) -> String { String(format: "%.3f", Double(bytes) / 1e9) }
            print("collie bench memory \(modelPath ?? "--preset " + preset.rawValue): \(shape), batch \(b) × \(t), \(dtype) weights"
                  + (quantize.map { ", linear layers \($0.rawValue)" } ?? (quantized ? ", the GGUF file's blocks" : "")) + ", "
                  + "\(Parallel.threadCount) threads; GB = 10⁹ bytes")
            print("| run | checkpointing | tokens/s | s/step | peak RSS | weights W | gradients G | optimizer state S | activations saved by forward | activations at peak A | W+G+S+A | RSS / (W+G+S+A) |")
            print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            for r in rows {
                let peakActivations = max(r.peakLiveBytes - r.weightBytes - r.gradientBytes - r.stateBytes, r.activationBytes)
                let sum = r.weightBytes + r.gradientBytes + r.stateBytes + peakActivations
                let name = r.quantization.map { "Q\(r.method.rawValue) (\($0))" } ?? r.method.rawValue
                print("| Collie \(name) | \(r.checkpointing ? "on" : "off") | \(String(format: "%.1f", r.tokensPerSecond)) | "
                      + "\(String(format: "%.1f", Double(b * t) / r.tokensPerSecond)) | "
                      + "\(gb(r.peakRSS)) | \(gb(r.weightBytes)) | \(gb(r.gradientBytes)) | \(gb(r.stateBytes)) | "
                      + "\(gb(r.activationBytes)) | \(gb(peakActivations)) | \(gb(sum)) | "
                      + "\(String(format: "%.2f", Double(r.peakRSS) / Double(sum))) |")
            }
            for row in torchRows {
                let name = row["name"] as? String ?? "PyTorch"
                let tps = row["tokens_per_second"] as? Double ?? 0, peak = row["peak_rss_bytes"] as? Int ?? 0
                let checkpointing = row["checkpointing"] as? Bool == true ? "on" : "off"
                if let error = row["error"] as? String {
                    print("| \(name) | \(checkpointing) | failed: \(error) | | | | | | | | | |")
                    continue
                }
                if row["finished"] as? Bool == false {
                    // Stopped by --torch-timeout: its s/step is at least the unfinished step's time so far.
                    let atLeast = row["unfinished_step_seconds_at_least"] as? Double ?? 0
                    let finished = row["steps_finished"] as? Int ?? 0, planned = row["steps_planned"] as? Int ?? 0
                    print("| \(name) | \(checkpointing) | < \(String(format: "%.1f", Double(b * t) / max(atLeast, 1e-9))) | "
                          + "> \(String(format: "%.1f", atLeast)) (stopped at the \(torchTimeout ?? 0) s limit: \(finished) of "
                          + "\(planned) steps finished) | ≥ \(gb(peak)) | | | | | | | |")
                    continue
                }
                print("| \(name) | \(checkpointing) | \(String(format: "%.1f", tps)) | "
                      + "\(String(format: "%.1f", Double(b * t) / tps)) | \(gb(peak)) | | | | | | | |")
            }
            for r in rows {
                print("losses, Collie \(r.method.rawValue) (checkpointing \(r.checkpointing ? "on" : "off")): "
                      + r.losses.map { String(format: "%.4f", $0) }.joined(separator: ", "))
            }
            for row in torchRows where row["error"] == nil {
                let losses = (row["losses"] as? [Double] ?? []).map { String(format: "%.4f", $0) }.joined(separator: ", ")
                print("losses, \(row["name"] as? String ?? "PyTorch") (checkpointing \(row["checkpointing"] as? Bool == true ? "on" : "off")): \(losses)")
            }
            let adamW = torchRows.first { ($0["method"] as? String) == "adamw" && $0["checkpointing"] as? Bool == false }
            if let adamW, let torchAdamW = adamW["peak_rss_bytes"] as? Int {
                // A run stopped by --torch-timeout had not reached its peak: the ratio is at most this.
                let bound = adamW["finished"] as? Bool == false ? "≤ " : ""
                for r in rows where r.method != .adamw {
                    print("\(r.method.rawValue) (checkpointing \(r.checkpointing ? "on" : "off")): peak RSS \(bound)"
                          + String(format: "%.2f× PyTorch + AdamW", Double(r.peakRSS) / Double(torchAdamW)))
                }
            }
        }
    }
}
