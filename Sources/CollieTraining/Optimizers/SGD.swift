import CCollieKernels
import CollieEngine
import Foundation

/// Stochastic gradient descent with momentum, dampening, Nesterov momentum and (L2) weight decay,
/// step for step as `torch.optim.SGD` (single-tensor path, float32).
///
/// Per parameter with a gradient g:
///
///     g ← g + λ·w
///     b ← g at the parameter's first update, else b·μ + (1 − τ)·g      (when μ ≠ 0)
///     g ← g + μ·b (Nesterov) or b
///     w ← w − lr·g
///
/// "add with alpha" is one fused multiply-add, as torch's vectorized CPU kernel computes it.
public final class SGD: Optimizer {
    public let parameters: [Tensor]
    public var learningRate: Double
    /// Momentum factor μ (0: plain SGD, no buffers).
    public let momentum: Double
    /// Dampening τ of the gradient added to the momentum buffer.
    public let dampening: Double
    /// L2 penalty λ added to the gradient (coupled, unlike AdamW's).
    public let weightDecay: Double
    /// Whether to use Nesterov momentum (needs μ > 0 and τ = 0, as torch requires).
    public let nesterov: Bool
    /// Number of `step()` calls.
    public private(set) var stepCount = 0
    private var momentumBuffers: [Tensor?]

    /// An SGD over `parameters` (float32, contiguous) with torch's defaults.
    public init(parameters: [Tensor], learningRate: Double = 1e-3, momentum: Double = 0, dampening: Double = 0,
                weightDecay: Double = 0, nesterov: Bool = false) {
        precondition(learningRate >= 0 && momentum >= 0 && weightDecay >= 0, "SGD needs lr, momentum, weight decay ≥ 0")
        precondition(!nesterov || (momentum > 0 && dampening == 0), "Nesterov momentum requires a momentum and zero dampening")
        self.parameters = parameters
        self.learningRate = learningRate
        self.momentum = momentum
        self.dampening = dampening
        self.weightDecay = weightDecay
        self.nesterov = nesterov
        momentumBuffers = Array(repeating: nil, count: parameters.count)
    }

    public func step() {
        stepCount += 1
        let negativeLearningRate = Float(-learningRate), decay = Float(weightDecay)
        let mu = Float(momentum), gradientWeight = Float(1 - dampening)
        let applyDecay = weightDecay != 0, useMomentum = momentum != 0, nesterov = nesterov
        for (index, p) in parameters.enumerated() {
            guard let gradient = float32Gradient(of: p, optimizer: "SGD") else { continue }
            var buffer: UnsafeMutablePointer<Float>? = nil
            var isFirst = false
            if useMomentum {
                if momentumBuffers[index] == nil {
                    momentumBuffers[index] = Tensor(uninitializedShape: p.shape)
                    isFirst = true
                }
                buffer = momentumBuffers[index]!.pointer(as: Float.self)
            }
            // Per element, in C: d = g; if applyDecay { d = d.addingProduct(decay, w) }; with a buffer b,
            // b = isFirst ? d : (b·mu).addingProduct(gradientWeight, d), d = nesterov ? d.addingProduct(mu, b) : b;
            // w = w.addingProduct(negativeLearningRate, d).
            let scalars = collie_sgd_step(apply_decay: applyDecay ? 1 : 0, decay: decay, momentum: buffer == nil ? 0 : 1,
                                          first: isFirst ? 1 : 0, nesterov: nesterov ? 1 : 0, mu: mu,
                                          gradient_weight: gradientWeight, negative_lr: negativeLearningRate)
            updateElementwise(p, gradient: gradient) { w, g, range in
                let i = range.lowerBound
                collie_sgd_update_f32(w + i, g + i, buffer.map { $0 + i }, range.count, scalars)
            }
        }
    }

    // MARK: - State

    private var hyperparameters: [String: Double] {
        ["momentum": momentum, "dampening": dampening, "weight_decay": weightDecay, "nesterov": nesterov ? 1 : 0]
    }

    /// Metadata plus `<key>.momentum_buffer` for every parameter that has one (torch's name).
    public func state() -> OptimizerState {
        let keys = OptimizerState.parameterKeys(for: parameters)
        var tensors: [String: Tensor] = [:]
        for (index, key) in keys.enumerated() {
            if let b = momentumBuffers[index] { tensors["\(key).momentum_buffer"] = b }
        }
        let metadata = OptimizerState.Metadata(kind: .sgd, stepCount: stepCount, learningRate: learningRate,
                                               hyperparameters: hyperparameters, parameterKeys: keys)
        return OptimizerState(metadata: metadata, tensors: tensors)
    }

    public func load(_ state: OptimizerState) throws {
        try state.validate(kind: .sgd, hyperparameters: hyperparameters, parameters: parameters)
        var buffers: [Tensor?] = []
        for (p, key) in zip(parameters, state.metadata.parameterKeys) {
            if let saved = try state.float32Tensor("\(key).momentum_buffer", shape: p.shape) {
                let own = Tensor(uninitializedShape: p.shape)
                own.assignFloat32(from: saved)
                buffers.append(own)
            } else {
                buffers.append(nil)
            }
        }
        momentumBuffers = buffers
        stepCount = state.metadata.stepCount
        learningRate = state.metadata.learningRate
    }
}
