import CollieEngine

/// Per-parameter float32 state buffers of an element-wise optimizer (Lion's momentum; Adan's
/// three moments and previous gradient; SophiaG's momentum and Hessian), allocated at a parameter's
/// first update and saved as `<parameter key>.<slot>` (torch's state names).
struct ParameterSlots {
    /// The slot names, e.g. ["exp_avg", "hessian"].
    let names: [String]
    /// Per parameter, one buffer per slot (its shape), or nil before the first update.
    private(set) var buffers: [[Tensor]?]

    init(names: [String], count: Int) {
        self.names = names
        buffers = Array(repeating: nil, count: count)
    }

    /// Whether parameter `index` has state yet.
    func exists(_ index: Int) -> Bool { buffers[index] != nil }

    /// The buffers of parameter `index` (zero-filled on first use).
    mutating func buffers(_ index: Int, shape: [Int]) -> [Tensor] {
        if let existing = buffers[index] { return existing }
        let fresh = names.map { _ in Tensor.zeros(shape) }
        buffers[index] = fresh
        return fresh
    }

    /// The state tensors by `<key>.<slot>` for every parameter that has state.
    func tensors(keys: [String]) -> [String: Tensor] {
        var result: [String: Tensor] = [:]
        for (index, key) in keys.enumerated() {
            guard let slots = buffers[index] else { continue }
            for (name, tensor) in zip(names, slots) { result["\(key).\(name)"] = tensor }
        }
        return result
    }

    /// Replaces every buffer with a copy of the one `state` holds (all slots or none per parameter).
    mutating func load(_ state: OptimizerState, parameters: [Tensor]) throws {
        var loaded: [[Tensor]?] = []
        for (p, key) in zip(parameters, state.metadata.parameterKeys) {
            let found = try names.map { try state.float32Tensor("\(key).\($0)", shape: p.shape) }
            if found.allSatisfy({ $0 == nil }) { loaded.append(nil); continue }
            guard found.allSatisfy({ $0 != nil }) else {
                throw OptimizerStateError("parameter '\(key)' has only part of its state (\(names.joined(separator: ", ")))")
            }
            loaded.append(found.map { saved in
                let own = Tensor.zeros(p.shape)
                own.assignFloat32(from: saved!)
                return own
            })
        }
        buffers = loaded
    }
}

/// Runs `body` over the float32 values of `parameter` (rounded back for bf16/f16) and its float32
/// gradient, element ranges in parallel.
func updateElementwise(_ parameter: Tensor, gradient: Tensor,
                       _ body: @escaping (UnsafeMutablePointer<Float>, UnsafePointer<Float>, Range<Int>) -> Void) {
    let g = UnsafePointer(gradient.pointer(as: Float.self))
    parameter.updateAsFloat32 { w, n in
        Parallel.forEach(n, minimumChunk: 1 << 14) { range in body(w, g, range) }
    }
}
