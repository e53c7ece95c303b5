import CollieEngine
import CollieIO
import CollieModels
import Foundation

/// Training checkpoints under tensor parallelism hold what one process would write: the model gathered into one
/// Hugging Face folder and the optimizer's state gathered into one process's state, so they resume on any tp_size
/// (and on one process), and a one-process checkpoint resumes under tensor parallelism.
///
/// A state tensor follows its parameter: the shape of the parameter (AdamW's moments, AdaLomo's vector moments) is
/// gathered and sliced along the parameter's split axis; AdaLomo's `…_row` factor (one value per row) along axis 0
/// when the rows are split, its `…_col` factor (one per column) when the columns are; what is not split is the same
/// on every rank of the group and is kept as it is.
enum TensorParallelCheckpoint {
    /// How state tensor `name` (of `parameter`, split by `split`) is split, or nil when it is whole; `tensor` is a
    /// slice's state (`groupSize` 1) or the whole parameter's (`groupSize` the group's size). Its split dimension is
    /// always the parameter's split one, so it is cut into the same segments.
    private static func split(of name: String, tensor: Tensor, parameter: Tensor, split: TensorParallelSplit?,
                              groupSize: Int) -> TensorParallelSplit? {
        guard let split else { return nil }
        var shape = parameter.shape
        shape[split.axis] *= groupSize
        if tensor.shape == shape { return split }
        if name.hasSuffix("_row") { return split.axis == 0 ? TensorParallelSplit(axis: 0, segments: split.segments) : nil }
        if name.hasSuffix("_col") { return split.axis == 1 ? TensorParallelSplit(axis: 0, segments: split.segments) : nil }
        return nil
    }

    /// For each state tensor, its parameter and that parameter's split.
    private static func owners(_ state: OptimizerState, parameters: [Tensor],
                               splits: [TensorParallelSplit?]) -> [String: (Tensor, TensorParallelSplit?)] {
        let index = Dictionary(state.metadata.parameterKeys.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        var result: [String: (Tensor, TensorParallelSplit?)] = [:]
        for name in state.tensors.keys {
            guard let dot = name.lastIndex(of: "."), let i = index[String(name[..<dot])], i < parameters.count else { continue }
            result[name] = (parameters[i], splits[i])
        }
        return result
    }

    /// `state` (of this rank's slices) gathered into one process's state; every rank of `communicator` must call it.
    static func consolidated(_ state: OptimizerState, parameters: [Tensor], splits: [TensorParallelSplit?],
                             communicator: Communicator) -> OptimizerState {
        var result = state
        let owners = owners(state, parameters: parameters, splits: splits)
        for name in state.tensors.keys.sorted() {
            guard let (parameter, parameterSplit) = owners[name], let tensor = state.tensors[name],
                  let along = split(of: name, tensor: tensor, parameter: parameter, split: parameterSplit, groupSize: 1) else { continue }
            result.tensors[name] = TensorParallelSlices.gather(tensor, along, communicator: communicator)
        }
        return result
    }

    /// One process's `state` cut to this rank's slices of `parameters` (the split parameters' whole shapes are the
    /// slices' times the group's size along their axes).
    static func sliced(_ state: OptimizerState, parameters: [Tensor], splits: [TensorParallelSplit?],
                       communicator: Communicator) -> OptimizerState {
        var result = state
        let (p, r) = (communicator.size, communicator.rank)
        for (name, (parameter, parameterSplit)) in owners(state, parameters: parameters, splits: splits) {
            guard let tensor = state.tensors[name],
                  let along = split(of: name, tensor: tensor, parameter: parameter, split: parameterSplit, groupSize: p) else { continue }
            result.tensors[name] = along.part(of: tensor, rank: r, size: p, dtype: tensor.dtype)
        }
        return result
    }
}

extension CausalLanguageModel {
    /// Copies this rank's slices of the weights `folder` holds as one process saves them — a Hugging Face folder, or
    /// with a PEFT adapter the adapter's folder — into the split model's parameters in place (a trainer's flat buffer
    /// keeps them).
    func loadTensorParallelSlices(from folder: URL, communicator: Communicator) throws {
        let splits = Dictionary(tensorParallelSlices.map { (ObjectIdentifier($0.tensor), $0.split) }, uniquingKeysWith: { a, _ in a })
        let (p, r) = (communicator.size, communicator.rank)
        let tensors: [(key: String, tensor: Tensor)]
        let read: (String) throws -> Tensor?
        if peftConfiguration != nil {
            let url = folder.appendingPathComponent(Self.adapterWeightsFileName)
            let file = try SafeTensorsFile(url: url)
            tensors = adapterParameters
            read = { file.names.contains($0) ? try file.tensor($0) : nil }
        } else {
            let source = try CheckpointFolder(url: folder)
            tensors = namedParameters
            read = { source.names.contains($0) ? try source.tensor($0) : nil }
        }
        for (key, parameter) in tensors {
            guard var whole = try read(key) else { throw TrainerError("\(folder.path): no tensor '\(key)'") }
            if let split = splits[ObjectIdentifier(parameter)] {
                let n = parameter.shape[split.axis]
                guard whole.rank == parameter.rank, whole.shape[split.axis] == n * p else {
                    throw TrainerError("\(folder.path): tensor '\(key)' has shape \(whole.shape), not the model's")
                }
                whole = split.part(of: whole, rank: r, size: p, dtype: whole.dtype)
            }
            guard whole.shape == parameter.shape else {
                throw TrainerError("\(folder.path): tensor '\(key)' has shape \(whole.shape), expected \(parameter.shape)")
            }
            parameter.assignValues(from: whole)
        }
    }
}
