import CollieEngine
import CollieModels
import Foundation

/// Fine-tunes a causal language model (CoLLiE's `Trainer`): epochs of micro-batches from a seeded sampler,
/// gradient accumulation, clipping, a learning-rate schedule, evaluation, monitors, callbacks and
/// checkpoints that resume exactly.
///
/// One optimizer update, as transformers' `Trainer` does it:
///
///     group   = the next gradient_accumulation_steps micro-batches (fewer at an epoch's end)
///     N       = tokens the group predicts (labels ≠ −100 after the shift)
///     loss_i  = Σ NLL(micro-batch i) / N        → backward() accumulates into the flat gradients
///     clip to max_grad_norm; optimizer.learningRate = schedule(k); step; zero gradients
///
/// so the accumulated gradient is that of the mean over every predicted token of the group, however the
/// tokens fall into micro-batches, and the reported loss is that mean.
///
/// ```swift
/// let trainer = try Trainer(config: config, model: model, trainDataset: train, evaluationDataset: eval,
///                           padTokenID: tokenizer.padTokenID ?? tokenizer.eosTokenID ?? 0, monitors: [csv])
/// try trainer.resume(from: checkpoint)   // optional
/// try trainer.train()
/// ```
public final class Trainer {
    public let config: CollieConfig
    public let model: any CausalLanguageModel
    /// The trained parameters in one buffer, with flat gradients: all of the model's, or with a PEFT adapter
    /// (`peft_config`) only the adapter's, the base model being frozen with no gradient storage.
    public let parameterBuffer: ParameterBuffer
    /// With a PEFT adapter, the frozen base model's parameters in one buffer (in `dtype`, without gradients).
    public let frozenBuffer: ParameterBuffer?
    public let optimizer: Optimizer
    /// The data-parallel ranks this process trains with (a group of one without `mpirun`) and the ZeRO stage.
    public let dataParallel: DataParallelGroup
    /// The run's processes as dp × tp × pp (`dp_size`, `tp_size`, `pp_size`); data parallelism uses its dp group,
    /// the model's split layers its tp group.
    public let grid: ProcessGrid
    /// The pipeline stages when `pp_size` > 1 (this rank trains only its stage's units); nil otherwise.
    public let pipeline: PipelineParallelGroup?
    /// The learning rate per update; its `step` is the number of updates taken.
    public private(set) var schedule: LearningRateSchedule
    public let trainLoader: DataLoader
    public let evaluationLoader: DataLoader?
    /// Receives the typed events (`started`, `step`, `evaluation`, `checkpoint`, `finished`).
    public let monitor: MonitorGroup
    public let callbacks: [TrainerCallback]
    /// Run with every evaluation; their metrics are added as `<name>/<metric>`.
    public let evaluators: [Evaluator]
    /// Where checkpoints (and the callbacks' files) go.
    public let outputDirectory: URL
    /// The tokenizer's files, written into every saved model folder (`final/`, `best/`, checkpoints).
    public let tokenizerFiles: TokenizerFiles?
    /// Counters, data position, evaluations.
    public private(set) var state: TrainerState
    /// Seeded generator for stochastic parts of training; saved with every checkpoint.
    public var randomGenerator: RandomGenerator
    /// Receives messages for a person (early stop, best model loaded, skipped updates).
    public var logHandler: (String) -> Void = { _ in }
    /// Updates in a row skipped for a non-finite loss or gradient after which training stops with an error.
    public static let nonFiniteStepLimit = 5
    private var consecutiveNonFiniteSteps = 0
    private var monitorFailed = false
    /// Set when `train()` returns: the whole model stays gathered on every rank (to save it, answer prompts).
    private var trainingEnded = false

