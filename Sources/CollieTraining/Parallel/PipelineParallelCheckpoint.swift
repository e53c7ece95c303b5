import CollieEngine
import Foundation

/// Training checkpoints under pipeline parallelism hold what one process would write: every stage's optimizer state
/// (each stage steps only its own units' parameters) merged into one process's state, so they resume on any
/// dp × tp × pp layout, and one process's state is cut to a stage's parameters to resume under pipeline parallelism.
///
/// State tensors are named `<parameter key>.<slot>` (`OptimizerState`); a stage's optimizer keys its parameters as
/// it sees them (their indices among its own), so a stage's state is renamed to one process's keys (`wholeKeys`)
/// and back. A parameter two stages share (a tied embedding) has the same state on both and is kept once.
enum PipelineParallelCheckpoint {
    /// The keys one process's optimizer (over `whole`, every trained parameter) gives `parameters` (a stage's).
    static func wholeKeys(of parameters: [Tensor], in whole: [Tensor]) -> [String] {
        let keys = OptimizerState.parameterKeys(for: whole)
        let index = Dictionary(whole.enumerated().map { (ObjectIdentifier($1), $0) }, uniquingKeysWith: { a, _ in a })
        return parameters.map { keys[index[ObjectIdentifier($0)]!] }
    }

    /// `state` with its parameters' keys replaced, in order, by `keys`, keeping only their tensors.
    static func renamed(_ state: OptimizerState, keys: [String]) -> OptimizerState {
        let names = Dictionary(zip(state.metadata.parameterKeys, keys).map { ($0, $1) }, uniquingKeysWith: { a, _ in a })
        var result = state
        result.metadata.parameterKeys = keys
        result.tensors = [:]
        for (name, tensor) in state.tensors {
            guard let dot = name.lastIndex(of: "."), let key = names[String(name[..<dot])] else { continue }
            result.tensors[key + name[dot...]] = tensor
        }
        return result
    }

    /// The stages' states, already under one process's keys, as one process's state over `keys` (its order).
    static func merged(_ stages: [OptimizerState], keys: [String]) -> OptimizerState {
        var result = stages[0]
        result.metadata.parameterKeys = keys
        for stage in stages.dropFirst() {
            result.tensors.merge(stage.tensors) { first, _ in first }
        }
        return result
    }

    /// One process's `state` cut to a stage's parameters: `wholeKeys` are their keys in `state`, `keys` what the
    /// stage's optimizer calls them.
    static func stage(_ state: OptimizerState, wholeKeys: [String], keys: [String]) -> OptimizerState {
        var cut = state
        cut.metadata.parameterKeys = wholeKeys
        return renamed(cut, keys: keys)
    }

    /// `state` (this rank's stage's, under one process's keys) merged with every other stage's on the world's main
    /// rank (nil elsewhere); one rank per stage writes its state into `scratch/stage-<s>` and the main rank reads
    /// them back (checkpoints live on a file system every rank writes, as ZeRO's shards do). Every rank of `world`
    /// must call it.
    static func gathered(_ state: OptimizerState, pipeline: PipelineParallelGroup, writes: Bool, world: Communicator,
                         keys: [String], scratch: URL) throws -> OptimizerState? {
        if world.isMain { try? FileManager.default.removeItem(at: scratch) }
        world.barrier()
        if writes { try state.save(to: scratch.appendingPathComponent("stage-\(pipeline.stage)")) }
        world.barrier()
        guard world.isMain else { return nil }
        defer { try? FileManager.default.removeItem(at: scratch) }
        let stages = try (0..<pipeline.communicator.size).map {
            try OptimizerState(contentsOf: scratch.appendingPathComponent("stage-\($0)"))
        }
        return merged(stages, keys: keys)
    }
}
