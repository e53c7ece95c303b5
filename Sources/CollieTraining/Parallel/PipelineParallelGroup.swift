import CollieEngine
import CollieModels
import Foundation

/// Pipeline parallelism: the model's units (embedding, blocks, head) split into consecutive stages, one per rank
/// of `communicator`; each micro-batch's hidden states [B, T, C] go forward from stage to stage and their
/// gradients come back, point to point, in the 1F1B order (`schedule`), so a stage holds the activations of at
/// most `stages − stage` micro-batches at once.
///
/// Every stage reads the same micro-batches (token ids, positions, padding or a padding-free batch's packed
/// sequences) and runs only its own units; the gradients of its units' parameters accumulate as in one process. A
/// tensor the first and the last stage share (a tied embedding) gets the sum of both stages' gradients
/// (`reduceSharedGradients`); the gradient norm is summed over the stages by `DataParallelGroup.pipelineParallel`. A
/// rank keeps only its stage's parameters (`releaseOtherStages`); `gatherParameters` brings every stage's trained
/// units to every rank (to save, evaluate or generate with the whole model).
public final class PipelineParallelGroup {
    /// The stages: rank s runs stage s.
    public let communicator: Communicator
    /// Each stage's units.
    public let partition: PipelinePartition

    /// This rank's stage.
    public var stage: Int { communicator.rank }
    /// This stage's units (0 the embedding, i + 1 block i, blocks + 1 the head).
    public var units: Range<Int> { partition.stages[stage] }
    public var isFirstStage: Bool { stage == 0 }
    public var isLastStage: Bool { stage == communicator.size - 1 }

    private var pendingSends: [(request: CommunicationRequest, tensor: Tensor)] = []

    public init(communicator: Communicator, partition: PipelinePartition) {
        precondition(partition.stages.count == communicator.size, "one stage per rank")
        self.communicator = communicator
        self.partition = partition
    }

    /// One micro-batch's work on one stage.
    public enum Step: Equatable, Sendable {
        case forward(Int)
        case backward(Int)
    }

    /// The order in which `stage` of `stages` runs `microBatches` micro-batches (Megatron's non-interleaved 1F1B):
    /// `stages − stage − 1` forwards to fill the pipeline, then one forward and one backward in turn, then the
    /// remaining backwards. Backwards run in micro-batch order, as do forwards.
    public static func schedule(stage: Int, stages: Int, microBatches: Int) -> [Step] {
        let warmUp = min(stages - stage - 1, microBatches)
        var steps = (0..<warmUp).map(Step.forward)
        for i in 0..<(microBatches - warmUp) {
            steps += [.forward(warmUp + i), .backward(i)]
        }
        steps += ((microBatches - warmUp)..<microBatches).map(Step.backward)
        return steps
    }

    /// The parameters this stage trains: those of its units, each once, then the LoRA adapters of their linear layers
    /// (or, on the first stage, prompt tuning's virtual tokens).
    public func parameters(of model: some CausalLanguageModel) -> [Tensor] { Self.tensors(of: model, units: units) }

    /// For ZeRO stage 3 over this stage's parameters: each of the model's units' parameter-index ranges into
    /// `parameters(of:)`, empty for the other stages' units (the hooks see the model's unit numbers); nil when the
    /// model's units share a tensor or are not laid out unit after unit (`CausalLanguageModel.parameterUnits`).
    public func parameterUnits(of model: some CausalLanguageModel) -> [Range<Int>]? {
        guard let all = model.parameterUnits else { return nil }
        let start = all[units.lowerBound].lowerBound
        return all.indices.map { units.contains($0) ? all[$0].lowerBound - start..<all[$0].upperBound - start : 0..<0 }
    }

    /// The parameters of `units`, each once, and the LoRA adapters (A, B) of the linear layers among them, or prompt
    /// tuning's virtual tokens with the embedding.
    private static func tensors(of model: some CausalLanguageModel, units: Range<Int>) -> [Tensor] {
        var seen: Set<ObjectIdentifier> = []
        let own = model.unitParameters[units].joined().filter { seen.insert(ObjectIdentifier($0)).inserted }
        let adapters = model.namedLinearLayers.compactMap { _, layer -> [Tensor]? in
            guard let lora = layer.lora, let weight = layer.denseWeight, seen.contains(ObjectIdentifier(weight)) else { return nil }
            return [lora.a, lora.b]
        }
        let prompt = units.contains(0) ? model.promptEmbedding.map { [$0.embeddings] } ?? [] : []
        return own + adapters.joined() + prompt
    }

    /// The parameters of the first stage that the last stage uses too (a tied embedding); empty with one stage.
    public func sharedParameters(of model: some CausalLanguageModel) -> [Tensor] {
        guard communicator.size > 1 else { return [] }
        let first = Set(model.unitParameters[partition.stages[0]].joined().map(ObjectIdentifier.init))
        return model.unitParameters[partition.stages[communicator.size - 1]].joined()
            .filter { first.contains(ObjectIdentifier($0)) }
    }

