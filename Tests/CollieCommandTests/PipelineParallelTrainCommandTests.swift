import CollieEngine
import CollieIO
import CollieTestSupport
import XCTest

/// `mpirun -np N collie train` with pipeline parallelism on the fixture LLaMA model (4 units: embedding, 2 blocks,
/// head): pp = 2 and pp = 4 stages by each `pp_partition_method`, dp = 2 × pp = 2, and ZeRO 1–3 over the dp group,
/// with AdamW over two micro-batches per update (the 1F1B schedule) give the losses and final weights of one
/// process with the same global batch (`ParallelTrainRun`'s tolerances); unsupported layouts are clear errors.
final class PipelineParallelTrainCommandTests: XCTestCase {
    private func layout(dp: Int, tp: Int = 1, pp: Int, stage: Int = 0, method: String = "parameters",
                        output: String) -> [String] {
        ["--set", "dp_size=\(dp)", "--set", "tp_size=\(tp)", "--set", "pp_size=\(pp)", "--set", "train_micro_batch_size=\(4 / dp)",
         "--set", "pp_partition_method=\(method)", "--set", "ds_config.zero_optimization.stage=\(stage)",
         "--set", "output_dir=\(output)"]
    }

    func testPipelineParallelAdamWMatchesOneProcess() throws {
        let folder = try temporaryFolder(for: self)
        let config = try ParallelTrainRun.makeConfig(in: folder)
        let collie = try CollieExecutable.url()
        let one = try MPIRun.runProcess(collie, ["train", config.path, "--set", "output_dir=one"], in: folder)
        XCTAssertEqual(one.status, 0, one.output)
        let reference = folder.appendingPathComponent("one")
        XCTAssertEqual(try ParallelTrainRun.losses(reference).count, 6)

        let layouts: [(dp: Int, tp: Int, pp: Int, stage: Int, method: String, stages: String)] = [
            (1, 1, 2, 0, "parameters", "units 0..<2, 2..<4"),
            (1, 1, 2, 0, "type:DecoderLayer", "units 0..<2, 2..<4"),
            (1, 1, 4, 0, "uniform", "units 0..<1, 1..<2, 2..<3, 3..<4"),
            (2, 1, 2, 0, "parameters", "units 0..<2, 2..<4"),
            (2, 1, 2, 1, "parameters", "units 0..<2, 2..<4"),
            (1, 2, 2, 0, "parameters", "units 0..<2, 2..<4"),
            (2, 1, 2, 2, "parameters", "units 0..<2, 2..<4"),
            (2, 1, 2, 3, "parameters", "units 0..<2, 2..<4"),
        ]
        for l in layouts {
            let name = "dp\(l.dp)-tp\(l.tp)-pp\(l.pp)-zero\(l.stage)-\(l.method.prefix(4))"
            let run = try MPIRun.run(ranks: l.dp * l.tp * l.pp, collie, ["train", config.path]
                                     + layout(dp: l.dp, tp: l.tp, pp: l.pp, stage: l.stage, method: l.method, output: name),
                                     in: folder)
            XCTAssertEqual(run.status, 0, "\(name):\n\(run.output)")
            XCTAssertTrue(run.output.contains("pipeline parallel: \(l.pp) stages (\(l.stages))"), "\(name):\n\(run.output)")
            try ParallelTrainRun.assertSameRun(folder.appendingPathComponent(name), as: reference, name)
        }
    }

