import CollieEngine

/// A piece of a model that owns parameters, each listed under its Hugging Face key.
///
/// Modules list their parameters explicitly (no reflection): the key path in the module tree is
/// the checkpoint key, e.g. `model.layers.3.self_attn.q_proj.weight`.
public protocol Module: AnyObject {
    /// This module's parameters with their keys relative to the module, in a stable order.
    var namedParameters: [(key: String, tensor: Tensor)] { get }
}

extension Module {
    /// The parameter tensors in `namedParameters` order.
    public var parameters: [Tensor] { namedParameters.map(\.tensor) }

    /// Total number of parameter elements.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }

    /// `child`'s parameters with `prefix.` prepended to their keys.
    public func scoped(_ prefix: String, _ child: Module) -> [(key: String, tensor: Tensor)] {
        child.namedParameters.map { (prefix + "." + $0.key, $0.tensor) }
    }
}

/// Creates a trainable parameter tensor named `key`.
func parameter(_ tensor: Tensor) -> Tensor {
    tensor.requiresGrad = true
    return tensor
}
