import ArgumentParser
import Collie
import CollieMPI
import Foundation

/// `collie train CONFIG [--set key=value …] [--resume DIR|latest]`: the Trainer driven by a config file.
///
/// Everything the config names (tokenizer, datasets, model, a checkpoint to resume from) is loaded and checked
/// before anything is written, so a bad config leaves no output behind. Then it trains with a progress bar (or
/// log lines when not on a terminal), writes checkpoints and monitor files to `output_dir`, evaluates at the
/// end if the last update was not evaluated, saves the model (and the tokenizer's files) to `output_dir/final`,
/// and prints the evaluation loss and perplexity before → after and, with `sample_prompt(s)`, greedy answers before
/// and after training.
///
/// Under `mpirun -np N` each process is one data-parallel rank (`dp_size: N`, ZeRO stage from `ds_config`);
/// rank 0 prints, writes monitor files and saves the final model.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train or fine-tune a model as a YAML/JSON config describes.",
        discussion: """
            Example: collie train examples/alpaca/config.yaml --set optimizer.lr=5e-4 --set train_epochs=1
            Checkpoints go to output_dir/checkpoint-<step> (callbacks.checkpoint); the final model, a Hugging \
            Face folder, to output_dir/final. After a crash, add --resume latest to continue exactly where the \
            newest complete checkpoint left off.
            """)

    @Argument(help: "The config file (YAML or JSON).")
    var config: String

    @Option(name: .customLong("set"), help: "Override a config key, e.g. --set optimizer.lr=1e-4 (repeatable).")
    var overrides: [String] = []

    @Option(help: "A training checkpoint folder to continue from, or 'latest' for output_dir's newest complete one.")
    var resume: String?

    @Flag(help: "Start over in an output_dir that holds an earlier run's outputs (each removed path is printed).")
    var overwrite = false

    @Option(help: "When not on a terminal, print a log line every n updates.")
    var logInterval = 1

    func run() throws {
        // A closed pipe (`collie train … | head`) makes writes fail instead of killing the run with SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        // One process per rank under mpirun; without it, a group of one (MPI is not initialized at all).
        let launchedByMPIRun = MPICommunicator.isLaunchedByMPIRun
        let communicator: Communicator = launchedByMPIRun ? MPICommunicator.world() : SingleProcessCommunicator()
        do {
            try train(communicator)
        } catch let exit as ExitCode {
            throw exit
        } catch {
            let rank = communicator.size > 1 ? " (rank \(communicator.rank) of \(communicator.size))" : ""
            ConsoleOutput.standardError("collie train: error\(rank): \(error)\n")
            // The other ranks may wait in a collective for this one: end them all.
            if launchedByMPIRun, communicator.size > 1 { MPICommunicator.abortAll(exitCode: 1) }
            throw ExitCode.failure
        }
    }

    private func train(_ communicator: Communicator) throws {
        let started = Date()
        let isMain = communicator.isMain
        let configURL = URL(fileURLWithPath: config)
        let settings = try CollieConfig.load(from: configURL, overrides: overrides)
        let ranks = settings.processCount
        if ranks > 1, communicator.size == 1, !MPICommunicator.isLaunchedByMPIRun {
            let layout = settings.tensorParallelSize == 1 && settings.pipelineParallelSize == 1
                ? "dp_size: \(settings.dataParallelSize)"
                : "dp_size × tp_size × pp_size = \(settings.dataParallelSize) × \(settings.tensorParallelSize) × \(settings.pipelineParallelSize)"
            throw ValidationError("""
                \(layout) needs \(ranks) processes: launch with \
                `mpirun -np \(ranks) collie train \(config)` (mpirun comes with Open MPI: scripts/setup.sh installs it)
                """)
        }
        let setup = try TrainingSetup.load(config: settings, source: config)
        let trainer = try setup.makeTrainer(source: config, communicator: communicator)
        let output = trainer.outputDirectory

        // Decide what happens to output_dir before writing anything to it: rank 0 checks it, locks it for the
        // run and, with --overwrite, removes an earlier run's outputs (see OutputFolder).
        var resumedFrom: URL?
        if let resume {
            if overwrite { throw ValidationError("--overwrite starts over and --resume continues: give one of them") }
            let folder: URL
            if resume == "latest" {
                guard let latest = TrainingCheckpoint.latest(in: output) else {
                    throw ValidationError("--resume latest: no complete checkpoint in \(output.path)")
                }
                folder = latest
            } else {
                folder = URL(fileURLWithPath: resume)
            }
            resumedFrom = folder
        }
        let lock = isMain ? try OutputFolder(output).prepare(resumedFrom == nil ? .fresh(overwrite: overwrite) : .resume,
                                                             inputs: OutputFolder.inputs(of: settings), report: say)
                          : nil
        defer { withExtendedLifetime(lock) {} }
        if let resumedFrom { try trainer.resume(from: resumedFrom) }

        if isMain {
            try AtomicFile.write(Data(try settings.yamlString().utf8), to: output.appendingPathComponent("config.yaml"))
        }
        communicator.barrier()
        for kind in isMain ? Set(settings.monitorOutputs) : [] {
            switch kind {
            case .csv:
                let url = output.appendingPathComponent("monitors.csv")
                trainer.monitor.append(resumedFrom == nil ? try CSVMonitor(url: url)
                                       : try CSVMonitor(url: url, resumingAfter: trainer.state.globalStep))
            case .tensorboard:
                trainer.monitor.append(try TensorBoardMonitor(logDirectory: output.appendingPathComponent("tensorboard")))
            }
        }
        if isMain {
            trainer.monitor.append(ProgressMonitor(totalSteps: trainer.state.totalSteps, logInterval: max(1, logInterval)))
            trainer.logHandler = { line in ConsoleOutput.standardOutput(line + "\n") }
        }
        defer { trainer.closeMonitors() }

        if isMain { describe(setup, trainer, resumedFrom: resumedFrom) }
        // The sample prompts' answers before training, to show next to the trained model's (not on a resume).
        // (Not under tensor or pipeline parallelism: the model is split until training ends. Under ZeRO-3 every rank
        // gathers the parameters for the while, and rank 0 answers — only when there are prompts: a ZeRO-3 run may not
        // have room for a whole copy to spare.)
        let answersBefore = resumedFrom == nil && trainer.grid.tensorParallelSize == 1 && trainer.pipeline == nil
            && !settings.allSamplePrompts.isEmpty
            ? try trainer.dataParallel.withFullParameters { isMain ? try sampleAnswers(setup, trainer) : nil } : nil
        try trainer.train()
        if trainer.evaluationLoader != nil, trainer.state.lastEvaluation?.step != trainer.state.globalStep {
            try trainer.evaluate()
        }
        // Tensor parallelism: every rank gathers the slices, so rank 0 saves one consolidated Hugging Face folder
        // and answers the sample prompts with the whole model.
        trainer.model.gatherTensorParallelSlices()
        guard isMain else { return }
        let final = output.appendingPathComponent("final")
        try AtomicFolder.write(at: final) { folder in
            try trainer.saveModelFiles(to: folder, dtype: trainer.savedWeightType)
        }
        try trainer.saveBaseModel()
        trainer.closeMonitors()

        let evaluations = trainer.state.evaluations
        if let first = evaluations.first, let last = evaluations.last, let before = first.metrics["perplexity"],
           let after = last.metrics["perplexity"] {
            say(String(format: "eval perplexity %.2f (step %d) → %.2f (step %d); eval loss %.4f → %.4f", before,
                         first.step, after, last.step, first.metrics["loss"] ?? .nan, last.metrics["loss"] ?? .nan))
        }
        let saved = trainer.model.peftConfiguration == nil ? "the model to \(final.path) (Hugging Face folder)"
            : "the adapter to \(final.path) (PEFT folder; base model \(trainer.baseModelReference))"
        say("saved \(saved) in \(Self.duration(Date().timeIntervalSince(started)))")
        let answersAfter = try sampleAnswers(setup, trainer)
        for (index, prompt) in settings.allSamplePrompts.enumerated() {
            let indent = "\n          "
            var lines = ["sample \(index + 1) (greedy, at most \(settings.sampleMaxNewTokens) tokens)", "  prompt: "
                         + prompt.replacingOccurrences(of: "\n", with: indent)]
            if let answersBefore { lines.append("  before: " + answersBefore[index].replacingOccurrences(of: "\n", with: indent)) }
            lines.append((answersBefore == nil ? "  answer: " : "  after:  ") + answersAfter[index].replacingOccurrences(of: "\n", with: indent))
            say(lines.joined(separator: "\n"))
        }
    }

    /// The model's greedy answers to the config's sample prompts (`sample_prompt`, `sample_prompts`), trimmed.
    private func sampleAnswers(_ setup: TrainingSetup, _ trainer: Trainer) throws -> [String] {
        let settings = setup.config
        return try settings.allSamplePrompts.map { prompt in
            let ids = try setup.promptIDs(for: prompt)
            // Clamped so that prompt + new tokens cannot overflow; the generator reports a too long request.
            let maxNewTokens = min(settings.sampleMaxNewTokens, Int.max - ids.count)
            let answer = try greedyGenerator(trainer.model, ids, GenerationSettings(maxNewTokens: maxNewTokens))
            let text = try setup.tokenizer.decode(answer, skipSpecialTokens: true).trimmingCharacters(in: .whitespacesAndNewlines)
            return text.isEmpty ? "(only whitespace)" : text
        }
    }

    private func describe(_ setup: TrainingSetup, _ trainer: Trainer, resumedFrom: URL?) {
        let c = setup.config
        let m = setup.model.configuration
        let source: String = switch c.model {
        case .preset(let preset): "preset \(preset.rawValue) (random init, seed \(c.seed))"
        case .folder(let path): path
        }
        let weights = setup.model.weightCount, quantized = setup.model.isQuantized ? weights - setup.model.parameterCount : 0
        say("model: \(source): \(weights.formatted()) parameters (hidden \(m.hiddenSize), "
              + "\(m.hiddenLayers) layers, vocabulary \(m.vocabularySize))"
              + (quantized > 0 ? "; \(quantized.formatted()) of them frozen in quantized blocks" : ""))
        if let peft = setup.model.peftConfiguration {
            let trained = trainer.parameterBuffer.count, total = weights + trained
            let method: String = switch peft {
            case .lora(let lora): "LoRA r \(lora.rank), alpha \(lora.alpha), dropout \(lora.dropout) on \(setup.model.loraAdapters.count) layers"
            case .promptTuning(let prompt): "prompt tuning, \(prompt.virtualTokenCount) virtual tokens"
            }
            say("peft: \(method): \(trained.formatted()) trainable parameters (\(String(format: "%.3f", 100 * Double(trained) / Double(total)))% of \(total.formatted())), base model frozen")
        }
        let train = setup.trainDataset
        say("data: \(train.count) training examples (\(train.format.rawValue), \(train.tokenCount.formatted()) tokens, "
              + "\(train.truncatedCount) cut to \(c.maxLength))"
              + (setup.evaluationDataset.map { ", \($0.count) evaluation examples" } ?? ""))
        let length = c.maxSteps > 0 ? "max_steps \(c.maxSteps) (\(trainer.state.epochCount) epochs of \(trainer.state.stepsPerEpoch))"
            : "\(c.trainEpochs) epochs × \(trainer.state.stepsPerEpoch)"
        say("training: \(length) updates of \(c.trainMicroBatchSize) × "
              + "\(c.gradientAccumulationSteps) examples, \(c.optimizer.name.rawValue) lr \(c.optimizer.learningRate) "
              + "(\(c.lrScheduler.kind.rawValue)), \(Parallel.threadCount) threads → \(trainer.outputDirectory.path)")
        if c.mixedPrecision == .bf16 {
            let products = MixedPrecision.bfloat16Products
            say("mixed precision bf16: matrix products with bfloat16 operands, float32 accumulation"
                  + (products != .float32 ? " (\(products.rawValue))"
                     : MixedPrecision.hasBFloat16Hardware
                     ? " — on float32 FMA: this CPU's AVX512_BF16 dot products measured slower than its FMA"
                     : " — this CPU has no bfloat16 instructions, so the rounded operands go through float32 FMA, "
                       + "slower than mixed_precision: no"))
        }
        if trainer.grid.tensorParallelSize > 1 {
            say("tensor parallel: \(trainer.grid.tensorParallelSize) processes per model replica (column/row/vocabulary-parallel layers)")
        }
        if let pipeline = trainer.pipeline {
            let stages = pipeline.partition.stages.map { "\($0.lowerBound)..<\($0.upperBound)" }.joined(separator: ", ")
            say("pipeline parallel: \(pipeline.communicator.size) stages (units \(stages)), 1F1B over \(c.gradientAccumulationSteps) "
                + "micro-batches per update")
        }
        let group = trainer.dataParallel.communicator
        if group.size > 1 || c.zeroStage > 0 {
            say("data parallel: \(group.size) processes × \(c.trainMicroBatchSize) examples per micro-batch, ZeRO stage "
                  + "\(c.zeroStage)")
        }
        if let resumedFrom { say("resuming from \(resumedFrom.path)") }
    }

    /// Writes a line to standard output unbuffered, in order with the progress monitor's output; best effort (a
    /// full disk or a closed pipe does not end training).
    private func say(_ line: String) {
        ConsoleOutput.standardOutput(line + "\n")
    }

    private static func duration(_ seconds: Double) -> String {
        let total = Int(seconds.rounded())
        return total >= 60 ? String(format: "%dm%02ds", total / 60, total % 60) : String(format: "%.1fs", seconds)
    }
}
