import CollieEngine
import CollieIO
import Foundation

/// Everything an optimizer needs to resume exactly: Codable metadata (kind, step count,
/// hyper-parameters, the parameters' keys) and named tensors (moments, momentum buffers, per-
/// parameter step counts).
///
/// Tensors are named `<parameter key>.<slot>`, for example `model.norm.weight.exp_avg`, where the
/// key is the parameter's Hugging Face name (or its index when parameters are unnamed). On disk:
/// `optimizer.json` (the metadata) and `optimizer.safetensors` (the tensors) in one folder.
public struct OptimizerState {
    /// The JSON half of the state.
    public struct Metadata: Codable, Equatable, Sendable {
        /// Which optimizer wrote the state.
        public var kind: OptimizerKind
        /// Updates taken.
        public var stepCount: Int
        /// The learning rate at the time of the snapshot.
        public var learningRate: Double
        /// The optimizer's fixed hyper-parameters by torch's names (`weight_decay`, `beta1`, ...).
        public var hyperparameters: [String: Double]
        /// The parameters' keys, in optimizer order.
        public var parameterKeys: [String]

        public init(kind: OptimizerKind, stepCount: Int, learningRate: Double, hyperparameters: [String: Double],
                    parameterKeys: [String]) {
            self.kind = kind
            self.stepCount = stepCount
            self.learningRate = learningRate
            self.hyperparameters = hyperparameters
            self.parameterKeys = parameterKeys
        }
    }

    /// The file holding the metadata.
    public static let metadataFileName = "optimizer.json"
    /// The file holding the tensors.
    public static let tensorsFileName = "optimizer.safetensors"

    /// Kind, counters, hyper-parameters and parameter keys.
    public var metadata: Metadata
    /// Per-parameter state by `<parameter key>.<slot>`.
    public var tensors: [String: Tensor]

    public init(metadata: Metadata, tensors: [String: Tensor]) {
        self.metadata = metadata
        self.tensors = tensors
    }

    /// The keys that name `parameters` in saved state: their names when every parameter has a
    /// distinct one, else their indices ("0", "1", ...).
    public static func parameterKeys(for parameters: [Tensor]) -> [String] {
        let names = parameters.compactMap(\.name)
        if names.count == parameters.count && Set(names).count == names.count { return names }
        return parameters.indices.map(String.init)
    }

    // MARK: - Files

    /// Writes `optimizer.json` and `optimizer.safetensors` into `folder` (created if missing),
    /// each atomically.
    public func save(to folder: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let ordered = tensors.keys.sorted().map { ($0, tensors[$0]!) }
        try SafeTensorsWriter.write(ordered, to: folder.appendingPathComponent(Self.tensorsFileName))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(encoder.encode(metadata), to: folder.appendingPathComponent(Self.metadataFileName))
    }

    /// Reads the state `save(to:)` wrote into `folder`.
    public init(contentsOf folder: URL) throws {
        let metadataURL = folder.appendingPathComponent(Self.metadataFileName)
        let data: Data
        do { data = try Data(contentsOf: metadataURL) } catch {
            throw OptimizerStateError("\(metadataURL.path): cannot read (\(error.localizedDescription))")
        }
        do {
            metadata = try JSONDecoder().decode(Metadata.self, from: data)
        } catch {
            throw OptimizerStateError("\(metadataURL.path): not optimizer metadata (\(error))")
        }
        let file = try SafeTensorsFile(url: folder.appendingPathComponent(Self.tensorsFileName))
        var tensors: [String: Tensor] = [:]
        for name in file.names { tensors[name] = try file.tensor(name) }
        self.tensors = tensors
    }

    // MARK: - Checks for `load(_:)`

    /// Throws unless this state was written by an optimizer of `kind` with the same
    /// hyper-parameters, for parameters with the same keys.
    func validate(kind: OptimizerKind, hyperparameters: [String: Double], parameters: [Tensor]) throws {
        guard metadata.kind == kind else {
            throw OptimizerStateError("the state is of \(metadata.kind.rawValue), not \(kind.rawValue)")
        }
        for (name, value) in hyperparameters.sorted(by: { $0.key < $1.key }) where metadata.hyperparameters[name] != value {
            let saved = metadata.hyperparameters[name].map { "\($0)" } ?? "missing"
            throw OptimizerStateError("\(name) is \(saved) in the saved state but \(value) in this optimizer")
        }
        let keys = Self.parameterKeys(for: parameters)
        guard metadata.parameterKeys == keys else {
            let firstDifference = zip(metadata.parameterKeys, keys).first { $0 != $1 }
            let detail = firstDifference.map { "'\($0.0)' saved where this optimizer has '\($0.1)'" }
                ?? "\(metadata.parameterKeys.count) parameters saved, \(keys.count) here"
            throw OptimizerStateError("the saved state is for other parameters: \(detail)")
        }
    }

    /// The float32 tensor `key`, checked to have `shape`; nil when absent.
    func float32Tensor(_ key: String, shape: [Int]) throws -> Tensor? {
        guard let t = tensors[key] else { return nil }
        guard t.shape == shape, t.dtype == .float32 else {
            throw OptimizerStateError("state tensor '\(key)' is \(t.dtype) \(t.shape), expected float32 \(shape)")
        }
        return t
    }

    /// The integer held by the one-element tensor `key`; nil when absent.
    func integer(_ key: String) throws -> Int? {
        guard let t = tensors[key] else { return nil }
        guard t.count == 1 else { throw OptimizerStateError("state tensor '\(key)' should hold one value, has \(t.shape)") }
        return t.ints()[0]
    }
}

/// A saved optimizer state that cannot be loaded, with the reason.
public struct OptimizerStateError: Error, CustomStringConvertible, Equatable {
    /// What is wrong, for a person to act on.
    public let message: String

    public init(_ message: String) { self.message = message }

    public var description: String { "optimizer state: \(message)" }
}

extension Tensor {
    /// A one-element int64 tensor (shape []), as torch stores per-parameter step counts.
    static func scalar(int value: Int) -> Tensor { Tensor(ints: [value], shape: []) }

    /// Copies the float32 values of `source` (same element count) into this contiguous tensor.
    func assignFloat32(from source: Tensor) {
        precondition(dtype == .float32 && isContiguous && source.count == count)
        let s = source.isContiguous ? source : source.contiguousCopy()
        (storage.data + offset * 4).copyMemory(from: s.storage.data + s.offset * 4, byteCount: count * 4)
    }
}
