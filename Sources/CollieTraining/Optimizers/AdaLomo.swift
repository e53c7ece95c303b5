import CCollieKernels
import CollieEngine
import Foundation

/// AdaLomo (Lv et al. 2023): LOMO with Adafactor-style adaptive steps, step for step as OpenLMLab's
/// `lomo-optim`. Updates happen inside backward like `LOMO`'s; the only state is a factored second
/// moment — a row and a column vector per matrix, a vector per 1-D parameter — so it costs
/// O(rows + columns) instead of Adam's two full copies.
///
/// At step t (from 1), with g the (clipped) gradient and β = 1 − t^decay_rate:
///
///     r ← β·r + (1 − β)·mean_cols(g² + ε₁)      c ← β·c + (1 − β)·mean_rows(g² + ε₁)
///     u = g ⊙ (r / mean(r))^-½ ⊗ c^-½            (1-D: v ← β·v + (1 − β)·(g² + ε₁); u = g / √v)
///     u ← u / max(1, RMS(u) / clip_threshold)
///     lr' = lr · max(ε₂, RMS(w))                  (relative step size)
///     w ← w · (1 − lr'·λ) − lr'·u
///
/// Its state is saved in training checkpoints (CoLLiE loses it), and clipping by value and by the
/// global norm both work (CoLLiE crashes with them, issue #139).
public final class AdaLomo: Optimizer {
    public let parameters: [Tensor]
    public var learningRate: Double
    public let weightDecay: Double
    /// ε₁ (added to g²) and ε₂ (floor of the parameter RMS in the relative step size): `eps`.
    public let epsilon: (Double, Double)
    /// Update RMS threshold (`clip_threshold`).
    public let clipThreshold: Double
    /// Exponent of the second-moment decay, β = 1 − t^decay_rate (`decay_rate`, default −0.8).
    public let decayRate: Double
    public private(set) var stepCount = 0
    let fused: FusedBackwardUpdate
    /// Per parameter: [row, column] factors for matrices, [full] for vectors; allocated at the first update.
    private var moments: [[Tensor]?]

    public init(parameters: [Tensor], learningRate: Double = 1e-3, epsilon: (Double, Double) = (1e-30, 1e-3),
                clipThreshold: Double = 1, decayRate: Double = -0.8, weightDecay: Double = 0,
                clipGradNorm: Double? = nil, clipGradValue: Double? = nil) {
        precondition(learningRate >= 0 && weightDecay >= 0, "AdaLomo needs lr ≥ 0 and weight decay ≥ 0")
        for p in parameters {
            precondition((1...2).contains(p.rank), "AdaLomo factors 1-D and 2-D parameters; \(p.name ?? "one") is \(p.shape)")
        }
        self.parameters = parameters
        self.learningRate = learningRate
        self.epsilon = epsilon
        self.clipThreshold = clipThreshold
        self.decayRate = decayRate
        self.weightDecay = weightDecay
        moments = Array(repeating: nil, count: parameters.count)
        fused = FusedBackwardUpdate(parameters: parameters, clipGradValue: clipGradValue, clipGradNorm: clipGradNorm)
        fused.update = { [unowned self] index, gradient in self.update(index, gradient) }
    }

    public var updatesDuringBackward: Bool { true }

    /// Under tensor parallelism: the group, and per parameter the axis it is split along (nil: replicated).
    /// AdaLomo's factored moments, its update-RMS clipping and its relative step are over whole matrices, so
    /// the partial sums along a split axis are all-reduced over the group: the update equals one process's.
    public var tensorParallel: (communicator: Communicator, splitAxes: [Int?])?

    private func splitAxis(_ index: Int) -> Int? { tensorParallel?.splitAxes[index] }

    public func attachToBackward() { fused.attach() }

    /// Counts the step whose updates the last backward pass made.
    public func step() { stepCount += 1; fused.finishUpdatePass() }