    /// Forward and backward of every micro-batch through the pipeline in the 1F1B order, gradients accumulating
    /// into this stage's parameters. On the last stage `loss(i, logits)` makes micro-batch i's loss (a 0-d tensor)
    /// from its logits [B, T, V]. `willRun(i)` is called before micro-batch i's forward, `willBackward(i)` and
    /// `didBackward(i)` around its backward. Returns the sum of the micro-batches' losses, on every stage.
    public func forwardBackward(_ model: some CausalLanguageModel, microBatches: [PaddedBatch],
                                willRun: (Int) -> Void = { _ in }, willBackward: (Int) -> Void = { _ in },
                                didBackward: (Int) -> Void = { _ in }, loss: (Int, Tensor) -> Tensor) -> Double {
        var total = 0.0
        for step in Self.schedule(stage: stage, stages: communicator.size, microBatches: microBatches.count) {
            switch step {
            case .forward(let i):
                willRun(i)
                total += runForward(model, microBatches[i], index: i) { loss(i, $0) }
            case .backward(let i):
                willBackward(i)
                runBackward(i, retainGraph: false)
                didBackward(i)
            }
        }
        finishSends()
        return communicator.sum(isLastStage ? total : 0)
    }

    /// One batch's forward through the stages, its graph kept for `backward(retainGraph:)`: the in-backward
    /// optimizers (LOMO, AdaLomo) run backward twice when they clip, a norm pass and then the update. On the last
    /// stage `loss(logits)` makes the loss. Returns the loss, on every stage.
    public func forward(_ model: some CausalLanguageModel, batch: PaddedBatch, loss: (Tensor) -> Tensor) -> Double {
        let value = runForward(model, batch, index: 0, loss: loss)
        finishSends()
        return communicator.sum(isLastStage ? value : 0)
    }

    /// One batch's forward through the stages without a graph (evaluation): each stage runs only its units, so no
    /// rank needs the whole model. On the last stage `loss(logits)` makes the loss. Returns it, on every stage.
    public func evaluate(_ model: some CausalLanguageModel, batch: PaddedBatch, loss: (Tensor) -> Tensor) -> Double {
        let value = withNoGrad { runForward(model, batch, index: 0, loss: loss) }
        inputs[0] = nil
        outputs[0] = nil
        finishSends()
        return communicator.sum(isLastStage ? value : 0)
    }

    /// Backward of the batch `forward` ran, from the last stage to the first; the graph stays for another pass when
    /// `retainGraph`.
    public func backward(retainGraph: Bool) {
        runBackward(0, retainGraph: retainGraph)
        finishSends()
    }

    private var inputs: [Int: Tensor] = [:], outputs: [Int: Tensor] = [:]

    /// Micro-batch `index`'s forward on this stage: its input received (or its ids), its output sent on (or its loss
    /// made); returns the loss on the last stage, else 0.
    private func runForward(_ model: some CausalLanguageModel, _ batch: PaddedBatch, index i: Int,
                            loss: (Tensor) -> Tensor) -> Double {
        let input: Tensor
        if isFirstStage {
            input = batch.tokenTensor
        } else {
            let shape = [batch.batchSize, model.hiddenLength(tokens: batch.length), model.configuration.hiddenSize]
            input = receive(shape, from: stage - 1, tag: 2 * i)
            input.requiresGrad = true
            inputs[i] = input
        }
        let mask = batch.hasPadding ? batch.attentionMaskTensor : nil
        // Every stage numbers the tokens alike, also where an architecture reads its positions from the ids.
        let positions = model.positions(of: batch.tokenTensor, keyPaddingMask: mask) ?? batch.positionTensor
        let output = model.forward(units: units, input, positions: positions, keyPaddingMask: mask, sequences: batch.sequences)
        guard isLastStage else {
            send(output, to: stage + 1, tag: 2 * i)
            outputs[i] = output
            return 0
        }
        let value = loss(output)
        outputs[i] = value
        return Double(value.item)
    }

    /// Micro-batch `index`'s backward on this stage: from its loss, or from the gradient the next stage sends; the
    /// input's gradient sent back. Kept for another pass when `retainGraph`.
    private func runBackward(_ i: Int, retainGraph: Bool) {
        let output = retainGraph ? outputs[i]! : outputs.removeValue(forKey: i)!
        let input = retainGraph ? inputs[i] : inputs.removeValue(forKey: i)
        input?.grad = nil
        if isLastStage {
            output.backward(retainGraph: retainGraph)
        } else {
            output.backward(gradient: receive(output.shape, from: stage + 1, tag: 2 * i + 1), retainGraph: retainGraph)
        }
        if let input { send(input.grad ?? Tensor.zeros(input.shape), to: stage - 1, tag: 2 * i + 1) }
    }

