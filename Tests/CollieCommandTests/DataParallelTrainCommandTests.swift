import CollieEngine
import CollieIO
import CollieTestSupport
import XCTest

/// `mpirun -np N collie train` as a user runs it: data parallelism and ZeRO stages 1–3 with AdamW on 2 and 4
/// processes give the losses and final parameters of one process with the same global batch; a dp = 2 ZeRO
/// checkpoint resumes on 1 and on 4 processes; wrong sizes are clear errors.
///
/// Tolerance (fp32; only the order of the gradient sums differs): losses within 1e-5 relative (measured ≤ 1e-7),
/// and the final parameters' updates (final − initial weights) within 1e-4 relative L2 of one another (measured
/// 5e-6 to 1e-5 with AdamW's ε = 1e-6; with ε = 1e-8 Adam's division by √v magnifies the rounding of near-zero
/// gradients to 2e-4, while SGD runs agree to 1.2e-7 absolute).
final class DataParallelTrainCommandTests: XCTestCase {
    /// `--set` overrides for `ranks` processes sharing a global micro-batch of 4 at ZeRO `stage`.
    private func layout(ranks: Int, stage: Int, output: String) -> [String] {
        ["--set", "dp_size=\(ranks)", "--set", "train_micro_batch_size=\(4 / ranks)",
         "--set", "ds_config.zero_optimization.stage=\(stage)", "--set", "output_dir=\(output)"]
    }

    func testDataParallelAndZeroMatchOneProcess() throws {
        let folder = try temporaryFolder(for: self)
        let config = try ParallelTrainRun.makeConfig(in: folder, extra: "callbacks: {checkpoint: {every_n_batches: 3}}")
        let collie = try CollieExecutable.url()
        let one = try MPIRun.runProcess(collie, ["train", config.path, "--set", "output_dir=one"], in: folder)
        XCTAssertEqual(one.status, 0, one.output)
        let reference = folder.appendingPathComponent("one")
        XCTAssertEqual(try ParallelTrainRun.losses(reference).count, 6)

        for (ranks, stage) in [(2, 0), (2, 1), (2, 2), (2, 3), (4, 0), (4, 1), (4, 2), (4, 3)] {
            let name = "dp\(ranks)-zero\(stage)"
            let run = try MPIRun.run(ranks: ranks, collie, ["train", config.path] + layout(ranks: ranks, stage: stage, output: name),
                                     in: folder)
            XCTAssertEqual(run.status, 0, "\(name):\n\(run.output)")
            try ParallelTrainRun.assertSameRun(folder.appendingPathComponent(name), as: reference, name)
            if stage > 0 {
                let shards = folder.appendingPathComponent("\(name)/checkpoint-3/zero_optimizer")
                for rank in 0..<ranks {
                    XCTAssertTrue(FileManager.default.fileExists(
                        atPath: shards.appendingPathComponent("rank-\(rank)/optimizer.safetensors").path), name)
                }
            }
        }
    }

    func testAdaLomoAndLOMOUnderDataParallelismAndZeroThreeMatchOneProcess() throws {
        let folder = try temporaryFolder(for: self)
        let config = try ParallelTrainRun.makeConfig(in: folder, extra: "callbacks: {checkpoint: {every_n_batches: 3}}")
        let collie = try CollieExecutable.url()
        // In-backward optimizers take one micro-batch per update; AdaLomo clips by the global norm (two passes).
        for (kind, optimizer) in [("adalomo", "{name: adalomo, lr: 1.0e-2}"),
                                  ("lomo", "{name: lomo, lr: 5.0e-2, weight_decay: 0.01}")] {
            let common = ["--set", "optimizer=\(optimizer)", "--set", "gradient_accumulation_steps=1"]
            let one = try MPIRun.runProcess(collie, ["train", config.path, "--set", "output_dir=\(kind)-one"] + common,
                                            in: folder)
            XCTAssertEqual(one.status, 0, one.output)
            XCTAssertEqual(try ParallelTrainRun.losses(folder.appendingPathComponent("\(kind)-one")).count, 10)
            for (ranks, stage) in [(2, 0), (4, 0), (2, 3)] {
                let name = "\(kind)-dp\(ranks)-zero\(stage)"
                let run = try MPIRun.run(ranks: ranks, collie, ["train", config.path] + layout(ranks: ranks, stage: stage, output: name)
                                         + common, in: folder)
                XCTAssertEqual(run.status, 0, "\(optimizer) \(name):\n\(run.output)")
                try ParallelTrainRun.assertSameRun(folder.appendingPathComponent(name), as: folder.appendingPathComponent("\(kind)-one"), name)
            }
        }
    }

