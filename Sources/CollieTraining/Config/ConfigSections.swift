import CollieEngine
import CollieModels

// The nested sections and closed value sets of `CollieConfig`. Each section decodes with defaults for absent
// keys (CoLLiE's, or torch's for optimizer hyper-parameters) and encodes every field it holds.

// The optimizer and the schedule are named by the enums the training code uses, in the config's spellings.
extension OptimizerKind: ConfigEnum {}
extension LearningRateSchedule.Kind: ConfigEnum {}
extension WeightDistribution: ConfigEnum {}

extension CollieConfig {
    /// `optimizer:` — which optimizer and its hyper-parameters (torch's names). A hyper-parameter left out
    /// takes that optimizer's reference default; one the optimizer does not have is an error in `validate()`.
    public struct OptimizerSettings: Codable, Equatable, Sendable {
        /// The optimizer (`sgd`, `adamw`, `lomo`, `adalomo`, `lion`, `adan`, `sophiag`).
        public var name: OptimizerKind
        /// Learning rate (`lr`); the peak value when a schedule warms up.
        public var learningRate: Double
        /// (β1, β2) of AdamW (0.9, 0.999), Lion (0.9, 0.99) and SophiaG (0.965, 0.99); (β1, β2, β3) of Adan
        /// (0.98, 0.92, 0.99).
        public var betas: [Double]?
        /// ε of AdamW and Adan, default 1e-8.
        public var epsilon: Double?
        /// Weight decay: decoupled (AdamW 0.01, SophiaG 0.1, Lion, Adan, LOMO, AdaLomo 0) or L2 (SGD, 0).
        public var weightDecay: Double?
        /// SGD's momentum, default 0.
        public var momentum: Double?
        /// SGD's Nesterov momentum, default false.
        public var nesterov: Bool?
        /// SGD's dampening, default 0.
        public var dampening: Double?
        /// LOMO's and AdaLomo's element-wise gradient clipping (`clip_grad_value`), default off.
        public var clipGradValue: Double?
        /// AdaLomo's update RMS threshold, default 1.
        public var clipThreshold: Double?
        /// AdaLomo's second-moment decay exponent, default −0.8.
        public var decayRate: Double?
        /// SophiaG's ρ, default 0.04.
        public var rho: Double?
        /// SophiaG: refresh the Hessian estimate every this many updates, default 10.
        public var hessianUpdateInterval: Int?
        /// Adan: decay before the step instead of the proximal decay after it, default false.
        public var noProx: Bool?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case name, learningRate = "lr", betas, epsilon = "eps", weightDecay = "weight_decay", momentum, nesterov,
                 dampening, clipGradValue = "clip_grad_value", clipThreshold = "clip_threshold", decayRate = "decay_rate",
                 rho, hessianUpdateInterval = "hessian_update_interval", noProx = "no_prox"
        }

        public init(name: OptimizerKind = .adamW, learningRate: Double = 1e-3, betas: [Double]? = nil, epsilon: Double? = nil,
                    weightDecay: Double? = nil, momentum: Double? = nil, nesterov: Bool? = nil, dampening: Double? = nil,
                    clipGradValue: Double? = nil, clipThreshold: Double? = nil, decayRate: Double? = nil,
                    rho: Double? = nil, hessianUpdateInterval: Int? = nil, noProx: Bool? = nil) {
            self.name = name
            self.learningRate = learningRate
            self.betas = betas
            self.epsilon = epsilon
            self.weightDecay = weightDecay
            self.momentum = momentum
            self.nesterov = nesterov
            self.dampening = dampening
            self.clipGradValue = clipGradValue
            self.clipThreshold = clipThreshold
            self.decayRate = decayRate
            self.rho = rho
            self.hessianUpdateInterval = hessianUpdateInterval
            self.noProx = noProx
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(name: try c.value(.name, default: .adamW), learningRate: try c.value(.learningRate, default: 1e-3),
                      betas: try c.decodeIfPresent([Double].self, forKey: .betas),
                      epsilon: try c.decodeIfPresent(Double.self, forKey: .epsilon),
                      weightDecay: try c.decodeIfPresent(Double.self, forKey: .weightDecay),
                      momentum: try c.decodeIfPresent(Double.self, forKey: .momentum),
                      nesterov: try c.decodeIfPresent(Bool.self, forKey: .nesterov),
                      dampening: try c.decodeIfPresent(Double.self, forKey: .dampening),
                      clipGradValue: try c.decodeIfPresent(Double.self, forKey: .clipGradValue),
                      clipThreshold: try c.decodeIfPresent(Double.self, forKey: .clipThreshold),
                      decayRate: try c.decodeIfPresent(Double.self, forKey: .decayRate),
                      rho: try c.decodeIfPresent(Double.self, forKey: .rho),
                      hessianUpdateInterval: try c.decodeIfPresent(Int.self, forKey: .hessianUpdateInterval),
                      noProx: try c.decodeIfPresent(Bool.self, forKey: .noProx))
        }