    /// A trainer for `model` on `trainDataset` as `config` describes (batch sizes, accumulation, optimizer,
    /// schedule, clipping, evaluation schedule, seed).
    ///
    /// - Parameters:
    ///   - padTokenID: the id padding positions get (masked, never trained).
    ///   - monitors: receive every event; the trainer does not close them.
    ///   - callbacks: nil builds those `config.callbacks` describes.
    ///   - outputDirectory: nil uses `config.outputDir`. Nothing is written before the first checkpoint.
    ///   - tokenizerFiles: written beside every saved model, so each folder is complete.
    ///   - communicator: the processes of the run; their number must be `dp_size` (× `tp_size` × `pp_size`).
    /// - Throws: `TrainerError` for settings Collie does not support yet, ids outside the model's vocabulary, or
    ///   monitored metrics that do not exist; `DatasetError` when `last_batch: drop` leaves no batch.
    public init(config: CollieConfig, model: any CausalLanguageModel, trainDataset: TrainingDataset,
                evaluationDataset: TrainingDataset? = nil, padTokenID: Int, monitors: [TrainingMonitor] = [],
                callbacks: [TrainerCallback]? = nil, outputDirectory: URL? = nil, tokenizerFiles: TokenizerFiles? = nil,
                evaluators: [Evaluator] = [], communicator: Communicator = SingleProcessCommunicator()) throws {
        try Self.checkRequirements(config: config, model: model, trainDataset: trainDataset,
                                   evaluationDataset: evaluationDataset, padTokenID: padTokenID, communicator: communicator)
        self.config = config
        self.model = model
        grid = ProcessGrid(world: communicator, dataParallelSize: config.dataParallelSize,
                           tensorParallelSize: config.tensorParallelSize, pipelineParallelSize: config.pipelineParallelSize)
        // Every rank of a tensor-parallel group keeps its slice of each split layer (before the buffers take them).
        do { try model.splitForTensorParallelism(grid.tensorParallel) } catch { throw TrainerError("\(error)") }
        pipeline = try grid.pipelineParallelSize > 1
            ? PipelineParallelGroup(communicator: grid.pipelineParallel,
                                    partition: Self.pipelinePartition(model, stages: grid.pipelineParallelSize,
                                                                      method: config.pipelinePartitionMethod))
            : nil
        self.outputDirectory = outputDirectory ?? URL(fileURLWithPath: config.outputDir)
        self.tokenizerFiles = tokenizerFiles
        if config.paddingFree, !model.packsSequences {
            throw TrainerError("padding_free: \(type(of: model)) takes one sequence per row (its positions come from each "
                               + "row's tokens); use padding_free: false")
        }
        if config.paddingFree, model.promptEmbedding != nil {
            throw TrainerError("padding_free: prompt tuning puts its virtual tokens in front of every row; use padding_free: false")
        }
        let padder = Padder(side: config.paddingSide, padTokenID: padTokenID)
        // Each global micro-batch is split into the ranks' rows (`DataParallelGroup.localRows(of:)`).
        let (globalBatch, overflow) = config.trainMicroBatchSize.multipliedReportingOverflow(by: config.dataParallelSize)
        guard !overflow else {
            throw TrainerError("train_micro_batch_size: \(config.trainMicroBatchSize) × dp_size \(config.dataParallelSize) "
                               + "examples per micro-batch is more than Collie can count; use a smaller batch")
        }
        trainLoader = try DataLoader(dataset: trainDataset, batchSize: globalBatch,
                                     lastBatch: config.lastBatch, shuffle: config.shuffle,
                                     seed: UInt64(bitPattern: Int64(config.seed)), padder: padder)
        evaluationLoader = try evaluationDataset.map {
            try DataLoader(dataset: $0, batchSize: config.evalBatchSize, lastBatch: .normal, shuffle: false, padder: padder)
        }
        model.activationCheckpointing = config.checkpointing
        var trained = model.trainableParameters.map(\.tensor), frozen = model.parameters
        if let pipeline {
            // A stage trains, reduces and steps only its own units' parameters, and keeps only its own frozen ones.
            let own = Set(pipeline.parameters(of: model).map(ObjectIdentifier.init))
            trained = trained.filter { own.contains(ObjectIdentifier($0)) }
            frozen = frozen.filter { own.contains(ObjectIdentifier($0)) }
        }
        // bf16/f16 weights: the buffer stores the parameters in that dtype; kernels compute in float32. With an
        // adapter (PEFT's autocast_adapter_dtype): the frozen base model in `dtype`, no gradients; the adapter in
        // float32.
        let adapter = model.peftConfiguration != nil
        frozenBuffer = adapter ? ParameterBuffer(frozen, dtype: config.dtype.dtype) : nil
        parameterBuffer = ParameterBuffer(trained, dtype: adapter ? .float32 : config.dtype.dtype)
        // The data-parallel group registers its gradient-ready hooks before an in-backward optimizer does, so that
        // each gradient is reduced over the ranks before the optimizer's hook uses it. It attaches the flat
        // gradients where they are kept (not for in-backward optimizers, which free each gradient at once).
        dataParallel = DataParallelGroup(communicator: grid.dataParallel, stage: config.zeroStage, buffer: parameterBuffer,
                                         reducesEachGradient: config.optimizer.name.updatesDuringBackward,
                                         units: config.zeroStage == 3 ? pipeline?.parameterUnits(of: model) ?? model.parameterUnits : nil,
                                         shared: pipeline?.sharedParameters(of: model) ?? [])
        if config.zeroStage == 3 { model.parameterUnitHooks = dataParallel }
        model.setHiddenDropout(config.dropout)
        let splitAxes = model.tensorParallelSplitAxes(of: parameterBuffer.parameters)
        if grid.tensorParallelSize > 1 {
            dataParallel.tensorParallel = (grid.tensorParallel, splitAxes.map { $0 != nil })
        }
        if let pipeline {
            // A tied embedding's gradient is on the first and the last stage: it counts once in the norm.
            let counted = pipeline.isFirstStage ? [] : Set(pipeline.sharedParameters(of: model).map(ObjectIdentifier.init))
            dataParallel.pipelineParallel = (pipeline.communicator,
                                             parameterBuffer.parameters.map { !counted.contains(ObjectIdentifier($0)) })
        }
        optimizer = config.optimizer.makeOptimizer(parameters: dataParallel.optimizerParameters,
                                                   maxGradNorm: config.maxGradNorm)
        if grid.tensorParallelSize > 1, let inBackward = optimizer.inBackward {
            inBackward.useTensorParallelism(grid.tensorParallel, splitAxes: splitAxes)
        }
        if let pipeline, let inBackward = optimizer.inBackward {
            // A tied embedding's gradient is summed from the first and the last stage only after both backward halves:
            // it is updated then, on both, and counted once in the norm.
            inBackward.usePipelineParallelism(pipeline.communicator, shared: pipeline.sharedParameters(of: model),
                                              countsSharedNorms: pipeline.isFirstStage)
        }
        if optimizer.updatesDuringBackward {
            optimizer.attachToBackward()
            dataParallel.attachAfterInBackwardOptimizer()
            // LOMO/AdaLomo are chosen to save memory: keep few freed blocks around (peak RSS ≈ the engine's peak).
            StoragePool.shared.limitForMemorySaving(StoragePool.memorySavingLimit(parameterCounts: trained.map(\.count)))
        }
        // A pipeline stage keeps only its own units' parameters.
        pipeline?.releaseOtherStages(model)
        // The storages the parameters had before moving into the flat buffer (and, under ZeRO-3, the flat buffer
        // itself) are cached by the storage pool, but no later tensor has their sizes: return them.
        StoragePool.shared.releaseCachedMemory()

        randomGenerator = RandomGenerator(seed: UInt64(bitPattern: Int64(config.seed)))
        let state = try TrainerState(trainingExamples: trainDataset.count, batchesPerEpoch: trainLoader.batchesPerEpoch,
                                     gradientAccumulationSteps: config.gradientAccumulationSteps,
                                     epochs: config.trainEpochs, maxSteps: config.maxSteps, randomState: randomGenerator.state, seed: config.seed,
                                     dataFingerprint: trainDataset.fingerprint)
        schedule = config.lrScheduler.makeSchedule(learningRate: config.optimizer.learningRate,
                                                   totalSteps: state.totalSteps)
        self.state = state
        monitor = MonitorGroup(monitors)
        self.evaluators = evaluators
        self.callbacks = try callbacks ?? config.callbacks.makeCallbacks(evaluators: evaluators.map(\.name))
        let names = self.callbacks.map(\.name)
        if Set(names).count != names.count { throw TrainerError("two callbacks share a name: \(names)") }
    }

