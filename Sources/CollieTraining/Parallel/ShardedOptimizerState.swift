import CollieEngine
import CollieIO
import Foundation

/// Optimizer state of a ZeRO run, one file pair per rank, and the conversions that let any checkpoint resume
/// onto any layout.
///
/// Under ZeRO stage ≥ 1 the optimizer covers one range of the flat parameter buffer per rank, so its state is a
/// set of flat slots (`exp_avg`, `exp_avg_sq`, `momentum_buffer`) over that range plus a step count. A
/// checkpoint keeps it as written, sharded, in `zero_optimizer/`:
///
///     zero_optimizer/layout.json                       ranks, element ranges, the parameters' keys and offsets
///     zero_optimizer/rank-<r>/optimizer.{json,safetensors}   rank r's state; tensors `flat.<slot>`, `flat.step`
///
/// A one-process (or stage-0) checkpoint keeps `optimizer.{json,safetensors}` per parameter instead. Loading
/// reads either into either: element-wise slots are cut and pasted by flat offset, so a run resumes with a
/// different number of ranks (re-sharded) or without ZeRO. Optimizers whose state is not element-wise cannot
/// be re-sharded and say so.
public enum ShardedOptimizerState {
    /// The checkpoint sub-folder of sharded state.
    public static let folderName = "zero_optimizer"
    static let layoutFileName = "layout.json"

    /// How the flat buffer was split when the state was saved.
    public struct Layout: Codable, Equatable, Sendable {
        public var worldSize: Int
        public var stage: Int
        /// Start and end element of each rank's range.
        public var ranges: [[Int]]
        public var parameterKeys: [String]
        public var offsets: [Int]
        public var elementCount: Int

        enum CodingKeys: String, CodingKey {
            case worldSize = "world_size", stage, ranges, parameterKeys = "parameter_keys", offsets
            case elementCount = "element_count"
        }
    }

    static func rankFolderName(_ rank: Int) -> String { "rank-\(rank)" }

    /// Writes this rank's state (and, on rank 0, the layout) into `folder/zero_optimizer/`.
    public static func save(_ optimizer: Optimizer, group: DataParallelGroup, to folder: URL) throws {
        let root = folder.appendingPathComponent(folderName)
        try optimizer.state().save(to: root.appendingPathComponent(rankFolderName(group.communicator.rank)))
        if group.communicator.isMain {
            let buffer = group.buffer
            let layout = Layout(worldSize: group.communicator.size, stage: group.stage,
                                ranges: group.ranges.map { [$0.lowerBound, $0.upperBound] },
                                parameterKeys: OptimizerState.parameterKeys(for: buffer.parameters), offsets: buffer.offsets,
                                elementCount: buffer.count)
            try AtomicFile.write(try TrainingCheckpoint.json(layout), to: root.appendingPathComponent(layoutFileName))
        }
    }

    /// Whether `folder` holds sharded optimizer state.
    public static func isSharded(_ folder: URL) -> Bool {
        FileManager.default.fileExists(atPath: folder.appendingPathComponent(folderName).appendingPathComponent(layoutFileName).path)
    }

    /// Restores `optimizer` (over `group.optimizerParameters`) from the checkpoint `folder`, whatever layout
    /// wrote it.
    public static func load(_ optimizer: Optimizer, group: DataParallelGroup, from folder: URL) throws {
        if group.shardParameter == nil && !isSharded(folder) {
            try optimizer.load(from: folder)
            return
        }
        let buffer = group.buffer
        let keys = OptimizerState.parameterKeys(for: buffer.parameters)
        let range = group.shardParameter == nil ? 0..<buffer.count : group.shard
        let flat = try FlatState(folder: folder, keys: keys, offsets: buffer.offsets,
                                 counts: buffer.parameters.map(\.count), range: range)
        try optimizer.load(group.shardParameter != nil
                           ? flat.shardState()
                           : flat.perParameterState(keys: keys, shapes: buffer.parameters.map(\.shape), offsets: buffer.offsets))
    }

