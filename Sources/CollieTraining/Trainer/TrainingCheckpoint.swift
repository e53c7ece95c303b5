import CollieEngine
import CollieIO
import Foundation

/// A training checkpoint folder in `output_dir`: written from a trainer, read back so that training continues
/// exactly as the run that wrote it would have.
///
/// `checkpoint-<step>/` holds the model as a Hugging Face folder (`config.json`, `model.safetensors`, …:
/// `collie generate --model` and transformers read it as is; with a PEFT adapter, the adapter's folder), the
/// optimizer's state (`optimizer.json` + `optimizer.safetensors`, or under ZeRO one shard per rank in
/// `zero_optimizer/`, see `ShardedOptimizerState`), `scheduler.json`, `callback-<name>.json` per callback with
/// state, `config.yaml` (the run's config) and, written last, `trainer_state.json`, whose presence marks a
/// complete checkpoint. The folder is written with `AtomicFolder`, so every `checkpoint-<step>` that exists is
/// complete.
public struct TrainingCheckpoint: Sendable {
    /// The file that marks a complete checkpoint (written last).
    public static let stateFileName = "trainer_state.json"
    /// The learning-rate schedule's file.
    public static let scheduleFileName = "scheduler.json"
    /// The run's config, for reference (resuming reads the config given on the command line).
    public static let configFileName = "config.yaml"
    /// Folder name prefix of training checkpoints.
    public static let folderPrefix = "checkpoint-"

    /// The folder name of the checkpoint after `step` updates.
    public static func folderName(step: Int) -> String { folderPrefix + String(step) }

    /// The file of the callback named `name`.
    static func callbackFileName(_ name: String) -> String { "callback-\(name).json" }

