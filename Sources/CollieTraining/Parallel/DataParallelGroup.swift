import CollieEngine
import CollieModels
import Foundation

/// Data parallelism and ZeRO stages 1–2 over a `ParameterBuffer` (the Trainer's distributed half).
///
/// Every rank holds the whole model and trains on its rows of each global micro-batch (`localRows(of:)`).
/// Gradients are reduced in buckets — consecutive parameters of the flat buffer, the last parameters first,
/// since backward makes their gradients final first — each bucket started from the gradient-ready hooks as soon
/// as its last gradient is final, so communication overlaps the rest of backward. Buckets are started in one
/// fixed order on every rank (a bucket waits for the ones before it), as MPI requires.
///
/// - Stage 0: buckets are summed over all ranks (all-reduce) after the last micro-batch of an update; every rank
///   updates every parameter with a full optimizer.
/// - Stage 1: the same all-reduce, but the optimizer covers only this rank's `shard` of the flat buffer (its
///   state is 1/N); after the step the shards are all-gathered into every rank's parameters.
/// - Stage 2: as stage 1, but each bucket is reduce-scattered after every micro-batch: a rank keeps the summed
///   gradient of its shard only, and each parameter's full gradient is freed as soon as it was sent.
/// - Stage 3: as stage 2, and a rank keeps only its shard of the parameters. Buckets are the model's units
///   (embedding, each decoder layer, norm + output projection); through `ParameterUnitHooks` a unit's parameters
///   are all-gathered just before its forward and freed after it, gathered again just before its backward (by a
///   backward hook on its output) and freed after it (a backward hook on its input). The optimizer updates the
///   shard; nothing is gathered after the step.
///
/// With an optimizer that updates inside backward (LOMO, AdaLomo: `reducesEachGradient`), there are no flat
/// gradients and no buckets: each parameter's gradient is summed over the ranks (all-reduce) by a gradient-ready
/// hook registered before the optimizer's, so the optimizer's own hook — which knows nothing of MPI — updates
/// from the reduced gradient, in its norm pass and in its update pass alike.
///
/// The losses are divided by the global number of predicted tokens, so the summed gradient is that of one
/// process training on the whole global batch.
public final class DataParallelGroup {
    /// The data-parallel ranks.
    public let communicator: Communicator
    /// Under tensor parallelism (any stage): the tensor-parallel group and which of `buffer`'s parameters are
    /// slices, for the global gradient norm.
    public var tensorParallel: (communicator: Communicator, isSlice: [Bool])?
    /// Under pipeline parallelism: the stages, and for each parameter of the buffer whether its gradient counts in
    /// the norm here (a tied embedding's counts on the first stage only). The clipping norm sums over the stages.
    public var pipelineParallel: (communicator: Communicator, countsInNorm: [Bool])?
    /// 0 (plain data parallelism), 1, 2 or 3.
    public let stage: Int
    /// True for in-backward optimizers: every gradient is all-reduced as soon as it is final.
    public let reducesEachGradient: Bool
    public let buffer: ParameterBuffer
    /// Each rank's element range of the flat buffer.
    public let ranges: [Range<Int>]
    /// This rank's range: the part of the buffer whose optimizer state (and, at stage 2, gradient) it holds.
    public var shard: Range<Int> { ranges[communicator.rank] }
    /// At stage ≥ 1, the tensor the optimizer updates: a view of this rank's shard of the flat parameters, named
    /// `flat`, whose gradient is the shard of the summed gradient. Nil at stage 0.
    public let shardParameter: Tensor?

    private struct Bucket {
        /// Indices into `buffer.parameters`, consecutive.
        var parameters: Range<Int>
        /// Element range of the flat buffer.
        var elements: Range<Int>
    }
    private var buckets: [Bucket] = []
    /// Each parameter's bucket; −1 for a deferred one.
    private var bucketOfParameter: [Int] = []
    /// Stage 2 under pipeline parallelism: the indices of the parameters two stages share (a tied embedding), whose
    /// halves are summed between the stages after backward. They stay out of the buckets, keep their whole gradient
    /// through the micro-batches and are reduce-scattered into the shard by `reduceDeferredGradients()`.
    private var deferred: Set<Int> = []
    private var readyCount: [Int] = []
    private var launchedBuckets = 0
    private var synchronizing = false
    private var pending: [(request: CommunicationRequest, finish: () -> Void)] = []
    /// Stage 3: the units' parameter-index ranges, the units gathered now, whether all parameters are.
    private var units: [Range<Int>] = []
    private var gatheredUnits: [Int: TensorStorage] = [:]
    private var fullyGathered = false
    /// Stage 3: this rank's shard of the parameter values (the only copy it keeps).
    private var shardValues: Tensor?

