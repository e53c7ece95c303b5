import CCollieKernels
import CollieEngine
import Foundation

/// Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"), step for step as
/// `lion-pytorch`: the sign of an interpolated momentum, one state buffer per parameter.
///
///     w ← w · (1 − lr·λ)
///     w ← w − lr · sign(β1·m + (1 − β1)·g)
///     m ← β2·m + (1 − β2)·g
public final class Lion: Optimizer {
    public let parameters: [Tensor]
    public var learningRate: Double
    public let beta1: Double, beta2: Double
    public let weightDecay: Double
    public private(set) var stepCount = 0
    private var slots: ParameterSlots

    public init(parameters: [Tensor], learningRate: Double = 1e-4, beta1: Double = 0.9, beta2: Double = 0.99,
                weightDecay: Double = 0) {
        precondition(learningRate > 0 && weightDecay >= 0, "Lion needs lr > 0 and weight decay ≥ 0")
        precondition((0...1).contains(beta1) && (0...1).contains(beta2), "Lion betas must lie in [0, 1]")
        self.parameters = parameters
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.weightDecay = weightDecay
        slots = ParameterSlots(names: ["exp_avg"], count: parameters.count)
    }

    public func step() {
        stepCount += 1
        let decay = Float(1 - learningRate * weightDecay), negativeLR = Float(-learningRate)
        let b1 = Float(beta1), c1 = Float(1 - beta1), b2 = Float(beta2), c2 = Float(1 - beta2)
        for (index, p) in parameters.enumerated() {
            guard let gradient = float32Gradient(of: p, optimizer: "Lion") else { continue }
            let m = slots.buffers(index, shape: p.shape)[0].pointer(as: Float.self)
            // Per element, in C: w *= decay; w = w.addingProduct(sign((m·b1).addingProduct(g, c1)), negativeLR);
            // m = (m·b2).addingProduct(g, c2).
            updateElementwise(p, gradient: gradient) { w, g, range in
                let i = range.lowerBound
                collie_lion_update_f32(w + i, g + i, m + i, range.count, decay, b1, c1, b2, c2, negativeLR)
            }
        }
    }

    var hyperparameters: [String: Double] { ["beta1": beta1, "beta2": beta2, "weight_decay": weightDecay] }

    /// `<key>.exp_avg` for every parameter updated at least once.
    public func state() -> OptimizerState {
        let keys = OptimizerState.parameterKeys(for: parameters)
        return OptimizerState(metadata: .init(kind: .lion, stepCount: stepCount, learningRate: learningRate,
                                              hyperparameters: hyperparameters, parameterKeys: keys),
                              tensors: slots.tensors(keys: keys))
    }

    public func load(_ state: OptimizerState) throws {
        try state.validate(kind: .lion, hyperparameters: hyperparameters, parameters: parameters)
        try slots.load(state, parameters: parameters)
        stepCount = state.metadata.stepCount
        learningRate = state.metadata.learningRate
    }
}