    /// This rank's ZeRO state (`flat.<slot>` over its shard of the dp group's flat buffer) gathered over the group into
    /// the state an unsharded optimizer over the buffer's parameters keeps (`<key>.<slot>`, `<key>.step`). Every rank
    /// of the group must call it.
    static func gathered(_ state: OptimizerState, group: DataParallelGroup) -> OptimizerState {
        let buffer = group.buffer
        var slots: [String: [Float]] = [:]
        for name in state.tensors.keys.sorted() where name.hasPrefix("flat.") && name != "flat.step" {
            var values = [Float](repeating: 0, count: buffer.count)
            values.replaceSubrange(group.shard, with: state.tensors[name]!.floats())
            values.withUnsafeMutableBufferPointer { group.communicator.allGather($0, counts: group.ranges.map(\.count)) }
            slots[String(name.dropFirst("flat.".count))] = values
        }
        return FlatState(metadata: state.metadata, slots: slots, step: state.tensors["flat.step"]?.ints()[0])
            .perParameterState(keys: OptimizerState.parameterKeys(for: buffer.parameters),
                               shapes: buffer.parameters.map(\.shape), offsets: buffer.offsets)
    }

    /// An unsharded optimizer's `state` over the dp group's buffer cut to this rank's shard (`flat.<slot>`), as a
    /// ZeRO optimizer loads it; `source` names where it came from in errors.
    static func sharded(_ state: OptimizerState, group: DataParallelGroup, source: URL) throws -> OptimizerState {
        let buffer = group.buffer
        return try FlatState(state: state, source: source, keys: OptimizerState.parameterKeys(for: buffer.parameters),
                             offsets: buffer.offsets, counts: buffer.parameters.map(\.count), range: group.shard).shardState()
    }

    /// The sharded state in `folder` (written by a data-parallel ZeRO run) as one unsharded optimizer's over the
    /// parameters it was written for, whose shapes are `shapes` (in optimizer order).
    static func unshardedState(in folder: URL, shapes: [[Int]]) throws -> OptimizerState {
        let layoutURL = folder.appendingPathComponent(folderName).appendingPathComponent(layoutFileName)
        let layout = try TrainingCheckpoint.decode(Layout.self, from: layoutURL)
        let counts = shapes.map { $0.reduce(1, *) }
        guard layout.parameterKeys.count == shapes.count, layout.offsets.count == shapes.count else {
            throw OptimizerStateError("\(layoutURL.path): the sharded state is for \(layout.parameterKeys.count) parameters, "
                                      + "this model trains \(shapes.count)")
        }
        return try FlatState(folder: folder, keys: layout.parameterKeys, offsets: layout.offsets, counts: counts,
                             range: 0..<layout.elementCount)
            .perParameterState(keys: layout.parameterKeys, shapes: shapes, offsets: layout.offsets)
    }

    /// The element-wise slots of a saved optimizer over one range of the flat buffer.
    struct FlatState {
        var metadata: OptimizerState.Metadata
        var slots: [String: [Float]] = [:]
        var step: Int?

        init(metadata: OptimizerState.Metadata, slots: [String: [Float]], step: Int?) {
            self.metadata = metadata
            self.slots = slots
            self.step = step
        }

        /// The state a ZeRO optimizer over these slots' range loads (`flat.<slot>`, `flat.step`).
        func shardState() -> OptimizerState {
            var tensors: [String: Tensor] = [:]
            for (slot, values) in slots { tensors["flat.\(slot)"] = Tensor(values, shape: [values.count]) }
            if let step { tensors["flat.step"] = Tensor(ints: [step], shape: []) }
            var metadata = metadata
            metadata.parameterKeys = ["flat"]
            return OptimizerState(metadata: metadata, tensors: tensors)
        }

        /// The state an unsharded optimizer keeps (`<key>.<slot>`, `<key>.step`) for parameters `keys` of `shapes` at
        /// `offsets` in slots that cover the whole flat buffer.
        func perParameterState(keys: [String], shapes: [[Int]], offsets: [Int]) -> OptimizerState {
            var tensors: [String: Tensor] = [:]
            for (key, (shape, offset)) in zip(keys, zip(shapes, offsets)) {
                let count = shape.reduce(1, *)
                for (slot, values) in slots { tensors["\(key).\(slot)"] = Tensor(Array(values[offset..<(offset + count)]), shape: shape) }
                if let step { tensors["\(key).step"] = Tensor(ints: [step], shape: []) }
            }
            var metadata = metadata
            metadata.parameterKeys = keys
            return OptimizerState(metadata: metadata, tensors: tensors)
        }