    /// The complete checkpoints in `directory`, oldest (fewest steps) first.
    public static func checkpoints(in directory: URL) -> [(step: Int, url: URL)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.compactMap { name -> (Int, URL)? in
            guard name.hasPrefix(folderPrefix), let step = Int(name.dropFirst(folderPrefix.count)) else { return nil }
            let url = directory.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: url.appendingPathComponent(stateFileName).path) else { return nil }
            return (step, url)
        }.sorted { $0.0 < $1.0 }.map { (step: $0.0, url: $0.1) }
    }

    /// The complete checkpoint with the most steps in `directory`.
    public static func latest(in directory: URL) -> URL? { checkpoints(in: directory).last?.url }

    /// Sleeps for a minute when the environment variable `COLLIE_TEST_PAUSE_WRITING` names `destination`'s folder
    /// (`checkpoint-8`), so that a test can kill the process in the middle of writing it. Does nothing otherwise.
    public static func pauseIfRequested(writing destination: URL) {
        guard ProcessInfo.processInfo.environment["COLLIE_TEST_PAUSE_WRITING"] == destination.lastPathComponent else { return }
        Thread.sleep(forTimeInterval: 60)
    }

    // MARK: - Writing

    /// Writes `trainer`'s checkpoint to `output_dir/checkpoint-<step>`, replacing one of the same step, and returns
    /// that folder. Every rank calls it, with the whole model gathered (`DataParallelGroup.withFullParameters`).
    ///
    /// Under ZeRO every rank first writes its optimizer shard beside the checkpoint; rank 0 then writes the rest
    /// and moves the shards in before the folder is renamed into place.
    static func save(_ trainer: Trainer) throws -> URL {
        let destination = trainer.outputDirectory.appendingPathComponent(folderName(step: trainer.state.globalStep))
        var state = trainer.state
        state.randomState = trainer.randomGenerator.state
        let group = trainer.dataParallel, communicator = group.communicator
        let shards = trainer.outputDirectory.appendingPathComponent(".\(destination.lastPathComponent).partial-shards")
        // Tensor and pipeline parallelism: the model and the optimizer's state gathered as one process holds them
        // (every rank takes part; the world's main rank writes them). Under ZeRO-1 the dp group's shards are gathered
        // first.
        let tensorParallel = trainer.grid.tensorParallelSize > 1
        let consolidates = tensorParallel || trainer.pipeline != nil
        let whole = tensorParallel ? try trainer.model.gatheredCopy() : nil
        let parameters = group.buffer.parameters
        var optimizerState: OptimizerState?
        if consolidates {
            var stageState = trainer.optimizer.state()
            if group.shardParameter != nil { stageState = ShardedOptimizerState.gathered(stageState, group: group) }
            if tensorParallel {
                stageState = TensorParallelCheckpoint.consolidated(stageState, parameters: parameters,
                                                                   splits: trainer.model.tensorParallelSplits(of: parameters),
                                                                   communicator: trainer.grid.tensorParallel)
            }
            optimizerState = stageState
            if let pipeline = trainer.pipeline {
                let grid = trainer.grid, whole = trainer.model.trainableParameters.map(\.tensor)
                optimizerState = try PipelineParallelCheckpoint.gathered(
                    PipelineParallelCheckpoint.renamed(stageState, keys: PipelineParallelCheckpoint.wholeKeys(of: parameters, in: whole)),
                    pipeline: pipeline, writes: grid.dataParallel.isMain && grid.tensorParallel.isMain, world: grid.world,
                    keys: OptimizerState.parameterKeys(for: whole), scratch: shards)
            }
        }
        let writesShards = group.shardParameter != nil && !consolidates
        if writesShards {
            if communicator.isMain { try? FileManager.default.removeItem(at: shards) }
            communicator.barrier()
            try ShardedOptimizerState.save(trainer.optimizer, group: group, to: shards)
            communicator.barrier()
        }
        if trainer.isMainProcess {
            try AtomicFolder.write(at: destination) { folder in
                try trainer.saveModelFiles(to: folder, whole: whole)
                pauseIfRequested(writing: destination)
                if writesShards {
                    try FileManager.default.moveItem(at: shards.appendingPathComponent(ShardedOptimizerState.folderName),
                                                     to: folder.appendingPathComponent(ShardedOptimizerState.folderName))
                    try? FileManager.default.removeItem(at: shards)
                } else if let optimizerState {
                    try optimizerState.save(to: folder)
                } else {
                    try trainer.optimizer.save(to: folder)
                }
                try AtomicFile.write(json(trainer.schedule), to: folder.appendingPathComponent(scheduleFileName))
                for callback in trainer.callbacks {
                    guard let data = try callback.checkpointState() else { continue }
                    try AtomicFile.write(data, to: folder.appendingPathComponent(callbackFileName(callback.name)))
                }
                try AtomicFile.write(Data(try trainer.config.yamlString().utf8),
                                     to: folder.appendingPathComponent(configFileName))
                try AtomicFile.write(json(state), to: folder.appendingPathComponent(stateFileName))
            }
        }
        trainer.grid.world.barrier()
        return destination
    }

    // MARK: - Reading

    /// The checkpoint's folder.
    public let folder: URL
    /// The trainer's counters, data position, evaluations and random state when the checkpoint was written.
    public let state: TrainerState
    /// The learning-rate schedule, at `state.globalStep` updates.
    public let schedule: LearningRateSchedule

    /// Opens the checkpoint in `folder` for a run set up as `setup` (its counters before training) with the
    /// schedule `schedule` (at step 0).
    /// - Throws: `TrainerError` when the folder is not a complete checkpoint, has another format, or was written
    ///   for a different setup (dataset size, batch size, accumulation, number of updates, schedule).
    init(resuming folder: URL, setup: TrainerState, schedule: LearningRateSchedule) throws {
        let stateURL = folder.appendingPathComponent(Self.stateFileName)
        guard FileManager.default.fileExists(atPath: stateURL.path) else {
            throw TrainerError("\(folder.path): not a complete training checkpoint (no \(Self.stateFileName))")
        }
        let saved = try Self.decode(TrainerState.self, from: stateURL)
        guard saved.formatVersion == TrainerState.currentFormatVersion else {
            throw TrainerError("\(stateURL.path): checkpoint format \(saved.formatVersion), this Collie reads \(TrainerState.currentFormatVersion)")
        }
        if let mismatch = setup.setupMismatch(in: saved) {
            throw TrainerError("\(folder.path): cannot resume exactly: \(mismatch)")
        }
        let savedSchedule = try Self.decode(LearningRateSchedule.self, from: folder.appendingPathComponent(Self.scheduleFileName))
        var expected = schedule
        expected.step = savedSchedule.step
        guard savedSchedule == expected, savedSchedule.step == saved.globalStep else {
            throw TrainerError("\(folder.path): the saved learning-rate schedule differs from the config's (lr_scheduler, optimizer.lr)")
        }
        self.folder = folder
        state = saved
        self.schedule = savedSchedule
    }

    /// Restores the model's weights (gathered under ZeRO-3, each rank keeping its shard), the optimizer's state
    /// (whatever layout wrote it) and each callback's state into `trainer`; the trainer takes `state` and
    /// `schedule` itself.
    func restore(into trainer: Trainer) throws {
        let tensorParallel = trainer.grid.tensorParallelSize > 1
        if tensorParallel || trainer.pipeline != nil {
            // This rank's stage, and its slices, of the whole model and of one process's optimizer state.
            // Every stage's parameters get values for the while; the other stages' are freed again.
            defer {
                if let pipeline = trainer.pipeline {
                    pipeline.releaseOtherStages(trainer.model)
                    StoragePool.shared.releaseCachedMemory()
                }
            }
            // Under ZeRO-3 over the dp group (with tp, or the stage's), into every parameter, then kept as this rank's
            // shard.
            try trainer.dataParallel.withFullParameters(writeBack: true) {
                trainer.pipeline?.allocateOtherStages(trainer.model)
                try trainer.loadWeights(from: folder)
            }
            let parameters = trainer.dataParallel.buffer.parameters, whole = trainer.model.trainableParameters.map(\.tensor)
            var state: OptimizerState
            if ShardedOptimizerState.isSharded(folder) {
                // A data-parallel ZeRO run's shards, over one process's parameters (whole shapes: slices × tp_size).
                let shapes = zip(whole, trainer.model.tensorParallelSplitAxes(of: whole)).map { parameter, axis in
                    var shape = parameter.shape
                    if let axis { shape[axis] *= trainer.grid.tensorParallelSize }
                    return shape
                }
                state = try ShardedOptimizerState.unshardedState(in: folder, shapes: shapes)
            } else {
                state = try OptimizerState(contentsOf: folder)
            }
            if trainer.pipeline != nil {
                state = PipelineParallelCheckpoint.stage(state, wholeKeys: PipelineParallelCheckpoint.wholeKeys(of: parameters, in: whole),
                                                         keys: OptimizerState.parameterKeys(for: parameters))
            }
            if tensorParallel {
                state = TensorParallelCheckpoint.sliced(state, parameters: parameters,
                                                        splits: trainer.model.tensorParallelSplits(of: parameters),
                                                        communicator: trainer.grid.tensorParallel)
            }
            if trainer.dataParallel.shardParameter != nil {
                state = try ShardedOptimizerState.sharded(state, group: trainer.dataParallel, source: folder)
            }
            try trainer.optimizer.load(state)
        } else {
            try trainer.dataParallel.withFullParameters(writeBack: true) { try trainer.loadWeights(from: folder) }
            try ShardedOptimizerState.load(trainer.optimizer, group: trainer.dataParallel, from: folder)
        }
        for callback in trainer.callbacks {
            let url = folder.appendingPathComponent(Self.callbackFileName(callback.name))
            guard let data = FileManager.default.contents(atPath: url.path) else { continue }
            try callback.restore(checkpointState: data)
        }
    }

    // MARK: - JSON files

    /// `value` as the checkpoint's JSON files hold it (pretty-printed, keys sorted; a NaN or infinite number, such
    /// as the loss of a skipped update or an overflowing perplexity, as the string "NaN", "Infinity", "-Infinity").
    static func json<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity",
                                                                      negativeInfinity: "-Infinity", nan: "NaN")
        return try encoder.encode(value)
    }

    /// A decoder for what `json(_:)` writes.
    static func jsonDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "Infinity",
                                                                        negativeInfinity: "-Infinity", nan: "NaN")
        return decoder
    }

    /// The JSON file `url` decoded as `type`.
    /// - Throws: `TrainerError` naming the file when it cannot be read or decoded.
    static func decode<T: Decodable>(_ type: T.Type, from url: URL) throws -> T {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw TrainerError("\(url.path): cannot read")
        }
        do {
            return try jsonDecoder().decode(type, from: data)
        } catch {
            throw TrainerError("\(url.path): not valid (\(error))")
        }
    }
}