    /// The other families' blocks (InternLM2, ChatGLM2 with multi-query groups, MOSS's parallel attention and MLP,
    /// ChatGLM-6B, whose positions every stage reads from the batch's ids) are units as LLaMA's are: pp = 2 equals one
    /// process. ChatGLM-6B trains on rows in its own form (context with [gMASK] or [MASK], sop, answer, eop; loss on
    /// the answer), padded in batches, so every stage attends over each row's context in both directions.
    func testOtherFamiliesUnderPipelineParallelismMatchOneProcess() throws {
        let folder = try temporaryFolder(for: self)
        let config = try ParallelTrainRun.makeConfig(in: folder)
        let collie = try CollieExecutable.url()
        var generator = RandomGenerator(seed: 9)
        func tokens(_ count: Int) -> [Int] { (0..<count).map { _ in 3 + Int(generator.next() % 61) } }
        let glmRows = (0..<20).map { index -> (tokens: [Int], labels: [Int]?) in
            var context = tokens(2 + index % 6)
            if index % 3 == 0 { context.insert(140, at: 1) } else { context.append(141) }   // [MASK] inside, or [gMASK] last
            let prompt = context + [144], answer = tokens(2 + index % 5) + [145]                // sop, …, eop
            return (prompt + answer, [Int](repeating: -100, count: prompt.count) + answer)
        }
        try writeTokenRecords(glmRows, to: folder.appendingPathComponent("glm.jsonl"))
        for family in ["internlm2", "chatglm_mqa", "moss", "chatglm6b"] {
            let model = ModelFixtures.folder(family)
            let common = ["--set", "model=\(model.path)"] + (family == "chatglm6b" ? ["--set", "train_data=glm.jsonl"] : [])
            let one = try MPIRun.runProcess(collie, ["train", config.path, "--set", "output_dir=\(family)-one"] + common, in: folder)
            XCTAssertEqual(one.status, 0, one.output)
            let run = try MPIRun.run(ranks: 2, collie, ["train", config.path] + layout(dp: 1, pp: 2, output: "\(family)-pp2") + common,
                                     in: folder)
            XCTAssertEqual(run.status, 0, "\(family):\n\(run.output)")
            try ParallelTrainRun.assertSameRun(folder.appendingPathComponent("\(family)-pp2"),
                                               as: folder.appendingPathComponent("\(family)-one"), "\(family)-pp2",
                                               initial: model.appendingPathComponent("model.safetensors"))
        }
    }

    /// Evaluation during and after training runs eval_data's batches through the stages (no rank gathers the whole
    /// model for it), each dp group its share, so the held-out loss and training equal one process's; padding-free
    /// batches, packed on every stage, too.
    func testEvaluationThroughThePipelineMatchesOneProcess() throws {
        let folder = try temporaryFolder(for: self)
        let config = try ParallelTrainRun.makeConfig(in: folder, extra: "eval_split: 0.2\neval_per_n_steps: 2")
        let collie = try CollieExecutable.url()
        let one = try MPIRun.runProcess(collie, ["train", config.path, "--set", "output_dir=one"], in: folder)
        XCTAssertEqual(one.status, 0, one.output)
        let evaluations = { (output: String) in output.split(separator: "\n").filter { $0.contains("perplexity") } }
        XCTAssertGreaterThanOrEqual(evaluations(one.output).count, 2, one.output)
        // Padding-free batches too (each stage attending within the packed sequences): the padded run's numbers.
        for (dp, tp, pp, packed) in [(1, 1, 2, false), (2, 1, 2, false), (1, 2, 2, false), (2, 1, 2, true)] {
            let name = "dp\(dp)-tp\(tp)-pp\(pp)" + (packed ? "-padding-free" : "")
            let run = try MPIRun.run(ranks: dp * tp * pp, collie, ["train", config.path] + layout(dp: dp, tp: tp, pp: pp, output: name)
                                     + (packed ? ["--set", "padding_free=true"] : []), in: folder)
            XCTAssertEqual(run.status, 0, run.output)
            try ParallelTrainRun.assertSameRun(folder.appendingPathComponent(name), as: folder.appendingPathComponent("one"), name)
            let got = try ParallelTrainRun.evaluationMetrics(folder.appendingPathComponent(name))
            let want = try ParallelTrainRun.evaluationMetrics(folder.appendingPathComponent("one"))
            XCTAssertEqual(Set(got.keys), Set(want.keys), name)
            for (key, value) in want { XCTAssertEqual(got[key] ?? .nan, value, accuracy: 1e-5 * abs(value), "\(name) \(key)") }
        }
    }