    /// Elements per bucket (about 4 MB of float32); a parameter larger than that is a bucket alone.
    public static let defaultBucketElements = 1 << 20

    /// Sets up `buffer`'s gradients for `stage` and registers the gradient-ready hooks (none in a group of one
    /// at stage 0, where nothing needs reducing).
    ///
    /// - Parameter reducesEachGradient: for optimizers that update inside backward (stage 0 only): leaves the
    ///   gradients unattached and all-reduces each one from a gradient-ready hook. Create the group before the
    ///   optimizer attaches its own hooks.
    /// - Parameter units: at stage 3, the parameter-index ranges into `buffer` of the model's units, by unit number
    ///   (`CausalLanguageModel.parameterUnits`; a pipeline stage's `PipelineParallelGroup.parameterUnits(of:)`, empty
    ///   for the other stages' units); set the model's `parameterUnitHooks` to the group.
    /// - Parameter shared: under pipeline parallelism, the parameters this stage shares with another (a tied
    ///   embedding, `PipelineParallelGroup.sharedParameters`): at stage 2 their reduction waits for
    ///   `reduceDeferredGradients()`.
    public init(communicator: Communicator, stage: Int, buffer: ParameterBuffer, reducesEachGradient: Bool = false,
                units: [Range<Int>]? = nil, shared: [Tensor] = [],
                bucketElements: Int = DataParallelGroup.defaultBucketElements) {
        precondition((0...3).contains(stage), "ZeRO stage \(stage) is not one of 0, 1, 2, 3")
        precondition(stage < 3 || units != nil, "ZeRO stage 3 needs the model's parameter units")
        precondition(stage < 3 || units!.filter { !$0.isEmpty }.reduce(0) { $0 == $1.lowerBound ? $1.upperBound : -1 }
                     == buffer.parameters.count, "ZeRO stage 3's units must cover the buffer's parameters in order")
        precondition(!reducesEachGradient || stage == 0 || stage == 3,
                     "in-backward optimizers keep no sharded state: use stage 0 or 3")
        self.communicator = communicator
        self.stage = stage
        self.buffer = buffer
        self.reducesEachGradient = reducesEachGradient
        ranges = communicator.partition(buffer.count)
        let shard = ranges[communicator.rank]
        if stage == 3 {
            let values = Tensor.zeros([shard.count])
            values.pointer(as: Float.self).update(from: buffer.values.pointer(as: Float.self) + shard.lowerBound, count: shard.count)
            values.name = "flat"
            shardValues = values
            buffer.releaseValues()
            self.units = units!
        }
        if reducesEachGradient {
            shardParameter = nil
            guard communicator.size > 1 else { return }
            for parameter in buffer.parameters {
                parameter.onGradientReady { [unowned self] p in self.allReduceGradient(of: p) }
            }
            return
        }
        if stage < 2 { buffer.attachGradients() }
        // Stages 2 and 3 free each gradient (and at 3 each gathered layer) as soon as it is reduced: those blocks
        // must go back to the system, not into the block cache, or the resident set keeps a full copy anyway.
        if stage >= 2 { StoragePool.shared.limitForMemorySaving() }
        if stage == 3 {
            shardValues!.grad = Tensor.zeros([shard.count])
            shardParameter = shardValues
        } else if stage >= 1 {
            let view = Tensor(storage: buffer.values.storage, shape: [shard.count], offset: shard.lowerBound, dtype: .float32)
            view.name = "flat"
            view.grad = stage == 1
                ? Tensor(storage: buffer.gradients!.storage, shape: [shard.count], offset: shard.lowerBound, dtype: .float32)
                : Tensor.zeros([shard.count])
            shardParameter = view
        } else {
            shardParameter = nil
        }
        guard communicator.size > 1 || stage >= 2 else { return }
        if stage == 2 {
            let sharedIDs = Set(shared.map(ObjectIdentifier.init))
            deferred = Set(buffer.parameters.indices.filter { sharedIDs.contains(ObjectIdentifier(buffer.parameters[$0])) })
        }

        // Buckets from the last parameter backwards (at stage 3, the units), around the deferred parameters.
        bucketOfParameter = Array(repeating: -1, count: buffer.parameters.count)
        var index = buffer.parameters.count - 1
        if stage == 3 {
            for unit in self.units.reversed() where !unit.isEmpty {
                let start = buffer.offsets[unit.lowerBound]
                let end = buffer.offsets[unit.upperBound - 1] + buffer.parameters[unit.upperBound - 1].count
                buckets.append(Bucket(parameters: unit, elements: start..<end))
                for p in unit { bucketOfParameter[p] = buckets.count - 1 }
            }
            index = -1
        }
        while index >= 0 {
            if deferred.contains(index) {
                index -= 1
                continue
            }
            var first = index, elements = buffer.parameters[index].count
            while first > 0, !deferred.contains(first - 1), elements + buffer.parameters[first - 1].count <= bucketElements {
                first -= 1
                elements += buffer.parameters[first].count
            }
            let start = buffer.offsets[first]
            buckets.append(Bucket(parameters: first..<(index + 1), elements: start..<(start + elements)))
            for p in first...index { bucketOfParameter[p] = buckets.count - 1 }
            index = first - 1
        }
        readyCount = Array(repeating: 0, count: buckets.count)
        for (i, parameter) in buffer.parameters.enumerated() {
            parameter.onGradientReady { [unowned self] _ in self.gradientReady(parameter: i) }
        }
    }

