import CollieEngine
import CollieModels
import Foundation

/// Everything a training run needs, read from YAML or JSON with CoLLiE's key names where CoLLiE has one.
///
/// ```yaml
/// model: tiny                      # a preset, or a Hugging Face model folder
/// tokenizer: ../../tokenizers/llama2
/// train_data: ../../data/alpaca_en_demo.json
/// train_epochs: 3
/// train_micro_batch_size: 8
/// optimizer: {name: adamw, lr: 3.0e-4, weight_decay: 0.0}
/// lr_scheduler: {type: cosine, warmup_ratio: 0.03}
/// ```
///
/// `load(from:overrides:)` reads a file strictly: unknown keys (with a did-you-mean), values of the wrong type
/// and failed `validate()` checks are `ConfigError`s naming the key path, the file and the line. Absent keys
/// take CoLLiE's defaults. Relative paths in a file are resolved against the file's folder.
public struct CollieConfig: Codable, Equatable, Sendable {
    // MARK: CoLLiE's fields

    /// Seed for initialization, shuffling and dropout.
    public var seed: Int = 42
    /// Data-, tensor- and pipeline-parallel degrees. The run needs dp × tp × pp processes (`mpirun -np`).
    public var dataParallelSize = 1, tensorParallelSize = 1, pipelineParallelSize = 1
    /// How pipeline stages split the model: `parameters` (CoLLiE's default), `uniform` or `type:REGEX`.
    public var pipelinePartitionMethod = PipelinePartitionMethod.parameters
    /// DeepSpeed-style settings; Collie reads the ZeRO stage.
    public var deepSpeed = DeepSpeedSettings()
    public var trainEpochs = 100
    /// Stop after this many optimizer updates (transformers' and CoLLiE's `max_steps`): when positive it sets the
    /// run's length — the learning-rate schedule's too — in place of `train_epochs`, looping over the data as
    /// often as needed. 0 or negative: off.
    public var maxSteps = 0
    /// Examples per forward/backward pass.
    public var trainMicroBatchSize = 1
    /// Micro-batches whose gradients are summed before one optimizer step.
    public var gradientAccumulationSteps = 1
    public var evalBatchSize = 1
    /// Evaluate every n optimizer steps (0: never by steps).
    public var evalPerNSteps = 0
    /// Evaluate every n epochs (0: never by epochs).
    public var evalPerNEpochs = 0
    /// Also evaluate once before the first update (transformers' `eval_on_start`).
    public var evalOnStart = false
    /// Activation (gradient) checkpointing.
    public var checkpointing = true
    /// Fused FlashAttention-style attention.
    public var useFlash = true
    /// CoLLiE's `dropout` in training: on each block's attention output before its output projection and on its
    /// MLP output before the residual add (`CausalLanguageModel.setHiddenDropout`), in [0, 1).
    public var dropout = 0.0
    public var initMethod = InitMethod()

    // MARK: Model and data

    public var model: ModelSource
    /// Keep a GGUF model's linear weights in their quantized blocks (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)
    /// instead of float32. Quantized weights are frozen: train an adapter (`peft_config`).
    public var quantized = false
    /// Quantize every linear weight of the model to this block format as it loads (q8_0, q4_0, q4_1, q5_0, q5_1,
    /// q4_k). Quantized weights are frozen: train an adapter (`peft_config`).
    public var quantize: BlockFormat?
    /// Tokenizer folder or file; nil means the model folder (required with a preset).
    public var tokenizer: String?
    public var trainData: String?
    public var evalData: String?
    /// Without `eval_data`: the fraction of `train_data`'s records, taken from its end, held out for evaluation
    /// (0: none).
    public var evalSplit = 0.0
    /// How records are read; `auto` detects it from the first record's keys.
    public var recordFormat: RecordFormat = .auto
    /// Render `alpaca` and `input_output` records as one-turn chats with the tokenizer's chat template (user:
    /// the prompt, assistant: the response) instead of Alpaca's prompt; for instruction-tuned models.
    public var chatTemplate = false
    /// Examples are truncated to this many tokens.
    public var maxLength = 2048
    /// Shuffle the training examples each epoch (seeded).
    public var shuffle = true
    public var paddingSide: PaddingSide = .right
    /// `padding_free: true` (TRL's name): each micro-batch's examples go through the model one after another in a
    /// single row with no padding, each attending only to itself (`PaddedBatch.flattened()`), so no work is spent
    /// on padding; the loss is the padded batch's within float rounding (also through pipeline stages, which each
    /// receive the packed sequences). Not with prompt tuning or GLM-6B.
    public var paddingFree = false
    /// What happens to a last, short batch of an epoch.
    public var lastBatch: LastBatchMode = .normal

