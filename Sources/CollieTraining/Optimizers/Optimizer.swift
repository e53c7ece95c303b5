import CollieEngine
import Foundation

/// Updates parameters from their gradients, either after `backward()` (SGD, AdamW) or inside it
/// from gradient-ready hooks (LOMO, AdaLomo).
///
/// A training step, as the `Trainer` takes it:
///
///     optimizer.learningRate = schedule.learningRate(at: step)
///     if let inBackward = optimizer.inBackward {
///         inBackward.update(from: loss)         // LOMO, AdaLomo: the updates happen inside backward
///     } else {
///         loss.backward()
///         GradientClipping.clipByGlobalNorm(optimizer.parameters, maxNorm: 1)
///         optimizer.willStep(update)            // what the trainer knows: the update's index and token count
///         optimizer.step()
///         optimizer.didStep(update) { … }       // SophiaG asks here for its sampled-label gradients
///     }
///     optimizer.zeroGradients()
///
/// `state()` and `load(_:)` capture everything an exact resume needs (moments, step counts).
public protocol Optimizer: AnyObject {
    /// The parameters this optimizer updates, in a fixed order (the order of its saved state).
    var parameters: [Tensor] { get }
    /// The learning rate used by the next update; schedules set it before each step.
    var learningRate: Double { get set }
    /// Number of updates taken (`step()` calls, or backward passes for in-backward optimizers).
    var stepCount: Int { get }
    /// True for optimizers that update each parameter inside `backward()`, as soon as its
    /// gradient is final (so the full set of gradients never exists at once).
    var updatesDuringBackward: Bool { get }
    /// How the trainer drives an in-backward optimizer (loss scale, norm pass, updating pass); nil for
    /// optimizers that step after backward. The trainer reaches LOMO and AdaLomo through it, not by a cast.
    var inBackward: FusedBackwardOptimizer? { get }

    /// Registers what an in-backward optimizer needs on its parameters (gradient-ready hooks).
    /// Call once before the first backward pass; optimizers that step after backward do nothing.
    func attachToBackward()
    /// Called by the trainer before each `step()` after backward with what it knows of the update (not for
    /// in-backward optimizers, which step inside `FusedBackwardOptimizer.update(from:)`). Default: nothing
    /// (SophiaG scales ρ by the update's token count).
    func willStep(_ update: OptimizerUpdate)
    /// Applies one update to every parameter that has a gradient (parameters without one are
    /// skipped and keep their state, as in torch).
    func step()
    /// Called by the trainer after each `step()` after backward, once the updated values are in every parameter.
    /// `sampledLabelGradients` replaces the gradients with those of the update's loss against labels
    /// sampled from the model's own predictions (a forward and backward pass per micro-batch, drawing from
    /// the trainer's seeded generator); an optimizer calls it only when it needs them. Default: nothing
    /// (SophiaG refreshes its Hessian estimate every `hessianUpdateInterval` updates).
    func didStep(_ update: OptimizerUpdate, sampledLabelGradients: () -> Void)
    /// Clears every gradient before the next accumulation (see `Gradients.zero(_:)`).
    func zeroGradients()
    /// A snapshot of the optimizer for a checkpoint. Its tensors are the optimizer's live buffers
    /// (as torch's `state_dict()`): write them out before the next step.
    func state() -> OptimizerState
    /// Restores a snapshot taken by `state()` of an optimizer of the same kind, hyper-parameters
    /// and parameters, so that the following steps equal those of the uninterrupted run.
    func load(_ state: OptimizerState) throws
}

/// One optimizer update as the trainer sees it, handed to `Optimizer.willStep(_:)` and
/// `Optimizer.didStep(_:sampledLabelGradients:)`.
public struct OptimizerUpdate: Equatable, Sendable {
    /// Updates taken before this one (0 for the first update of a run).
    public var index: Int
    /// The tokens the update's loss averages over: labels ≠ −100 after the shift, in all its micro-batches.
    public var predictedTokens: Int

    public init(index: Int, predictedTokens: Int) {
        self.index = index
        self.predictedTokens = predictedTokens
    }
}

extension Optimizer {
    public var updatesDuringBackward: Bool { false }

    public var inBackward: FusedBackwardOptimizer? { nil }

    public func attachToBackward() {}

    public func willStep(_ update: OptimizerUpdate) {}

    public func didStep(_ update: OptimizerUpdate, sampledLabelGradients: () -> Void) {}

    public func zeroGradients() { Gradients.zero(parameters) }

    /// Writes `state()` into `folder` (`optimizer.json` and `optimizer.safetensors`).
    public func save(to folder: URL) throws { try state().save(to: folder) }

    /// Restores the state saved by `save(to:)` in `folder`.
    public func load(from folder: URL) throws { try load(OptimizerState(contentsOf: folder)) }
}

/// The optimizers Collie implements: what the config's `optimizer.name` says (in these spellings) and what
/// saved state records.
public enum OptimizerKind: String, Codable, Sendable, CaseIterable {
    case sgd
    case adamW = "adamw"
    case lomo
    case adaLomo = "adalomo"
    case lion
    case adan
    case sophiaG = "sophiag"

    /// True for LOMO and AdaLomo, which update each parameter inside backward.
    public var updatesDuringBackward: Bool { self == .lomo || self == .adaLomo }
}

/// Operations on the gradients of a list of parameters.
public enum Gradients {
    /// Sets every existing gradient to zero in place.
    ///
    /// In place rather than dropping them, so that gradients that are views of a
    /// `ParameterBuffer`'s flat gradient buffer stay views (and the next backward accumulates
    /// into the same memory). Parameters without a gradient are left without one.
    public static func zero(_ parameters: [Tensor]) {
        for p in parameters {
            guard let g = p.grad else { continue }
            if g.isContiguous { g.fillWithZeros() } else { p.grad = nil }
        }
    }
}

/// A float32 view of `parameter`'s gradient for an update loop (a copy only when the gradient is
/// strided or held in another dtype). Parameters may be float32, bf16 or f16 (updated in float32).
func float32Gradient(of parameter: Tensor, optimizer: String) -> Tensor? {
    guard let grad = parameter.grad else { return nil }
    precondition([.float32, .bfloat16, .float16].contains(parameter.dtype) && parameter.isContiguous,
                 "\(optimizer) updates contiguous float32/bf16/f16 parameters; \(parameter.name ?? "a parameter") is \(parameter.dtype)")
    precondition(grad.shape == parameter.shape, "gradient shape \(grad.shape) ≠ parameter shape \(parameter.shape)")
    return grad.dtype == .float32 && grad.isContiguous ? grad : grad.contiguousCopy(dtype: .float32)
}