    // MARK: - Training

    /// Trains until the last epoch ends, `max_steps` updates are taken or a callback stops training, continuing from `state` (after
    /// `resume(from:)`, from the checkpoint).
    public func train() throws {
        // The peak memory the monitors report is training's, not the construction of the model and buffers.
        MemoryUsage.resetPeakResident()
        notifyMonitors(.started(step: state.globalStep, totalSteps: state.totalSteps))
        for callback in callbacks { try callback.onTrainBegin(self) }
        if config.evalOnStart, state.globalStep == 0, state.evaluations.isEmpty, canEvaluate {
            try evaluate()
        }
        // A checkpoint taken at an epoch's last update resumes before that epoch's end was handled.
        if !state.stoppedEarly, state.completedEpochs < state.position.epoch {
            try endEpoch(state.position.epoch - 1)
        }
        // `max_steps` may end the run inside an epoch; that partial epoch's end hooks do not run.
        let epochs = state.epochCount
        var batches = trainLoader.batches(from: state.position, epochs: epochs)
        let accumulation = config.gradientAccumulationSteps
        while !state.stoppedEarly, state.globalStep < state.totalSteps, state.position.epoch < epochs {
            let epoch = state.position.epoch
            if state.position.batchIndex == 0 {
                for callback in callbacks { try callback.onEpochBegin(self, epoch: epoch) }
            }
            while !state.stoppedEarly, state.globalStep < state.totalSteps, state.position.epoch == epoch {
                let count = min(accumulation, trainLoader.batchesPerEpoch - state.position.batchIndex)
                var group: [PaddedBatch] = []
                for _ in 0..<count {
                    guard let (_, batch) = batches.next() else { break }
                    group.append(batch)
                }
                precondition(!group.isEmpty, "the batch iterator ended inside epoch \(epoch)")
                try update(group, epoch: epoch, nextPosition: batches.position)
            }
            if state.stoppedEarly || state.position.epoch == epoch { break }
            try endEpoch(epoch)
        }
        // ZeRO stage 3: the whole model again on every rank, for what follows (the final model, a sample); under
        // pipeline parallelism every stage's trained units.
        dataParallel.gatherAll()
        pipeline?.gatherParameters(model)
        trainingEnded = true
        for callback in callbacks { try callback.onTrainEnd(self) }
        notifyMonitors(.finished(step: state.globalStep))
    }

