import CollieEngine
import CollieIO
import Foundation

/// A GGUF file's weights by Hugging Face key, and the configuration its metadata describes: what
/// `CausalLanguageModel.load(from:configuration:)` loads a model from, as it loads a Hugging Face folder.
///
/// Each tensor is dequantized to float32 when it is read (`GGUFFile.floats(of:)`, equal to the `gguf` package's
/// `dequantize`), and llama's q_proj/k_proj rows are put back in Hugging Face's order (`GGUFRotaryPermutation`), so
/// the parameters equal those transformers loads from the same file. A model loaded with `quantized: true` keeps
/// its linear layers' blocks instead (`quantizedWeight(_:)`).
public final class GGUFWeights: WeightSource {
    public let file: GGUFFile
    /// The configuration of `file`'s metadata (`LlamaConfiguration(gguf:)`).
    public let configuration: LlamaConfiguration
    /// Tensors by Hugging Face key; a tensor with none by its GGUF name (an unexpected tensor when loading).
    private let tensors: [String: GGUFTensorInfo]

    /// Reads the configuration from `file`'s metadata and names its tensors.
    /// - Throws: `CheckpointError` naming the file and the metadata key or tensor.
    public init(file: GGUFFile) throws {
        self.file = file
        configuration = try LlamaConfiguration(gguf: file)
        var tensors: [String: GGUFTensorInfo] = [:]
        // rope_freqs.weight is part of the configuration (Llama 3's RoPE scaling), not a parameter.
        for info in file.tensors where info.name != "rope_freqs.weight" {
            tensors[GGUFTensorNames.huggingFaceName(forGGUFName: info.name) ?? info.name] = info
        }
        self.tensors = tensors
    }

    public var path: String { file.url.path }
    public var configurationName: String { "the GGUF metadata" }
    public var configurationPath: String { file.url.path }
    public var names: Set<String> { Set(tensors.keys) }
    public func shape(of key: String) -> [Int]? { tensors[key]?.shape }
    public func path(of key: String) -> String { file.url.path }

    public func unusableReason(of key: String) -> String? {
        guard let type = tensors[key]?.type, !GGMLDequantization.supports(type) else { return nil }
        return "has type \(type), which Collie cannot dequantize (supported: "
            + GGMLDequantization.supportedTypes.map(\.description).joined(separator: ", ") + ")"
    }

    public func displayName(of key: String) -> String {
        tensors[key]?.name ?? GGUFTensorNames.ggufName(forHuggingFaceName: key) ?? key
    }

    public func tensor(_ key: String) throws -> Tensor {
        guard let info = tensors[key] else { throw CheckpointError(file: file.url.path, "no tensor for '\(key)'") }
        var values = try file.floats(of: info)
        if configuration.modelType == .llama, let heads = rotaryHeads(key) {
            do {
                values = try GGUFRotaryPermutation.unpermuted(values, rows: info.shape.first ?? 0, heads: heads)
            } catch {
                throw CheckpointError(file: file.url.path, "tensor '\(info.name)': \(error)")
            }
        }
        return Tensor(values, shape: info.shape)
    }

    /// The block formats whose tensors a model loaded with `quantized: true` keeps as stored.
    public static let keptTypes: [GGMLType] = BlockFormat.allCases.compactMap { GGMLType(rawValue: UInt32($0.ggmlType)) }

    public func unkeepableReason(of key: String) -> String? {
        guard let type = tensors[key]?.type, !Self.floatTypes.contains(type), BlockFormat(ggmlType: Int32(type.rawValue)) == nil
        else { return nil }
        return "has type \(type), which Collie cannot keep quantized (kept: "
            + Self.keptTypes.map(\.description).joined(separator: ", ")
            + "); load the model without quantized: true (dequantized to float32), or requantize it with llama-quantize"
    }

    /// The blocks of tensor `key` straight from the file's mapping (read-only pages the file cache shares, so a kept
    /// layer costs no copy), with llama's q_proj/k_proj rows put back in Hugging Face's order (a copy of those two).
    public func quantizedWeight(_ key: String) throws -> QuantizedMatrix? {
        guard let info = tensors[key] else { throw CheckpointError(file: file.url.path, "no tensor for '\(key)'") }
        if Self.floatTypes.contains(info.type) { return nil }
        if let reason = unkeepableReason(of: key) { throw CheckpointError(file: file.url.path, "tensor '\(info.name)' \(reason)") }
        guard let format = BlockFormat(ggmlType: Int32(info.type.rawValue)), info.shape.count == 2,
              let base = file.bytes(of: info).baseAddress else {
            throw CheckpointError(file: file.url.path, "tensor '\(info.name)' of shape \(info.shape) is not a matrix of blocks")
        }
        let (rows, columns) = (info.shape[0], info.shape[1])
        let storage = TensorStorage(borrowing: UnsafeMutableRawPointer(mutating: base), byteCount: info.byteCount) {
            [file] in withExtendedLifetime(file) {}
        }
        do {
            let matrix = try QuantizedMatrix(format: format, rows: rows, columns: columns, storage: storage)
            guard configuration.modelType == .llama, let heads = rotaryHeads(key) else { return matrix }
            return matrix.permutingRows(try GGUFRotaryPermutation.unpermuted(Array(0..<rows), rows: rows, heads: heads))
        } catch {
            throw CheckpointError(file: file.url.path, "tensor '\(info.name)': \(error)")
        }
    }

    private static let floatTypes: Set<GGMLType> = [.f32, .f16, .bf16, .f64]

    /// The head count llama.cpp permuted `key`'s rows by: q_proj's attention heads, k_proj's key/value heads.
    private func rotaryHeads(_ key: String) -> Int? {
        if key.hasSuffix("self_attn.q_proj.weight") || key.hasSuffix("self_attn.q_proj.bias") {
            return configuration.attentionHeads
        }
        if key.hasSuffix("self_attn.k_proj.weight") || key.hasSuffix("self_attn.k_proj.bias") {
            return configuration.keyValueHeads
        }
        return nil
    }
}
