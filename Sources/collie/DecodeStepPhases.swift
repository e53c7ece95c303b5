import Collie
import Foundation

/// One decode step taken apart, to say what bounds decoding: the linear layers of every block and the head (final
/// norm and lm_head), each timed alone on inputs of a step's shapes (batch × 1 token) the way a step runs them —
/// decoding kernels, spinning workers, q/k/v and gate/up fused — against the whole step's time measured while
/// generating. The rest is attention over the cache, norms, rotary, SwiGLU, the embedding lookup and sampling.
struct DecodeStepPhases: Codable {
    /// A whole step: batch ÷ decode tokens/s.
    let stepSeconds: Double
    /// The blocks' linear layers (q, k, v, o, gate, up, down) of one step.
    let linearSeconds: Double
    /// The final norm and the lm_head (or the tied embedding's product).
    let headSeconds: Double
    /// The step less both: attention, norms, rotary, SwiGLU, embedding, sampling, and the loops' overheads.
    let restSeconds: Double

    /// Times `model`'s linear layers and head for `batch` rows (median of 9 after 2 warm-ups) under the caller's
    /// `Tensor.withQuantizedActivations`.
    init(model: LlamaForCausalLM, batch: Int, stepSeconds: Double) {
        let c = model.configuration
        var random = RandomGenerator(seed: 2)
        let hidden = Tensor.normal([batch, 1, c.hiddenSize], generator: &random)
        let attended = Tensor.normal([batch, 1, model.layers[0].selfAttention.oProj.inFeatures], generator: &random)
        let intermediate = Tensor.normal([batch, 1, c.intermediateSize], generator: &random)
        var linear: [Double] = [], head: [Double] = []
        withNoGrad { Tensor.withDecodingKernels { Parallel.withSpinningWorkers {
            for run in 0..<11 {
                let start = Timing.now()
                for layer in model.layers {
                    let (a, m) = (layer.selfAttention, layer.mlp)
                    _ = Linear.outputs(of: [a.qProj, a.kProj, a.vProj], on: hidden)
                    _ = Linear.outputs(of: [a.oProj], on: attended)
                    _ = Linear.outputs(of: [m.gateProj, m.upProj], on: hidden)
                    _ = Linear.outputs(of: [m.downProj], on: intermediate)
                }
                let middle = Timing.now()
                _ = model.head(hidden)
                let end = Timing.now()
                guard run >= 2 else { continue }
                linear.append(Double(middle - start) / 1e9)
                head.append(Double(end - middle) / 1e9)
            }
        } } }
        self.stepSeconds = stepSeconds
        linearSeconds = Timing.median(linear)
        headSeconds = Timing.median(head)
        restSeconds = Swift.max(0, stepSeconds - linearSeconds - headSeconds)
    }

    /// "step 9.81 ms = linear 6.02 (61%) + head 2.10 (21%) + rest 1.69 (17%)".
    var summary: String {
        let share = { (part: Double) in String(format: "%.2f ms (%.0f%%)", part * 1e3, part / stepSeconds * 100) }
        return String(format: "step %.2f ms = linear layers ", stepSeconds * 1e3) + share(linearSeconds)
            + " + head " + share(headSeconds) + " + rest " + share(restSeconds)
    }

    /// Bytes of weights one decode step reads: every linear layer's (blocks or dense) and the lm_head's (the
    /// embedding's when tied); the embedding lookup reads one row per token, which is left out.
    static func weightBytesPerToken(of model: any CausalLanguageModel) -> Int {
        var bytes = model.namedLinearLayers.reduce(0) { $0 + $1.layer.weight.byteCount }
        if !model.namedLinearLayers.contains(where: { $0.path == "lm_head" }) { bytes += model.embedTokens.weight.byteCount }
        return bytes
    }
}