    /// ZeRO over the flat buffer is the same for every family: InternLM2, ChatGLM2, ChatGLM-6B and MOSS at dp 2 with
    /// ZeRO-2 and ZeRO-3 (parameters gathered per unit of each family's own blocks) equal one process.
    func testEveryFamilyUnderZeroMatchesOneProcess() throws {
        let folder = try temporaryFolder(for: self)
        let config = try ParallelTrainRun.makeConfig(in: folder)
        let collie = try CollieExecutable.url()
        for variant in ["internlm2", "chatglm2", "chatglm6b", "moss"] {
            let model = ModelFixtures.folder(variant)
            // At lr 1e-2 InternLM2's loss parts from one process's by 5.5e-6 (the sums' order, magnified by Adam): a
            // smaller rate keeps the comparison well inside its tolerance on every CPU.
            let common = ["--set", "model=\(model.path)", "--set", "optimizer={name: adamw, lr: 3.0e-3, eps: 1.0e-6}"]
            let one = try MPIRun.runProcess(collie, ["train", config.path, "--set", "output_dir=\(variant)-one"] + common, in: folder)
            XCTAssertEqual(one.status, 0, one.output)
            for stage in [2, 3] {
                let name = "\(variant)-dp2-zero\(stage)"
                let run = try MPIRun.run(ranks: 2, collie, ["train", config.path] + layout(ranks: 2, stage: stage, output: name) + common,
                                         in: folder)
                XCTAssertEqual(run.status, 0, "\(name):\n\(run.output)")
                // ChatGLM2's key bias has a zero gradient in exact arithmetic: Adam's update of it is scaled rounding noise.
                try ParallelTrainRun.assertSameRun(folder.appendingPathComponent(name), as: folder.appendingPathComponent("\(variant)-one"),
                                                    name, initial: model.appendingPathComponent("model.safetensors"),
                                                    uncompared: { variant == "chatglm2" && $0.hasSuffix("query_key_value.bias") })
            }
        }
    }

    /// SophiaG in every layout: its Hessian refresh (labels sampled from the model's own distribution) draws the whole
    /// group's numbers on every rank in one process's order and uses those of its own rows (dp), samples from the
    /// vocabulary-split logits gathered a few rows at a time with the vocabulary-parallel loss (tp), and runs through
    /// the stages with the last one sampling (pp); at ZeRO stages 1–3 the sampled-label gradients are reduced into each
    /// rank's shard as the step's are, and the Hessian estimate is sharded with the moments. dp 2, dp 4, tp 2, pp 2,
    /// tp 2 × pp 2 and dp 2 at stages 1, 2 and 3 equal one process, the refresh every 2 updates; a stage-2 checkpoint
    /// (after update 3, between refreshes) resumes on one process and on 4 at stage 1 as the run went on.
    func testSophiaGInEveryLayoutMatchesOneProcess() throws {
        let folder = try temporaryFolder(for: self)
        let config = try ParallelTrainRun.makeConfig(in: folder, extra: "callbacks: {checkpoint: {every_n_batches: 3}}")
        let collie = try CollieExecutable.url()
        let common = ["--set", "optimizer={name: sophiag, lr: 3.0e-3, hessian_update_interval: 2}"]
        let one = try MPIRun.runProcess(collie, ["train", config.path, "--set", "output_dir=sophia-one"] + common, in: folder)
        XCTAssertEqual(one.status, 0, one.output)
        let reference = folder.appendingPathComponent("sophia-one")
        let zero = { (stage: Int) in ["dp_size=2", "train_micro_batch_size=2", "ds_config.zero_optimization.stage=\(stage)"] }
        for (name, ranks, sizes) in [("dp2", 2, ["dp_size=2", "train_micro_batch_size=2"]), ("dp4", 4, ["dp_size=4", "train_micro_batch_size=1"]),
                                     ("tp2", 2, ["tp_size=2"]), ("pp2", 2, ["pp_size=2"]), ("tp2-pp2", 4, ["tp_size=2", "pp_size=2"]),
                                     ("dp2-zero1", 2, zero(1)), ("dp2-zero2", 2, zero(2)), ("dp2-zero3", 2, zero(3))] {
            let run = try MPIRun.run(ranks: ranks, collie, ["train", config.path, "--set", "output_dir=sophia-\(name)"]
                                     + sizes.flatMap { ["--set", $0] } + common, in: folder)
            XCTAssertEqual(run.status, 0, "\(name):\n\(run.output)")
            try ParallelTrainRun.assertSameRun(folder.appendingPathComponent("sophia-\(name)"), as: reference, "sophiag \(name)")
        }
        let shards = folder.appendingPathComponent("sophia-dp2-zero2/checkpoint-3/zero_optimizer")
        for rank in 0..<2 {
            let state = try SafeTensorsFile(url: shards.appendingPathComponent("rank-\(rank)/optimizer.safetensors"))
            XCTAssertEqual(Set(state.names).intersection(["flat.exp_avg", "flat.hessian"]).count, 2, "rank \(rank)")
        }
        for (ranks, stage) in [(1, 0), (4, 1)] {
            let name = "sophia-resumed-on-\(ranks)-zero\(stage)"
            let output = try ParallelTrainRun.resume("sophia-dp2-zero2", config: config, ranks: ranks, as: name,
                                                     arguments: layout(ranks: ranks, stage: stage, output: name) + common, in: folder)
            try ParallelTrainRun.assertSameRun(output, as: reference, name)
        }
    }

