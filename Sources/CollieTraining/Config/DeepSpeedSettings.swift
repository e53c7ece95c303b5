extension CollieConfig {
    /// `ds_config:` — the part of CoLLiE's DeepSpeed config Collie reads: the ZeRO stage.
    ///
    /// ```yaml
    /// dp_size: 2
    /// ds_config: {zero_optimization: {stage: 2}}
    /// ```
    public struct DeepSpeedSettings: Codable, Equatable, Sendable {
        /// `zero_optimization:` — how model states are partitioned over the data-parallel ranks.
        public struct ZeroOptimization: Codable, Equatable, Sendable {
            /// 0: replicated; 1: optimizer state sharded; 2: + gradients; 3: + parameters.
            public var stage: Int

            enum CodingKeys: String, CodingKey, CaseIterable { case stage }

            public init(stage: Int = 0) { self.stage = stage }

            public init(from decoder: Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                self.init(stage: try c.value(.stage, default: 0))
            }
        }

        public var zeroOptimization: ZeroOptimization

        enum CodingKeys: String, CodingKey, CaseIterable { case zeroOptimization = "zero_optimization" }

        public init(zeroOptimization: ZeroOptimization = ZeroOptimization()) { self.zeroOptimization = zeroOptimization }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(zeroOptimization: try c.value(.zeroOptimization, default: ZeroOptimization()))
        }
    }

    /// The ZeRO stage `ds_config.zero_optimization.stage` asks for.
    public var zeroStage: Int { deepSpeed.zeroOptimization.stage }
}
