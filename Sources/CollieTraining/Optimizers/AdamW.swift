import CCollieKernels
import CollieEngine
import Foundation

/// Adam with decoupled weight decay, step for step as `torch.optim.AdamW` (single-tensor path,
/// float32).
///
/// Per parameter with a gradient g, at its own step t (torch counts steps per parameter, so a
/// parameter that had no gradient for a step is not decayed, moved or counted):
///
///     w ← w · (1 − lr·λ)
///     m ← lerp(m, g, 1 − β1)            v ← v·β2 + (1 − β2)·g²
///     w ← w − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε)
///
/// Scalars are formed in double precision and rounded to float32 once, as torch does with its
/// Python-float hyper-parameters, and each element is computed with torch's CPU kernels' order of
/// operations and fused multiply-adds. Moments then agree bit for bit; parameters can differ by
/// an ulp where torch's vectorized AVX-512 `sqrt` (not always correctly rounded) rounds the
/// denominator the other way. Moments are float32, allocated at a parameter's first update.
public final class AdamW: Optimizer {
    public let parameters: [Tensor]
    public var learningRate: Double
    /// Decay rate of the first moment (torch's `betas[0]`).
    public let beta1: Double
    /// Decay rate of the second moment (torch's `betas[1]`).
    public let beta2: Double
    /// Added to the denominator for stability (torch's `eps`).
    public let epsilon: Double
    /// Decoupled weight decay λ (torch's `weight_decay`; the default 0.01 is torch's).
    public let weightDecay: Double
    /// Number of `step()` calls.
    public private(set) var stepCount = 0
    /// Updates each parameter has received (torch's per-parameter `state["step"]`).
    public private(set) var parameterStepCounts: [Int]
    private var firstMoments: [Tensor?]
    private var secondMoments: [Tensor?]

    /// An AdamW over `parameters` (float32, contiguous) with torch's defaults.
    public init(parameters: [Tensor], learningRate: Double = 1e-3, beta1: Double = 0.9, beta2: Double = 0.999,
                epsilon: Double = 1e-8, weightDecay: Double = 0.01) {
        precondition(learningRate >= 0 && epsilon >= 0 && weightDecay >= 0, "AdamW needs lr, eps, weight decay ≥ 0")
        precondition((0..<1).contains(beta1) && (0..<1).contains(beta2), "AdamW betas must lie in [0, 1)")
        self.parameters = parameters
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        parameterStepCounts = Array(repeating: 0, count: parameters.count)
        firstMoments = Array(repeating: nil, count: parameters.count)
        secondMoments = Array(repeating: nil, count: parameters.count)
    }

    public func step() {
        stepCount += 1
        for (index, p) in parameters.enumerated() {
            guard let g = float32Gradient(of: p, optimizer: "AdamW") else { continue }
            parameterStepCounts[index] += 1
            if firstMoments[index] == nil {
                firstMoments[index] = Tensor.zeros(p.shape)
                secondMoments[index] = Tensor.zeros(p.shape)
            }
            update(p, gradient: g, m: firstMoments[index]!, v: secondMoments[index]!, step: parameterStepCounts[index])
        }
    }

    private func update(_ p: Tensor, gradient: Tensor, m: Tensor, v: Tensor, step t: Int) {
        let decay = Float(1 - learningRate * weightDecay)
        let weight1 = Float(1 - beta1), weight1Complement = weight1 - 1
        let b2 = Float(beta2), weight2 = Float(1 - beta2), eps = Float(epsilon)
        let correction1 = 1 - Foundation.pow(beta1, Double(t))
        let correction2Root = Float((1 - Foundation.pow(beta2, Double(t))).squareRoot())
        let negativeStepSize = Float(-(learningRate / correction1))
        let applyDecay = weightDecay != 0
        let pm = m.pointer(as: Float.self), pv = v.pointer(as: Float.self)
        // Per element, in C (collie_adamw_update_f32, vectorized per instruction set):
        //     if applyDecay { w *= decay }
        //     // exp_avg.lerp_(grad, 1 − β1), as torch's vectorized lerp: one fused multiply-add from the nearer end.
        //     m = weight1 < 0.5 ? m.addingProduct(weight1, g − m) : g.addingProduct(weight1Complement, g − m)
        //     // exp_avg_sq.mul_(β2).addcmul_(grad, grad, value = 1 − β2); torch's CPU kernel fuses it as
        //     // fma((1 − β2)·g, g, v·β2).
        //     v = (v·β2).addingProduct(weight2·g, g)
        //     // param.addcdiv_(exp_avg, √v / √(1 − β2ᵗ) + ε, value = −step_size)
        //     w += negativeStepSize·m / (√v / correction2Root + eps)
        let scalars = collie_adamw_step(apply_decay: applyDecay ? 1 : 0, decay: decay, weight1: weight1,
                                        weight1_complement: weight1Complement, beta2: b2, weight2: weight2,
                                        correction2_root: correction2Root, epsilon: eps,
                                        negative_step_size: negativeStepSize)
        // bf16/f16 parameters are updated in float32 and rounded back.
        updateElementwise(p, gradient: gradient) { w, g, range in
            let i = range.lowerBound
            collie_adamw_update_f32(w + i, g + i, pm + i, pv + i, range.count, scalars)
        }
    }

    // MARK: - State

    private var hyperparameters: [String: Double] {
        ["beta1": beta1, "beta2": beta2, "eps": epsilon, "weight_decay": weightDecay]
    }

    /// Metadata plus `<key>.exp_avg`, `<key>.exp_avg_sq` and `<key>.step` for every parameter
    /// updated at least once (torch's state names).
    public func state() -> OptimizerState {
        let keys = OptimizerState.parameterKeys(for: parameters)
        var tensors: [String: Tensor] = [:]
        for (index, key) in keys.enumerated() {
            guard let m = firstMoments[index], let v = secondMoments[index] else { continue }
            tensors["\(key).exp_avg"] = m
            tensors["\(key).exp_avg_sq"] = v
            tensors["\(key).step"] = .scalar(int: parameterStepCounts[index])
        }
        let metadata = OptimizerState.Metadata(kind: .adamW, stepCount: stepCount, learningRate: learningRate,
                                               hyperparameters: hyperparameters, parameterKeys: keys)
        return OptimizerState(metadata: metadata, tensors: tensors)
    }

    public func load(_ state: OptimizerState) throws {
        try state.validate(kind: .adamW, hyperparameters: hyperparameters, parameters: parameters)
        let keys = state.metadata.parameterKeys
        var first: [Tensor?] = [], second: [Tensor?] = [], steps: [Int] = []
        for (p, key) in zip(parameters, keys) {
            let m = try state.float32Tensor("\(key).exp_avg", shape: p.shape)
            let v = try state.float32Tensor("\(key).exp_avg_sq", shape: p.shape)
            let t = try state.integer("\(key).step")
            guard (m == nil) == (v == nil) && (m == nil) == (t == nil) else {
                throw OptimizerStateError("parameter '\(key)' has only part of its state (exp_avg, exp_avg_sq, step)")
            }
            if let m, let v, let t {
                let ownM = Tensor.zeros(p.shape), ownV = Tensor.zeros(p.shape)
                ownM.assignFloat32(from: m)
                ownV.assignFloat32(from: v)
                first.append(ownM); second.append(ownV); steps.append(t)
            } else {
                first.append(nil); second.append(nil); steps.append(0)
            }
        }
        firstMoments = first
        secondMoments = second
        parameterStepCounts = steps
        stepCount = state.metadata.stepCount
        learningRate = state.metadata.learningRate
    }
}
