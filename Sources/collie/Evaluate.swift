import ArgumentParser
import Collie
import Foundation

/// `collie eval CONFIG`: runs a config's evaluators on its model and prints the metrics as JSON.
struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate a model as a config's evaluators describe (perplexity, generation, classification).",
        discussion: """
            Example: collie eval examples/eval/xsum-rouge.yaml --set model=/path/to/hf-llama
            Metrics are printed as JSON (`<evaluator>/<metric>`), written to output_dir/eval_results.json and \
            to the monitors of monitor_outputs (monitors.csv / tensorboard); generation evaluators with the \
            decode metric write output_dir/<name>.decoded.jsonl.
            """)

    @Argument(help: "The config file (YAML or JSON) with `model`, `tokenizer` and `evaluators` (or `eval_data`).")
    var config: String

    @Option(name: .customLong("set"), help: "Override a config key, e.g. --set model=/path/to/hf-llama (repeatable).")
    var overrides: [String] = []

    @Option(help: "A PEFT adapter folder (LoRA or prompt tuning) to evaluate with, instead of a new peft_config adapter.")
    var adapter: String?

    @OptionGroup var quantization: QuantizationOptions

    func run() throws {
        do {
            try evaluate()
        } catch {
            ConsoleOutput.standardError("collie eval: error: \(error)\n")
            throw ExitCode.failure
        }
    }

    private func evaluate() throws {
        let started = Date()
        let settings = try CollieConfig.load(from: URL(fileURLWithPath: config), overrides: quantization.configOverrides + overrides)
        let setup = try EvaluationSetup(config: settings, source: config, adapter: adapter.map { URL(fileURLWithPath: $0) })
        let output = URL(fileURLWithPath: settings.outputDir)
        // A training run's folder (the same config evaluated) keeps its step log: eval would replace monitors.csv.
        let trainingLog = output.appendingPathComponent("monitors.csv")
        if OutputFolder(output).isMarked, settings.monitorOutputs.contains(.csv),
           FileManager.default.fileExists(atPath: trainingLog.path) {
            throw ValidationError("""
                output_dir: \(output.path) is a collie train output folder, whose monitors.csv eval would replace; \
                evaluate into another folder, e.g. --set output_dir=\(output.appendingPathComponent("eval").path)
                """)
        }
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        // Not while a training run (or another eval) writes there.
        let lock = try FolderLock(folder: output)
        defer { withExtendedLifetime(lock) {} }
        let monitor = MonitorGroup()
        for kind in Set(settings.monitorOutputs) {
            switch kind {
            case .csv: monitor.append(try CSVMonitor(url: output.appendingPathComponent("monitors.csv")))
            case .tensorboard: monitor.append(try TensorBoardMonitor(logDirectory: output.appendingPathComponent("tensorboard")))
            }
        }
        let model = setup.model.configuration
        note("model: \(model.hiddenLayers) layers, hidden \(model.hiddenSize), vocabulary \(model.vocabularySize); "
             + "evaluators: " + setup.evaluators.map(\.name).joined(separator: ", "))
        let metrics = try setup.run(monitor: monitor)
        try monitor.close()
        let json = Data((JSONOutput.text(metrics) + "\n").utf8)
        try AtomicFile.write(json, to: output.appendingPathComponent("eval_results.json"))
        try FileHandle.standardOutput.write(contentsOf: json)
        note(String(format: "evaluated in %.1f s; results in %@", Date().timeIntervalSince(started),
                    output.appendingPathComponent("eval_results.json").path))
    }

    private func note(_ line: String) { ConsoleOutput.standardError(line + "\n") }
}