        /// The hyper-parameter keys `name` accepts besides `name` and `lr`.
        static func keys(of name: OptimizerKind) -> Set<CodingKeys> {
            switch name {
            case .sgd: [.weightDecay, .momentum, .nesterov, .dampening]
            case .adamW: [.betas, .epsilon, .weightDecay]
            case .lomo: [.weightDecay, .clipGradValue]
            case .adaLomo: [.weightDecay, .clipGradValue, .clipThreshold, .decayRate]
            case .lion: [.betas, .weightDecay]
            case .adan: [.betas, .epsilon, .weightDecay, .noProx]
            case .sophiaG: [.betas, .rho, .weightDecay, .hessianUpdateInterval]
            }
        }

        /// The reference default betas of `name` (empty for optimizers without betas).
        static func defaultBetas(of name: OptimizerKind) -> [Double] {
            switch name {
            case .adamW: [0.9, 0.999]
            case .lion: [0.9, 0.99]
            case .sophiaG: [0.965, 0.99]
            case .adan: [0.98, 0.92, 0.99]
            default: []
            }
        }

        /// The betas with the optimizer's default filled in.
        public var resolvedBetas: [Double] { betas ?? Self.defaultBetas(of: name) }

        /// Weight decay with the optimizer's reference default filled in.
        public var resolvedWeightDecay: Double {
            weightDecay ?? (name == .adamW ? 0.01 : name == .sophiaG ? 0.1 : 0)
        }
    }

    /// `lr_scheduler:` — how the learning rate moves over training (Hugging Face's schedules).
    public struct SchedulerSettings: Codable, Equatable, Sendable {
        /// `type`: `constant` (the learning rate stays at `lr`), `linear` or `cosine` (a decay from `lr` to 0 at
        /// the last step), each after the warm-up.
        public var kind: LearningRateSchedule.Kind
        /// Steps of linear warm-up from 0 to `lr`; at most one of this and `warmupRatio`.
        public var warmupSteps: Int?
        /// Warm-up as a fraction of all optimizer steps, in [0, 1].
        public var warmupRatio: Double?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case kind = "type", warmupSteps = "warmup_steps", warmupRatio = "warmup_ratio"
        }

        public init(kind: LearningRateSchedule.Kind = .constant, warmupSteps: Int? = nil, warmupRatio: Double? = nil) {
            self.kind = kind
            self.warmupSteps = warmupSteps
            self.warmupRatio = warmupRatio
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(kind: try c.value(.kind, default: .constant),
                      warmupSteps: try c.decodeIfPresent(Int.self, forKey: .warmupSteps),
                      warmupRatio: try c.decodeIfPresent(Double.self, forKey: .warmupRatio))
        }

        /// Warm-up steps for a run of `totalSteps` optimizer steps.
        public func warmupSteps(totalSteps: Int) -> Int {
            if let warmupSteps { return warmupSteps }
            return Int((warmupRatio ?? 0) * Double(totalSteps))
        }
    }

    /// `init_method:` — how a model built from a preset is initialized (CoLLiE: normal, mean 0, std 0.02): `type` is
    /// the distribution of its weight matrices (`normal`, `xavier_normal`, `xavier_uniform`, `kaiming_normal`,
    /// `kaiming_uniform`, as `torch.nn.init`); `mean` and `std` are the normal one's.
    public struct InitMethod: Codable, Equatable, Sendable {
        public typealias Kind = WeightDistribution

        public var kind: Kind
        public var mean: Double
        public var std: Double

        enum CodingKeys: String, CodingKey, CaseIterable { case kind = "type", mean, std }

        public init(kind: Kind = .normal, mean: Double = 0, std: Double = 0.02) {
            self.kind = kind
            self.mean = mean
            self.std = std
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(kind: try c.value(.kind, default: .normal), mean: try c.value(.mean, default: 0),
                      std: try c.value(.std, default: 0.02))
        }
    }

    /// One quantity a monitor reports each step (`monitors:`), after CoLLiE's monitors.
    public enum Monitor: String, Codable, CaseIterable, Sendable, ConfigEnum {
        case loss, lr
        case tokensPerSecond = "tokens_per_second"
        case stepTime = "step_time"
        case memory
        /// Evaluation results, whenever an evaluation runs.
        case eval
    }

    /// Where monitors write (`monitor_outputs:`), under `output_dir`.
    public enum MonitorOutput: String, Codable, CaseIterable, Sendable, ConfigEnum {
        /// monitors.csv, one row per step.
        case csv
        /// TensorBoard event files.
        case tensorboard
    }

    /// Whether a smaller or a larger value of a monitored metric is better.
    public enum MetricMode: String, Codable, CaseIterable, Sendable, ConfigEnum {
        case min, max

        /// True when `candidate` improves on `best`.
        public func isImprovement(_ candidate: Double, over best: Double) -> Bool {
            self == .min ? candidate < best : candidate > best
        }
    }

    /// The floating-point type parameters are kept in (`dtype:`). Compute is float32 either way.
    public enum Precision: String, Codable, CaseIterable, Sendable, ConfigEnum {
        case float32, bfloat16, float16

        /// The engine's dtype.
        public var dtype: DType {
            switch self {
            case .float32: .float32
            case .bfloat16: .bfloat16
            case .float16: .float16
            }
        }
    }

    /// `mixed_precision:` — the arithmetic of forward's and backward's matrix products.
    public enum MixedPrecisionMode: String, Codable, CaseIterable, Sendable, ConfigEnum {
        /// float32 operands.
        case no
        /// bfloat16 operands, float32 accumulation (PyTorch's bf16 autocast).
        case bf16

        /// The engine's GEMM precision.
        public var gemmPrecision: GEMMPrecision { self == .bf16 ? .bfloat16 : .float32 }
    }

    /// `callbacks:` — what happens at epoch and batch boundaries besides the update (CoLLiE's callbacks).
    public struct Callbacks: Codable, Equatable, Sendable {
        /// Save checkpoints under `output_dir` every n epochs or every n batches (one of the two).
        public struct Checkpoint: Codable, Equatable, Sendable {
            public var everyNEpochs: Int?
            public var everyNBatches: Int?
            /// Keep only the newest n periodic checkpoints; nil keeps all.
            public var keepLast: Int?
            /// Also keep the k best checkpoints by `monitor`.
            public var topK: Int?
            /// The metric `topK` ranks by (`eval_loss`, `loss`, an evaluator's metric).
            public var monitor: String?
            public var mode: MetricMode

            enum CodingKeys: String, CodingKey, CaseIterable {
                case everyNEpochs = "every_n_epochs", everyNBatches = "every_n_batches", keepLast = "keep_last",
                     topK = "top_k", monitor, mode
            }

            public init(everyNEpochs: Int? = nil, everyNBatches: Int? = nil, keepLast: Int? = nil, topK: Int? = nil,
                        monitor: String? = nil, mode: MetricMode = .min) {
                self.everyNEpochs = everyNEpochs
                self.everyNBatches = everyNBatches
                self.keepLast = keepLast
                self.topK = topK
                self.monitor = monitor
                self.mode = mode
            }

            public init(from decoder: Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                self.init(everyNEpochs: try c.decodeIfPresent(Int.self, forKey: .everyNEpochs),
                          everyNBatches: try c.decodeIfPresent(Int.self, forKey: .everyNBatches),
                          keepLast: try c.decodeIfPresent(Int.self, forKey: .keepLast),
                          topK: try c.decodeIfPresent(Int.self, forKey: .topK),
                          monitor: try c.decodeIfPresent(String.self, forKey: .monitor),
                          mode: try c.value(.mode, default: .min))
            }
        }

        /// At the end of training, load the checkpoint that was best by `monitor`.
        public struct LoadBestModel: Codable, Equatable, Sendable {
            public var monitor: String
            public var mode: MetricMode

            enum CodingKeys: String, CodingKey, CaseIterable { case monitor, mode }

            public init(monitor: String, mode: MetricMode = .min) {
                self.monitor = monitor
                self.mode = mode
            }

            public init(from decoder: Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                self.init(monitor: try c.decode(String.self, forKey: .monitor), mode: try c.value(.mode, default: .min))
            }
        }

        /// Stop when `monitor` has not improved for `patience` evaluations.
        public struct EarlyStop: Codable, Equatable, Sendable {
            public var monitor: String
            public var mode: MetricMode
            public var patience: Int

            enum CodingKeys: String, CodingKey, CaseIterable { case monitor, mode, patience }

            public init(monitor: String, mode: MetricMode = .min, patience: Int = 3) {
                self.monitor = monitor
                self.mode = mode
                self.patience = patience
            }

            public init(from decoder: Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                self.init(monitor: try c.decode(String.self, forKey: .monitor), mode: try c.value(.mode, default: .min),
                          patience: try c.value(.patience, default: 3))
            }
        }

        public var checkpoint: Checkpoint?
        public var loadBestModel: LoadBestModel?
        public var earlyStop: EarlyStop?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case checkpoint, loadBestModel = "load_best_model", earlyStop = "early_stop"
        }

        public init(checkpoint: Checkpoint? = nil, loadBestModel: LoadBestModel? = nil, earlyStop: EarlyStop? = nil) {
            self.checkpoint = checkpoint
            self.loadBestModel = loadBestModel
            self.earlyStop = earlyStop
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(checkpoint: try c.decodeIfPresent(Checkpoint.self, forKey: .checkpoint),
                      loadBestModel: try c.decodeIfPresent(LoadBestModel.self, forKey: .loadBestModel),
                      earlyStop: try c.decodeIfPresent(EarlyStop.self, forKey: .earlyStop))
        }
    }
}
