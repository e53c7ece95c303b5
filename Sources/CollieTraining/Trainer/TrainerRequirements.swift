import Foundation
import CollieEngine
import CollieModels

/// What a trainer refuses before it builds anything (its buffers re-point the model's parameters).
extension Trainer {
    /// Throws `TrainerError` when the run's processes are not the config's layout (`dp_size` × `tp_size` ×
    /// `pp_size`), for a pad token id or a dataset id outside the model's
    /// vocabulary (naming the config key and the record), for a model without trainable parameters, and for
    /// a parallel layout the model or `dtype` does not allow.
    static func checkRequirements(config: CollieConfig, model: any CausalLanguageModel, trainDataset: TrainingDataset,
                                  evaluationDataset: TrainingDataset?, padTokenID: Int,
                                  communicator: Communicator) throws {
        let ranks = config.processCount
        if communicator.size != ranks {
            let layout = config.tensorParallelSize == 1 && config.pipelineParallelSize == 1
                ? "dp_size: \(config.dataParallelSize)"
                : "dp_size × tp_size × pp_size = \(config.dataParallelSize) × \(config.tensorParallelSize) × \(config.pipelineParallelSize)"
            throw TrainerError(communicator.size == 1
                ? "\(layout) needs \(ranks) processes; launch with `mpirun -np \(ranks) collie train …` (this is one process)"
                : "the run has \(communicator.size) processes but dp_size × tp_size × pp_size = \(config.dataParallelSize) × \(config.tensorParallelSize) × \(config.pipelineParallelSize) = \(ranks); launch with `mpirun -np \(ranks)` or set dp_size: \(communicator.size)")
        }
        if let reason = model.tensorParallelRefusal(tensorParallelSize: config.tensorParallelSize) {
            throw TrainerError(reason)
        }
        let vocabulary = model.configuration.vocabularySize
        guard (0..<vocabulary).contains(padTokenID) else {
            throw TrainerError("the pad token id \(padTokenID) is outside the model's vocabulary (\(vocabulary) ids)")
        }
        try checkIDs(trainDataset, vocabularySize: vocabulary, key: "train_data")
        if let evaluationDataset { try checkIDs(evaluationDataset, vocabularySize: vocabulary, key: "eval_data") }
        if model.isQuantized, model.peftConfiguration == nil {
            throw TrainerError("quantized weights are frozen (quantized: true / quantize:): use peft_config to train a LoRA "
                               + "or prompt-tuning adapter on them")
        }
        if model.trainableParameters.isEmpty { throw TrainerError("the model has no trainable parameters") }
        // Trained parameters are float32 with an adapter, else in `dtype`.
        if communicator.size > 1 || config.zeroStage > 0, model.peftConfiguration == nil, config.dtype != .float32 {
            throw TrainerError("dtype: data parallelism and ZeRO reduce float32 parameters; use dtype: float32")
        }
        if config.zeroStage == 3, model.parameterUnits == nil || model.peftConfiguration != nil {
            throw TrainerError("ds_config.zero_optimization.stage: ZeRO stage 3 needs a model without adapters and with an "
                               + "untied output projection (tie_word_embeddings: false); use stage 2")
        }
    }

    /// The pipeline stages of `model` by `method`; throws when a stage would get no unit or `type:REGEX` matches none.
    static func pipelinePartition(_ model: some CausalLanguageModel, stages: Int,
                                  method: PipelinePartitionMethod) throws -> PipelinePartition {
        let units = model.blockCount + 2
        guard stages <= units else {
            throw TrainerError("pp_size: \(stages) stages for a model of \(units) units (the embedding, \(model.blockCount) "
                               + "blocks, the head); use pp_size ≤ \(units)")
        }
        if case .type(let pattern) = method {
            let regex = try? NSRegularExpression(pattern: pattern, options: .caseInsensitive)
            let names = model.unitTypeNames
            guard let regex, names.contains(where: { regex.firstMatch(in: $0, range: NSRange($0.startIndex..., in: $0)) != nil }) else {
                throw TrainerError("pp_partition_method: type:\(pattern) matches none of the model's units ("
                                   + Array(Set(names)).sorted().joined(separator: ", ") + ")")
            }
        }
        do { return try PipelinePartition(model: model, stages: stages, method: method) }
        catch { throw TrainerError("pp_partition_method: \(error)") }
    }

    /// Throws unless every token and label of `dataset` is an id of the model's vocabulary.
    private static func checkIDs(_ dataset: TrainingDataset, vocabularySize: Int, key: String) throws {
        for example in dataset.examples {
            let bad = example.tokens.first { !(0..<vocabularySize).contains($0) }
                ?? example.labels.first { $0 != Tensor.ignoreIndex && !(0..<vocabularySize).contains($0) }
            if let bad {
                let place = example.location.map { "\($0): " } ?? ""
                throw TrainerError("\(key): \(place)id \(bad) is outside the model's vocabulary (\(vocabularySize) ids)")
            }
        }
    }
}
