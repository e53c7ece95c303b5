extension ParameterBuffer {
    /// Points `parameters[range]` into `storage`, which holds their values from flat element `base` on (ZeRO
    /// stage 3: a layer's parameters gathered into a buffer of their own).
    public func bind(_ range: Range<Int>, to storage: TensorStorage, base: Int) {
        for i in range {
            let p = parameters[i]
            p.storage = storage
            p.offset = offsets[i] - base
            p.strides = Tensor.contiguousStrides(for: p.shape)
        }
    }

    /// Points `parameters[range]` at an empty storage: their values are gone until `bind` (ZeRO stage 3 frees a
    /// layer's gathered parameters so). Reading them before then is a programming error.
    public func unbind(_ range: Range<Int>) {
        for i in range {
            parameters[i].storage = ParameterBuffer.emptyStorage
            parameters[i].offset = 0
        }
    }

    /// Releases the flat value buffer (every parameter becomes unbound); under ZeRO stage 3 each rank keeps only
    /// its shard, elsewhere.
    public func releaseValues() {
        unbind(0..<parameters.count)
        values.storage = ParameterBuffer.emptyStorage
        values.offset = 0
    }

    static let emptyStorage = TensorStorage(byteCount: 0)
}
