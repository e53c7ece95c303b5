import XCTest
import CollieEngine
import CollieModels

/// `init_method`'s distributions (`torch.nn.init`'s formulas): every weight matrix of a random model is drawn with the
/// scale its own fan-in and fan-out give; biases stay zero, norms one; normal is the Hugging Face initialization.
final class WeightDistributionTests: XCTestCase {
    private let config = LlamaConfiguration(hiddenSize: 64, intermediateSize: 160, hiddenLayers: 2, attentionHeads: 4,
                                            keyValueHeads: 2, vocabularySize: 96)

    /// Sample mean and standard deviation.
    private func moments(_ values: [Float]) -> (mean: Double, std: Double) {
        let n = Double(values.count), mean = values.reduce(0) { $0 + Double($1) } / n
        let variance = values.reduce(0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / n
        return (mean, variance.squareRoot())
    }

    /// (fan_in, fan_out) of a weight [out, in].
    private func fans(_ shape: [Int]) -> (in: Double, out: Double) { (Double(shape[1]), Double(shape[0])) }

    func testEachWeightMatrixHasItsDistributionsScale() {
        for distribution in WeightDistribution.allCases {
            let model = LlamaForCausalLM(config, seed: 5, distribution: distribution)
            for (key, weight) in model.namedParameters {
                let values = weight.floats()
                if key.hasSuffix("norm.weight") {
                    XCTAssertTrue(values.allSatisfy { $0 == 1 }, "\(key) under \(distribution)")
                    continue
                }
                let (fanIn, fanOut) = fans(weight.shape)
                let expected: Double = switch distribution {
                case .normal: config.initializerRange
                case .xavierNormal, .xavierUniform: (2 / (fanIn + fanOut)).squareRoot()
                case .kaimingNormal, .kaimingUniform: (2 / fanIn).squareRoot()
                }
                let (mean, std) = moments(values)
                // ≥ 2,048 values per matrix: the sample std within 5% of the distribution's (3 standard errors), the mean near 0.
                XCTAssertEqual(std, expected, accuracy: 0.05 * expected, "\(key) under \(distribution)")
                XCTAssertEqual(mean, 0, accuracy: 0.1 * expected, "\(key) under \(distribution)")
                if distribution == .xavierUniform || distribution == .kaimingUniform {
                    // U(−b, b) has std b/√3: every value lies within b = √3·std, and the extremes come near it.
                    let bound = Float(3.0.squareRoot() * expected)
                    XCTAssertLessThanOrEqual(values.map(abs).max()!, bound, "\(key) under \(distribution)")
                    XCTAssertGreaterThan(values.map(abs).max()!, 0.95 * bound, "\(key) under \(distribution)")
                }
            }
        }
    }

    func testNormalIsTheHuggingFaceInitializationOfTheSameSeed() {
        let plain = LlamaForCausalLM(config, seed: 9), normal = LlamaForCausalLM(config, seed: 9, distribution: .normal)
        XCTAssertEqual(plain.parameters.map { $0.floats() }, normal.parameters.map { $0.floats() })
        let kaiming = LlamaForCausalLM(config, seed: 9, distribution: .kaimingNormal)
        XCTAssertNotEqual(plain.parameters.map { $0.floats() }, kaiming.parameters.map { $0.floats() })
    }

    func testDistributionsDrawStraightIntoBFloat16() {
        let full = LlamaForCausalLM(config, seed: 3, distribution: .xavierUniform)
        let half = LlamaForCausalLM(config, seed: 3, dtype: .bfloat16, distribution: .xavierUniform)
        for ((key, h), (_, f)) in zip(half.namedParameters, full.namedParameters) {
            let rounded = f.floats().map { HalfPrecision.float(bfloat16: HalfPrecision.bfloat16Bits($0)) }
            XCTAssertEqual(h.floats(), rounded, key)
        }
    }
}
