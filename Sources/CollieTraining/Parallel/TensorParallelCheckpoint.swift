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
    /// The axis of state tensor `name` (of `parameter`, split along `axis`) that is split, or nil when it is whole;
    /// `tensor` is a slice's state (`groupSize` 1) or the whole parameter's (`groupSize` the group's size).
    private static func splitAxis(of name: String, tensor: Tensor, parameter: Tensor, axis: Int?, groupSize: Int) -> Int? {
        guard let axis else { return nil }
        var shape = parameter.shape
        shape[axis] *= groupSize
        if tensor.shape == shape { return axis }
        if name.hasSuffix("_row") { return axis == 0 ? 0 : nil }
        if name.hasSuffix("_col") { return axis == 1 ? 0 : nil }
        return nil
    }

    /// For each state tensor, its parameter and that parameter's split axis.
    private static func owners(_ state: OptimizerState, parameters: [Tensor], axes: [Int?]) -> [String: (Tensor, Int?)] {
        let index = Dictionary(state.metadata.parameterKeys.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        var result: [String: (Tensor, Int?)] = [:]
        for name in state.tensors.keys {
            guard let dot = name.lastIndex(of: "."), let i = index[String(name[..<dot])], i < parameters.count else { continue }
            result[name] = (parameters[i], axes[i])
        }
        return result
    }

    /// `state` (of this rank's slices) gathered into one process's state; every rank of `communicator` must call it.
    static func consolidated(_ state: OptimizerState, parameters: [Tensor], axes: [Int?],
                             communicator: Communicator) -> OptimizerState {
        var result = state
        let owners = owners(state, parameters: parameters, axes: axes)
        for name in state.tensors.keys.sorted() {
            guard let (parameter, axis) = owners[name], let tensor = state.tensors[name],
                  let along = splitAxis(of: name, tensor: tensor, parameter: parameter, axis: axis, groupSize: 1) else { continue }
            result.tensors[name] = TensorParallelSlices.gather(tensor, axis: along, communicator: communicator)
        }
        return result
    }

    /// One process's `state` cut to this rank's slices of `parameters` (the split parameters' whole shapes are the
    /// slices' times the group's size along their axes).
    static func sliced(_ state: OptimizerState, parameters: [Tensor], axes: [Int?], communicator: Communicator) -> OptimizerState {
        var result = state
        let (p, r) = (communicator.size, communicator.rank)
        for (name, (parameter, axis)) in owners(state, parameters: parameters, axes: axes) {
            guard let tensor = state.tensors[name],
                  let along = splitAxis(of: name, tensor: tensor, parameter: parameter, axis: axis, groupSize: p) else { continue }
            let n = tensor.shape[along] / p
            result.tensors[name] = tensor.slice(axis: along, (r * n)..<((r + 1) * n)).contiguousCopy(dtype: tensor.dtype)
        }
        return result
    }
}

extension CausalLanguageModel {
    /// Copies this rank's slices of the weights `folder` holds as one process saves them — a Hugging Face folder, or
    /// with a PEFT adapter the adapter's folder — into the split model's parameters in place (a trainer's flat buffer
    /// keeps them).
    func loadTensorParallelSlices(from folder: URL, communicator: Communicator) throws {
        let axes = Dictionary(tensorParallelSlices.map { (ObjectIdentifier($0.tensor), $0.axis) }, uniquingKeysWith: { a, _ in a })
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
            if let axis = axes[ObjectIdentifier(parameter)] {
                let n = parameter.shape[axis]
                guard whole.rank == parameter.rank, whole.shape[axis] == n * p else {
                    throw TrainerError("\(folder.path): tensor '\(key)' has shape \(whole.shape), not the model's")
                }
                whole = whole.slice(axis: axis, (r * n)..<((r + 1) * n))
            }
            guard whole.shape == parameter.shape else {
                throw TrainerError("\(folder.path): tensor '\(key)' has shape \(whole.shape), expected \(parameter.shape)")
            }
            parameter.assignValues(from: whole)
        }
    }
}
