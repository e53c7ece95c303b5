/// SwiGLU, the gated activation of LLaMA's MLP: silu(gate) · up, fused into one pass each way.
extension Tensor {
    /// silu(gate) ⊙ up for two tensors of equal shape.
    public static func swiglu(gate: Tensor, up: Tensor) -> Tensor {
        precondition(gate.shape == up.shape, "swiglu: gate \(gate.shape) and up \(up.shape) differ")
        let g = gate.computeContiguous
        var u = up.computeContiguous
        if u.dtype != g.dtype { u = u.to(g.dtype) }
        let n = g.count
        let out = Tensor(uninitializedShape: gate.shape, dtype: g.dtype)
        func run<F: FloatElement>(_: F.Type) {
            let pg = g.pointer(as: F.self), pu = u.pointer(as: F.self), po = out.pointer(as: F.self)
            Parallel.forEach(n, minimumChunk: 1 << 14) { r in
                VectorMath.swiglu(gate: pg + r.lowerBound, up: pu + r.lowerBound, out: po + r.lowerBound, r.count)
            }
        }
        g.dtype == .float64 ? run(Double.self) : run(Float.self)
        return out.recording("swiglu", [g, u]) { grad, sink in
            func back<F: FloatElement>(_: F.Type) {
                let pd = grad.pointer(as: F.self), pg = g.pointer(as: F.self), pu = u.pointer(as: F.self)
                let needGate = sink.needsGradient(0), needUp = sink.needsGradient(1)
                let dg = needGate ? Tensor(uninitializedShape: g.shape, dtype: F.dtype) : nil
                let du = needUp ? Tensor(uninitializedShape: g.shape, dtype: F.dtype) : nil
                let pdg = dg?.pointer(as: F.self), pdu = du?.pointer(as: F.self)
                Parallel.forEach(n, minimumChunk: 1 << 14) { r in
                    VectorMath.swigluBackward(gate: pg + r.lowerBound, up: pu + r.lowerBound, gradient: pd + r.lowerBound,
                                              gateGradient: pdg.map { $0 + r.lowerBound },
                                              upGradient: pdu.map { $0 + r.lowerBound }, r.count)
                }
                if let dg { sink.give(dg, toInput: 0) }
                if let du { sink.give(du, toInput: 1) }
            }
            grad.dtype == .float64 ? back(Double.self) : back(Float.self)
        }
    }
}