    /// Asks training to stop after the current update (early stopping). Recorded in the state, so a checkpoint
    /// saved afterwards resumes as stopped.
    public func requestStop() { state.stoppedEarly = true }

    /// True on the process that logs and writes files (rank 0; the only process without `mpirun`).
    public var isMainProcess: Bool { grid.world.isMain }

    /// Passes `message` to `logHandler`.
    public func log(_ message: String) { logHandler(message) }

    /// Passes `event` to the monitors. A monitor that cannot write (a full disk) must not end training: its
    /// error is logged once and training goes on.
    private func notifyMonitors(_ event: TrainingEvent) {
        do {
            try monitor.record(event)
        } catch {
            guard !monitorFailed else { return }
            monitorFailed = true
            log("warning: a monitor could not write (\(error)); training goes on, later monitor errors are not shown")
        }
    }

    /// Flushes and closes the monitors; an error is logged, never thrown (the run's results are already saved).
    public func closeMonitors() {
        do { try monitor.close() } catch { log("warning: a monitor could not be closed (\(error))") }
    }

    /// One optimizer update on `group`'s micro-batches.
    private func update(_ group: [PaddedBatch], epoch: Int, nextPosition: DataPosition) throws {
        let start = DispatchTime.now().uptimeNanoseconds
        for callback in callbacks { try callback.onBatchBegin(self) }
        let targets = group.map { $0.nextTokenTargets(for: model) }
        let predicted = targets.reduce(0) { total, row in total + row.lazy.filter { $0 != Tensor.ignoreIndex }.count }
        let learningRate = schedule.currentLearningRate
        optimizer.learningRate = learningRate
        model.setAdapterTraining(true)   // LoRA dropout and the model's `dropout` on for this update's passes only
        model.hiddenDropout?.isTraining = true
        let (loss, norm, skipped) = try Parallel.withTrainingWorkers {
            try MixedPrecision.with(config.mixedPrecision.gemmPrecision) {
                try takeStep(group, targets: targets, predicted: predicted)
            }
        }
        model.setAdapterTraining(false)
        model.hiddenDropout?.isTraining = false
        if let skipped {
            consecutiveNonFiniteSteps += 1
            log("step \(state.globalStep + 1): \(skipped); update skipped (\(consecutiveNonFiniteSteps) in a row)")
            if consecutiveNonFiniteSteps >= Self.nonFiniteStepLimit {
                throw TrainerError("""
                    training diverged: the loss or the gradients were not finite for \(consecutiveNonFiniteSteps) \
                    updates in a row (steps \(state.globalStep + 2 - consecutiveNonFiniteSteps)–\(state.globalStep + 1)); \
                    stopped without saving the model (complete checkpoints are kept). Lower optimizer.lr, set \
                    max_grad_norm, or check the data
                    """)
            }
        } else {
            consecutiveNonFiniteSteps = 0
        }
        schedule.advance()
        dataParallel.zeroGradients()
        // Freed blocks of sizes this update did not use (a batch of another length's) go back to the system.
        StoragePool.shared.releaseUnusedClasses()
        state.globalStep += 1
        state.position = nextPosition
        state.lastLoss = Double(loss)

        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let tokens = group.reduce(0) { $0 + $1.tokenCount }  // of the global batch
        let step = TrainingStep(step: state.globalStep, totalSteps: state.totalSteps, epoch: epoch, loss: Double(loss),
                                learningRate: learningRate, gradientNorm: norm, tokens: tokens,
                                tokensPerSecond: Double(tokens) / max(seconds, 1e-9), stepSeconds: seconds,
                                peakMemoryBytes: MemoryUsage.peakResidentBytes() ?? 0)
        notifyMonitors(.step(step))
        if config.evalPerNSteps > 0, state.globalStep % config.evalPerNSteps == 0, canEvaluate {
            try evaluate()
        }
        // An epoch's evaluation runs with its last update, before `onBatchEnd`, so that a checkpoint saved there
        // already holds it.
        if nextPosition.epoch != epoch { try evaluateIfDue(endOf: epoch) }
        for callback in callbacks { try callback.onBatchEnd(self, step: step) }
    }

