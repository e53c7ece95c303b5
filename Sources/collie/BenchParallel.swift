import ArgumentParser
import Collie
import CollieMPI
import Foundation

extension Bench {
    /// `collie bench parallel`: step time and per-rank peak memory of the same training (AdamW, a global batch split
    /// into micro-batches) on each dp × tp × pp layout. Each layout runs under `mpirun` (this machine's cores shared
    /// out, one BLAS and Collie thread per core and process), every rank measuring itself; the table shows the
    /// slowest rank's step time and the largest and smallest rank's peak memory and model state (parameters +
    /// gradients + optimizer state) beside one process's.
    struct BenchParallel: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "parallel",
            abstract: "Step time and per-rank peak memory of each parallel layout (dp × tp × pp) beside one process.")

        @Option(help: "Reference configuration: tiny or small.") var preset: Train.Preset = .small
        @Option(parsing: .upToNextOption, help: "Layouts such as 1, dp2, tp2, pp2, dp2pp2, dp2tp2 (processes = dp·tp·pp); z1, z2 or z3 for a ZeRO stage over the dp group (dp2pp2z3).")
        var layouts: [String] = ["1", "dp2", "tp2", "pp2"]
        @Option(help: "Timed updates (after one warm-up update).") var steps = 2
        @Option(help: "Micro-batches per update (the pipeline's 1F1B runs over them).") var microBatches = 2
        @Option(help: "Tokens per sequence instead of the preset's.") var length: Int?
        @Option(help: .hidden) var rankRun: String?

        struct Layout: Equatable {
            var dp = 1, tp = 1, pp = 1, zeroStage = 0
            var processes: Int { dp * tp * pp }
            var name: String {
                (processes == 1 ? "1 process" : "dp \(dp) × tp \(tp) × pp \(pp)") + (zeroStage > 0 ? ", ZeRO-\(zeroStage)" : "")
            }
            /// The layout as `--layouts` spells it.
            var text: String { "dp\(dp)tp\(tp)pp\(pp)" + (zeroStage > 0 ? "z\(zeroStage)" : "") }

            init?(_ text: String) {
                if text == "1" { return }
                var rest = Substring(text)
                while !rest.isEmpty {
                    let axis = rest.hasPrefix("z") ? rest.prefix(1) : rest.prefix(2)
                    rest = rest.dropFirst(axis.count)
                    let digits = rest.prefix { $0.isNumber }
                    rest = rest.dropFirst(digits.count)
                    guard let size = Int(digits), (1...64).contains(size) else { return nil }
                    switch axis {
                    case "dp": dp = size
                    case "tp": tp = size
                    case "pp": pp = size
                    case "z" where size <= 3: zeroStage = size
                    default: return nil
                    }
                }
            }
        }

        func validate() throws {
            for text in layouts where Layout(text) == nil {
                throw ValidationError("--layouts: `\(text)` is not a layout such as 1, dp2, tp2, pp2, dp2pp2 or dp2pp2z3")
            }
            if steps < 1 || microBatches < 1 { throw ValidationError("--steps and --micro-batches must be at least 1") }
        }

        /// What one rank measured.
        struct RankResult: Codable {
            var rank: Int
            var medianStepSeconds: Double
            var peakRSS: Int
            /// Bytes of the parameters this rank holds, its gradients and the optimizer's state.
            var modelStateBytes: Int
            var losses: [Double]
        }

        func run() throws {
            if let rankRun { return try measure(Layout(rankRun)!) }
            let b = preset.batch.size * microBatches, t = length ?? preset.batch.length
            print("collie bench parallel --preset \(preset.rawValue): AdamW, global batch \(b) × \(t) tokens per update "
                  + "in \(microBatches) micro-batches, \(steps) timed updates after a warm-up; GB = 10⁹ bytes")
            print("| layout | processes | s/update (slowest rank) | tokens/s | peak RSS per rank (max / min) | parameters + gradients + AdamW state per rank (max) | vs one process |")
            print("|---|---:|---:|---:|---:|---:|---:|")
            var baseline: Int?
            var lossLines: [String] = []
            for text in layouts {
                let layout = Layout(text)!
                let ranks = try launch(layout)
                let slowest = ranks.map(\.medianStepSeconds).max() ?? 0
                let state = ranks.map(\.modelStateBytes).max() ?? 0
                if layout.processes == 1 { baseline = state }
                func gb(_ bytes: Int) -> String { String(format: "%.3f", Double(bytes) / 1e9) }
                let ratio = baseline.map { String(format: "%.2f", Double(state) / Double($0)) } ?? "—"
                print("| \(layout.name) | \(layout.processes) | \(String(format: "%.2f", slowest)) | "
                      + "\(String(format: "%.0f", Double(b * t) / slowest)) | "
                      + "\(gb(ranks.map(\.peakRSS).max() ?? 0)) / \(gb(ranks.map(\.peakRSS).min() ?? 0)) | \(gb(state)) | \(ratio) |")
                lossLines.append("losses, \(layout.name): " + (ranks.first?.losses ?? []).map { String(format: "%.4f", $0) }
                    .joined(separator: ", "))
            }
            lossLines.forEach { print($0) }
        }

        /// Runs `layout` under mpirun (or as one child process) and collects every rank's result.
        private func launch(_ layout: Layout) throws -> [RankResult] {
            let cores = ProcessInfo.processInfo.activeProcessorCount
            let threads = String(max(1, cores / layout.processes))
            var arguments = ["bench", "parallel", "--rank-run", layout.text,
                             "--preset", preset.rawValue, "--steps", String(steps), "--micro-batches", String(microBatches)]
            if let length { arguments += ["--length", String(length)] }
            let variables = ["OPENBLAS_NUM_THREADS": threads, "COLLIE_NUM_THREADS": threads]
            for (name, value) in variables { setenv(name, value, 1) }
            let output: Data
            if layout.processes == 1 {
                output = try ChildProcess.output(ChildProcess.collie, arguments)
            } else {
                var launch = ["mpirun", "-np", String(layout.processes), "--bind-to", "none"]
                if layout.processes > cores { launch.append("--oversubscribe") }
                if getuid() == 0 { launch.append("--allow-run-as-root") }
                for name in variables.keys.sorted() { launch += ["-x", name] }
                output = try ChildProcess.output("/usr/bin/env", launch + [ChildProcess.collie] + arguments)
            }
            let results = try String(decoding: output, as: UTF8.self).split(separator: "\n")
                .filter { $0.hasPrefix("{") }.map { try JSONDecoder().decode(RankResult.self, from: Data($0.utf8)) }
            guard results.count == layout.processes else {
                throw ValidationError("bench parallel \(layout.name): \(results.count) of \(layout.processes) ranks reported")
            }
            return results.sorted { $0.rank < $1.rank }
        }

        /// One rank: a Trainer on the preset with random ids, timed per update; prints its RankResult as JSON.
        private func measure(_ layout: Layout) throws {
            let world: Communicator = MPICommunicator.isLaunchedByMPIRun ? MPICommunicator.world() : SingleProcessCommunicator()
            let c = preset.configuration
            let b = preset.batch.size, t = length ?? preset.batch.length
            var config = CollieConfig(model: .preset(preset == .tiny ? .tiny : .small))
            config.dataParallelSize = layout.dp
            config.tensorParallelSize = layout.tp
            config.pipelineParallelSize = layout.pp
            config.deepSpeed.zeroOptimization.stage = layout.zeroStage
            config.trainMicroBatchSize = b / layout.dp
            config.gradientAccumulationSteps = microBatches
            config.trainEpochs = 1
            config.maxSteps = steps + 1
            config.shuffle = false
            config.monitorOutputs = []
            config.optimizer = .init(name: .adamW, learningRate: 1e-4)
            config.tokenizer = "(random ids)"  // the ids are made here; the check wants the vocabulary's source named
            try config.validate()
            var generator = RandomGenerator(seed: 1)
            let examples = (0..<(b * microBatches * (steps + 1))).map { _ in
                let ids = (0..<t).map { _ in Int(generator.next() % UInt64(c.vocabularySize)) }
                return TrainingExample(tokens: ids, labels: ids)
            }
            let model = LlamaForCausalLM(c, seed: 0)
            let recorder = StepRecorder()
            let trainer = try Trainer(config: config, model: model, trainDataset: try TrainingDataset(examples: examples),
                                      padTokenID: 0, monitors: [recorder], outputDirectory: URL(fileURLWithPath: "/nonexistent"),
                                      communicator: world)
            try trainer.train()
            let times = recorder.seconds.dropFirst().sorted()
            let buffer = trainer.parameterBuffer, shard = trainer.dataParallel.shard.count
            let stateBytes = trainer.optimizer.state().tensors.values.reduce(0) { $0 + $1.count * $1.dtype.size }
            // Held during training: the trained buffer (a pipeline stage's own units; the other stages' were freed
            // until the end; at ZeRO-3 the rank's shard), the gradients (from ZeRO-2 the shard's), and the state.
            let parameters = layout.zeroStage == 3 ? shard : buffer.count, gradients = layout.zeroStage >= 2 ? shard : buffer.count
            let result = RankResult(rank: world.rank, medianStepSeconds: times[times.count / 2],
                                    peakRSS: recorder.peakMemoryBytes,
                                    modelStateBytes: (parameters + gradients) * buffer.dtype.size + stateBytes,
                                    losses: recorder.losses)
            print(String(decoding: try JSONEncoder().encode(result), as: UTF8.self))
        }
    }

    /// Keeps each update's wall time and loss, and the peak memory at the last (before the stages are gathered).
    final class StepRecorder: TrainingMonitor {
        var seconds: [Double] = [], losses: [Double] = []
        var peakMemoryBytes = 0
        func record(_ event: TrainingEvent) throws {
            if case .step(let step) = event {
                seconds.append(step.stepSeconds)
                losses.append(step.loss)
                peakMemoryBytes = step.peakMemoryBytes
            }
        }
        func close() throws {}
    }
}
