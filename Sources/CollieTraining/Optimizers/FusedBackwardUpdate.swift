import CCollieKernels
import CollieEngine
import Foundation

/// The machinery LOMO and AdaLomo share: each parameter is updated from its gradient-ready hook
/// inside `backward()`, and its gradient is freed at once, so at most one parameter's gradient
/// exists at a time (OpenLMLab's `lomo-optim`, whose `fused_backward` this reproduces).
///
/// Per gradient, in order: divide by the loss scale (when scaling), clip each element to
/// ±`clipGradValue`, multiply by the clipping coefficient of the norm pass, then the optimizer's
/// update. Clipping by the global norm needs the norm before the first update, so it takes two
/// backward passes through a retained graph, as `lomo-optim` does:
///
///     fused.gatherNorms { loss.backward(retainGraph: true) }   // norms only, gradients freed
///     loss.backward()                                           // updates, clipped
///
/// A non-finite gradient never reaches a parameter. The norm pass sees every gradient first, so with it (or
/// without it, when the first gradient is already non-finite) the whole update is skipped; without it, the
/// parameters updated before the non-finite gradient keep their update and the rest of the pass is skipped.
final class FusedBackwardUpdate {
    /// What a gradient-ready hook does with a gradient.
    enum Mode { case update, gatherNorms }

    let parameters: [Tensor]
    /// Clip each gradient element to [−value, value] (`clip_grad_value`); nil or ≤ 0: off.
    let clipGradValue: Double?
    /// Global-norm clipping threshold (`clip_grad_norm`); nil: off.
    let clipGradNorm: Double?
    /// Multiplies every gradient before the update; set by the norm pass (torch's `clip_coef`).
    private(set) var clipCoefficient: Float?
    /// The global gradient norm the last norm pass measured.
    private(set) var lastGradientNorm: Double?
    /// Set when scaling the loss (float16 parameters): gradients are divided by its scale, and an
    /// overflow skips the step.
    var lossScaler: DynamicLossScaler?
    private(set) var mode = Mode.update
    private var norms: [Float] = []
    /// Under tensor parallelism: the group and which parameters are slices. Their squared gradient norms are
    /// summed over the group (a replicated parameter's gradient is the same on every rank: counted once).
    var tensorParallel: (communicator: Communicator, isSlice: [Bool])?
    /// Under pipeline parallelism: the stages, each holding its own parameters; their squared norms are summed, and
    /// a non-finite gradient on any stage skips the update on all.
    var pipelineParallel: Communicator?
    /// Under pipeline parallelism, a tied embedding: the parameters whose gradient is completed by the other end of
    /// the pipeline. Their hooks leave the gradient in place; `finishSharedGradients()` takes it once the stages have
    /// summed it, and only one of the two stages (`countsSharedNorms`) counts it in the norm.
    var shared: Set<Int> = []
    var countsSharedNorms = true
    private var sliceSquares = 0.0
    /// Set at the first non-finite gradient of a pass: the rest of the pass updates nothing.
    private var overflowed = false
    /// Whether the last update pass met a non-finite gradient (and so left the parameters after it unchanged).
    private(set) var lastUpdatePassMetNonFinite = false
    private var attached = false
    /// The optimizer's update of parameter `index` from its processed float32 gradient.
    var update: (Int, Tensor) -> Void = { _, _ in }

    init(parameters: [Tensor], clipGradValue: Double?, clipGradNorm: Double?) {
        precondition(clipGradNorm.map { $0 > 0 } ?? true, "clip_grad_norm must be positive")
        self.parameters = parameters
        self.clipGradValue = clipGradValue
        self.clipGradNorm = clipGradNorm
        if parameters.contains(where: { $0.dtype == .float16 }) { lossScaler = DynamicLossScaler() }
    }

    /// Registers one gradient-ready hook per parameter (once).
    func attach() {
        guard !attached else { return }
        attached = true
        for (index, p) in parameters.enumerated() {
            p.onGradientReady { [unowned self] _ in self.gradientReady(index) }
        }
    }