    /// The same command across two hosts: one process in each of two network namespaces (a veth pair between
    /// them, private addresses), `mpirun` over TCP with no shared memory between the "hosts"; the gradients'
    /// all-reduce crosses the link and the run equals one process.
    func testDataParallelAcrossTwoHostsMatchesOneProcess() throws {
        guard getuid() == 0 else { throw XCTSkip("creating network namespaces needs root (ip netns add)") }
        let folder = try temporaryFolder(for: self)
        let config = try ParallelTrainRun.makeConfig(in: folder, extra: "callbacks: {checkpoint: {every_n_batches: 3}}")
        let collie = try CollieExecutable.url()
        let one = try MPIRun.runProcess(collie, ["train", config.path, "--set", "output_dir=one"], in: folder)
        XCTAssertEqual(one.status, 0, one.output)

        let hosts = try NetworkNamespaces(in: folder)
        defer { hosts.remove() }
        let before = try hosts.bytesReceived(byHost: 1)
        let run = try hosts.mpirun(collie, ["train", config.path] + layout(ranks: 2, stage: 1, output: "two-hosts"), in: folder)
        XCTAssertEqual(run.status, 0, run.output)
        try ParallelTrainRun.assertSameRun(folder.appendingPathComponent("two-hosts"), as: folder.appendingPathComponent("one"), "two hosts")
        // Six updates each all-reduce (reduce-scatter, then gather) a gradient the size of the model.
        let model = try FileManager.default.attributesOfItem(
            atPath: Fixtures.model.appendingPathComponent("model.safetensors").path)[.size] as! Int
        let received = try hosts.bytesReceived(byHost: 1) - before
        XCTAssertGreaterThan(received, 3 * model, "the second host received \(received) bytes over the link")
    }

    func testZeroCheckpointOfTwoRanksResumesOnOneAndOnFour() throws {
        let folder = try temporaryFolder(for: self)
        let config = try ParallelTrainRun.makeConfig(in: folder, extra: "callbacks: {checkpoint: {every_n_batches: 3}}")
        let collie = try CollieExecutable.url()
        let one = try MPIRun.runProcess(collie, ["train", config.path, "--set", "output_dir=one"], in: folder)
        XCTAssertEqual(one.status, 0, one.output)
        let two = try MPIRun.run(ranks: 2, collie, ["train", config.path] + layout(ranks: 2, stage: 2, output: "two"), in: folder)
        XCTAssertEqual(two.status, 0, two.output)

        // The whole run's log is copied so that the resumed runs append to the first three updates.
        // Also under tensor and pipeline parallelism (tp 2 × pp 2; dp 2 × pp 2 with ZeRO-1): the shards become one
        // process's state, cut to each rank's stage and slices.
        for (ranks, stage, extra) in [(1, 0, []), (4, 1, []), (4, 3, []), (4, 0, ["tp_size=2", "pp_size=2", "dp_size=1", "train_micro_batch_size=4"]),
                                      (4, 1, ["pp_size=2", "dp_size=2", "train_micro_batch_size=2"])] {
            let name = "resumed-on-\(ranks)-zero\(stage)" + extra.map { "-" + $0.prefix(4) }.joined()
            let output = try ParallelTrainRun.resume("two", config: config, ranks: ranks, as: name,
                                                     arguments: layout(ranks: ranks, stage: stage, output: name)
                                                         + extra.flatMap { ["--set", $0] }, in: folder)
            try ParallelTrainRun.assertSameRun(output, as: folder.appendingPathComponent("one"), name)
        }
    }

    func testWrongProcessCountsAreClearErrors() throws {
        let folder = try temporaryFolder(for: self)
        let config = try ParallelTrainRun.makeConfig(in: folder, extra: "callbacks: {checkpoint: {every_n_batches: 3}}")
        let collie = try CollieExecutable.url()
        let alone = try MPIRun.runProcess(collie, ["train", config.path, "--set", "dp_size=2"], in: folder)
        XCTAssertNotEqual(alone.status, 0)
        XCTAssertTrue(alone.output.contains("dp_size: 2 needs 2 processes: launch with `mpirun -np 2 collie train"),
                      alone.output)
        let mismatch = try MPIRun.run(ranks: 2, collie, ["train", config.path, "--set", "dp_size=4"], in: folder)
        XCTAssertNotEqual(mismatch.status, 0)
        XCTAssertTrue(mismatch.output.contains("the run has 2 processes but dp_size × tp_size × pp_size = 4 × 1 × 1 = 4"),
                      mismatch.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("output").path),
                       "nothing is written")
    }
}
