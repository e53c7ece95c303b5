import CCollieKernels
import CollieEngine
import Foundation

/// Adan (Xie et al. 2022, "Adaptive Nesterov Momentum Algorithm"), step for step as the authors'
/// reference implementation (sail-sg/Adan, single-tensor path, no global-norm clipping).
///
/// At step t (counted per optimizer), with d = g − g_prev (0 at the first step):
///
///     m ← β1·m + (1 − β1)·g              v ← β2·v + (1 − β2)·d
///     n ← β3·n + (1 − β3)·(g + β2·d)²
///     η = √n / √(1 − β3ᵗ) + ε
///     w ← w − lr/(1 − β1ᵗ) · m/η − lr·β2/(1 − β2ᵗ) · v/η
///     w ← w / (1 + lr·λ)                 (proximal decay; `noProx`: w·(1 − lr·λ) first instead)
public final class Adan: Optimizer {
    public let parameters: [Tensor]
    public var learningRate: Double
    public let beta1: Double, beta2: Double, beta3: Double
    public let epsilon: Double
    public let weightDecay: Double
    /// Decay as w·(1 − lr·λ) before the step instead of the proximal w/(1 + lr·λ) after it.
    public let noProx: Bool
    public private(set) var stepCount = 0
    private var slots: ParameterSlots

    public init(parameters: [Tensor], learningRate: Double = 1e-3, beta1: Double = 0.98, beta2: Double = 0.92,
                beta3: Double = 0.99, epsilon: Double = 1e-8, weightDecay: Double = 0, noProx: Bool = false) {
        precondition(learningRate >= 0 && epsilon >= 0 && weightDecay >= 0, "Adan needs lr, eps, weight decay ≥ 0")
        precondition([beta1, beta2, beta3].allSatisfy { (0..<1).contains($0) }, "Adan betas must lie in [0, 1)")
        self.parameters = parameters
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.beta3 = beta3
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.noProx = noProx
        slots = ParameterSlots(names: ["exp_avg", "exp_avg_sq", "exp_avg_diff", "neg_pre_grad"], count: parameters.count)
    }

    public func step() {
        stepCount += 1
        let t = Double(stepCount)
        let bias1 = 1 - Foundation.pow(beta1, t), bias2 = 1 - Foundation.pow(beta2, t)
        let bias3Root = Float((1 - Foundation.pow(beta3, t)).squareRoot())
        let b1 = Float(beta1), c1 = Float(1 - beta1), b2 = Float(beta2), c2 = Float(1 - beta2)
        let b3 = Float(beta3), c3 = Float(1 - beta3), eps = Float(epsilon)
        let stepSize = Float(-(learningRate / bias1)), diffStepSize = Float(-(learningRate * beta2 / bias2))
        let decay = Float(1 - learningRate * weightDecay), proximal = Float(1 + learningRate * weightDecay)
        let scalars = collie_adan_step(first: stepCount == 1 ? 1 : 0, no_prox: noProx ? 1 : 0, b1: b1, c1: c1, b2: b2, c2: c2,
                                       b3: b3, c3: c3, bias3_root: bias3Root, epsilon: eps, step_size: stepSize,
                                       difference_step_size: diffStepSize, decay: decay, proximal: proximal)
        for (index, p) in parameters.enumerated() {
            guard let gradient = float32Gradient(of: p, optimizer: "Adan") else { continue }
            let buffers = slots.buffers(index, shape: p.shape)
            let m = buffers[0].pointer(as: Float.self), n = buffers[1].pointer(as: Float.self)
            let v = buffers[2].pointer(as: Float.self), previous = buffers[3].pointer(as: Float.self)
            // Per element, in C (collie_adan_update_f32):
            //     if first { previous = −g }
            //     d = previous + g                                   // g − g_prev
            //     m = (m·b1).addingProduct(g, c1); v = (v·b2).addingProduct(d, c2)
            //     nesterov = d·b2 + g; n = (n·b3).addingProduct(c3·nesterov, nesterov)
            //     denominator = √n / bias3Root + eps
            //     if noProx { w *= decay }
            //     w = w.addingProduct(stepSize, m / denominator).addingProduct(diffStepSize, v / denominator)
            //     if !noProx { w /= proximal }
            //     previous = −g
            updateElementwise(p, gradient: gradient) { w, g, range in
                let i = range.lowerBound
                collie_adan_update_f32(w + i, g + i, m + i, n + i, v + i, previous + i, range.count, scalars)
            }
        }
    }

    var hyperparameters: [String: Double] {
        ["beta1": beta1, "beta2": beta2, "beta3": beta3, "eps": epsilon, "weight_decay": weightDecay,
         "no_prox": noProx ? 1 : 0]
    }

    /// `<key>.exp_avg`, `.exp_avg_sq`, `.exp_avg_diff` and `.neg_pre_grad` (the reference's names).
    public func state() -> OptimizerState {
        let keys = OptimizerState.parameterKeys(for: parameters)
        return OptimizerState(metadata: .init(kind: .adan, stepCount: stepCount, learningRate: learningRate,
                                              hyperparameters: hyperparameters, parameterKeys: keys),
                              tensors: slots.tensors(keys: keys))
    }

    public func load(_ state: OptimizerState) throws {
        try state.validate(kind: .adan, hyperparameters: hyperparameters, parameters: parameters)
        try slots.load(state, parameters: parameters)
        stepCount = state.metadata.stepCount
        learningRate = state.metadata.learningRate
    }
}
