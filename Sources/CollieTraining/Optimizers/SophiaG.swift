import CCollieKernels
import CollieEngine
import Foundation

/// SophiaG (Liu et al. 2023, "Sophia: A Scalable Stochastic Second-order Optimizer"), step for
/// step as the authors' reference implementation (Liuhong99/Sophia, `SophiaG`).
///
/// Every step:
///
///     w ← w · (1 − lr·λ)
///     m ← β1·m + (1 − β1)·g
///     w ← w − lr · sign(m) · min(|m| / (ρ·bs·h + 1e-15), 1)
///
/// and every k = `hessianUpdateInterval` steps `updateHessian()` folds a Gauss–Newton–Bartlett estimate into
/// the Hessian diagonal h ← β2·h + (1 − β2)·ĝ⊙ĝ, where ĝ is the gradient of the loss against labels sampled
/// from the model's own predictions. In training, `didStep(_:sampledLabelGradients:)` asks the trainer for ĝ
/// when a refresh is due (`HessianEstimate` samples the labels); CoLLiE's SophiaG never refreshes its Hessian.
public final class SophiaG: Optimizer {
    public let parameters: [Tensor]
    public var learningRate: Double
    public let beta1: Double, beta2: Double
    /// ρ, the clipping scale.
    public let rho: Double
    public let weightDecay: Double
    /// The number of tokens per update (`bs` of the reference's `step`), scaling ρ; in training, the update's
    /// predicted-token count (`willStep(_:)`).
    public var batchTokens: Int
    /// Refresh the Hessian estimate after every this many updates (`hessian_update_interval`).
    public let hessianUpdateInterval: Int
    public private(set) var stepCount = 0
    private var slots: ParameterSlots

    public init(parameters: [Tensor], learningRate: Double = 1e-4, beta1: Double = 0.965, beta2: Double = 0.99,
                rho: Double = 0.04, weightDecay: Double = 0.1, batchTokens: Int = 5120, hessianUpdateInterval: Int = 10) {
        precondition(learningRate >= 0 && rho >= 0 && weightDecay >= 0, "SophiaG needs lr, rho, weight decay ≥ 0")
        precondition(hessianUpdateInterval >= 1, "SophiaG's Hessian update interval must be at least 1")
        precondition((0..<1).contains(beta1) && (0..<1).contains(beta2), "SophiaG betas must lie in [0, 1)")
        self.parameters = parameters
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.rho = rho
        self.weightDecay = weightDecay
        self.batchTokens = batchTokens
        self.hessianUpdateInterval = hessianUpdateInterval
        slots = ParameterSlots(names: ["exp_avg", "hessian"], count: parameters.count)
    }

    public func step() {
        stepCount += 1
        let decay = Float(1 - learningRate * weightDecay), negativeLR = Float(-learningRate)
        let b1 = Float(beta1), c1 = Float(1 - beta1), scale = Float(rho * Double(batchTokens))
        for (index, p) in parameters.enumerated() {
            guard let gradient = float32Gradient(of: p, optimizer: "SophiaG") else { continue }
            let buffers = slots.buffers(index, shape: p.shape)
            let m = buffers[0].pointer(as: Float.self), h = buffers[1].pointer(as: Float.self)
            // Per element, in C: w *= decay; m = (m·b1).addingProduct(g, c1);
            // w = w.addingProduct(sign(m)·min(|m| / (scale·h + 1e-15), 1), negativeLR).
            updateElementwise(p, gradient: gradient) { w, g, range in
                let i = range.lowerBound
                collie_sophia_update_f32(w + i, g + i, m + i, h + i, range.count, decay, b1, c1, scale, negativeLR)
            }
        }
    }

    /// Takes the update's predicted-token count as `batchTokens`.
    public func willStep(_ update: OptimizerUpdate) { batchTokens = update.predictedTokens }

    /// After every `hessianUpdateInterval`-th update: the gradients against sampled labels, folded into the
    /// Hessian estimate.
    public func didStep(_ update: OptimizerUpdate, sampledLabelGradients: () -> Void) {
        guard (update.index + 1) % hessianUpdateInterval == 0 else { return }
        sampledLabelGradients()
        updateHessian()
    }

    /// Folds the current gradients (of a loss against sampled labels) into the Hessian estimate:
    /// h ← β2·h + (1 − β2)·g⊙g for every parameter with a gradient.
    public func updateHessian() {
        let b2 = Float(beta2), c2 = Float(1 - beta2)
        for (index, p) in parameters.enumerated() {
            guard let gradient = float32Gradient(of: p, optimizer: "SophiaG") else { continue }
            let h = slots.buffers(index, shape: p.shape)[1].pointer(as: Float.self)
            let g = gradient.pointer(as: Float.self)
            Parallel.forEach(p.count, minimumChunk: 1 << 14) { range in
                // h = (h·b2).addingProduct(c2·g, g), in C.
                collie_sophia_hessian_f32(h + range.lowerBound, g + range.lowerBound, range.count, b2, c2)
            }
        }
    }

    var hyperparameters: [String: Double] {
        ["beta1": beta1, "beta2": beta2, "rho": rho, "weight_decay": weightDecay]
    }

    /// `<key>.exp_avg` and `<key>.hessian` (the reference's names).
    public func state() -> OptimizerState {
        let keys = OptimizerState.parameterKeys(for: parameters)
        return OptimizerState(metadata: .init(kind: .sophiaG, stepCount: stepCount, learningRate: learningRate,
                                              hyperparameters: hyperparameters, parameterKeys: keys),
                              tensors: slots.tensors(keys: keys))
    }

    public func load(_ state: OptimizerState) throws {
        try state.validate(kind: .sophiaG, hyperparameters: hyperparameters, parameters: parameters)
        try slots.load(state, parameters: parameters)
        stepCount = state.metadata.stepCount
        learningRate = state.metadata.learningRate
    }
}