    /// A data-parallel group of one process at stage 0: training as without it.
    public static func single(_ buffer: ParameterBuffer) -> DataParallelGroup {
        DataParallelGroup(communicator: SingleProcessCommunicator(), stage: 0, buffer: buffer)
    }

    /// The parameters the optimizer updates: the shard at stage ≥ 1, else every parameter.
    public var optimizerParameters: [Tensor] { shardParameter.map { [$0] } ?? buffer.parameters }

    // MARK: - Data

    /// This rank's rows of a global micro-batch: rank r of N takes the r-th of N contiguous, as-even-as-possible
    /// row ranges, padded to the global batch's length, with `weight` 1. When the batch has fewer rows than
    /// ranks and none fall here, the batch's last row with `weight` 0: the rank still runs backward (its
    /// gradient-ready hooks take part in the collectives) but contributes nothing.
    public func localRows(of batch: PaddedBatch) -> (batch: PaddedBatch, weight: Double) {
        let rows = localRowRange(batchSize: batch.batchSize)
        if rows.isEmpty { return (Self.rows(batch.batchSize - 1..<batch.batchSize, of: batch), 0) }
        return (Self.rows(rows, of: batch), 1)
    }

    /// The rows of a global micro-batch of `batchSize` rows this rank takes (empty when there are fewer rows than ranks).
    func localRowRange(batchSize: Int) -> Range<Int> {
        Self.partition(batchSize, into: communicator.size)[communicator.rank]
    }

    /// Rows `rows` of `batch`.
    static func rows(_ rows: Range<Int>, of batch: PaddedBatch) -> PaddedBatch {
        if rows.count == batch.batchSize { return batch }
        let t = batch.length
        let elements = (rows.lowerBound * t)..<(rows.upperBound * t)
        return PaddedBatch(batchSize: rows.count, length: t, tokens: Array(batch.tokens[elements]),
                           labels: Array(batch.labels[elements]), attentionMask: Array(batch.attentionMask[elements]),
                           positions: Array(batch.positions[elements]),
                           exampleIndices: Array(batch.exampleIndices[rows]))
    }

    static func partition(_ count: Int, into parts: Int) -> [Range<Int>] {
        SingleProcessCommunicator.partition(count, into: parts)
    }

    // MARK: - Backward

    /// Sums `parameter`'s gradient over the ranks, in place (a contiguous float32 copy replaces one that is not).
    private func allReduceGradient(of parameter: Tensor) {
        guard var g = parameter.grad else { return }
        if !(g.isContiguous && g.dtype == .float32) {
            g = g.contiguousCopy(dtype: .float32)
            parameter.grad = g
        }
        communicator.allReduce(UnsafeMutableBufferPointer(start: g.pointer(as: Float.self), count: g.count), .sum)
    }

    /// Call before each micro-batch's backward pass; `last` is true for the last micro-batch of an update, after
    /// which gradients are reduced (stage 2 reduces after every micro-batch).
    public func beginBackward(last: Bool) {
        synchronizing = !buckets.isEmpty && (last || stage >= 2)
        launchedBuckets = 0
        for i in readyCount.indices { readyCount[i] = 0 }
    }

