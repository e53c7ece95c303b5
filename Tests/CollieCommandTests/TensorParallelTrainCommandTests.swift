import CollieEngine
import CollieIO
import CollieTestSupport
import XCTest

/// `mpirun -np N collie train` with tensor parallelism (Megatron) on the fixture LLaMA model: tp = 2 (2 processes)
/// and dp = 2 × tp = 2 (4 processes), with AdamW (plain and ZeRO-1 over the dp group), AdaLomo and LOMO, and LoRA
/// at tp = 2, give the losses and final weights of one process with the same global batch; the final model is
/// one consolidated Hugging Face folder that one process loads; bad layouts are clear errors.
///
/// Tolerance as `DataParallelTrainCommandTests`: losses within 1e-5 relative, the final weights' updates within
/// 1e-4 relative L2 (only the order of sums differs: the all-reduces of partial products and of partial norms).
final class TensorParallelTrainCommandTests: XCTestCase {
    /// 20 records of random ids on the fixture model (4 heads, 2 kv heads, intermediate 64, vocabulary 64):
    /// 2 epochs × 3 updates of a global micro-batch of 4 × accumulation 2, shuffled, clipped, AdamW.
    private func makeRun(_ folder: URL) throws -> URL {
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
            """.write(to: config, atomically: true, encoding: .utf8)
        return config
    }

    /// `--set` overrides for dp × tp processes sharing a global micro-batch of 4.
    private func layout(dp: Int, tp: Int, stage: Int = 0, output: String) -> [String] {
        ["--set", "dp_size=\(dp)", "--set", "tp_size=\(tp)", "--set", "train_micro_batch_size=\(4 / dp)",
         "--set", "ds_config.zero_optimization.stage=\(stage)", "--set", "output_dir=\(output)"]
    }

    /// (step, loss) of each logged update.
    private func losses(_ output: URL) throws -> [(Int, Double)] {
        let text = try String(contentsOf: output.appendingPathComponent("monitors.csv"), encoding: .utf8)
        return text.split(separator: "\n").dropFirst().map { line in
            let fields = line.split(separator: ",")
            return (Int(fields[0])!, Double(fields[2])!)
        }
    }

    /// Asserts the same losses and final weights (of `file` in `final/`, relative to `initial`'s) as `reference`;
    /// returns the largest relative loss difference and the relative L2 difference of the updates.
    @discardableResult
    private func assertSameRun(_ output: URL, as reference: URL, _ label: String,
                               file weights: String = "model.safetensors", initial: URL? = nil,
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
        for name in expected.names {
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

    private var initialWeights: URL { Fixtures.model.appendingPathComponent("model.safetensors") }

    func testTensorParallelAdamWMatchesOneProcess() throws {
        let folder = try temporaryFolder(for: self)
        let config = try makeRun(folder)
        let collie = try CollieExecutable.url()
        let one = try MPIRun.runProcess(collie, ["train", config.path, "--set", "output_dir=one"], in: folder)
        XCTAssertEqual(one.status, 0, one.output)
        let reference = folder.appendingPathComponent("one")
        XCTAssertEqual(try losses(reference).count, 6)

        for (dp, tp, stage) in [(1, 2, 0), (2, 2, 0), (1, 2, 1), (2, 2, 1)] {
            let name = "dp\(dp)-tp\(tp)-zero\(stage)"
            let run = try MPIRun.run(ranks: dp * tp, collie,
                                     ["train", config.path] + layout(dp: dp, tp: tp, stage: stage, output: name), in: folder)
            XCTAssertEqual(run.status, 0, "\(name):\n\(run.output)")
            XCTAssertTrue(run.output.contains("tensor parallel: \(tp) processes per model replica"), run.output)
            try assertSameRun(folder.appendingPathComponent(name), as: reference, name, initial: initialWeights)
        }
    }

    func testTensorParallelAdaLomoAndLOMOMatchOneProcess() throws {
        let folder = try temporaryFolder(for: self)
        let config = try makeRun(folder)
        let collie = try CollieExecutable.url()
        // AdaLomo clips by the global norm (a norm pass, then the update pass); LOMO with clip_grad_norm too.
        for (kind, optimizer) in [("adalomo", "{name: adalomo, lr: 1.0e-2}"),
                                  ("lomo", "{name: lomo, lr: 5.0e-2, weight_decay: 0.01}")] {
            let common = ["--set", "optimizer=\(optimizer)", "--set", "gradient_accumulation_steps=1"]
            let one = try MPIRun.runProcess(collie, ["train", config.path, "--set", "output_dir=\(kind)-one"] + common,
                                            in: folder)
            XCTAssertEqual(one.status, 0, one.output)
            for (dp, tp) in [(1, 2), (2, 2)] {
                let name = "\(kind)-dp\(dp)-tp\(tp)"
                let run = try MPIRun.run(ranks: dp * tp, collie,
                                         ["train", config.path] + layout(dp: dp, tp: tp, output: name) + common, in: folder)
                XCTAssertEqual(run.status, 0, "\(name):\n\(run.output)")
                try assertSameRun(folder.appendingPathComponent(name), as: folder.appendingPathComponent("\(kind)-one"),
                                  name, initial: initialWeights)
            }
        }
    }

    func testLoRAAtTensorParallelTwoMatchesOneProcess() throws {
        let folder = try temporaryFolder(for: self)
        let config = try makeRun(folder)
        let collie = try CollieExecutable.url()
        // Every linear layer, so column- and row-parallel bases both carry adapters; B starts at zero, so the
        // adapters' final weights are their updates.
        let common = ["--set", "peft_config={peft_type: LORA, r: 4, lora_alpha: 8, lora_dropout: 0.0, "
                      + "target_modules: [q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]}"]
        let one = try MPIRun.runProcess(collie, ["train", config.path, "--set", "output_dir=lora-one"] + common, in: folder)
        XCTAssertEqual(one.status, 0, one.output)
        let run = try MPIRun.run(ranks: 2, collie, ["train", config.path] + layout(dp: 1, tp: 2, output: "lora-tp2") + common,
                                 in: folder)
        XCTAssertEqual(run.status, 0, run.output)
        try assertSameRun(folder.appendingPathComponent("lora-tp2"), as: folder.appendingPathComponent("lora-one"), "lora-tp2",
                          file: "adapter_model.safetensors")
    }

    func testConsolidatedModelOfTensorParallelRunLoadsInOneProcess() throws {
        let folder = try temporaryFolder(for: self)
        let config = try makeRun(folder)
        let collie = try CollieExecutable.url()
        let run = try MPIRun.run(ranks: 2, collie, ["train", config.path] + layout(dp: 1, tp: 2, output: "tp2")
                                 + ["--set", "max_steps=2"], in: folder)
        XCTAssertEqual(run.status, 0, run.output)
        let final = folder.appendingPathComponent("tp2/final")
        let weights = try SafeTensorsFile(url: final.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(try weights.tensor("model.embed_tokens.weight").shape, [64, 32])
        XCTAssertEqual(try weights.tensor("model.layers.0.self_attn.o_proj.weight").shape, [32, 32])
        XCTAssertEqual(try weights.tensor("model.layers.0.mlp.down_proj.weight").shape, [32, 64])
        // One process continues from the consolidated folder.
        let again = try MPIRun.runProcess(collie, ["train", config.path, "--set", "output_dir=again", "--set",
                                                   "model=\(final.path)", "--set", "max_steps=1"], in: folder)
        XCTAssertEqual(again.status, 0, again.output)
    }

    func testBadTensorParallelLayoutsAreClearErrors() throws {
        let folder = try temporaryFolder(for: self)
        let config = try makeRun(folder)
        let collie = try CollieExecutable.url()
        let mismatch = try MPIRun.run(ranks: 2, collie, ["train", config.path, "--set", "tp_size=4"], in: folder)
        XCTAssertNotEqual(mismatch.status, 0)
        XCTAssertTrue(mismatch.output.contains("the run has 2 processes but dp_size × tp_size × pp_size = 1 × 4 × 1 = 4"),
                      mismatch.output)
        // 4 attention heads, 2 kv heads: tp 4 does not divide the kv heads.
        let heads = try MPIRun.run(ranks: 4, collie, ["train", config.path, "--set", "tp_size=4"], in: folder)
        XCTAssertNotEqual(heads.status, 0)
        XCTAssertTrue(heads.output.contains("tp_size: 4 does not divide the model's num_key_value_heads (2)"), heads.output)
        let pipeline = try MPIRun.runProcess(collie, ["train", config.path, "--set", "pp_size=2"], in: folder)
        XCTAssertNotEqual(pipeline.status, 0)
        XCTAssertTrue(pipeline.output.contains("pp_size: pipeline parallelism (2) is not yet supported"), pipeline.output)
        let zero = try MPIRun.run(ranks: 2, collie, ["train", config.path, "--set", "tp_size=2", "--set",
                                                     "ds_config.zero_optimization.stage=2"], in: folder)
        XCTAssertNotEqual(zero.status, 0)
        XCTAssertTrue(zero.output.contains("ZeRO stage 2 is not yet supported with tensor parallelism"), zero.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("output").path),
                       "nothing is written")
    }
}