    /// Runs `backward` (a backward pass through a retained graph) collecting gradient norms
    /// instead of updating, then sets the clipping coefficient min(1, max_norm / (‖g‖ + 1e-6)).
    /// Returns false when a scaled gradient overflowed: the scale was reduced and this step must
    /// be skipped.
    func gatherNorms(_ backward: () -> Void) -> Bool {
        mode = .gatherNorms
        norms.removeAll(keepingCapacity: true)
        sliceSquares = 0
        overflowed = false
        backward()
        mode = .update
        // Every rank of the groups takes part in their sums, so all agree on skipping (torch.norm over the stacked
        // per-parameter float32 norms; slices' squares summed over the tensor-parallel group, stages' squares added).
        var squares = norms.reduce(0.0) { $0 + Double($1) * Double($1) }, overflow = overflowed ? 1.0 : 0.0
        if let tensorParallel {
            let sums = tensorParallel.communicator.sum([sliceSquares, overflow])
            squares += sums[0]
            overflow = sums[1]
        }
        if let pipelineParallel {
            let sums = pipelineParallel.sum([squares, overflow])
            squares = sums[0]
            overflow = sums[1]
        }
        if overflow > 0 {
            overflowed = false
            lossScaler?.update(overflow: true)
            clipCoefficient = nil
            return false
        }
        let total = Float(squares.squareRoot())
        lastGradientNorm = Double(total)
        guard total.isFinite else {
            lossScaler?.update(overflow: true)
            clipCoefficient = nil
            return false
        }
        if let clipGradNorm {
            clipCoefficient = min(Float(clipGradNorm) / (total + 1e-6), 1)
        }
        return true
    }

    /// Call after the update pass: tells the loss scaler whether this step overflowed (without a norm pass an
    /// overflow is only seen here; the parameters after it were left unchanged).
    func finishUpdatePass() {
        if let pipelineParallel { overflowed = pipelineParallel.sum([overflowed ? 1 : 0])[0] > 0 }
        lastUpdatePassMetNonFinite = overflowed
        lossScaler?.update(overflow: overflowed)
        overflowed = false
    }

    /// Sums the norm pass over the pipeline's stages; `shared` (of `parameters`) wait for `finishSharedGradients()`.
    func usePipelineParallelism(_ communicator: Communicator, shared: [Tensor], countsSharedNorms: Bool) {
        pipelineParallel = communicator
        let ids = Set(shared.map(ObjectIdentifier.init))
        self.shared = Set(parameters.indices.filter { ids.contains(ObjectIdentifier(parameters[$0])) })
        self.countsSharedNorms = countsSharedNorms
    }

    /// Takes the shared parameters' summed gradients (`shared`) after a backward pass, as their hooks would have.
    func finishSharedGradients() {
        for index in shared.sorted() { gradientReady(index, completed: true) }
    }

    private func gradientReady(_ index: Int, completed: Bool = false) {
        if shared.contains(index) && !completed { return }
        let p = parameters[index]
        guard let stored = p.grad else { return }
        p.grad = nil
        if overflowed { return }
        if mode == .gatherNorms, shared.contains(index), !countsSharedNorms { return }
        // The gradient is ours now (the parameter no longer holds it): work on it in place.
        let g = stored.dtype == .float32 && stored.isContiguous ? stored : stored.contiguousCopy(dtype: .float32)
        precondition(g.shape == p.shape, "gradient shape \(g.shape) ≠ parameter shape \(p.shape)")
        let n = g.count, pg = g.pointer(as: Float.self)
        // A non-finite gradient (a loss-scale overflow, or a diverged run) must not reach any parameter: this and
        // every later parameter of the pass are left unchanged.
        var finite: Int32 = 1
        collie_all_finite_f32(pg, n, &finite)
        if finite == 0 { overflowed = true; return }
        if let scaler = lossScaler {
            let scale = Float(scaler.scale)
            for i in 0..<n { pg[i] /= scale }
        }
        if mode == .gatherNorms {
            let sum = GradientClipping.sumOfSquares(g)
            if tensorParallel?.isSlice[index] == true { sliceSquares += sum; return }
            norms.append(Float(sum.squareRoot()))
            return
        }
        if let value = clipGradValue, value > 0 {
            let limit = Float(value)
            for i in 0..<n { pg[i] = min(max(pg[i], -limit), limit) }
        }
        if clipGradNorm != nil, let coefficient = clipCoefficient {
            for i in 0..<n { pg[i] *= coefficient }
        }
        update(index, g)
    }
}