    /// Backward and the optimizer's update for one group of micro-batches; returns the loss (summed over the
    /// ranks), the gradient norm (before clipping) and, when a non-finite loss or gradient made it skip the
    /// update, why.
    ///
    /// What "skipped" means depends on where the optimizer updates (docs/ARCHITECTURE.md, non-finite steps):
    /// optimizers that step after backward take no step at all (weights and optimizer state unchanged); LOMO and
    /// AdaLomo skip backward for a non-finite loss, skip the whole update when their norm pass (clipping or loss
    /// scaling) sees a non-finite gradient, and otherwise stop updating at the first non-finite gradient, the
    /// parameters before it keeping their update. The batches are used up and the schedule advances either way.
    private func takeStep(_ group: [PaddedBatch], targets: [[Int]], predicted: Int) throws
        -> (loss: Float, norm: Double?, skipped: String?) {
        if let inBackward = optimizer.inBackward {
            // LOMO/AdaLomo: one micro-batch (accumulation is refused by the config); updates happen in backward,
            // after a norm-only pass when clipping by the global norm. The data-parallel group's hooks sum each
            // gradient over the ranks before the optimizer's hook uses it.
            precondition(group.count == 1, "in-backward optimizers take one micro-batch per update")
            defer { dataParallel.endBackward() }
            reseedDropout(microBatch: 0)
            let applied: Bool, loss: Float
            if let pipeline {
                // The batch goes forward through the stages once; each backward pass (norms, then updates) runs
                // back through them, every stage updating its own parameters.
                let (batch, weight) = localRows(of: group[0])
                let scale = inBackward.lossScale
                let local = pipeline.forward(model, batch: batch) { [model] logits in
                    let mean = Self.rankLoss(model.summedNegativeLogLikelihood(logits: logits, targets: batch.nextTokenTargets(for: model)),
                                             weight: weight, predicted: predicted)
                    return scale == 1 ? mean : mean * scale
                }
                loss = Float(dataParallel.sum([local / scale])[0])
                guard loss.isFinite else { return (loss, nil, "the loss is \(loss)") }
                applied = inBackward.update { [model] retainGraph in
                    pipeline.backward(retainGraph: retainGraph)
                    pipeline.reduceSharedGradients(model)
                    inBackward.finishSharedGradients()
                }
            } else {
                let local = localLoss(of: group[0], predicted: predicted)
                // Every rank decides on the same (summed) loss, before backward would apply its gradients.
                loss = Float(dataParallel.sum([Double(local.item)])[0])
                guard loss.isFinite else { return (loss, nil, "the loss is \(loss)") }
                applied = inBackward.update(from: local)
            }
            let norm = inBackward.clipGradNorm != nil ? inBackward.lastGradientNorm : nil
            if applied, !inBackward.lastUpdatePassMetNonFinite { return (loss, norm, nil) }
            if inBackward.lossScale > 1 {
                // A loss-scale overflow is expected now and then: the scale was halved; it does not count.
                log("step \(state.globalStep + 1): the loss-scaled gradient overflowed; update skipped, scale now \(inBackward.lossScale)")
                return (loss, norm, nil)
            }
            return (loss, norm, applied ? "a gradient was not finite; the parameters after it in backward were not updated"
                                        : "the gradient norm is not finite")
        }
        var loss: Float = 0
        if let pipeline {
            // The stages run the micro-batches in the 1F1B order; each backward is one of the data-parallel group's.
            // A backward that recomputes a checkpointed layer draws that micro-batch's LoRA dropout masks again,
            // though a later micro-batch's forward may have run in between.
            let rows = group.map(localRows(of:))
            loss = Float(pipeline.forwardBackward(
                model, microBatches: rows.map(\.batch), willRun: reseedDropout(microBatch:),
                willBackward: { [dataParallel] in
                    self.reseedDropout(microBatch: $0)
                    dataParallel.beginBackward(last: $0 == group.count - 1)
                },
                didBackward: { [dataParallel] _ in dataParallel.endBackward() }) { [model] index, logits in
                let (batch, weight) = rows[index]
                return Self.rankLoss(model.summedNegativeLogLikelihood(logits: logits, targets: batch.nextTokenTargets(for: model)),
                                     weight: weight, predicted: predicted)
            })
            pipeline.reduceSharedGradients(model)
            dataParallel.reduceDeferredGradients()
        }
        for (index, globalBatch) in group.enumerated() where pipeline == nil {
            reseedDropout(microBatch: index)
            dataParallel.beginBackward(last: index == group.count - 1)
            let microLoss = localLoss(of: globalBatch, predicted: predicted)
            microLoss.backward()
            loss += microLoss.item
            dataParallel.endBackward()
        }
        loss = Float(dataParallel.sum([Double(loss)])[0])
        let norm = dataParallel.clipGradients(maxNorm: config.maxGradNorm)
        guard loss.isFinite, norm.isFinite else { return (loss, norm, "the loss is \(loss), the gradient norm \(norm)") }
        let update = OptimizerUpdate(index: state.globalStep, predictedTokens: predicted)
        optimizer.willStep(update)
        optimizer.step()
        dataParallel.finishStep()
        optimizer.didStep(update) {
            // The buffer's gradients and, at ZeRO stage ≥ 2, the shard's, into which the sampled-label gradients are
            // reduce-scattered.
            dataParallel.zeroGradients()
            HessianEstimate.sampledLabelBackward(model, group, targets: targets, predicted: predicted,
                                                 generator: &randomGenerator, dataParallel: dataParallel, pipeline: pipeline)
        }
        return (loss, norm, nil)
    }

