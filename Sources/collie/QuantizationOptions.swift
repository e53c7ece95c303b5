import ArgumentParser
import Collie
import Foundation

/// `--quantized` and `--quantize TYPE`, shared by the commands that load a model (generate, serve, score, eval): the
/// model's linear weights kept in quantized blocks instead of float32.
struct QuantizationOptions: ParsableArguments {
    @Flag(help: "Keep a .gguf model's linear weights in their quantized blocks (Q4_0 … Q6_K) instead of float32.")
    var quantized = false
    @Option(help: "Quantize the model's linear weights at load: q8_0, q4_0, q4_1, q5_0, q5_1 or q4_k.")
    var quantize: BlockFormat?

    func validate() throws {
        if quantized, quantize != nil { throw ValidationError("give --quantized or --quantize, not both") }
        if let quantize, !quantize.isQuantizable {
            throw ValidationError("--quantize: Collie has no quantizer for \(quantize.rawValue); use one of "
                                  + BlockFormat.allCases.filter(\.isQuantizable).map(\.rawValue).joined(separator: ", "))
        }
    }

    /// The quantization for the model at `model` (a path as given to --model).
    /// - Throws: `ValidationError` when --quantized names a model that is not a .gguf file.
    func weightQuantization(model: String) throws -> WeightQuantization? {
        if quantized, !GGUFModelFile.isGGUF(URL(fileURLWithPath: model)) {
            throw ValidationError("--quantized keeps a GGUF file's quantized blocks, but \(model) is not a .gguf file; "
                                  + "quantize it at load with --quantize q8_0 (or q4_0, q4_1, q4_k)")
        }
        return quantized ? .keepBlocks : quantize.map(WeightQuantization.quantize)
    }

    /// The same choice as `collie eval`'s config overrides (`quantized=true`, `quantize=TYPE`).
    var configOverrides: [String] {
        (quantized ? ["quantized=true"] : []) + (quantize.map { ["quantize=\($0.rawValue)"] } ?? [])
    }
}

extension BlockFormat: ExpressibleByArgument {}
