import CollieModels
import Foundation

/// How `pp_partition_method` splits a model's units (the embedding, each decoder block, the head) into pipeline
/// stages of consecutive units, as CoLLiE does through DeepSpeed's `PipelineModule`.
public enum PipelinePartitionMethod: Equatable, Sendable {
    /// Balances the parameter counts of the stages (CoLLiE's default).
    case parameters
    /// The same number of units per stage (the first stages one more when it does not divide).
    case uniform
    /// Balances the number of units whose type name matches the regular expression (`type:LlamaDecoderLayer`);
    /// the other units weigh nothing.
    case type(String)
}

extension PipelinePartitionMethod: Codable {
    /// Reads `parameters`, `uniform` or `type:REGEX`.
    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let method = PipelinePartitionMethod(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription:
                "pp_partition_method is `parameters`, `uniform` or `type:REGEX`, not `\(text)`"))
        }
        self = method
    }

    public init?(_ text: String) {
        switch text {
        case "parameters": self = .parameters
        case "uniform": self = .uniform
        default:
            guard text.hasPrefix("type:"), text.count > 5,
                  (try? NSRegularExpression(pattern: String(text.dropFirst(5)))) != nil else { return nil }
            self = .type(String(text.dropFirst(5)))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .parameters: try container.encode("parameters")
        case .uniform: try container.encode("uniform")
        case .type(let pattern): try container.encode("type:" + pattern)
        }
    }
}

/// The stages' units: stage s runs the units `stages[s]` (0 the embedding, i + 1 block i, blocks + 1 the head).
public struct PipelinePartition: Equatable, Sendable {
    /// Each stage's consecutive units; together they are every unit once, in order.
    public let stages: [Range<Int>]

    /// Splits units of `weights` (one per unit) into `count` stages by DeepSpeed's rules: `uniform` as its
    /// `partition_uniform`, weighted methods as its `partition_balanced` (the split whose heaviest and lightest
    /// stages differ least; among equal splits, the one whose stage boundaries lie latest). A stage may be empty
    /// only when there are fewer units than stages, which the caller refuses.
    public init(weights: [Int], stages count: Int, uniform: Bool) {
        precondition(count >= 1)
        let bounds = uniform || weights.count <= count ? Self.uniformBounds(weights.count, count)
                                                       : Self.balancedBounds(weights, count)
        stages = (0..<count).map { bounds[$0]..<bounds[$0 + 1] }
    }

    /// The partition of `model`'s units into `count` stages by `method`.
    public init(model: some CausalLanguageModel, stages count: Int, method: PipelinePartitionMethod) throws {
        switch method {
        case .uniform:
            self.init(weights: Array(repeating: 1, count: model.blockCount + 2), stages: count, uniform: true)
        case .parameters:
            self.init(weights: model.unitParameters.map { $0.reduce(0) { $0 + $1.count } }, stages: count, uniform: false)
        case .type(let pattern):
            let regex = try NSRegularExpression(pattern: pattern, options: .caseInsensitive)
            let weights = model.unitTypeNames.map { name in
                regex.firstMatch(in: name, range: NSRange(name.startIndex..., in: name)) == nil ? 0 : 1
            }
            self.init(weights: weights, stages: count, uniform: false)
        }
    }

    /// DeepSpeed's `partition_uniform`: `items / parts` each, the first `items % parts` parts one more.
    static func uniformBounds(_ items: Int, _ parts: Int) -> [Int] {
        guard items > parts else { return (0...parts).map { min($0, items) } }
        let size = items / parts, residual = items % parts
        return (0...parts).map { $0 * size + min($0, residual) }
    }

    /// DeepSpeed's `partition_balanced`: dynamic programming over (first i units, j parts) minimizing the
    /// difference between the heaviest and the lightest part, ties going to the latest split point.
    static func balancedBounds(_ weights: [Int], _ parts: Int) -> [Int] {
        let n = weights.count
        var prefix = [0]
        for w in weights { prefix.append(prefix.last! + w) }
        let unset = Int.max
        var cost = Array(repeating: Array(repeating: unset, count: parts + 1), count: n + 1)
        var heaviest = cost, lightest = cost
        var split = Array(repeating: Array(repeating: 0, count: parts + 1), count: n + 1)
        cost[0][0] = 0
        heaviest[0][0] = 0
        for i in 1...n {
            for j in 1...min(i, parts) {
                for k in 0..<i where cost[k][j - 1] != unset {
                    let part = prefix[i] - prefix[k]
                    // DeepSpeed starts the lightest part of (0, 0) at +∞, so that min ignores it.
                    let high = max(heaviest[k][j - 1], part)
                    let low = j == 1 ? part : min(lightest[k][j - 1], part)
                    if cost[i][j] >= high - low {
                        cost[i][j] = high - low
                        heaviest[i][j] = high
                        lightest[i][j] = low
                        split[i][j] = k
                    }
                }
            }
        }
        var bounds = [n]
        for j in stride(from: parts, through: 1, by: -1) { bounds.append(split[bounds.last!][j]) }
        return bounds.reversed()
    }
}

extension CausalLanguageModel {
    /// The type name of each unit `pp_partition_method: type:REGEX` matches: `Embedding`, the block's class name
    /// as in the Hugging Face modeling file (`LlamaDecoderLayer`, `InternLM2DecoderLayer`, `GLMBlock`, `MossBlock`),
    /// and `LMHead` (the final norm with the output projection).
    public var unitTypeNames: [String] {
        ["Embedding"] + Array(repeating: String(describing: Self.blockType), count: blockCount) + ["LMHead"]
    }
}
