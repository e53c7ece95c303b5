import Foundation
import XCTest

/// The files scripts/fixtures/make_quantized_q8_fixtures.py wrote into Fixtures/quantized-q8 from llama.cpp's
/// ggml libraries: quantizer outputs, activations quantized by ggml-cpu, and its vec_dot results.
enum QuantizedQ8Fixtures {
    struct Manifest: Decodable {
        let `in`: Int
        let out: Int
        let rows: Int
        let quantizeRows: Int
        let quantizeColumns: Int
        let formats: [String]
        let quantizable: [String]

        enum CodingKeys: String, CodingKey {
            case `in`, out, rows, formats, quantizable
            case quantizeRows = "quantize_rows"
            case quantizeColumns = "quantize_columns"
        }
    }

    /// GGML's type code of a fixture format name.
    static let typeCodes: [String: Int32] = [
        "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8, "q4_k": 12, "q5_k": 13, "q6_k": 14,
    ]

    static let manifest: Manifest = {
        do { return try JSONDecoder().decode(Manifest.self, from: data("manifest.json")) } catch {
            fatalError("Fixtures/quantized-q8/manifest.json: \(error)")
        }
    }()

    static func data(_ name: String) -> Data {
        guard let url = Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures/quantized-q8"),
              let data = try? Data(contentsOf: url)
        else { fatalError("missing fixture Fixtures/quantized-q8/\(name): run scripts/fixtures/make_quantized_q8_fixtures.py") }
        return data
    }

    static func bytes(_ name: String) -> [UInt8] { [UInt8](data(name)) }

    static func floats(_ name: String) -> [Float] {
        let data = data(name)
        return data.withUnsafeBytes { raw in (0..<data.count / 4).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) } }
    }
}
