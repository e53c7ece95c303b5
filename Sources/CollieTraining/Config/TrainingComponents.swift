import CollieEngine

// What a config builds for training: the optimizer, the learning-rate schedule and the callbacks. Settings
// become objects here and nowhere else; the Trainer asks for them.

extension CollieConfig.OptimizerSettings {
    /// The optimizer `name` names, over `parameters`, with the reference defaults for what the settings leave
    /// out. `maxGradNorm` is handed to LOMO and AdaLomo, which clip inside backward.
    public func makeOptimizer(parameters: [Tensor], maxGradNorm: Double? = nil) -> Optimizer {
        let lr = learningRate, betas = resolvedBetas, decay = resolvedWeightDecay
        switch name {
        case .adamW:
            return AdamW(parameters: parameters, learningRate: lr, beta1: betas[0], beta2: betas[1],
                         epsilon: epsilon ?? 1e-8, weightDecay: decay)
        case .sgd:
            return SGD(parameters: parameters, learningRate: lr, momentum: momentum ?? 0, dampening: dampening ?? 0,
                       weightDecay: decay, nesterov: nesterov ?? false)
        case .lomo:
            return LOMO(parameters: parameters, learningRate: lr, weightDecay: decay, clipGradNorm: maxGradNorm,
                        clipGradValue: clipGradValue)
        case .adaLomo:
            return AdaLomo(parameters: parameters, learningRate: lr, clipThreshold: clipThreshold ?? 1,
                           decayRate: decayRate ?? -0.8, weightDecay: decay, clipGradNorm: maxGradNorm,
                           clipGradValue: clipGradValue)
        case .lion:
            return Lion(parameters: parameters, learningRate: lr, beta1: betas[0], beta2: betas[1], weightDecay: decay)
        case .adan:
            return Adan(parameters: parameters, learningRate: lr, beta1: betas[0], beta2: betas[1], beta3: betas[2],
                        epsilon: epsilon ?? 1e-8, weightDecay: decay, noProx: noProx ?? false)
        case .sophiaG:
            return SophiaG(parameters: parameters, learningRate: lr, beta1: betas[0], beta2: betas[1], rho: rho ?? 0.04,
                           weightDecay: decay, hessianUpdateInterval: hessianUpdateInterval ?? 10)
        }
    }
}

extension CollieConfig.SchedulerSettings {
    /// The schedule these settings describe for a run of `totalSteps` updates peaking at `learningRate`
    /// (a warm-up ratio is rounded up, as transformers does).
    public func makeSchedule(learningRate: Double, totalSteps: Int) -> LearningRateSchedule {
        let warmup: LearningRateSchedule.Warmup = warmupSteps.map { .steps($0) } ?? .ratio(warmupRatio ?? 0)
        return LearningRateSchedule(kind: kind, baseLearningRate: learningRate, totalSteps: totalSteps, warmup: warmup)
    }
}

extension CollieConfig.Callbacks {
    /// The callbacks these settings describe: checkpoint, load-best-model, early stop (in that order). Their
    /// monitored metric may be an evaluator's (`eval_<evaluator>/<metric>`) when `evaluators` names it.
    /// - Throws: `TrainerError` for a monitored metric that does not exist.
    public func makeCallbacks(evaluators: [String] = []) throws -> [TrainerCallback] {
        var callbacks: [TrainerCallback] = []
        if let checkpoint { callbacks.append(try CheckpointCallback(checkpoint, evaluators: evaluators)) }
        if let loadBestModel { callbacks.append(try LoadBestModelCallback(loadBestModel, evaluators: evaluators)) }
        if let earlyStop { callbacks.append(try EarlyStopCallback(earlyStop, evaluators: evaluators)) }
        return callbacks
    }
}

extension Trainer {
    /// `settings.makeCallbacks(evaluators:)`: the callbacks a trainer builds when it is given none, for callers
    /// that add their own to them.
    public static func makeCallbacks(_ settings: CollieConfig.Callbacks, evaluators: [String] = []) throws -> [TrainerCallback] {
        try settings.makeCallbacks(evaluators: evaluators)
    }
}