    private func update(_ index: Int, _ gradient: Tensor) {
        let p = parameters[index]
        let t = Double(stepCount + 1)
        let beta = Float(1 - Foundation.pow(t, decayRate)), oneMinusBeta = Float(1 - Double(beta))
        let eps1 = Float(epsilon.0)
        let g = gradient.pointer(as: Float.self), n = gradient.count
        guard n > 0 else { return }   // an empty parameter: nothing to update
        // A matrix's update u = rowFactor_i · columnFactor_j · g_ij is made where it is used (twice: for its RMS, then
        // for the step) instead of held whole — for a 7B model's projections that would be a 180 MB float32 copy per
        // update. A vector's u is computed once, in C. Sums run across threads in an order that does not depend on
        // their number: per row, or per column, in C, then over rows in order.
        let rows = p.rank == 2 ? p.shape[0] : 1, columns = n / rows
        let split = splitAxis(index)
        let u: UpdateFactors
        if p.rank == 2 {
            if moments[index] == nil { moments[index] = [Tensor.zeros([rows]), Tensor.zeros([columns])] }
            let r = moments[index]![0].pointer(as: Float.self), c = moments[index]![1].pointer(as: Float.self)
            // Means of g² + ε₁ over columns (per row) and over rows (per column), in float32 as torch. Under tensor
            // parallelism the sums over the split axis and the matrix's sizes are the whole matrix's.
            var rowSums = [Double](repeating: 0, count: rows), columnSums = [Double](repeating: 0, count: columns)
            rowSums.withUnsafeMutableBufferPointer { sums in
                let sums = sums.baseAddress!
                Parallel.forEach(rows, minimumChunk: 8) { range in
                    collie_adalomo_row_sums_f32(g + range.lowerBound * columns, range.count, columns, eps1,
                                                sums + range.lowerBound)
                }
            }
            columnSums.withUnsafeMutableBufferPointer { sums in
                let sums = sums.baseAddress!
                Parallel.forEach(columns, minimumChunk: 64) { range in
                    collie_adalomo_column_sums_f32(g + range.lowerBound, rows, columns, range.count, eps1,
                                                   sums + range.lowerBound)
                }
            }
            if split == 0 { tensorParallel!.communicator.allReduceSum(&columnSums) }
            if split == 1 { tensorParallel!.communicator.allReduceSum(&rowSums) }
            let wholeRows = Double(rows * (split == 0 ? tensorParallel!.communicator.size : 1))
            let wholeColumns = Double(columns * (split == 1 ? tensorParallel!.communicator.size : 1))
            for i in 0..<rows {
                r[i] = (r[i] * beta).addingProduct(oneMinusBeta, Float(rowSums[i] / wholeColumns))
            }
            for j in 0..<columns {
                c[j] = (c[j] * beta).addingProduct(oneMinusBeta, Float(columnSums[j] / wholeRows))
            }
            var rowMean = 0.0
            for i in 0..<rows { rowMean += Double(r[i]) }
            if split == 0 { rowMean = tensorParallel!.communicator.sum(rowMean) }
            let mean = Float(rowMean / wholeRows)
            u = .matrix(rows: (0..<rows).map { 1 / (r[$0] / mean).squareRoot() },
                        columns: (0..<columns).map { 1 / c[$0].squareRoot() })
        } else {
            if moments[index] == nil { moments[index] = [Tensor.zeros(p.shape)] }
            let v = moments[index]![0].pointer(as: Float.self)
            let values = Tensor(uninitializedShape: p.shape)
            // v = (v·β).addingProduct(1 − β, g² + ε₁); u = (1 / √v)·g, in C.
            collie_adalomo_moment_f32(v, g, values.pointer(as: Float.self), n, beta, oneMinusBeta, eps1)
            u = .vector(values)
        }
        // u ← u / max(1, RMS(u) / clip_threshold)
        var rowSquares = [Double](repeating: 0, count: rows)
        rowSquares.withUnsafeMutableBufferPointer { sums in
            let sums = sums.baseAddress!
            switch u {
            case let .vector(values): collie_square_sum_f32(values.pointer(as: Float.self), n, sums)
            case let .matrix(rowFactors, columnFactors):
                rowFactors.withUnsafeBufferPointer { rowFactors in
                    Parallel.forEach(rows, minimumChunk: 8) { range in
                        collie_adalomo_update_squares_f32(g + range.lowerBound * columns, range.count, columns,
                                                          rowFactors.baseAddress! + range.lowerBound, columnFactors,
                                                          sums + range.lowerBound)
                    }
                }
            }
        }
        var squares = rowSquares.reduce(0, +)
        // The whole matrix's RMS of u and of w under tensor parallelism (its slices' squares summed over the group).
        let wholeCount = Double(n * (split == nil ? 1 : tensorParallel!.communicator.size))
        if split != nil { squares = tensorParallel!.communicator.sum(squares) }
        let rms = Float(squares.squareRoot()) / Float(wholeCount.squareRoot())
        let divisor = max(rms / Float(clipThreshold), 1)
        let threshold = Float(epsilon.1)
        let decay = weightDecay
        // lr' = lr · max(ε₂, RMS(w)); w = (decay > 0 ? w·factor : w).addingProduct(−lr', u / divisor), in C — a row at
        // a time, through one row's float32 copy for a bf16 parameter.
        var weightRowSquares = [Double](repeating: 0, count: rows)
        weightRowSquares.withUnsafeMutableBufferPointer { sums in
            let sums = sums.baseAddress!
            p.readAsFloat32(chunk: columns, concurrently: true) { w, range in
                collie_square_sum_f32(w, range.count, sums + range.lowerBound / columns)
            }
        }
        var weightSquares = weightRowSquares.reduce(0, +)
        if split != nil { weightSquares = tensorParallel!.communicator.sum(weightSquares) }
        let weightRMS = Float(weightSquares.squareRoot()) / Float(wholeCount.squareRoot())
        let lr = learningRate * Double(max(threshold, weightRMS))
        let negativeLR = Float(-lr), factor = Float(1 - lr * decay), applyDecay: Int32 = decay > 0 ? 1 : 0
        p.updateAsFloat32(chunk: columns, concurrently: true) { w, range in
            switch u {
            case let .vector(values):
                collie_descend_f32(w, values.pointer(as: Float.self), range.count, applyDecay, factor, negativeLR, divisor)
            case let .matrix(rowFactors, columnFactors):
                collie_adalomo_descend_row_f32(w, g + range.lowerBound, range.count, rowFactors[range.lowerBound / columns],
                                               columnFactors, applyDecay, factor, negativeLR, divisor)
            }
        }
    }