    /// Evaluators run through the stages (no rank gathers the whole model): their forwards and their KV-cache
    /// decoding give one process's metrics at pp = 2, dp = 2 × pp = 2 and tp = 2 × pp = 2 (each rank on its slices:
    /// vocabulary-parallel losses, its heads' keys and values in the cache, the next token's logits gathered), and at
    /// dp = 2 × pp = 2 with ZeRO-3 (each stage's parameters gathered over its dp group while they run).
    func testEvaluatorsThroughThePipelineMatchOneProcess() throws {
        let folder = try temporaryFolder(for: self)
        let config = try ParallelTrainRun.makeEvaluatorConfig(in: folder, extra: "max_steps: 2")
        let collie = try CollieExecutable.url()
        let preset = ["--set", "model=tiny"]   // LLaMA-2's vocabulary, so that the evaluators generate text
        let one = try MPIRun.runProcess(collie, ["train", config.path, "--set", "output_dir=one"] + preset, in: folder)
        XCTAssertEqual(one.status, 0, one.output)
        let want = try ParallelTrainRun.evaluationMetrics(folder.appendingPathComponent("one"))
        XCTAssertNotNil(want["2 gen/bleu"], "\(want)")
        XCTAssertNotNil(want["2 cls/accuracy"], "\(want)")
        for (dp, tp, pp, stage) in [(1, 1, 2, 0), (2, 1, 2, 0), (1, 2, 2, 0), (2, 1, 2, 3)] {
            let name = "dp\(dp)-tp\(tp)-pp\(pp)-zero\(stage)"
            let run = try MPIRun.run(ranks: dp * tp * pp, collie, ["train", config.path, "--set", "pp_size=\(pp)", "--set", "dp_size=\(dp)",
                                                                   "--set", "tp_size=\(tp)", "--set", "train_micro_batch_size=\(2 / dp)",
                                                                   "--set", "ds_config.zero_optimization.stage=\(stage)",
                                                                   "--set", "output_dir=\(name)"] + preset, in: folder)
            XCTAssertEqual(run.status, 0, run.output)
            let got = try ParallelTrainRun.evaluationMetrics(folder.appendingPathComponent(name))
            XCTAssertEqual(Set(got.keys), Set(want.keys), name)
            for (key, value) in want { XCTAssertEqual(got[key] ?? .nan, value, accuracy: 1e-5 * max(1, abs(value)), "\(name) \(key)") }
        }
    }

    /// AdaLomo and LOMO update each parameter inside backward: the batch goes forward through the stages once and
    /// each backward pass (the clipping norm's, summed over the stages, then the update's) back through them; also on
    /// padding-free batches, and at ZeRO-3 over the dp group (each stage's layers gathered for each pass).
    func testInBackwardOptimizersMatchOneProcess() throws {
        let folder = try temporaryFolder(for: self)
        let config = try ParallelTrainRun.makeConfig(in: folder)
        let collie = try CollieExecutable.url()
        for optimizer in ["{name: adalomo, lr: 1.0e-2}", "{name: lomo, lr: 1.0e-2}"] {
            let kind = optimizer.contains("adalomo") ? "adalomo" : "lomo"
            let common = ["--set", "optimizer=\(optimizer)", "--set", "gradient_accumulation_steps=1"]
            let one = try MPIRun.runProcess(collie, ["train", config.path, "--set", "output_dir=\(kind)-one"] + common, in: folder)
            XCTAssertEqual(one.status, 0, one.output)
            for (dp, tp, pp, stage, packed) in [(1, 1, 2, 0, false), (2, 1, 2, 0, false), (1, 2, 2, 0, false), (1, 1, 2, 0, true),
                                                (2, 1, 2, 3, false)] {
                let name = "\(kind)-dp\(dp)-tp\(tp)-pp\(pp)-zero\(stage)" + (packed ? "-padding-free" : "")
                let run = try MPIRun.run(ranks: dp * tp * pp, collie,
                                         ["train", config.path] + layout(dp: dp, tp: tp, pp: pp, stage: stage, output: name) + common
                                         + (packed ? ["--set", "padding_free=true"] : []), in: folder)
                XCTAssertEqual(run.status, 0, "\(name):\n\(run.output)")
                try ParallelTrainRun.assertSameRun(folder.appendingPathComponent(name),
                                                   as: folder.appendingPathComponent("\(kind)-one"), name)
            }
        }
    }

