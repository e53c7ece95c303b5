import CollieEngine
import CollieModels
import Foundation

extension CollieConfig {
    /// Checks values against each other and against what Collie supports: sizes at least 1, ratios in
    /// range, one of two exclusive keys, hyper-parameters that belong to the chosen optimizer, parallel
    /// degrees and optimizers that are not yet supported.
    ///
    /// Reads no files (the Trainer reports missing paths). `load(from:overrides:)` calls it and adds lines.
    /// - Throws: `ConfigError` with one issue per problem, each naming its key path.
    public func validate() throws {
        var issues: [ConfigError.Issue] = []
        func fail(_ key: CodingKeys, _ message: String) { issues.append(.init(keyPath: key.rawValue, message: message)) }
        func fail(_ keyPath: String, _ message: String) { issues.append(.init(keyPath: keyPath, message: message)) }
        func atLeast(_ minimum: Int, _ value: Int, _ key: CodingKeys) {
            if value < minimum { fail(key, "must be at least \(minimum), got \(value)") }
        }

        atLeast(1, dataParallelSize, .dataParallelSize)
        atLeast(1, tensorParallelSize, .tensorParallelSize)
        atLeast(1, pipelineParallelSize, .pipelineParallelSize)
        if paddingFree, case .promptTuning? = peftConfig {
            fail(.paddingFree, "prompt tuning puts its virtual tokens in front of every row; use padding_free: false")
        }
        if !(0...3).contains(zeroStage) {
            fail("ds_config.zero_optimization.stage", "must be 0, 1, 2 or 3, got \(zeroStage)")
        } else if (1...2).contains(zeroStage), optimizer.name.updatesDuringBackward {
            fail("ds_config.zero_optimization.stage", "\(optimizer.name.rawValue) updates inside backward and keeps no "
                 + "sharded optimizer state; use stage 0 (data parallelism) or 3 (sharded parameters)")
        }
        atLeast(1, trainEpochs, .trainEpochs)
        atLeast(1, trainMicroBatchSize, .trainMicroBatchSize)
        atLeast(1, gradientAccumulationSteps, .gradientAccumulationSteps)
        atLeast(1, evalBatchSize, .evalBatchSize)
        atLeast(0, evalPerNSteps, .evalPerNSteps)
        atLeast(0, evalPerNEpochs, .evalPerNEpochs)
        atLeast(2, maxLength, .maxLength)
        atLeast(1, sampleMaxNewTokens, .sampleMaxNewTokens)
        if !(0..<1).contains(evalSplit) { fail(.evalSplit, "must be in [0, 1), got \(evalSplit)") }
        if evalSplit > 0, evalData != nil { fail(.evalSplit, "give eval_data or eval_split, not both") }
        if evalOnStart, !hasEvaluationData, evaluators.isEmpty {
            fail(.evalOnStart, "needs evaluation data; set eval_data, eval_split or evaluators")
        }
        if !(0..<1).contains(dropout) { fail(.dropout, "must be in [0, 1), got \(dropout)") }
        if initMethod.mean != 0 { fail("init_method.mean", "only 0 is supported, got \(initMethod.mean)") }
        if !(initMethod.std > 0) { fail("init_method.std", "must be positive, got \(initMethod.std)") }
        if initMethod.kind != .normal, initMethod.std != InitMethod().std {
            fail("init_method.std", "applies to type normal; \(initMethod.kind.rawValue) takes its scale from each "
                 + "weight's fan-in and fan-out")
        }

        if case .preset(let preset) = model, tokenizer == nil {
            fail(.tokenizer, "required with the model preset \(preset.rawValue) (the vocabulary comes from the tokenizer)")
        }
        if quantized, quantize != nil {
            fail(.quantize, "give quantized: true (keep a GGUF file's blocks) or quantize (quantize at load), not both")
        } else if quantized, case .folder(let path) = model, !GGUFModelFile.isGGUF(URL(fileURLWithPath: path)) {
            fail(.quantized, "keeps a GGUF file's quantized blocks, but model \(path) is not a .gguf file; quantize it at "
                 + "load instead (quantize: " + Self.quantizableFormats + ")")
        } else if quantized, case .preset(let preset) = model {
            fail(.quantized, "keeps a GGUF file's quantized blocks, but the preset \(preset.rawValue) is initialized at "
                 + "random; use quantize: " + Self.quantizableFormats)
        } else if let quantize, !quantize.isQuantizable {
            fail(.quantize, "Collie has no quantizer for \(quantize.rawValue); use one of " + Self.quantizableFormats)
        }
        if chatTemplate, ![.auto, .alpaca, .inputOutput].contains(recordFormat) {
            fail(.chatTemplate, "renders alpaca and input_output records as chats, not \(recordFormat.rawValue) records")
        }
        if recordFormat == .generation || recordFormat == .classification {
            fail(.recordFormat, "\(recordFormat.rawValue) records are for evaluation, not training; use "
                 + RecordFormat.trainingFormats.map(\.rawValue).joined(separator: ", ") + " or auto")
        }
        if let maxGradNorm, !(maxGradNorm > 0) { fail(.maxGradNorm, "must be positive, got \(maxGradNorm)") }
        if optimizer.name.updatesDuringBackward, gradientAccumulationSteps > 1 {
            fail(.gradientAccumulationSteps, "\(optimizer.name.rawValue) updates each parameter inside backward and frees its "
                 + "gradient at once, so there is nothing to accumulate across micro-batches; use 1 and raise "
                 + "train_micro_batch_size instead")
        }
        if monitors.isEmpty == false, Set(monitors).count != monitors.count { fail(.monitors, "lists a monitor twice") }
        if outputDir.isEmpty { fail(.outputDir, "must name a folder, got an empty value") }

        issues += optimizer.issues()
        issues += lrScheduler.issues()
        issues += callbacks.issues()
        for (index, evaluator) in evaluators.enumerated() { issues += evaluator.issues(at: "evaluators[\(index)]") }
        if callbacks.loadBestModel != nil || callbacks.earlyStop != nil || callbacks.checkpoint?.topK != nil,
           !hasEvaluationData {
            fail(.callbacks, "load_best_model, early_stop and top_k compare evaluation results; set eval_data or eval_split")
        }
        if !issues.isEmpty { throw ConfigError(issues: issues) }
    }

