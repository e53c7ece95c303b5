import CollieEngine
import CollieIO
import CollieTestSupport
import CollieTraining
import XCTest

/// The run the parallel `collie train` tests repeat on several layouts, and how two of its outputs are compared.
///
/// Tolerance (fp32; only the order of sums differs): losses within 1e-5 relative, and the final weights' updates
/// (final − initial) within 1e-4 relative L2 of one another — AdamW divides by √v, so where a gradient is ~0 the
/// rounding noise in it moves a weight by up to lr·g/(|g| + ε); comparing what training moved is the fair measure.
enum ParallelTrainRun {
    /// Writes 20 records of random ids and a config for the fixture model (4 heads, 2 kv heads, 2 layers, vocabulary
    /// 64): 2 epochs × 3 updates of a global micro-batch of 4 × accumulation 2, shuffled, clipped, AdamW; `extra`
    /// YAML lines are appended. Returns the config's URL.
    static func makeConfig(in folder: URL, extra: String = "") throws -> URL {
        var generator = RandomGenerator(seed: 5)
        var records = ""
        for _ in 0..<20 {
            let length = 6 + Int(generator.next() % 11)
            records += "{\"tokens\": \((0..<length).map { _ in 3 + Int(generator.next() % 61) })}\n"
        }
        try records.write(to: folder.appendingPathComponent("train.jsonl"), atomically: true, encoding: .utf8)
        let config = folder.appendingPathComponent("config.yaml")
        try """
            model: \(Fixtures.model.path)
            tokenizer: \(Fixtures.tokenizerFolder.path)
            train_data: train.jsonl
            record_format: tokens
            shuffle: true
            seed: 3
            train_epochs: 2
            train_micro_batch_size: 4
            gradient_accumulation_steps: 2
            optimizer: {name: adamw, lr: 1.0e-2, weight_decay: 0.01, eps: 1.0e-6}
            max_grad_norm: 1.0
            monitor_outputs: [csv]
            \(extra)
            """.write(to: config, atomically: true, encoding: .utf8)
        return config
    }

    /// The fixture model's weights, where every run starts.
    static var initialWeights: URL { Fixtures.model.appendingPathComponent("model.safetensors") }