    /// Call after each micro-batch's backward pass (also on a rank that had no rows in it): starts the buckets
    /// whose parameters received no gradient and waits for every reduction.
    public func endBackward() {
        if synchronizing {
            while launchedBuckets < buckets.count { launch(buckets[launchedBuckets]); launchedBuckets += 1 }
            for entry in pending { entry.request.wait(); entry.finish() }
            pending.removeAll()
            synchronizing = false
        }
        // At stage 1 the optimizer reads the flat gradients through the shard's own view of them: the parameters'
        // gradients marked zero that no backward wrote (`ParameterBuffer.zeroGradients()`) are cleared first.
        if stage == 1 { _ = buffer.gradients }
        // Stage 3: the embedding's backward is the last; nothing after it frees its parameters.
        for unit in Array(gatheredUnits.keys) where !fullyGathered { release(unit) }
    }

    /// Call after an in-backward optimizer attached its hooks. At stage 3 each parameter's updated values are
    /// then copied into this rank's shard right after the optimizer's hook updated the gathered parameter
    /// (which is freed after its layer's backward).
    public func attachAfterInBackwardOptimizer() {
        guard reducesEachGradient, stage == 3 else { return }
        for (index, parameter) in buffer.parameters.enumerated() {
            parameter.onGradientReady { [unowned self] p in self.keepUpdatedValues(of: p, index: index) }
        }
    }

    private func keepUpdatedValues(of parameter: Tensor, index: Int) {
        let range = buffer.offsets[index]..<(buffer.offsets[index] + parameter.count)
        let own = Self.overlap(shard, range)
        guard !own.isEmpty, let shardValues else { return }
        (shardValues.pointer(as: Float.self) + (own.lowerBound - shard.lowerBound))
            .update(from: parameter.pointer(as: Float.self) + (own.lowerBound - range.lowerBound), count: own.count)
    }

    private func gradientReady(parameter index: Int) {
        guard synchronizing, bucketOfParameter[index] >= 0 else { return }
        readyCount[bucketOfParameter[index]] += 1
        while launchedBuckets < buckets.count,
              readyCount[launchedBuckets] == buckets[launchedBuckets].parameters.count {
            launch(buckets[launchedBuckets])
            launchedBuckets += 1
        }
        // Let MPI progress the reductions in flight, and release the ones that finished.
        pending.removeAll { entry in
            guard entry.request.test() else { return false }
            entry.finish()
            return true
        }
    }