        init(folder: URL, keys: [String], offsets: [Int], counts: [Int], range: Range<Int>) throws {
            let total = counts.reduce(0, +)
            let layoutURL = folder.appendingPathComponent(folderName).appendingPathComponent(layoutFileName)
            if FileManager.default.fileExists(atPath: layoutURL.path) {
                let layout = try TrainingCheckpoint.decode(Layout.self, from: layoutURL)
                guard layout.parameterKeys == keys, layout.offsets == offsets, layout.elementCount == total,
                      layout.ranges.count == layout.worldSize else {
                    throw OptimizerStateError("\(layoutURL.path): the sharded state is for other parameters")
                }
                var metadata: OptimizerState.Metadata?
                var slots: [String: [Float]] = [:], step: Int?
                for (rank, bounds) in layout.ranges.enumerated() {
                    let saved = bounds[0]..<bounds[1]
                    let shardFolder = folder.appendingPathComponent(folderName).appendingPathComponent(rankFolderName(rank))
                    let state = try OptimizerState(contentsOf: shardFolder)
                    if metadata == nil { metadata = state.metadata }
                    if let t = state.tensors["flat.step"] { step = t.ints()[0] }
                    let overlap = DataParallelGroup.overlap(saved, range)
                    for (name, tensor) in state.tensors where name.hasPrefix("flat.") && name != "flat.step" {
                        let slot = String(name.dropFirst("flat.".count))
                        guard tensor.count == saved.count, tensor.dtype == .float32 else {
                            throw OptimizerStateError("\(shardFolder.path): '\(name)' has \(tensor.count) elements, the range \(saved) needs \(saved.count)")
                        }
                        guard !overlap.isEmpty else { continue }
                        let values = tensor.floats()
                        if slots[slot] == nil { slots[slot] = Array(repeating: 0, count: range.count) }
                        for i in overlap { slots[slot]![i - range.lowerBound] = values[i - saved.lowerBound] }
                    }
                }
                guard let metadata else { throw OptimizerStateError("\(layoutURL.path): no ranks") }
                self.init(metadata: metadata, slots: slots, step: step)
                return
            }
            // One optimizer per parameter (a one-process or stage-0 checkpoint).
            try self.init(state: OptimizerState(contentsOf: folder), source: folder, keys: keys, offsets: offsets,
                          counts: counts, range: range)
        }

        /// The slots of one optimizer's per-parameter `state` (read from `source`) over `range`.
        init(state: OptimizerState, source folder: URL, keys: [String], offsets: [Int], counts: [Int], range: Range<Int>) throws {
            let total = counts.reduce(0, +)
            guard state.metadata.parameterKeys == keys else {
                throw OptimizerStateError("\(folder.path): the saved state is for other parameters")
            }
            metadata = state.metadata
            var filled: [String: Int] = [:]
            for (index, key) in keys.enumerated() {
                let parameter = offsets[index]..<(offsets[index] + counts[index])
                let overlap = DataParallelGroup.overlap(parameter, range)
                for (name, tensor) in state.tensors where name.hasPrefix(key + ".") {
                    let slot = String(name.dropFirst(key.count + 1))
                    guard !slot.contains(".") else { continue }
                    if slot == "step" {
                        let value = tensor.ints()[0]
                        if let step, step != value {
                            throw OptimizerStateError("\(folder.path): parameters were updated different numbers of times (\(step), \(value)); the state cannot be sharded")
                        }
                        step = value
                        continue
                    }
                    guard tensor.count == counts[index], tensor.dtype == .float32 else {
                        throw OptimizerStateError("\(folder.path): '\(name)' is not element-wise (\(tensor.shape)); this optimizer's state cannot be sharded")
                    }
                    filled[slot, default: 0] += counts[index]
                    guard !overlap.isEmpty else { continue }
                    let values = tensor.floats()
                    if slots[slot] == nil { slots[slot] = Array(repeating: 0, count: range.count) }
                    for i in overlap { slots[slot]![i - range.lowerBound] = values[i - parameter.lowerBound] }
                }
            }
            for (slot, count) in filled where count != total {
                throw OptimizerStateError("\(folder.path): '\(slot)' is saved for only some parameters; the state cannot be sharded")
            }
        }
    }
}