    // MARK: Optimization

    public var optimizer = OptimizerSettings()
    public var lrScheduler = SchedulerSettings()
    /// Clip the global gradient norm to this value; nil: no clipping.
    public var maxGradNorm: Double?
    public var dtype: Precision = .float32
    /// `mixed_precision: bf16` (Hugging Face accelerate's / PyTorch autocast's): the matrix products of forward and
    /// backward take bfloat16 operands with float32 accumulation; everything else, and the parameters (per `dtype`),
    /// as without it. `no` (the default): float32 products.
    public var mixedPrecision: MixedPrecisionMode = .no
    /// Parameter-efficient fine-tuning (CoLLiE's `peft_config`): LoRA or prompt tuning with PEFT's field names;
    /// only the adapter trains and the saved model is a PEFT adapter folder. Nil: full fine-tuning.
    public var peftConfig: PEFTConfiguration?

    // MARK: Output

    /// Where checkpoints, monitor files and the final model go.
    public var outputDir = "output"
    public var monitors: [Monitor] = []
    public var monitorOutputs: [MonitorOutput] = [.csv]
    public var callbacks = Callbacks()
    /// An instruction (or, for non-Alpaca data, a text) the model answers greedily before and after `collie train`.
    public var samplePrompt: String?
    /// More such prompts (all of them are answered, `sample_prompt` first).
    public var samplePrompts: [String] = []
    /// How many tokens the sample answer may have at most.
    public var sampleMaxNewTokens = 48
    /// Evaluators run with every evaluation (and by `collie eval`): perplexity, generation, classification.
    public var evaluators: [EvaluatorSettings] = []

    enum CodingKeys: String, CodingKey, CaseIterable {
        case seed, dataParallelSize = "dp_size", tensorParallelSize = "tp_size", pipelineParallelSize = "pp_size"
        case pipelinePartitionMethod = "pp_partition_method"
        case trainEpochs = "train_epochs", maxSteps = "max_steps", trainMicroBatchSize = "train_micro_batch_size"
        case gradientAccumulationSteps = "gradient_accumulation_steps", evalBatchSize = "eval_batch_size"
        case evalPerNSteps = "eval_per_n_steps", evalPerNEpochs = "eval_per_n_epochs", evalOnStart = "eval_on_start"
        case checkpointing, useFlash = "use_flash", dropout, initMethod = "init_method"
        case model, quantized, quantize, tokenizer, trainData = "train_data", evalData = "eval_data", evalSplit = "eval_split", recordFormat = "record_format"
        case chatTemplate = "chat_template"
        case maxLength = "max_length", shuffle, paddingSide = "padding_side", paddingFree = "padding_free"
        case lastBatch = "last_batch"
        case optimizer, lrScheduler = "lr_scheduler", maxGradNorm = "max_grad_norm", dtype,
             mixedPrecision = "mixed_precision", peftConfig = "peft_config"
        case outputDir = "output_dir", monitors, monitorOutputs = "monitor_outputs", callbacks
        case samplePrompt = "sample_prompt", samplePrompts = "sample_prompts", sampleMaxNewTokens = "sample_max_new_tokens"
        case deepSpeed = "ds_config"
        case evaluators
    }

