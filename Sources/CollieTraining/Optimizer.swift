import CollieEngine

/// An optimizer that updates parameters from their gradients after `backward()`.
///
/// (Optimizers that update inside backward, such as LOMO, register gradient-ready hooks instead;
/// they arrive with the memory-efficient fine-tuning work.)
public protocol Optimizer: AnyObject {
    /// The learning rate used by the next `step()`; schedules set it before each step.
    var learningRate: Double { get set }
    /// Applies one update to every parameter that has a gradient.
    func step()
    /// Drops (or zeroes) every parameter's gradient.
    func zeroGradients()
}

/// Adam with decoupled weight decay, step-for-step as `torch.optim.AdamW` (single-tensor path).
public final class AdamW: Optimizer {
    public var learningRate: Double
    public let beta1, beta2, epsilon, weightDecay: Double
    public let parameters: [Tensor]
    /// Number of steps taken.
    public private(set) var stepCount = 0
    private var firstMoments: [[Float]]
    private var secondMoments: [[Float]]

    public init(parameters: [Tensor], learningRate: Double = 1e-3, beta1: Double = 0.9, beta2: Double = 0.999,
                epsilon: Double = 1e-8, weightDecay: Double = 0.01) {
        self.parameters = parameters
        self.learningRate = learningRate
        self.beta1 = beta1; self.beta2 = beta2; self.epsilon = epsilon; self.weightDecay = weightDecay
        firstMoments = parameters.map { [Float](repeating: 0, count: $0.count) }
        secondMoments = parameters.map { [Float](repeating: 0, count: $0.count) }
    }

    public func step() {
        stepCount += 1
        let lr = Float(learningRate), b1 = Float(beta1), b2 = Float(beta2), eps = Float(epsilon)
        let decay = 1 - lr * Float(weightDecay)
        let correction1 = 1 - Foundation.pow(beta1, Double(stepCount))
        let correction2Root = Float(Foundation.sqrt(1 - Foundation.pow(beta2, Double(stepCount))))
        let stepSize = Float(learningRate / correction1)
        for (index, p) in parameters.enumerated() {
            guard let grad = p.grad else { continue }
            precondition(p.dtype == .float32 && p.isContiguous, "AdamW updates contiguous float32 parameters")
            let g = grad.contiguousCopy(dtype: .float32)
            let w = p.pointer(as: Float.self), pg = g.pointer(as: Float.self)
            firstMoments[index].withUnsafeMutableBufferPointer { m in
                secondMoments[index].withUnsafeMutableBufferPointer { v in
                    Parallel.forEach(p.count, minimumChunk: 1 << 14) { range in
                        for i in range {
                            w[i] *= decay
                            // torch: exp_avg.lerp_(grad, 1 − β1)
                            let weight = 1 - b1
                            m[i] = weight < 0.5 ? m[i] + weight * (pg[i] - m[i]) : pg[i] - (pg[i] - m[i]) * (1 - weight)
                            v[i] = v[i] * b2 + (1 - b2) * pg[i] * pg[i]
                            let denominator = v[i].squareRoot() / correction2Root + eps
                            w[i] += -stepSize * (m[i] / denominator)
                        }
                    }
                }
            }
        }
    }

    public func zeroGradients() { for p in parameters { p.grad = nil } }
}

import Foundation