    /// LOMO and AdaLomo on a model with a tied embedding: the first stage holds it as the embedding, the last as the
    /// output projection; each keeps its part of the gradient until the backward pass has gone through every stage,
    /// then both sum them, count the sum once in the norm and apply the same update. pp 2 and dp 2 × pp 2 equal one
    /// process.
    func testInBackwardOptimizersWithATiedEmbeddingMatchOneProcess() throws {
        let folder = try temporaryFolder(for: self)
        let config = try ParallelTrainRun.makeConfig(in: folder)
        let collie = try CollieExecutable.url()
        let model = ModelFixtures.folder("llama_tied")
        for optimizer in ["{name: adalomo, lr: 1.0e-2}", "{name: lomo, lr: 1.0e-2}"] {
            let kind = optimizer.contains("adalomo") ? "adalomo" : "lomo"
            let common = ["--set", "model=\(model.path)", "--set", "optimizer=\(optimizer)", "--set", "gradient_accumulation_steps=1"]
            let one = try MPIRun.runProcess(collie, ["train", config.path, "--set", "output_dir=tied-\(kind)-one"] + common, in: folder)
            XCTAssertEqual(one.status, 0, one.output)
            for (dp, pp) in [(1, 2), (2, 2)] {
                let name = "tied-\(kind)-dp\(dp)-pp\(pp)"
                let run = try MPIRun.run(ranks: dp * pp, collie,
                                         ["train", config.path] + layout(dp: dp, tp: 1, pp: pp, output: name) + common, in: folder)
                XCTAssertEqual(run.status, 0, "\(name):\n\(run.output)")
                try ParallelTrainRun.assertSameRun(folder.appendingPathComponent(name),
                                                   as: folder.appendingPathComponent("tied-\(kind)-one"), name,
                                                   initial: model.appendingPathComponent("model.safetensors"))
            }
        }
    }

    /// AdamW at ZeRO-1 and ZeRO-2 on a model with a tied embedding: both stages' halves of its gradient are summed after
    /// backward; at stage 2 it stays out of the buckets (its whole gradient kept through the micro-batches) and is
    /// reduce-scattered into the shards after the sum. dp 2 × pp 2 equals one process.
    func testZeroWithATiedEmbeddingMatchesOneProcess() throws {
        let folder = try temporaryFolder(for: self)
        let config = try ParallelTrainRun.makeConfig(in: folder)
        let collie = try CollieExecutable.url()
        let model = ModelFixtures.folder("llama_tied")
        let common = ["--set", "model=\(model.path)"]
        let one = try MPIRun.runProcess(collie, ["train", config.path, "--set", "output_dir=tied-one"] + common, in: folder)
        XCTAssertEqual(one.status, 0, one.output)
        for stage in [1, 2] {
            let name = "tied-dp2-pp2-zero\(stage)"
            let run = try MPIRun.run(ranks: 4, collie, ["train", config.path] + layout(dp: 2, pp: 2, stage: stage, output: name) + common,
                                     in: folder)
            XCTAssertEqual(run.status, 0, "\(name):\n\(run.output)")
            try ParallelTrainRun.assertSameRun(folder.appendingPathComponent(name), as: folder.appendingPathComponent("tied-one"), name,
                                               initial: model.appendingPathComponent("model.safetensors"))
        }
    }

    /// LoRA on every linear layer: each stage trains its own units' adapters over its own frozen base weights. With
    /// LoRA's dropout and the model's (`dropout`, which o_proj's adapter reads dropped out), every stage and tp rank
    /// draws one process's masks.
    func testLoRAUnderPipelineParallelismMatchesOneProcess() throws {
        let folder = try temporaryFolder(for: self)
        let config = try ParallelTrainRun.makeConfig(in: folder)
        let collie = try CollieExecutable.url()
        let common = ["--set", "peft_config={peft_type: LORA, r: 4, lora_alpha: 8, lora_dropout: 0.1, "
                      + "target_modules: [q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]}", "--set", "dropout=0.1"]
        let one = try MPIRun.runProcess(collie, ["train", config.path, "--set", "output_dir=lora-one"] + common, in: folder)
        XCTAssertEqual(one.status, 0, one.output)
        let initial = try ParallelTrainRun.initialAdapter(config: config, arguments: common, in: folder)
        for (dp, tp, pp) in [(1, 1, 2), (1, 2, 2)] {
            let name = "lora-dp\(dp)-tp\(tp)-pp\(pp)"
            let run = try MPIRun.run(ranks: dp * tp * pp, collie,
                                     ["train", config.path] + layout(dp: dp, tp: tp, pp: pp, output: name) + common, in: folder)
            XCTAssertEqual(run.status, 0, "\(name):\n\(run.output)")
            try ParallelTrainRun.assertSameRun(folder.appendingPathComponent(name), as: folder.appendingPathComponent("lora-one"),
                                               name, weights: "adapter_model.safetensors", initial: initial)
        }
    }

