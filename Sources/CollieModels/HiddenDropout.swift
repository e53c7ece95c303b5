import CollieEngine

/// CoLLiE's `dropout` (its config key, `nn.Dropout` in training only): every decoder block drops out the attention's
/// output before the output projection and the MLP's output before the residual add — CoLLiE's `LlamaLayer`
/// computes `o_proj(F.dropout(attn))` and `h + F.dropout(mlp(norm(h)))` — at the same two points in every family
/// (`blockOutputProjections`: LLaMA's `o_proj` / `down_proj`, InternLM2's `wo` / `w2`, ChatGLM's `dense` /
/// `dense_4h_to_h`, MOSS's `out_proj` / `fc_out`). A LoRA adapter on the attention's output projection reads the
/// dropped-out input, as PEFT's does on CoLLiE's.
///
/// Masks are drawn from a seed (`DropoutMask`), never stored: the trainer reseeds per update and micro-batch, so a
/// forward that activation checkpointing recomputes, a pipeline stage's backward and a resumed run draw the same
/// masks; under tensor parallelism a row-parallel rank draws the whole input's mask over its own columns, so the
/// split model computes what one process does.
public final class HiddenDropout {
    /// The probability of zeroing an element, in (0, 1): a model without dropout has no `HiddenDropout`.
    public let probability: Double
    /// Dropout applies only while this is set (the trainer's updates).
    public var isTraining = false
    /// The masks' seed; each block and side derives its own from it.
    public var seed: UInt64 = 0

    init(probability: Double) {
        precondition(probability > 0 && probability < 1, "dropout must be in (0, 1), got \(probability)")
        self.probability = probability
    }
}

/// Where a linear layer applies its model's `HiddenDropout`: to its input or to its output.
struct LinearDropout {
    enum Side { case input, output }

    let shared: HiddenDropout
    let side: Side
    /// Distinct for every layer and side of the model (`2·block + side`).
    let site: UInt64

    /// The mask for this forward (`columns`: a row-parallel rank's part of the input), or nil when not training.
    func mask(columns: DropoutMask.ColumnWindow? = nil) -> DropoutMask? {
        guard shared.isTraining else { return nil }
        return DropoutMask(probability: shared.probability, seed: shared.seed &+ (site &+ 1) &* 0x9E37_79B9_7F4A_7C15,
                           columns: columns)
    }
}

extension CausalLanguageModel {
    /// Each decoder block's attention output projection and MLP output projection, in block order: the layers a
    /// tensor-parallel rank splits by input features, and where `HiddenDropout` applies.
    var blockOutputProjections: [(attention: Linear, mlp: Linear)] {
        if let model = self as? LlamaForCausalLM { return model.layers.map { ($0.selfAttention.oProj, $0.mlp.downProj) } }
        if let model = self as? ChatGLM6BForConditionalGeneration { return model.layers.map { ($0.attention.dense, $0.mlp.dense4HToH) } }
        if let model = self as? InternLM2ForCausalLM { return model.layers.map { ($0.attention.wo, $0.feedForward.w2) } }
        if let model = self as? MossForCausalLM { return model.layers.map { ($0.attn.outProj, $0.mlp.fcOut) } }
        if let model = self as? ChatGLMForConditionalGeneration {
            return model.layers.map { ($0.selfAttention.dense, $0.mlp.dense4HToH) }
        }
        preconditionFailure("blockOutputProjections: no case for \(type(of: self))")
    }

    /// The model's hidden dropout (`setHiddenDropout`), or nil.
    public var hiddenDropout: HiddenDropout? { attachments.hiddenDropout }

    /// Applies CoLLiE's `dropout` with `probability` in training (see `HiddenDropout`); 0 removes it. Off until the
    /// returned object's `isTraining` is set.
    @discardableResult
    public func setHiddenDropout(_ probability: Double) -> HiddenDropout? {
        let shared = probability > 0 ? HiddenDropout(probability: probability) : nil
        for (block, (attention, mlp)) in blockOutputProjections.enumerated() {
            attention.dropout = shared.map { LinearDropout(shared: $0, side: .input, site: UInt64(2 * block)) }
            mlp.dropout = shared.map { LinearDropout(shared: $0, side: .output, site: UInt64(2 * block + 1)) }
        }
        attachments.hiddenDropout = shared
        return shared
    }
}