    private func launch(_ bucket: Bucket) {
        if stage < 2 {
            let gradients = buffer.gradients(clearing: bucket.parameters)!.pointer(as: Float.self)
            let slice = UnsafeMutableBufferPointer(start: gradients + bucket.elements.lowerBound, count: bucket.elements.count)
            pending.append((communicator.startAllReduce(slice), {}))
            return
        }
        // Stage 2: the bucket's gradients go into one staging buffer (and are freed), which is reduce-scattered:
        // each rank receives the sum of the part of the bucket inside its shard.
        let staging = UnsafeMutableBufferPointer<Float>.allocate(capacity: bucket.elements.count)
        staging.initialize(repeating: 0)
        for i in bucket.parameters {
            let p = buffer.parameters[i]
            defer { p.grad = nil }
            guard let g = p.grad else { continue }
            let source = g.isContiguous && g.dtype == .float32 ? g : g.contiguousCopy(dtype: .float32)
            (staging.baseAddress! + buffer.offsets[i] - bucket.elements.lowerBound)
                .update(from: source.pointer(as: Float.self), count: p.count)
        }
        let counts = ranges.map { Self.overlap($0, bucket.elements).count }
        let own = Self.overlap(shard, bucket.elements)
        let received = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(own.count, 1))
        let request = communicator.startReduceScatter(UnsafeBufferPointer(staging),
                                                      into: UnsafeMutableBufferPointer(rebasing: received[0..<own.count]),
                                                      counts: counts)
        let target = shardParameter!.grad!.pointer(as: Float.self) + (own.lowerBound - shard.lowerBound)
        pending.append((request, {
            for k in 0..<own.count { target[k] += received[k] }
            staging.deallocate()
            received.deallocate()
        }))
    }

    /// Stage 2 under pipeline parallelism, after the stages summed the shared parameters' halves
    /// (`PipelineParallelGroup.reduceSharedGradients`): reduce-scatters each deferred parameter's gradient over the
    /// ranks into this rank's shard of the gradients and frees it. Nothing to do otherwise.
    public func reduceDeferredGradients() {
        guard let target = shardParameter?.grad else { return }
        for index in deferred.sorted() {
            let parameter = buffer.parameters[index]
            defer { parameter.grad = nil }
            let gradient = parameter.grad.map { $0.isContiguous && $0.dtype == .float32 ? $0 : $0.contiguousCopy(dtype: .float32) }
                ?? Tensor.zeros(parameter.shape)
            let range = buffer.offsets[index]..<(buffer.offsets[index] + parameter.count)
            // Straight into the shard's gradient: the buckets never write the deferred ranges.
            let own = Self.overlap(shard, range)
            communicator.startReduceScatter(UnsafeBufferPointer(start: gradient.pointer(as: Float.self), count: parameter.count),
                                            into: UnsafeMutableBufferPointer(start: target.pointer(as: Float.self)
                                                                                 + (own.lowerBound - shard.lowerBound),
                                                                             count: own.count),
                                            counts: ranges.map { Self.overlap($0, range).count }).wait()
        }
    }

    static func overlap(_ a: Range<Int>, _ b: Range<Int>) -> Range<Int> {
        let lower = Swift.max(a.lowerBound, b.lowerBound), upper = Swift.min(a.upperBound, b.upperBound)
        return lower < upper ? lower..<upper : lower..<lower
    }

    // MARK: - Update

    /// The global L2 norm of the summed gradients, scaling them to at most `maxNorm` when it is given (torch's
    /// `clip_grad_norm_`). At stage 2 the shards' squared norms are summed over the ranks.
    public func clipGradients(maxNorm: Double?) -> Double {
        if tensorParallel != nil || pipelineParallel != nil, stage < 2 {
            // Slices' squares summed over the tensor-parallel group, replicated parameters counted once; then
            // the stages' sums added.
            var sliced = 0.0, replicated = 0.0
            for (index, p) in buffer.parameters.enumerated() {
                guard let g = p.grad, pipelineParallel?.countsInNorm[index] ?? true else { continue }
                let squares = GradientClipping.sumOfSquares(g.isContiguous ? g : g.contiguousCopy())
                if tensorParallel?.isSlice[index] == true { sliced += squares } else { replicated += squares }
            }
            var squared = (tensorParallel?.communicator.sum(sliced) ?? sliced) + replicated
            if let pipelineParallel { squared = pipelineParallel.communicator.sum(squared) }
            let total = squared.squareRoot()
            if let maxNorm, let scale = GradientClipping.scale(total: total, maxNorm: maxNorm) {
                for p in buffer.parameters {
                    guard let g = p.grad else { continue }
                    if !g.isContiguous { p.grad = g.contiguousCopy() }
                    GradientClipping.multiply(p.grad!, by: scale)
                }
            }
            return total
        }
        guard stage >= 2, let shardParameter else {
            return maxNorm.map { GradientClipping.clipByGlobalNorm(buffer, maxNorm: $0) }
                ?? GradientClipping.globalNorm(buffer.parameters)
        }
        let total: Double
        if tensorParallel != nil || pipelineParallel != nil {
            // Each parameter's part of this rank's gradient shard: slices' and replicated squares apart, summed over
            // the dp group, then as above over the tensor-parallel group and the stages.
            let g = shardParameter.grad!.pointer(as: Float.self)
            var sliced = 0.0, replicated = 0.0
            for (index, p) in buffer.parameters.enumerated() where pipelineParallel?.countsInNorm[index] ?? true {
                let start = buffer.offsets[index]
                var squares = 0.0
                for i in Self.overlap(start..<(start + p.count), shard) { squares += Double(g[i - shard.lowerBound]) * Double(g[i - shard.lowerBound]) }
                if tensorParallel?.isSlice[index] == true { sliced += squares } else { replicated += squares }
            }
            let sums = communicator.sum([sliced, replicated])
            var squared = (tensorParallel?.communicator.sum(sums[0]) ?? sums[0]) + sums[1]
            if let pipelineParallel { squared = pipelineParallel.communicator.sum(squared) }
            total = squared.squareRoot()
        } else {
            let local = GradientClipping.globalNorm([shardParameter])
            total = communicator.sum(local * local).squareRoot()
        }
        if let maxNorm, let scale = GradientClipping.scale(total: total, maxNorm: maxNorm) {
            let g = shardParameter.grad!.pointer(as: Float.self)
            for i in 0..<shardParameter.count { g[i] *= scale }
        }
        return total
    }

    /// After the optimizer step: at stage ≥ 1 every rank's updated shard is copied into every rank's parameters.
    public func finishStep() {
        guard stage == 1 || stage == 2 else { return }
        communicator.allGather(UnsafeMutableBufferPointer(start: buffer.values.pointer(as: Float.self), count: buffer.count),
                               counts: ranges.map(\.count))
    }

    /// Sets the gradients to zero for the next update.
    public func zeroGradients() {
        buffer.zeroGradients()
        if stage >= 2, let g = shardParameter?.grad {
            g.pointer(as: Float.self).initialize(repeating: 0, count: g.count)
        }
    }

    // MARK: - Stage 3: parameters gathered just in time

    /// The flat element range of unit `unit`.
    private func elements(of unit: Int) -> Range<Int> {
        let parameters = units[unit]
        let start = buffer.offsets[parameters.lowerBound]
        return start..<(buffer.offsets[parameters.upperBound - 1] + buffer.parameters[parameters.upperBound - 1].count)
    }

    /// All-gathers the parameter values of flat range `range` from the ranks' shards into a new storage.
    private func gatherValues(_ range: Range<Int>) -> TensorStorage {
        let storage = TensorStorage(byteCount: range.count * 4)
        let target = storage.data.assumingMemoryBound(to: Float.self)
        let own = Self.overlap(shard, range)
        if !own.isEmpty {
            (target + (own.lowerBound - range.lowerBound))
                .update(from: shardValues!.pointer(as: Float.self) + (own.lowerBound - shard.lowerBound), count: own.count)
        }
        communicator.allGather(UnsafeMutableBufferPointer(start: target, count: range.count),
                               counts: ranges.map { Self.overlap($0, range).count })
        return storage
    }

    private func gather(_ unit: Int) {
        guard gatheredUnits[unit] == nil, !units[unit].isEmpty else { return }
        let range = elements(of: unit)
        let storage = gatherValues(range)
        buffer.bind(units[unit], to: storage, base: range.lowerBound)
        gatheredUnits[unit] = storage
    }

    private func release(_ unit: Int) {
        guard gatheredUnits.removeValue(forKey: unit) != nil else { return }
        buffer.unbind(units[unit])
    }

    /// Runs `body` with every parameter gathered (stage 3; other stages hold them all anyway): checkpoints,
    /// evaluation, loading weights. Every rank must call it. With `writeBack`, what `body` wrote into the
    /// parameters becomes this rank's shard.
    public func withFullParameters<R>(writeBack: Bool = false, _ body: () throws -> R) rethrows -> R {
        guard stage == 3, !fullyGathered else { return try body() }
        gatherAll()
        defer {
            if writeBack, let shardValues {
                let all = buffer.parameters[0]
                shardValues.pointer(as: Float.self)
                    .update(from: all.storage.data.assumingMemoryBound(to: Float.self) + shard.lowerBound, count: shard.count)
            }
            fullyGathered = false
            buffer.unbind(0..<buffer.parameters.count)
        }
        return try body()
    }

    /// Gathers every parameter and keeps them so (stage 3), for what follows training: the final model,
    /// a sample answer. Every rank must call it.
    public func gatherAll() {
        guard stage == 3, !fullyGathered else { return }
        for unit in Array(gatheredUnits.keys) { release(unit) }
        buffer.bind(0..<buffer.parameters.count, to: gatherValues(0..<buffer.count), base: 0)
        fullyGathered = true
    }

    /// The sums over the ranks of `values` (losses, token counts).
    public func sum(_ values: [Double]) -> [Double] { communicator.size > 1 ? communicator.sum(values) : values }
}

extension DataParallelGroup: ParameterUnitHooks {
    public func unitWillRun(_ unit: Int, input: Tensor) -> Tensor {
        guard stage == 3, !fullyGathered else { return input }
        gather(unit)
        // In backward this runs after the unit's backward: its parameters are no longer needed.
        return .backwardHook(input) { [unowned self] in self.release(unit) }
    }

    public func unitDidRun(_ unit: Int, output: Tensor) -> Tensor {
        guard stage == 3, !fullyGathered else { return output }
        release(unit)
        // In backward this runs just before the unit's backward, which reads its parameters again.
        return .backwardHook(output) { [unowned self] in self.gather(unit) }
    }
}