    /// AdaLomo's update u of one parameter: a matrix's as its factors (u_ij = rows_i · columns_j · g_ij, made where it is
    /// used), a vector's as its values.
    private enum UpdateFactors {
        case matrix(rows: [Float], columns: [Float])
        case vector(Tensor)
    }

    // MARK: - State

    var hyperparameters: [String: Double] {
        ["eps1": epsilon.0, "eps2": epsilon.1, "clip_threshold": clipThreshold, "decay_rate": decayRate,
         "weight_decay": weightDecay]
    }

    /// `<key>.exp_avg_sq_row` and `<key>.exp_avg_sq_col` for matrices, `<key>.exp_avg_sq` for vectors
    /// (`lomo-optim`'s names), for every parameter updated at least once.
    public func state() -> OptimizerState {
        let keys = OptimizerState.parameterKeys(for: parameters)
        var tensors: [String: Tensor] = [:]
        for (index, key) in keys.enumerated() {
            guard let m = moments[index] else { continue }
            if m.count == 2 {
                tensors["\(key).exp_avg_sq_row"] = m[0]
                tensors["\(key).exp_avg_sq_col"] = m[1]
            } else {
                tensors["\(key).exp_avg_sq"] = m[0]
            }
        }
        return OptimizerState(metadata: .init(kind: .adaLomo, stepCount: stepCount, learningRate: learningRate,
                                              hyperparameters: hyperparameters, parameterKeys: keys),
                              tensors: tensors)
    }

    public func load(_ state: OptimizerState) throws {
        try state.validate(kind: .adaLomo, hyperparameters: hyperparameters, parameters: parameters)
        var loaded: [[Tensor]?] = []
        for (p, key) in zip(parameters, state.metadata.parameterKeys) {
            let slots: [(String, [Int])] = p.rank == 2
                ? [("exp_avg_sq_row", [p.shape[0]]), ("exp_avg_sq_col", [p.shape[1]])] : [("exp_avg_sq", p.shape)]
            let found = try slots.map { try state.float32Tensor("\(key).\($0.0)", shape: $0.1) }
            if found.allSatisfy({ $0 == nil }) { loaded.append(nil); continue }
            guard found.allSatisfy({ $0 != nil }) else {
                throw OptimizerStateError("parameter '\(key)' has only part of its AdaLomo state")
            }
            loaded.append(zip(found, slots).map { saved, slot in
                let own = Tensor.zeros(slot.1)
                own.assignFloat32(from: saved!)
                return own
            })
        }
        moments = loaded
        stepCount = state.metadata.stepCount
        learningRate = state.metadata.learningRate
    }
}

extension AdaLomo: FusedBackwardOptimizer {
    public var inBackward: FusedBackwardOptimizer? { self }
    public var clipGradNorm: Double? { fused.clipGradNorm }
    public func gatherGradientNorms(_ backward: () -> Void) -> Bool { fused.gatherNorms(backward) }
    public var lossScale: Double { fused.lossScaler?.scale ?? 1 }
    public var lastGradientNorm: Double? { fused.lastGradientNorm }
    public var lastUpdatePassMetNonFinite: Bool { fused.lastUpdatePassMetNonFinite }
    public func useTensorParallelism(_ communicator: Communicator, splitAxes: [Int?]) {
        fused.tensorParallel = (communicator, splitAxes.map { $0 != nil })
        tensorParallel = (communicator, splitAxes)
    }
    public func usePipelineParallelism(_ communicator: Communicator, shared: [Tensor], countsSharedNorms: Bool) {
        fused.usePipelineParallelism(communicator, shared: shared, countsSharedNorms: countsSharedNorms)
    }

    public func finishSharedGradients() { fused.finishSharedGradients() }
}