    /// Resumes `source`'s `checkpoint-3` on `ranks` processes with `arguments` (after `train CONFIG --resume …`; they
    /// set the layout and `output_dir=name`). The output folder `name` starts with `source`'s monitors.csv, so that its
    /// log continues the first three updates. Asserts the run resumed; returns the output folder.
    static func resume(_ source: String, config: URL, ranks: Int, as name: String, arguments: [String], in folder: URL,
                       file: StaticString = #filePath, line: UInt = #line) throws -> URL {
        let output = folder.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: folder.appendingPathComponent("\(source)/monitors.csv"),
                                         to: output.appendingPathComponent("monitors.csv"))
        let collie = try CollieExecutable.url()
        let all = ["train", config.path, "--resume", folder.appendingPathComponent("\(source)/checkpoint-3").path] + arguments
        let run = ranks == 1 ? try MPIRun.runProcess(collie, all, in: folder) : try MPIRun.run(ranks: ranks, collie, all, in: folder)
        XCTAssertEqual(run.status, 0, "\(name):\n\(run.output)", file: file, line: line)
        XCTAssertTrue(run.output.contains("resuming from"), run.output, file: file, line: line)
        return output
    }

    /// Writes the evaluators' data (two generation and two classification records) and a config for the `tiny` preset
    /// (set with `--set model=tiny`: LLaMA-2's vocabulary, so that they generate text) evaluating after every update
    /// with a generation (BLEU, ROUGE) and a classification evaluator; `extra` YAML lines are appended.
    static func makeEvaluatorConfig(in folder: URL, extra: String) throws -> URL {
        try """
            {"text": "The cat sat", "target": "on the mat"}
            {"text": "Hello", "target": "world"}
            """.write(to: folder.appendingPathComponent("gen.jsonl"), atomically: true, encoding: .utf8)
        try """
            {"input": "Good. Sentiment:", "output": [" negative", " positive"], "target": 1}
            {"input": "Bad. Sentiment:", "output": [" negative", " positive"], "target": 0}
            """.write(to: folder.appendingPathComponent("cls.jsonl"), atomically: true, encoding: .utf8)
        return try writeFixtureRun(in: folder, records: 8, lengths: 6...12, settings: """
            max_length: 64
            seed: 3
            train_micro_batch_size: 2
            eval_per_n_steps: 1
            optimizer: {name: adamw, lr: 1.0e-3}
            monitor_outputs: [csv]
            evaluators:
              - {name: gen, type: generation, data: gen.jsonl, metrics: [bleu, rouge], generation: {max_new_tokens: 3}}
              - {name: cls, type: classification, data: cls.jsonl}
            \(extra)
            """)
    }

    /// The evaluation metrics in `output`'s monitors.evaluation.csv by "<step> <metric>".
    static func evaluationMetrics(_ output: URL) throws -> [String: Double] {
        let lines = try String(contentsOf: output.appendingPathComponent("monitors.evaluation.csv"), encoding: .utf8)
            .split(separator: "\n").dropFirst()
        return Dictionary(lines.map { line in
            let fields = line.split(separator: ",")
            return ("\(fields[0]) \(fields[1])", Double(fields[2])!)
        }, uniquingKeysWith: { $1 })
    }

    /// The adapter a run of `config` with `arguments` (`--set key=value` pairs) starts from — the trainer's seeded
    /// initialization, built in this process as `collie train` builds it — saved in PEFT's layout under `folder`:
    /// `assertSameRun`'s `initial` for adapters, whose updates are then compared rather than their whole values.
    static func initialAdapter(config: URL, arguments: [String], in folder: URL) throws -> URL {
        let overrides = stride(from: 1, to: arguments.count, by: 2).map { arguments[$0] }
        let setup = try TrainingSetup(config: try CollieConfig.load(from: config, overrides: overrides))
        let out = folder.appendingPathComponent("initial-adapter-\(UUID().uuidString.prefix(8))")
        try setup.model.saveAdapter(to: out)
        return out.appendingPathComponent("adapter_model.safetensors")
    }

    /// (step, loss) of each logged update in `output`'s monitors.csv.
    static func losses(_ output: URL) throws -> [(Int, Double)] {
        let text = try String(contentsOf: output.appendingPathComponent("monitors.csv"), encoding: .utf8)
        return text.split(separator: "\n").dropFirst().map { line in
            let fields = line.split(separator: ",")
            return (Int(fields[0])!, Double(fields[2])!)
        }
    }

    /// Asserts the same losses and final weights (of `weights` in `final/`, relative to `initial`'s, or to zero)
    /// as `reference`; returns the largest relative loss difference and the relative L2 difference of the updates.
    /// Tensors named in `uncompared` are left out of the weights (with their reason at the call).
    @discardableResult
    static func assertSameRun(_ output: URL, as reference: URL, _ label: String,
                              weights: String = "model.safetensors", initial: URL? = initialWeights,
                              uncompared: (String) -> Bool = { _ in false },
                              file: StaticString = #filePath, line: UInt = #line) throws -> (loss: Double, weights: Double) {
        let got = try losses(output), want = try losses(reference)
        XCTAssertEqual(got.map(\.0), want.map(\.0), label, file: file, line: line)
        var worstLoss = 0.0
        for ((_, a), (_, b)) in zip(got, want) {
            XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(b)), label, file: file, line: line)
            worstLoss = max(worstLoss, abs(a - b) / max(1, abs(b)))
        }
        let final = try SafeTensorsFile(url: output.appendingPathComponent("final/\(weights)"))
        let expected = try SafeTensorsFile(url: reference.appendingPathComponent("final/\(weights)"))
        let start = try initial.map { try SafeTensorsFile(url: $0) }
        XCTAssertEqual(final.names, expected.names, label, file: file, line: line)
        var difference = 0.0, update = 0.0
        for name in expected.names where !uncompared(name) {
            let b = try expected.tensor(name).floats()
            let w = try start.map { try $0.tensor(name).floats() } ?? Array(repeating: 0, count: b.count)
            XCTAssertEqual(try final.tensor(name).shape, try expected.tensor(name).shape, "\(label): \(name)",
                           file: file, line: line)
            for ((x, y), z) in zip(zip(try final.tensor(name).floats(), b), w) {
                difference += Double(x - y) * Double(x - y)
                update += Double(y - z) * Double(y - z)
            }
        }
        let relative = (difference / update).squareRoot()
        XCTAssertGreaterThan(update, 0, label, file: file, line: line)
        XCTAssertLessThanOrEqual(relative, 1e-4, "\(label): the final weights' updates differ by \(relative) (relative)",
                                 file: file, line: line)
        print("\(label): max loss difference \(worstLoss) (relative), weights' updates \(relative) (relative L2)")
        return (worstLoss, relative)
    }
}
