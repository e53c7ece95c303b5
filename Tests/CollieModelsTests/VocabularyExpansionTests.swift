import CollieEngine
import CollieIO
import CollieTestSupport
import Foundation
import XCTest
@testable import CollieModels

/// `VocabularyExpansion` (`collie vocab merge --model`): the token embedding and the output projection grow, each new
/// row the mean of the old rows (CoLLiE's expand_vocab example), old rows and every other parameter unchanged,
/// config.json's vocab_size updated; the saved folder loads and gives the original model's logits on the old ids.
final class VocabularyExpansionTests: XCTestCase {
    private let oldSize = 40

    private func configuration(_ type: ModelType = .llama, tied: Bool = false) -> LlamaConfiguration {
        LlamaConfiguration(modelType: type, hiddenSize: 32, intermediateSize: 64, hiddenLayers: 2, attentionHeads: 4,
                           keyValueHeads: 2, vocabularySize: oldSize, tieWordEmbeddings: tied)
    }

    private func check(_ configuration: LlamaConfiguration, dtype: DType = .float32, tolerance: Float = 0,
                       file: StaticString = #filePath, line: UInt = #line) throws {
        let folder = try temporaryFolder(for: self)
        let original = PretrainedModel.architecture(of: configuration).init(configuration, seed: 7)
        let source = folder.appendingPathComponent("original")
        try original.save(to: source, dtype: dtype)
        try check(folder: source, dtype: dtype, tolerance: tolerance, file: file, line: line)
    }

    /// Grows the model of `source` by 7 ids and checks the rows, the other parameters, config.json and the logits.
    private func check(folder source: URL, dtype: DType = .float32, tolerance: Float = 0,
                       file: StaticString = #filePath, line: UInt = #line) throws {
        let saved = try temporaryFolder(for: self).appendingPathComponent("expanded")
        let configuration = try LlamaConfiguration.load(from: source)
        let oldSize = configuration.vocabularySize, newSize = oldSize + 7
        let reloaded = try PretrainedModel.architecture(of: configuration).load(from: source)  // dtype-rounded weights

        let expanded = try VocabularyExpansion.expandedModel(folder: source, expectedVocabularySize: oldSize,
                                                             vocabularySize: newSize)
        XCTAssertEqual(expanded.configuration.vocabularySize, newSize, file: file, line: line)
        let old = Dictionary(uniqueKeysWithValues: reloaded.namedParameters.map { ($0.key, $0.tensor.floats()) })
        let head = configuration.outputProjectionPath
        let vocabularyKeys = [configuration.embeddingKey, head + ".weight", head + ".bias"]
        var grownKeys = 0
        for (key, tensor) in expanded.namedParameters {
            let values = tensor.floats(), before = try XCTUnwrap(old[key], key, file: file, line: line)
            guard vocabularyKeys.contains(key) else {
                XCTAssertEqual(values, before, key, file: file, line: line)
                continue
            }
            grownKeys += 1
            let columns = key.hasSuffix(".bias") ? 1 : configuration.hiddenSize
            XCTAssertEqual(tensor.shape, columns == 1 ? [newSize] : [newSize, columns], key, file: file, line: line)
            XCTAssertEqual(Array(values.prefix(oldSize * columns)), before, "\(key): old rows untouched", file: file, line: line)
            for c in 0..<columns {
                let mean = (0..<oldSize).reduce(0.0) { $0 + Double(before[$1 * columns + c]) } / Double(oldSize)
                for r in oldSize..<newSize {
                    XCTAssertEqual(values[r * columns + c], Float(mean), accuracy: 1e-7, "\(key)[\(r), \(c)]", file: file, line: line)
                }
            }
        }
        let heads = reloaded.namedParameters.filter { $0.key.hasPrefix(head + ".") }.count
        XCTAssertEqual(grownKeys, 1 + heads, file: file, line: line)

        try expanded.save(to: saved, dtype: dtype)
        let config = try LlamaConfiguration.load(from: saved)
        XCTAssertEqual(config.vocabularySize, newSize, file: file, line: line)
        XCTAssertEqual(config.modelType, configuration.modelType, file: file, line: line)
        let loaded = try PretrainedModel.architecture(of: config).load(from: saved)
        let ids = Tensor(ints: [3, 9, 4, 1, 22, 7, 5, 30, 2, 11, 8, oldSize - 1], shape: [2, 6])
        let before = reloaded(ids), after = loaded(ids)
        XCTAssertEqual(after.shape, [2, 6, newSize], file: file, line: line)
        let a = after.floats(), b = before.floats()
        var largest: Float = 0
        for position in 0..<12 {
            for v in 0..<oldSize { largest = max(largest, abs(a[position * newSize + v] - b[position * oldSize + v])) }
        }
        XCTAssertLessThanOrEqual(largest, tolerance, "logits on the old ids", file: file, line: line)
    }

    func testLlamaEmbeddingAndHeadGrowByTheMeanRow() throws { try check(configuration(), tolerance: 1e-5) }
    func testTiedLlamaGrowsItsOneMatrix() throws { try check(configuration(tied: true), tolerance: 1e-5) }
    func testBFloat16FolderGrows() throws { try check(configuration(), dtype: .bfloat16, tolerance: 1e-5) }
    func testInternLM2GrowsItsOwnKeys() throws { try check(configuration(.internlm2), tolerance: 1e-5) }
    func testMossGrowsItsHeadBiasToo() throws { try check(folder: HuggingFaceParityTests.folder("moss"), tolerance: 1e-5) }
    func testChatGLM2GrowsItsOwnKeys() throws { try check(folder: HuggingFaceParityTests.folder("chatglm2"), tolerance: 1e-5) }

    func testAModelOfAnotherVocabularyIsAnErrorNamingItsFile() throws {
        let folder = try temporaryFolder(for: self)
        try LlamaForCausalLM(configuration(), seed: 1).save(to: folder)
        XCTAssertThrowsError(try VocabularyExpansion.expandedModel(folder: folder, expectedVocabularySize: 32_000,
                                                                   vocabularySize: 49_953)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(folder.appendingPathComponent("model.safetensors").path), text)
            XCTAssertTrue(text.contains("has 40 rows, but the base tokenizer has 32000 pieces"), text)
        }
        XCTAssertThrowsError(try VocabularyExpansion.expandedModel(folder: folder.appendingPathComponent("missing"),
                                                                   expectedVocabularySize: 40, vocabularySize: 47)) { error in
            XCTAssertTrue("\(error)".contains("missing"), "\(error)")
        }
    }
}