    /// This rank's rows of the global micro-batch `globalBatch` (in one row under `padding_free`) and their weight
    /// (`DataParallelGroup.localRows`).
    private func localRows(of globalBatch: PaddedBatch) -> (batch: PaddedBatch, weight: Double) {
        let (rows, weight) = dataParallel.localRows(of: globalBatch)
        return (config.paddingFree ? rows.flattened() : rows, weight)
    }

    /// The loss of this rank's rows of the global micro-batch `globalBatch` (`rankLoss`).
    private func localLoss(of globalBatch: PaddedBatch, predicted: Int) -> Tensor {
        let (batch, weight) = localRows(of: globalBatch)
        // The sum's gradient will be 1/predicted (rankLoss), which forward writes the logits' gradient for.
        let summed = batch.summedNegativeLogLikelihood(of: model, targets: batch.nextTokenTargets(for: model),
                                                       expectedGradient: 1 / Double(max(predicted, 1)))
        return Self.rankLoss(summed, weight: weight, predicted: predicted)
    }

    /// A rank's loss from its rows' summed NLL: divided by the whole group's `predicted` tokens, or zero-weighted for
    /// a rank left without rows (`DataParallelGroup.localRows`), which still joins the collectives.
    static func rankLoss(_ summed: Tensor, weight: Double, predicted: Int) -> Tensor {
        weight == 0 ? summed * 0.0 : summed / Double(max(predicted, 1))
    }