    /// Under ZeRO 1–3 the dp group's optimizer shards (at 3 also the parameters) are gathered into one process's
    /// state and model too: a dp = 2 × pp = 2 checkpoint of any stage resumes at tp = 2 and at dp = 2 × tp = 2 with
    /// ZeRO-1, and one process's checkpoint at dp = 2 × pp = 2 with ZeRO-3, equal to the uninterrupted one process.
    func testZeroCheckpointsUnderPipelineParallelismResumeOnOtherLayouts() throws {
        let folder = try temporaryFolder(for: self)
        let config = try ParallelTrainRun.makeConfig(in: folder, extra: "callbacks: {checkpoint: {every_n_batches: 3}}")
        let collie = try CollieExecutable.url()
        let one = try MPIRun.runProcess(collie, ["train", config.path, "--set", "output_dir=one"], in: folder)
        XCTAssertEqual(one.status, 0, one.output)
        let reference = folder.appendingPathComponent("one")
        for written in [1, 2, 3] {
            let source = "dp2-pp2-zero\(written)"
            let run = try MPIRun.run(ranks: 4, collie, ["train", config.path] + layout(dp: 2, pp: 2, stage: written, output: source),
                                     in: folder)
            XCTAssertEqual(run.status, 0, run.output)
            try ParallelTrainRun.assertSameRun(folder.appendingPathComponent(source), as: reference, source)
            XCTAssertEqual(try SafeTensorsFile(url: folder.appendingPathComponent("\(source)/checkpoint-3/optimizer.safetensors")).names,
                           try SafeTensorsFile(url: reference.appendingPathComponent("checkpoint-3/optimizer.safetensors")).names)
            for (dp, tp, stage) in [(1, 2, 0), (2, 2, 1)] {
                let name = "\(source)-on-dp\(dp)-tp\(tp)-zero\(stage)"
                let output = try ParallelTrainRun.resume(source, config: config, ranks: dp * tp, as: name,
                                                         arguments: layout(dp: dp, tp: tp, pp: 1, stage: stage, output: name), in: folder)
                try ParallelTrainRun.assertSameRun(output, as: reference, name)
            }
        }
        let output = try ParallelTrainRun.resume("one", config: config, ranks: 4, as: "one-on-dp2-pp2-zero3",
                                                 arguments: layout(dp: 2, pp: 2, stage: 3, output: "one-on-dp2-pp2-zero3"), in: folder)
        try ParallelTrainRun.assertSameRun(output, as: reference, "one-on-dp2-pp2-zero3")
    }