/// Optimizers that update inside backward and can clip by the global gradient norm with a first,
/// norm-only pass (LOMO, AdaLomo). The trainer reaches one through `Optimizer.inBackward`.
public protocol FusedBackwardOptimizer: Optimizer {
    /// The global-norm clipping threshold, nil when off.
    var clipGradNorm: Double? { get }
    /// Runs `backward` (which must retain the graph) gathering gradient norms only, and sets the
    /// clipping coefficient for the following update pass. False when a loss-scaled gradient
    /// overflowed: skip the update pass (the scale was reduced).
    func gatherGradientNorms(_ backward: () -> Void) -> Bool
    /// The loss multiplier for this step (dynamic loss scaling with float16 parameters), else 1.
    var lossScale: Double { get }
    /// The global gradient norm of the last norm pass.
    var lastGradientNorm: Double? { get }
    /// Whether the last update pass met a non-finite gradient: the parameters whose gradients came earlier in
    /// backward were updated, that one and the later ones were not.
    var lastUpdatePassMetNonFinite: Bool { get }
    /// Splits the work for tensor parallelism over `communicator`: `splitAxes[i]` is the axis parameter i is a
    /// slice along (nil: replicated), so norms and whole-matrix statistics are the whole model's.
    func useTensorParallelism(_ communicator: Communicator, splitAxes: [Int?])
    /// Sums the norm pass over the pipeline's stages (`communicator`), each updating only its own parameters; the
    /// `shared` ones (a tied embedding on the first and the last stage) after `finishSharedGradients()`, counted in the
    /// norm where `countsSharedNorms`.
    func usePipelineParallelism(_ communicator: Communicator, shared: [Tensor], countsSharedNorms: Bool)
    /// Updates the shared parameters from their gradients summed over the stages (call after each backward pass).
    func finishSharedGradients()
}

extension FusedBackwardOptimizer {
    /// One update from `loss`, as `lomo-optim`'s `fused_backward`: the loss times `lossScale`; with
    /// `clipGradNorm`, a norm-only backward through the retained graph; then the backward whose hooks update
    /// every parameter, and `step()`.
    /// - Returns: false when the norm pass met a non-finite gradient (a loss-scale overflow, or a diverged run):
    ///   the update was skipped and the scale reduced.
    @discardableResult
    public func update(from loss: Tensor) -> Bool {
        let scaled = lossScale == 1 ? loss : loss * lossScale
        return update { scaled.backward(retainGraph: $0) }
    }

    /// `update(from:)` with the backward passes run by `backward(retainGraph)` (through a pipeline's stages, of a
    /// loss already multiplied by `lossScale`).
    @discardableResult
    public func update(backward: (_ retainGraph: Bool) -> Void) -> Bool {
        if clipGradNorm != nil, !gatherGradientNorms({ backward(true) }) { return false }
        backward(false)
        step()
        return true
    }
}

/// Loss scaling for float16 parameters (DeepSpeed's and `lomo-optim`'s `DynamicLossScaler`):
/// the loss is multiplied by `scale` so small gradients survive float16; an overflow (inf/NaN)
/// halves the scale and skips the step; `scaleWindow` good steps in a row double it.
public final class DynamicLossScaler {
    /// The current factor.
    public private(set) var scale: Double
    public let scaleFactor: Double
    public let scaleWindow: Int
    public let minimumScale: Double
    private var iteration = 0
    private var lastOverflowIteration = -1

    public init(initialScale: Double = 65536, scaleFactor: Double = 2, scaleWindow: Int = 1000, minimumScale: Double = 1) {
        scale = initialScale
        self.scaleFactor = scaleFactor
        self.scaleWindow = scaleWindow
        self.minimumScale = minimumScale
    }

    /// Records one step: an overflow divides the scale (not below the minimum); `scaleWindow`
    /// steps after the last overflow multiply it.
    public func update(overflow: Bool) {
        if overflow {
            scale = max(scale / scaleFactor, minimumScale)
            lastOverflowIteration = iteration
        } else if (iteration - lastOverflowIteration) % scaleWindow == 0 {
            scale *= scaleFactor
        }
        iteration += 1
    }
}
