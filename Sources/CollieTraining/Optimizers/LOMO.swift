import CCollieKernels
import CollieEngine
import Foundation

/// LOMO (LOw-Memory Optimization, Lv et al. 2023), step for step as OpenLMLab's `lomo-optim`:
/// plain SGD fused into backward. Each parameter is updated from its gradient-ready hook and its
/// gradient freed at once, so a step holds one parameter's gradient at a time and no optimizer
/// state at all:
///
///     w ← w · (1 − lr·λ) − lr · clip(g)
///
/// where clip is element-wise clipping to ±`clipGradValue`, then scaling by the global-norm
/// coefficient of a first, norm-only backward pass when `clipGradNorm` is set (see
/// `FusedBackwardUpdate`). bf16/f16 parameters are updated in float32 and rounded back; float16
/// parameters get dynamic loss scaling (`lossScaler`), as `lomo-optim` gives an fp16 loss.
public final class LOMO: Optimizer {
    public let parameters: [Tensor]
    public var learningRate: Double
    /// Weight decay λ (`weight_decay`), applied as w·(1 − lr·λ).
    public let weightDecay: Double
    public private(set) var stepCount = 0
    let fused: FusedBackwardUpdate

    /// - Parameters:
    ///   - clipGradNorm: clip by the global gradient norm (two backward passes per step).
    ///   - clipGradValue: clip every gradient element to [−value, value].
    public init(parameters: [Tensor], learningRate: Double = 1e-3, weightDecay: Double = 0,
                clipGradNorm: Double? = nil, clipGradValue: Double? = nil) {
        precondition(learningRate >= 0 && weightDecay >= 0, "LOMO needs lr ≥ 0 and weight decay ≥ 0")
        self.parameters = parameters
        self.learningRate = learningRate
        self.weightDecay = weightDecay
        fused = FusedBackwardUpdate(parameters: parameters, clipGradValue: clipGradValue, clipGradNorm: clipGradNorm)
        fused.update = { [unowned self] index, gradient in self.update(index, gradient) }
    }

    public var updatesDuringBackward: Bool { true }

    public func attachToBackward() { fused.attach() }

    /// In-backward optimizers have nothing left to do after backward; counts the step.
    public func step() { stepCount += 1; fused.finishUpdatePass() }

    private func update(_ index: Int, _ gradient: Tensor) {
        let decay = Float(1 - learningRate * weightDecay), negativeLR = Float(-learningRate)
        let applyDecay = weightDecay > 0
        let g = gradient.pointer(as: Float.self)
        // A chunk at a time, chunks across threads: a bf16 parameter is updated through a float32 copy of one chunk
        // per thread, never a whole one. w = (applyDecay ? w·decay : w).addingProduct(negativeLR, g), in C.
        parameters[index].updateAsFloat32(chunk: 1 << 15, concurrently: true) { w, chunk in
            collie_descend_f32(w, g + chunk.lowerBound, chunk.count, applyDecay ? 1 : 0, decay, negativeLR, 1)
        }
    }

    // MARK: - State

    var hyperparameters: [String: Double] { ["weight_decay": weightDecay] }

    /// LOMO keeps no per-parameter state: the snapshot is its step count and learning rate.
    public func state() -> OptimizerState {
        OptimizerState(metadata: .init(kind: .lomo, stepCount: stepCount, learningRate: learningRate,
                                       hyperparameters: hyperparameters,
                                       parameterKeys: OptimizerState.parameterKeys(for: parameters)),
                       tensors: [:])
    }

    public func load(_ state: OptimizerState) throws {
        try state.validate(kind: .lomo, hyperparameters: hyperparameters, parameters: parameters)
        stepCount = state.metadata.stepCount
        learningRate = state.metadata.learningRate
    }
}

extension LOMO: FusedBackwardOptimizer {
    public var inBackward: FusedBackwardOptimizer? { self }
    public var clipGradNorm: Double? { fused.clipGradNorm }
    public func gatherGradientNorms(_ backward: () -> Void) -> Bool { fused.gatherNorms(backward) }
    public var lossScale: Double { fused.lossScaler?.scale ?? 1 }
    public var lastGradientNorm: Double? { fused.lastGradientNorm }
    public var lastUpdatePassMetNonFinite: Bool { fused.lastUpdatePassMetNonFinite }
    public func useTensorParallelism(_ communicator: Communicator, splitAxes: [Int?]) {
        fused.tensorParallel = (communicator, splitAxes.map { $0 != nil })
    }
    public func usePipelineParallelism(_ communicator: Communicator, shared: [Tensor], countsSharedNorms: Bool) {
        fused.usePipelineParallelism(communicator, shared: shared, countsSharedNorms: countsSharedNorms)
    }

    public func finishSharedGradients() { fused.finishSharedGradients() }
}