    /// Adds the last stage's gradients of the shared parameters to the first stage's and gives both the sum, as
    /// one process accumulates both uses of a tied embedding into one gradient.
    public func reduceSharedGradients(_ model: some CausalLanguageModel) {
        let last = communicator.size - 1
        guard isFirstStage || isLastStage, last > 0 else { return }
        for (index, parameter) in sharedParameters(of: model).enumerated() {
            let gradient = parameter.grad ?? Tensor.zeros(parameter.shape)
            let other = Tensor.zeros(parameter.shape)
            let peer = isFirstStage ? last : 0
            send(gradient, to: peer, tag: 1_000_000 + index)
            communicator.receive(Self.bytes(of: other), from: peer, tag: 1_000_000 + index)
            finishSends()
            let sum = withNoGrad { isFirstStage ? gradient + other : other + gradient }  // one order on both stages
            if let grad = parameter.grad { grad.assignValues(from: sum) } else { parameter.grad = sum }
        }
    }

    /// Frees the memory of the parameters of the other stages' units (this stage's, and a tied embedding it
    /// shares, stay).
    public func releaseOtherStages(_ model: some CausalLanguageModel) {
        guard communicator.size > 1 else { return }
        let own = Set(parameters(of: model).map(ObjectIdentifier.init))
        for parameter in Self.tensors(of: model, units: 0..<model.unitParameters.count)
        where !own.contains(ObjectIdentifier(parameter)) {
            parameter.releaseValues()
        }
    }

    /// Gives the other stages' parameters memory again (uninitialized), for whole-model values to be copied in.
    public func allocateOtherStages(_ model: some CausalLanguageModel) {
        for parameter in Self.tensors(of: model, units: 0..<model.unitParameters.count) { parameter.allocateValues() }
    }

    /// Copies every stage's parameters from that stage to every rank, so each holds the whole trained model. Under
    /// ZeRO-3 a stage's ranks hold only shards: call it inside the dp group's `withFullParameters` (or after
    /// `gatherAll`), so that the owners send gathered values.
    public func gatherParameters(_ model: some CausalLanguageModel) {
        guard communicator.size > 1 else { return }
        var seen: Set<ObjectIdentifier> = []
        for (owner, units) in partition.stages.enumerated() {
            for parameter in Self.tensors(of: model, units: units) where seen.insert(ObjectIdentifier(parameter)).inserted {
                parameter.allocateValues()
                precondition(parameter.isContiguous, "parameters are contiguous")
                communicator.broadcast(Self.bytes(of: parameter), root: owner)
            }
        }
    }

    private func send(_ tensor: Tensor, to destination: Int, tag: Int) {
        let contiguous = tensor.isContiguous ? tensor : withNoGrad { tensor.contiguous() }
        precondition(contiguous.dtype == .float32, "pipeline stages exchange float32 tensors")
        let request = communicator.startSend(UnsafeRawBufferPointer(Self.bytes(of: contiguous)), to: destination, tag: tag)
        pendingSends.append((request, contiguous))
    }

    private func receive(_ shape: [Int], from source: Int, tag: Int) -> Tensor {
        let tensor = Tensor.zeros(shape)
        communicator.receive(Self.bytes(of: tensor), from: source, tag: tag)
        return tensor
    }

    /// The storage of a contiguous tensor, as bytes.
    private static func bytes(of tensor: Tensor) -> UnsafeMutableRawBufferPointer {
        let start: UnsafeMutableRawPointer = switch tensor.dtype.size {
        case 2: UnsafeMutableRawPointer(tensor.pointer(as: UInt16.self))
        case 8: UnsafeMutableRawPointer(tensor.pointer(as: Int64.self))
        default: UnsafeMutableRawPointer(tensor.pointer(as: Float.self))
        }
        return UnsafeMutableRawBufferPointer(start: start, count: tensor.count * tensor.dtype.size)
    }

    /// Waits for every send started, then lets their tensors go.
    private func finishSends() {
        for (request, _) in pendingSends { request.wait() }
        pendingSends.removeAll()
    }
}

/// The stages as whole-model calls see them while evaluators run through the pipeline (`CausalLanguageModel.pipelineStage`).
extension PipelineParallelGroup: PipelineStage {
    /// Tag of the hidden states whole-model calls pass on (apart from training's micro-batch tags).
    private static let stagedCallTag = 3_000_000

    public func receiveHidden(_ shape: [Int]) -> Tensor { receive(shape, from: stage - 1, tag: Self.stagedCallTag) }

    public func sendHidden(_ hidden: Tensor) {
        send(hidden, to: stage + 1, tag: Self.stagedCallTag)
        finishSends()
    }

    public func logitsFromLastStage(_ logits: Tensor?, shape: [Int]) -> Tensor {
        let result = logits.map { $0.isContiguous && $0.dtype == .float32 ? $0 : $0.contiguousCopy(dtype: .float32) }
            ?? Tensor.zeros(shape)
        communicator.broadcast(Self.bytes(of: result), root: communicator.size - 1)
        return result
    }
}