    /// The block formats `quantize:` takes, for messages.
    static var quantizableFormats: String {
        BlockFormat.allCases.filter(\.isQuantizable).map(\.rawValue).joined(separator: ", ")
    }
}

extension CollieConfig.OptimizerSettings {
    func issues() -> [ConfigError.Issue] {
        var issues: [ConfigError.Issue] = []
        func fail(_ key: CodingKeys, _ message: String) {
            issues.append(.init(keyPath: "optimizer.\(key.rawValue)", message: message))
        }
        if !(learningRate >= 0) || !learningRate.isFinite { fail(.learningRate, "must be a finite number ≥ 0, got \(learningRate)") }
        let given: [(CodingKeys, Bool)] = [
            (.betas, betas != nil), (.epsilon, epsilon != nil), (.weightDecay, weightDecay != nil),
            (.momentum, momentum != nil), (.nesterov, nesterov != nil), (.dampening, dampening != nil),
            (.clipGradValue, clipGradValue != nil), (.clipThreshold, clipThreshold != nil), (.decayRate, decayRate != nil),
            (.rho, rho != nil), (.hessianUpdateInterval, hessianUpdateInterval != nil), (.noProx, noProx != nil),
        ]
        let allowed = Self.keys(of: name)
        for (key, isSet) in given where isSet && !allowed.contains(key) {
            fail(key, "is not a hyper-parameter of \(name.rawValue)")
        }
        if let weightDecay, !(weightDecay >= 0) { fail(.weightDecay, "must be ≥ 0, got \(weightDecay)") }
        if let betas, allowed.contains(.betas) {
            let expected = Self.defaultBetas(of: name).count
            if betas.count != expected {
                fail(.betas, "\(name.rawValue) takes \(expected) values, got \(betas.count)")
            } else {
                for (index, beta) in betas.enumerated() where !(0..<1).contains(beta) {
                    issues.append(.init(keyPath: "optimizer.betas[\(index)]", message: "must be in [0, 1), got \(beta)"))
                }
            }
        }
        if let epsilon, !(epsilon > 0) { fail(.epsilon, "must be positive, got \(epsilon)") }
        if let momentum, !(momentum >= 0) { fail(.momentum, "must be ≥ 0, got \(momentum)") }
        if let dampening, !(dampening >= 0) { fail(.dampening, "must be ≥ 0, got \(dampening)") }
        if nesterov == true, !((momentum ?? 0) > 0) || (dampening ?? 0) != 0 {
            fail(.nesterov, "Nesterov momentum needs momentum > 0 and dampening 0 (as torch)")
        }
        if let clipGradValue, !(clipGradValue > 0) { fail(.clipGradValue, "must be positive, got \(clipGradValue)") }
        if let clipThreshold, !(clipThreshold > 0) { fail(.clipThreshold, "must be positive, got \(clipThreshold)") }
        if let decayRate, !(decayRate < 0) { fail(.decayRate, "must be negative (β = 1 − t^decay_rate), got \(decayRate)") }
        if let rho, !(rho >= 0) { fail(.rho, "must be ≥ 0, got \(rho)") }
        if let hessianUpdateInterval, hessianUpdateInterval < 1 {
            fail(.hessianUpdateInterval, "must be at least 1, got \(hessianUpdateInterval)")
        }
        return issues
    }
}