    /// Dropout masks (LoRA's and the model's `dropout`) are a function of (seed, update, micro-batch, data-parallel
    /// rank), so a resumed run draws the same ones, the ranks of a tensor-parallel or pipeline group draw one model's,
    /// and data-parallel replicas draw masks of their own for their own rows.
    private func reseedDropout(microBatch: Int) {
        let seed = UInt64(bitPattern: Int64(config.seed)) &* 1_000_003 &+ UInt64(state.globalStep) &* 4_096
            &+ UInt64(microBatch) &+ UInt64(dataParallel.communicator.rank) << 40
        model.reseedAdapterDropout(seed: seed)
        model.hiddenDropout?.seed = seed ^ 0xD1B5_4A32_D192_ED03
    }

    /// The end of `epoch`: its evaluation if it has not run yet, then the callbacks.
    private func endEpoch(_ epoch: Int) throws {
        try evaluateIfDue(endOf: epoch)
        state.completedEpochs = epoch + 1
        for callback in callbacks { try callback.onEpochEnd(self, epoch: epoch) }
    }

    /// Evaluates when `eval_per_n_epochs` asks for it at the end of `epoch` and no evaluation ran after the
    /// current update yet.
    private func evaluateIfDue(endOf epoch: Int) throws {
        if config.evalPerNEpochs > 0, (epoch + 1) % config.evalPerNEpochs == 0, canEvaluate,
           state.lastEvaluation?.step != state.globalStep {
            try evaluate()
        }
    }

    // MARK: - Loss and evaluation

    /// True when there is evaluation data or an evaluator.
    public var canEvaluate: Bool { evaluationLoader != nil || !evaluators.isEmpty }

    /// Evaluates on the evaluation data: `loss` is the mean NLL per predicted token over the whole set and
    /// `perplexity` its exponential; then every evaluator adds `<name>/<metric>`. Records it in `state`, tells
    /// monitors and callbacks.
    /// - Throws: `TrainerError` without evaluation data or evaluators; what an evaluator, monitor or callback throws.
    @discardableResult
    public func evaluate() throws -> [String: Double] {
        try Parallel.withTrainingWorkers { try evaluateOnRanks() }
    }

    private func evaluateOnRanks() throws -> [String: Double] {
        // Pipeline parallelism: eval_data's loss and the evaluators (their forwards and KV-cache decoding) run
        // through the stages (on each rank's slices under tensor parallelism too); load_best_model (which saves) gets
        // every stage's parameters, gathered for the while.
        // Under ZeRO-3 the stage's parameters are gathered over the dp group for the while (decoding runs no unit hooks).
        if pipeline != nil, !callbacks.contains(where: { $0 is LoadBestModelCallback }) {
            return try dataParallel.withFullParameters { try evaluateModel() }
        }
        return try withWholeModel { try evaluateModel(whole: true) }
    }