    /// A LoRA run's checkpoints hold the adapter (PEFT's folder) and one process's optimizer state over it: a
    /// tp = 2 × pp = 2 checkpoint resumes on one process, and one process's at tp = 2 and at pp = 2.
    /// Prompt tuning: the first stage trains the virtual tokens and puts them in front of each micro-batch; every stage
    /// runs n + T positions; the other stages train nothing but pass the gradient back. pp 2, dp 2 × pp 2 (also at
    /// ZeRO-2) and tp 2 × pp 2 equal one process (AdamW over two micro-batches, and AdaLomo), with eval_data's loss
    /// through the stages; a pp 2 checkpoint resumes on one process and one process's at pp 2.
    func testPromptTuningUnderPipelineParallelismMatchesOneProcess() throws {
        let folder = try temporaryFolder(for: self)
        let config = try ParallelTrainRun.makeConfig(in: folder, extra: "eval_split: 0.2\neval_per_n_steps: 2")
        let collie = try CollieExecutable.url()
        let prompt = ["--set", "peft_config={peft_type: PROMPT_TUNING, num_virtual_tokens: 4}",
                      "--set", "callbacks={checkpoint: {every_n_batches: 3}}"]
        // The virtual tokens' random start, so that the runs' updates are compared (not their values).
        let start = try MPIRun.runProcess(collie, ["train", config.path, "--set", "output_dir=start", "--set", "optimizer.lr=0"] + prompt,
                                          in: folder)
        XCTAssertEqual(start.status, 0, start.output)
        let initial = folder.appendingPathComponent("start/final/adapter_model.safetensors")
        for (kind, optimizer) in [("adamw", [String]()),
                                  ("adalomo", ["--set", "optimizer={name: adalomo, lr: 1.0e-2}", "--set", "gradient_accumulation_steps=1"])] {
            let common = prompt + optimizer
            let one = try MPIRun.runProcess(collie, ["train", config.path, "--set", "output_dir=\(kind)-one"] + common, in: folder)
            XCTAssertEqual(one.status, 0, one.output)
            let reference = folder.appendingPathComponent("\(kind)-one")
            // At ZeRO-2 the later stages' dp groups shard an empty buffer (they train nothing).
            let layouts = kind == "adamw" ? [(1, 1, 2, 0), (2, 1, 2, 0), (1, 2, 2, 0), (2, 1, 2, 2)] : [(1, 1, 2, 0)]
            for (dp, tp, pp, stage) in layouts {
                let name = "\(kind)-dp\(dp)-tp\(tp)-pp\(pp)-zero\(stage)"
                let run = try MPIRun.run(ranks: dp * tp * pp, collie, ["train", config.path]
                                         + layout(dp: dp, tp: tp, pp: pp, stage: stage, output: name) + common, in: folder)
                XCTAssertEqual(run.status, 0, "\(name):\n\(run.output)")
                try ParallelTrainRun.assertSameRun(folder.appendingPathComponent(name), as: reference, name,
                                                   weights: "adapter_model.safetensors", initial: initial)
                let got = try ParallelTrainRun.evaluationMetrics(folder.appendingPathComponent(name))
                let want = try ParallelTrainRun.evaluationMetrics(reference)
                XCTAssertEqual(Set(got.keys), Set(want.keys), name)
                for (key, value) in want { XCTAssertEqual(got[key] ?? .nan, value, accuracy: 1e-5 * abs(value), "\(name) \(key)") }
            }
            guard kind == "adamw" else { continue }
            for (name, from, pp) in [("pp2-on-1", "adamw-dp1-tp1-pp2-zero0", 1), ("one-on-pp2", "adamw-one", 2)] {
                let output = try ParallelTrainRun.resume(from, config: config, ranks: pp, as: name,
                                                         arguments: layout(dp: 1, pp: pp, output: name) + common, in: folder)
                try ParallelTrainRun.assertSameRun(output, as: reference, name, weights: "adapter_model.safetensors", initial: initial)
            }
        }
    }