extension CollieConfig.SchedulerSettings {
    func issues() -> [ConfigError.Issue] {
        var issues: [ConfigError.Issue] = []
        if warmupSteps != nil && warmupRatio != nil {
            issues.append(.init(keyPath: "lr_scheduler.warmup_ratio", message: "give warmup_steps or warmup_ratio, not both"))
        }
        if let warmupSteps, warmupSteps < 0 {
            issues.append(.init(keyPath: "lr_scheduler.warmup_steps", message: "must be ≥ 0, got \(warmupSteps)"))
        }
        if let warmupRatio, !(0...1).contains(warmupRatio) {
            issues.append(.init(keyPath: "lr_scheduler.warmup_ratio", message: "must be in [0, 1], got \(warmupRatio)"))
        }
        return issues
    }
}

extension CollieConfig.Callbacks {
    func issues() -> [ConfigError.Issue] {
        var issues: [ConfigError.Issue] = []
        func fail(_ keyPath: String, _ message: String) { issues.append(.init(keyPath: keyPath, message: message)) }
        if let checkpoint {
            let path = "callbacks.checkpoint"
            switch (checkpoint.everyNEpochs, checkpoint.everyNBatches) {
            case (nil, nil): fail(path, "give every_n_epochs or every_n_batches")
            case (.some, .some): fail("\(path).every_n_batches", "give every_n_epochs or every_n_batches, not both")
            default: break
            }
            for (key, value) in [("every_n_epochs", checkpoint.everyNEpochs), ("every_n_batches", checkpoint.everyNBatches),
                                 ("keep_last", checkpoint.keepLast), ("top_k", checkpoint.topK)] {
                if let value, value < 1 { fail("\(path).\(key)", "must be at least 1, got \(value)") }
            }
            if checkpoint.topK != nil, checkpoint.monitor == nil {
                fail("\(path).monitor", "top_k needs the metric to rank checkpoints by")
            }
        }
        if let earlyStop, earlyStop.patience < 1 {
            fail("callbacks.early_stop.patience", "must be at least 1, got \(earlyStop.patience)")
        }
        for (key, monitor) in [("callbacks.checkpoint.monitor", checkpoint?.monitor),
                               ("callbacks.load_best_model.monitor", loadBestModel?.monitor),
                               ("callbacks.early_stop.monitor", earlyStop?.monitor)] {
            if let monitor, monitor.isEmpty { fail(key, "must name a metric") }
        }
        return issues
    }
}
