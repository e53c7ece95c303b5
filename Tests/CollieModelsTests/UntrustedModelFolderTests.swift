import CollieIO
import CollieTestSupport
import Foundation
import XCTest
@testable import CollieEngine
@testable import CollieModels

/// Model folders from strangers: every number of config.json is checked, and checked against the weight files'
/// headers before any parameter is allocated, so a bad folder is an error naming the file and key — never a trap,
/// a hang, or an allocation of what the config asks for.
final class UntrustedModelFolderTests: XCTestCase {
    private var folder: URL!

    /// A copy of the llama_mha fixture (config.json, model.safetensors) whose config.json the test edits.
    override func setUpWithError() throws {
        folder = try temporaryFolder(for: self).appendingPathComponent("model")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for name in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(at: ModelFixtures.folder("llama_mha").appendingPathComponent(name),
                                             to: folder.appendingPathComponent(name))
        }
    }

    private func setConfig(_ changes: [String: Any]) throws {
        let url = folder.appendingPathComponent("config.json")
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        for (key, value) in changes { json[key] = value }
        try JSONSerialization.data(withJSONObject: json).write(to: url)
    }

    private func assertLoadFails(_ changes: [String: Any], mentioning words: [String],
                                 file: StaticString = #filePath, line: UInt = #line) throws {
        try setConfig(changes)
        XCTAssertThrowsError(try LlamaForCausalLM.load(from: folder), "\(changes)", file: file, line: line) { error in
            for word in words {
                XCTAssertTrue("\(error)".contains(word), "'\(error)' lacks '\(word)'", file: file, line: line)
            }
        }
    }

    func testOutOfRangeConfigNumbersAreErrorsNamingTheKey() throws {
        let config = folder.appendingPathComponent("config.json").path
        // Before: -2 layers trapped building 0..<-2; 2^62 trapped multiplying shapes; sliding_window 0 was accepted.
        try assertLoadFails(["num_hidden_layers": -2], mentioning: [config, "num_hidden_layers", "-2"])
        try setConfig(["num_hidden_layers": 2])
        for key in ["hidden_size", "intermediate_size", "num_attention_heads", "vocab_size", "max_position_embeddings", "head_dim"] {
            try setConfig(["hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4, "vocab_size": 96,
                           "max_position_embeddings": 64, "head_dim": 8])
            try assertLoadFails([key: 1 << 62], mentioning: [config, key, "\(1 << 62)"])
            try assertLoadFails([key: 0], mentioning: [config, key])
        }
        try setConfig(["hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4, "vocab_size": 96,
                       "max_position_embeddings": 64, "head_dim": 8])
        try assertLoadFails(["model_type": "mistral", "sliding_window": 0], mentioning: [config, "sliding_window"])
        try setConfig(["model_type": "llama"])
        try assertLoadFails(["head_dim": 7, "num_attention_heads": 4], mentioning: [config, "even"])
        try setConfig(["head_dim": 8])
        try assertLoadFails(["rope_theta": -1], mentioning: [config, "rope_theta"])
        try assertLoadFails(["rope_theta": 10000, "rope_scaling": ["rope_type": "linear", "factor": 0]], mentioning: [config, "factor"])
        try assertLoadFails(["rope_scaling": NSNull(), "hidden_size": 1e30], mentioning: [config, "hidden_size"])
    }

    func testConfigThatDisagreesWithTheWeightsFailsBeforeAllocating() throws {
        let config = folder.appendingPathComponent("config.json").path
        // Before: 10^9 × 96 embeddings (and every layer) were allocated — hundreds of GB — before the shapes were compared.
        try assertLoadFails(["hidden_size": 1_000_000_000], mentioning: ["model.embed_tokens.weight", "[96, 32]", "[96, 1000000000]"])
        // Before: 10^7 layers were built until memory ran out.
        try assertLoadFails(["hidden_size": 32, "num_hidden_layers": 10_000_000], mentioning: [config, "num_hidden_layers is 10000000"])
        try assertLoadFails(["num_hidden_layers": 20], mentioning: ["missing: model.layers.10", "in all"])
        try assertLoadFails(["num_hidden_layers": 2, "vocab_size": 2_000_000_000], mentioning: ["[2000000000, 32]"])
    }

    func testFolderPathsThatAreNotFoldersOrFilesAreNamedInCollieWords() throws {
        for (path, words) in [("/dev/zero", ["/dev/zero", "character device", "not a folder"]),
                              ("/proc/self/nope", ["/proc/self/nope", "does not exist"])] {
            XCTAssertThrowsError(try LlamaForCausalLM.load(from: URL(fileURLWithPath: path))) { error in
                for word in words { XCTAssertTrue("\(error)".contains(word), "'\(error)' lacks '\(word)'") }
            }
        }
        let config = folder.appendingPathComponent("config.json")
        try FileManager.default.removeItem(at: config)
        XCTAssertEqual(mkfifo(config.path, 0o600), 0)
        XCTAssertThrowsError(try LlamaForCausalLM.load(from: folder)) { error in
            XCTAssertTrue("\(error)".contains(config.path) && "\(error)".contains("FIFO"), "\(error)")
        }
    }

    func testParameterShapesAreThoseOfTheBuiltModel() throws {
        for variant in ModelFixtures.trainedVariants + ["bf16"] {
            let configuration = try LlamaConfiguration.load(from: ModelFixtures.folder(variant))
            var initialization = Initialization.uninitialized
            let model = LlamaForCausalLM(configuration, initialization: &initialization)
            let built = model.namedParameters.map { "\($0.key) \($0.tensor.shape)" }
            XCTAssertEqual(LlamaForCausalLM.parameterShapes(for: configuration).map { "\($0.key) \($0.shape)" }, built, variant)
        }
    }

    func testAPresetTooLargeForMemoryIsAnErrorBeforeAllocating() throws {
        let configuration = ModelPreset.small.configuration(vocabularySize: 1 << 30)
        XCTAssertThrowsError(try ParameterMemory.check(LlamaForCausalLM.parameterShapes(for: configuration).map(\.shape),
                                                       for: "a small model")) { error in
            XCTAssertTrue("\(error)".contains("a small model would need") && "\(error)".contains("GB of memory"), "\(error)")
        }
        XCTAssertNil(ParameterMemory.bytes(of: [[1 << 40, 1 << 30]]))
        XCTAssertEqual(ParameterMemory.bytes(of: [[2, 3], [4]]), 40)
    }

    func testAdapterConfigThatDisagreesWithItsWeightsFailsBeforeAllocating() throws {
        let adapter = try temporaryFolder(for: self)
        let source = PEFTParityTests.fixture("peft/lora")
        for name in ["adapter_config.json", "adapter_model.safetensors"] {
            try FileManager.default.copyItem(at: source.appendingPathComponent(name), to: adapter.appendingPathComponent(name))
        }
        let configURL = adapter.appendingPathComponent("adapter_config.json")
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as! [String: Any]
        // Before: rank 10^9 allocated 14 adapters of 10^9 × 32 floats (over 200 GB) before reading the file.
        json["r"] = 1_000_000_000
        try JSONSerialization.data(withJSONObject: json).write(to: configURL)
        let model = try LlamaForCausalLM.load(from: PEFTParityTests.fixture("llama_padded"))
        XCTAssertThrowsError(try model.loadAdapter(from: adapter)) { error in
            XCTAssertTrue("\(error)".contains("lora_A.weight") && "\(error)".contains("[1000000000, 32]"), "\(error)")
        }
        XCTAssertNil(model.peftConfiguration, "nothing was added")
        json["r"] = 1e30
        try JSONSerialization.data(withJSONObject: json).write(to: configURL)
        XCTAssertThrowsError(try model.loadAdapter(from: adapter)) { error in
            XCTAssertTrue("\(error)".contains("adapter_config.json: r: must be an integer"), "\(error)")
        }
        // A new adapter (from a training config) must fit in memory.
        XCTAssertThrowsError(try model.addAdapter(.lora(LoRAConfiguration(rank: 1 << 40)))) { error in
            XCTAssertTrue("\(error)".contains("LORA adapter would need"), "\(error)")
        }
        XCTAssertThrowsError(try model.addAdapter(.promptTuning(PromptTuningConfiguration(virtualTokenCount: 1 << 40)))) { error in
            XCTAssertTrue("\(error)".contains("PROMPT_TUNING adapter would need"), "\(error)")
        }
        XCTAssertThrowsError(try model.loadAdapter(from: URL(fileURLWithPath: "/dev/zero"))) { error in
            XCTAssertTrue("\(error)".contains("/dev/zero") && "\(error)".contains("not a folder"), "\(error)")
        }
    }
}