    func testLoRACheckpointsResumeOnOtherLayouts() throws {
        let folder = try temporaryFolder(for: self)
        let config = try ParallelTrainRun.makeConfig(in: folder, extra: "callbacks: {checkpoint: {every_n_batches: 3}}")
        let collie = try CollieExecutable.url()
        let common = ["--set", "peft_config={peft_type: LORA, r: 4, lora_alpha: 8, lora_dropout: 0.0, "
                      + "target_modules: [q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]}"]
        let one = try MPIRun.runProcess(collie, ["train", config.path, "--set", "output_dir=one"] + common, in: folder)
        XCTAssertEqual(one.status, 0, one.output)
        let reference = folder.appendingPathComponent("one")
        let initial = try ParallelTrainRun.initialAdapter(config: config, arguments: common, in: folder)
        let both = try MPIRun.run(ranks: 4, collie, ["train", config.path] + layout(dp: 1, tp: 2, pp: 2, output: "tp2-pp2") + common,
                                  in: folder)
        XCTAssertEqual(both.status, 0, both.output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent("tp2-pp2/checkpoint-3/adapter_model.safetensors").path))
        for (name, from, tp, pp) in [("tp2-pp2-on-1", "tp2-pp2", 1, 1), ("one-on-tp2", "one", 2, 1), ("one-on-pp2", "one", 1, 2)] {
            let output = try ParallelTrainRun.resume(from, config: config, ranks: tp * pp, as: name,
                                                     arguments: layout(dp: 1, tp: tp, pp: pp, output: name) + common, in: folder)
            try ParallelTrainRun.assertSameRun(output, as: reference, name, weights: "adapter_model.safetensors", initial: initial)
        }
    }

    /// Checkpoints under pipeline (and tensor) parallelism hold the whole model and one process's optimizer state, so
    /// a tp = 2 × pp = 2 checkpoint resumes at dp = 4 and on one process, and one process's checkpoint resumes at
    /// pp = 2 and at tp = 2 × pp = 2, each with the losses and final weights of the uninterrupted one-process run.
    func testCheckpointsResumeOnOtherLayouts() throws {
        let folder = try temporaryFolder(for: self)
        let config = try ParallelTrainRun.makeConfig(in: folder, extra: "callbacks: {checkpoint: {every_n_batches: 3}}")
        let collie = try CollieExecutable.url()
        let one = try MPIRun.runProcess(collie, ["train", config.path, "--set", "output_dir=one"], in: folder)
        XCTAssertEqual(one.status, 0, one.output)
        let reference = folder.appendingPathComponent("one")
        let both = try MPIRun.run(ranks: 4, collie, ["train", config.path] + layout(dp: 1, tp: 2, pp: 2, output: "tp2-pp2"),
                                  in: folder)
        XCTAssertEqual(both.status, 0, both.output)
        try ParallelTrainRun.assertSameRun(folder.appendingPathComponent("tp2-pp2"), as: reference, "tp2-pp2 with checkpoints")
        let saved = folder.appendingPathComponent("tp2-pp2/checkpoint-3")
        XCTAssertEqual(try SafeTensorsFile(url: saved.appendingPathComponent("model.safetensors")).names,
                       try SafeTensorsFile(url: reference.appendingPathComponent("checkpoint-3/model.safetensors")).names)
        XCTAssertEqual(try SafeTensorsFile(url: saved.appendingPathComponent("optimizer.safetensors")).names,
                       try SafeTensorsFile(url: reference.appendingPathComponent("checkpoint-3/optimizer.safetensors")).names,
                       "one process's optimizer state")
        for (name, from, dp, tp, pp) in [("tp2-pp2-on-dp4", "tp2-pp2", 4, 1, 1), ("tp2-pp2-on-1", "tp2-pp2", 1, 1, 1),
                                         ("one-on-pp2", "one", 1, 1, 2), ("one-on-tp2-pp2", "one", 1, 2, 2)] {
            let output = try ParallelTrainRun.resume(from, config: config, ranks: dp * tp * pp, as: name,
                                                     arguments: layout(dp: dp, tp: tp, pp: pp, output: name), in: folder)
            try ParallelTrainRun.assertSameRun(output, as: reference, name)
        }
    }

    func testUnsupportedPipelineLayoutsAreClearErrors() throws {
        let folder = try temporaryFolder(for: self)
        let config = try ParallelTrainRun.makeConfig(in: folder)
        let collie = try CollieExecutable.url()
        let cases: [(ranks: Int, settings: [String], message: String)] = [
            (5, ["pp_size=5"], "pp_size: 5 stages for a model of 4 units (the embedding, 2 blocks, the head); use pp_size ≤ 4"),
            (2, ["pp_size=2", "pp_partition_method=type:MossBlock"],
             "pp_partition_method: type:MossBlock matches none of the model's units (Embedding, LMHead, LlamaDecoderLayer)"),
            (1, ["pp_partition_method=balanced"], "pp_partition_method is `parameters`, `uniform` or `type:REGEX`, not `balanced`"),
        ]
        for c in cases {
            let arguments = ["train", config.path, "--set", "output_dir=bad"] + c.settings.flatMap { ["--set", $0] }
            let run = c.ranks == 1 ? try MPIRun.runProcess(collie, arguments, in: folder)
                                   : try MPIRun.run(ranks: c.ranks, collie, arguments, in: folder)
            XCTAssertNotEqual(run.status, 0, c.message)
            XCTAssertTrue(run.output.contains(c.message), "expected \(c.message):\n\(run.output)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("bad").path), "nothing is written")
    }
}