    /// Runs `body` with the whole model on every rank: under ZeRO-3 the (stage's) parameters gathered over the dp
    /// group, then under pipeline parallelism every stage's broadcast from its ranks; both freed again while training
    /// goes on.
    private func withWholeModel<T>(_ body: () throws -> T) rethrows -> T {
        try dataParallel.withFullParameters {
            pipeline?.gatherParameters(model)
            defer {
                if let pipeline, !trainingEnded {
                    pipeline.releaseOtherStages(model)
                    StoragePool.shared.releaseCachedMemory()
                }
            }
            return try body()
        }
    }

    /// `whole`: every rank holds the whole model (one pipeline stage otherwise, under pipeline parallelism).
    private func evaluateModel(whole: Bool = false) throws -> [String: Double] {
        guard canEvaluate else { throw TrainerError("no evaluation data; set eval_data or eval_split") }
        for callback in callbacks { try callback.onEvaluateBegin(self) }
        var metrics: [String: Double] = [:]
        if let evaluationLoader {
            // Each rank takes every n-th batch; the sums are added over the ranks.
            let communicator = dataParallel.communicator
            let throughPipeline: ((PaddedBatch, [Int]) -> Double)? = whole ? nil : pipeline.map { pipeline in
                { [model] batch, targets in
                    let loss: (Tensor) -> Tensor = { model.summedNegativeLogLikelihood(logits: $0, targets: targets) }
                    return pipeline.evaluate(model, batch: batch, loss: loss)
                }
            }
            let share = evaluationLoader.negativeLogLikelihood(of: model, rank: communicator.rank, ranks: communicator.size,
                                                               paddingFree: config.paddingFree, summed: throughPipeline)
            let totals = dataParallel.sum([share.negativeLogLikelihood, Double(share.tokenCount)])
            let mean = totals[0] / Double(max(Int(totals[1]), 1))
            metrics = ["loss": mean, "perplexity": Foundation.exp(mean)]
        }
        if !evaluators.isEmpty, let pipeline, !whole {
            // Every rank of a pipeline runs the evaluator; each whole-model call goes through the stages.
            model.pipelineStage = pipeline
            defer { model.pipelineStage = nil }
            for evaluator in evaluators { metrics.merge(try evaluator.prefixedMetrics(model)) { $1 } }
        } else {
            // Under tensor parallelism every rank of the group runs the evaluators on its slices: the losses are the
            // vocabulary-parallel ones, decoding keeps each rank's heads in its KV cache and gathers the next token's
            // logits (`nextTokenLogits`), so every rank samples the same tokens.
            for evaluator in evaluators { metrics.merge(try evaluator.prefixedMetrics(model)) { $1 } }
        }
        state.evaluations.append(EvaluationRecord(step: state.globalStep, metrics: metrics))
        notifyMonitors(.evaluation(step: state.globalStep, metrics: metrics))
        for callback in callbacks { try callback.onEvaluateEnd(self, metrics: metrics) }
        return metrics
    }

    // MARK: - Checkpoints

    /// Writes a training checkpoint of the current state to `output_dir/checkpoint-<step>` atomically (see
    /// `TrainingCheckpoint`), replacing one of the same step.
    @discardableResult
    public func saveCheckpoint() throws -> URL {
        try withWholeModel {
            let folder = try TrainingCheckpoint.save(self)
            notifyMonitors(.checkpoint(step: state.globalStep, path: folder.path))
            for callback in callbacks { try callback.onSaveCheckpoint(self, folder: folder) }
            return folder
        }
    }

    /// Restores the model, optimizer, schedule, random generator, data position, counters and callback state
    /// from a checkpoint written by `saveCheckpoint()`, so that `train()` continues exactly as the run that
    /// wrote it would have.
    /// - Throws: `TrainerError` when the folder is not a complete checkpoint or was written for a different
    ///   setup (dataset size, batch size, accumulation, number of updates); optimizer and model errors.
    public func resume(from folder: URL) throws {
        let checkpoint = try TrainingCheckpoint(resuming: folder, setup: state, schedule: schedule)
        try checkpoint.restore(into: self)
        schedule = checkpoint.schedule
        randomGenerator = RandomGenerator(state: checkpoint.state.randomState)
        state = checkpoint.state
        for callback in callbacks { try callback.onLoadCheckpoint(self, folder: folder) }
    }
}
