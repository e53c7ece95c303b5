import CollieIO
import CollieTestSupport
import Foundation
import XCTest
@testable import CollieEngine
@testable import CollieModels

/// What the parity tests of the families with their own checkpoint layouts (InternLM, InternLM2, ChatGLM2/3, MOSS)
/// share: each fixture variant is a folder in the family's layout beside the reference's `expected.safetensors`
/// (input ids, labels, logits, loss, `grad.<key>` per parameter), made by the family's fixture script.
protocol FamilyParityFixtures: XCTestCase {
    /// The fixture folders under Tests/CollieModelsTests/Fixtures.
    static var variants: [String] { get }
}

extension FamilyParityFixtures {
    static func folder(_ variant: String) -> URL { HuggingFaceParityTests.folder(variant) }

    static func argmax(_ row: [Float]) -> Int { row.indices.max { row[$0] < row[$1] }! }

    static func json(_ url: URL) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    }

    /// The raw bytes of tensor `name` as stored.
    static func bytes(of name: String, in folder: CheckpointFolder) throws -> [UInt8] {
        let tensor = try folder.tensor(name).contiguousCopy(dtype: .float32)
        return Array(UnsafeRawBufferPointer(start: tensor.pointer(as: Float.self), count: tensor.count * 4))
    }

    /// Loads `variant`, compares logits, loss and every gradient with the reference's (the LLaMA parity tests'
    /// tolerances), and returns the model.
    @discardableResult
    func checkForwardAndBackward<Model: CausalLanguageModel>(_ variant: String, as: Model.Type,
                                                             file: StaticString = #filePath, line: UInt = #line) throws -> Model {
        let model = try Model.load(from: Self.folder(variant))
        let expected = try SafeTensorsFile(url: Self.folder(variant).appendingPathComponent("expected.safetensors"))
        let ids = try expected.tensor("input_ids").contiguousCopy(), labels = try expected.tensor("labels").contiguousCopy()
        var report = ParityReport(variant)
        func compare(_ actual: Tensor, _ reference: Tensor, _ tolerance: Double, _ what: String) {
            report.compare(actual.doubles(), shape: actual.shape, reference.doubles(), shape: reference.shape,
                           relative: tolerance, what)
        }
        withNoGrad { compare(model(ids), try! expected.tensor("logits"), HuggingFaceParityTests.logitTolerance, "logits") }
        let loss = model.loss(ids: ids, labels: labels)
        compare(loss, try expected.tensor("loss"), HuggingFaceParityTests.lossTolerance, "loss")
        loss.backward()
        let gradientKeys = Set(expected.names.filter { $0.hasPrefix("grad.") }.map { String($0.dropFirst(5)) })
        XCTAssertEqual(Set(model.namedParameters.map(\.key)), gradientKeys, "\(variant): parameter keys", file: file, line: line)
        for (key, parameter) in model.namedParameters {
            guard let gradient = parameter.grad else { XCTFail("\(variant): \(key) has no gradient", file: file, line: line); continue }
            compare(gradient, try expected.tensor("grad." + key), HuggingFaceParityTests.gradientTolerance, "grad " + key)
        }
        report.finish(file: file, line: line)
        return model
    }

    /// For every variant: greedy decoding with the KV cache picks the same 14 tokens as full forward passes, and every
    /// cached step's logits equal the full pass's within 1e-4 (past max_position_embeddings where a fixture's is 8).
    func checkGreedyDecodingWithTheKVCacheEqualsDecodingWithout() throws {
        for variant in Self.variants {
            let model = try PretrainedModel.model(.folder(Self.folder(variant)))
            let prompt = [1, 17, 42, 5, 88, 23], newTokens = 14
            let v = model.configuration.vocabularySize
            let cache = KVCache(model: model, batchSize: 1, tokens: prompt.count + newTokens)
            var logits = [model.nextTokenLogits([prompt], cache: cache).floats()]
            var tokens = prompt
            for _ in 0..<newTokens {
                let next = Self.argmax(logits.last!)
                tokens.append(next)
                if tokens.count < prompt.count + newTokens { logits.append(model.nextTokenLogits([[next]], cache: cache).floats()) }
            }
            if model.configuration.maxPositionEmbeddings == 8 { XCTAssertGreaterThan(tokens.count, 8, variant) }
            let full = withNoGrad { model(Tensor(ints: tokens, shape: [1, tokens.count])) }.floats()
            var maxError: Float = 0
            for (step, cached) in logits.enumerated() {
                let position = prompt.count - 1 + step
                let row = Array(full[(position * v)..<((position + 1) * v)])
                maxError = max(maxError, zip(row, cached).map { abs($0 - $1) }.max()!)
                XCTAssertEqual(Self.argmax(row), tokens[position + 1], "\(variant): step \(step)")
            }
            print("[decoding] \(variant): \(newTokens) greedy tokens, max |cached - full| logit \(maxError)")
            XCTAssertLessThan(maxError, 1e-4, variant)
        }
    }

    /// A temporary copy of a fixture's config.json and model.safetensors.
    func temporaryCopy(of variant: String) throws -> URL {
        let folder = try temporaryFolder(for: self)
        for name in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(at: Self.folder(variant).appendingPathComponent(name),
                                             to: folder.appendingPathComponent(name))
        }
        return folder
    }

    /// Rewrites the config.json in `folder` through `edit`.
    func editConfig(in folder: URL, _ edit: (inout [String: Any]) -> Void) throws {
        let url = folder.appendingPathComponent("config.json")
        var config = try Self.json(url)
        edit(&config)
        try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys]).write(to: url)
    }
}
