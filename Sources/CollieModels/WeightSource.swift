import CollieEngine
import CollieIO
import Foundation

/// Where a model's weights are read from — a Hugging Face folder's safetensors, or a GGUF file — with every tensor
/// named by its Hugging Face key. Loading checks the source's shapes against the configuration before it allocates
/// a parameter, then reads one tensor at a time.
public protocol WeightSource {
    /// The folder or file, for error messages.
    var path: String { get }
    /// What the model's configuration came from, for error messages ("config.json", "the GGUF metadata").
    var configurationName: String { get }
    /// The file the configuration came from (a folder's config.json, the GGUF file itself).
    var configurationPath: String { get }
    /// Every tensor the source holds, by Hugging Face key (a tensor with no Hugging Face key by its own name).
    var names: Set<String> { get }
    /// The row-major shape of tensor `key`, read without its data.
    func shape(of key: String) -> [Int]?
    /// Why tensor `key` cannot become a floating-point parameter (an integer or unsupported element type), or nil.
    func unusableReason(of key: String) -> String?
    /// The file an error about tensor `key` names.
    func path(of key: String) -> String
    /// How a person finds tensor `key` in the source (a GGUF file names it `blk.0.attn_q.weight`).
    func displayName(of key: String) -> String
    /// The values of tensor `key`, in any floating-point dtype (the parameter converts them).
    func tensor(_ key: String) throws -> Tensor
    /// Tensor `key` [out, in] in the blocks the source stores it in (a GGUF file's Q4_0, Q6_K, …), for a model that
    /// keeps them (`WeightQuantization.keepBlocks`); nil when the tensor is floating point.
    /// - Throws: when the blocks are in a format Collie cannot keep (`unkeepableReason(of:)`).
    func quantizedWeight(_ key: String) throws -> QuantizedMatrix?
    /// Why tensor `key` cannot be kept in its blocks (a block format the kernels do not take), or nil.
    func unkeepableReason(of key: String) -> String?
}

extension CheckpointFolder: WeightSource {
    public var path: String { url.path }
    public var configurationName: String { "config.json" }
    public var configurationPath: String { url.appendingPathComponent("config.json").path }
    public func shape(of key: String) -> [Int]? { entry(key)?.shape }
    public func unusableReason(of key: String) -> String? {
        guard let dtype = entry(key)?.dtype, dtype.dtype?.isFloatingPoint != true else { return nil }
        return "is \(dtype.rawValue), expected floating point (F32, BF16, F16 or F64)"
    }
    public func displayName(of key: String) -> String { key }
}

extension WeightSource {
    /// A Hugging Face folder keeps no quantized blocks: every tensor is floating point.
    public func quantizedWeight(_ key: String) throws -> QuantizedMatrix? { nil }
    public func unkeepableReason(of key: String) -> String? { nil }
}