    /// A config with CoLLiE's defaults for `model`.
    public init(model: ModelSource) {
        self.model = model
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decode(ModelSource.self, forKey: .model)
        quantized = try c.value(.quantized, default: quantized)
        quantize = try c.decodeIfPresent(BlockFormat.self, forKey: .quantize)
        seed = try c.value(.seed, default: seed)
        dataParallelSize = try c.value(.dataParallelSize, default: dataParallelSize)
        tensorParallelSize = try c.value(.tensorParallelSize, default: tensorParallelSize)
        pipelineParallelSize = try c.value(.pipelineParallelSize, default: pipelineParallelSize)
        pipelinePartitionMethod = try c.value(.pipelinePartitionMethod, default: pipelinePartitionMethod)
        trainEpochs = try c.value(.trainEpochs, default: trainEpochs)
        maxSteps = try c.value(.maxSteps, default: maxSteps)
        trainMicroBatchSize = try c.value(.trainMicroBatchSize, default: trainMicroBatchSize)
        gradientAccumulationSteps = try c.value(.gradientAccumulationSteps, default: gradientAccumulationSteps)
        evalBatchSize = try c.value(.evalBatchSize, default: evalBatchSize)
        evalPerNSteps = try c.value(.evalPerNSteps, default: evalPerNSteps)
        evalPerNEpochs = try c.value(.evalPerNEpochs, default: evalPerNEpochs)
        evalOnStart = try c.value(.evalOnStart, default: evalOnStart)
        checkpointing = try c.value(.checkpointing, default: checkpointing)
        useFlash = try c.value(.useFlash, default: useFlash)
        dropout = try c.value(.dropout, default: dropout)
        initMethod = try c.value(.initMethod, default: initMethod)
        tokenizer = try c.decodeIfPresent(String.self, forKey: .tokenizer)
        trainData = try c.decodeIfPresent(String.self, forKey: .trainData)
        evalData = try c.decodeIfPresent(String.self, forKey: .evalData)
        evalSplit = try c.value(.evalSplit, default: evalSplit)
        recordFormat = try c.value(.recordFormat, default: recordFormat)
        chatTemplate = try c.value(.chatTemplate, default: chatTemplate)
        maxLength = try c.value(.maxLength, default: maxLength)
        shuffle = try c.value(.shuffle, default: shuffle)
        paddingSide = try c.value(.paddingSide, default: paddingSide)
        paddingFree = try c.value(.paddingFree, default: paddingFree)
        lastBatch = try c.value(.lastBatch, default: lastBatch)
        optimizer = try c.value(.optimizer, default: optimizer)
        lrScheduler = try c.value(.lrScheduler, default: lrScheduler)
        maxGradNorm = try c.decodeIfPresent(Double.self, forKey: .maxGradNorm)
        dtype = try c.value(.dtype, default: dtype)
        mixedPrecision = try c.value(.mixedPrecision, default: mixedPrecision)
        do {
            peftConfig = try c.decodeIfPresent(PEFTConfiguration.self, forKey: .peftConfig)
        } catch let error as PEFTError {
            throw ConfigError(keyPath: CodingKeys.peftConfig.rawValue, error.description,
                              source: (decoder as? StrictDecoder)?.node.source, line: nil)
        }
        // `output_dir:` with no value (or `--set output_dir=`) is a mistake, not a request for the default folder:
        // it becomes "" and `validate()` names it.
        outputDir = c.contains(.outputDir) ? try c.decodeIfPresent(String.self, forKey: .outputDir) ?? "" : outputDir
        monitors = try c.value(.monitors, default: monitors)
        monitorOutputs = try c.value(.monitorOutputs, default: monitorOutputs)
        callbacks = try c.value(.callbacks, default: callbacks)
        samplePrompt = try c.decodeIfPresent(String.self, forKey: .samplePrompt)
        samplePrompts = try c.value(.samplePrompts, default: samplePrompts)
        sampleMaxNewTokens = try c.value(.sampleMaxNewTokens, default: sampleMaxNewTokens)
        deepSpeed = try c.value(.deepSpeed, default: deepSpeed)
        evaluators = try c.value(.evaluators, default: evaluators)
    }

    // MARK: - Derived values

    /// Examples per optimizer step (micro-batch × accumulation × data-parallel ranks); `Int.max` when the product
    /// is larger.
    public var globalBatchSize: Int { Self.saturatingProduct([trainMicroBatchSize, gradientAccumulationSteps, dataParallelSize]) }

    /// The processes the run needs (dp_size × tp_size × pp_size); `Int.max` when the product is larger.
    public var processCount: Int { Self.saturatingProduct([dataParallelSize, tensorParallelSize, pipelineParallelSize]) }

    /// The product of `factors`, or `Int.max` when it overflows (config numbers can be anything).
    private static func saturatingProduct(_ factors: [Int]) -> Int {
        factors.reduce(1) { product, factor in
            let (result, overflow) = product.multipliedReportingOverflow(by: factor)
            return overflow ? Int.max : result
        }
    }

    /// How the model's linear weights are kept: `quantized: true` or `quantize:`; nil when dense.
    public var weightQuantization: WeightQuantization? {
        quantized ? .keepBlocks : quantize.map(WeightQuantization.quantize)
    }

    /// True when the run has evaluation data: `eval_data`, or a part of `train_data` held out by `eval_split`.
    public var hasEvaluationData: Bool { evalData != nil || evalSplit > 0 }

    /// The prompts `collie train` answers before and after training: `sample_prompt`, then `sample_prompts`.
    public var allSamplePrompts: [String] { (samplePrompt.map { [$0] } ?? []) + samplePrompts }

    /// The tokenizer's location: `tokenizer`, else the model folder; nil for a preset without a tokenizer.
    public var tokenizerPath: String? {
        if let tokenizer { return tokenizer }
        if case .folder(let path) = model { return path }
        return nil
    }
}
